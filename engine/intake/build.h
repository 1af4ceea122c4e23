/* engine/intake/build.h — from a parsed job to the bytes that go on the wire: raw content as
 * is, parts assembled into MIME, campaign templates merged with the job's fields; and the
 * per-worker cache of parsed campaigns (fetched from Redis once, shared by all their jobs).
 * Owns: the campaign cache and the merge scratch space. */
#ifndef SALVO_ENGINE_INTAKE_BUILD_H
#define SALVO_ENGINE_INTAKE_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/intake/job.h"
#include "engine/util/buf.h"

struct build_ctx;      /* a cached, parsed campaign */
struct build_cache;

struct build_waiter {  /* embedded in whoever waits for a campaign */
    struct build_waiter *next;
};

enum { BUILD_CACHE_PENDING = 1, BUILD_CACHE_UNKNOWN = -2, BUILD_CACHE_INVALID = -3 };

/* The cache asks its owner to fetch campaign JSON; the owner calls done exactly once
 * (json NULL and temp_error false: no such campaign). */
typedef void (*build_fetch_done)(void *done_arg, const char *json, size_t len, bool temp_error);
typedef void (*build_fetch_fn)(void *arg, const char *id, build_fetch_done done, void *done_arg);
/* Waiters of a campaign whose fetch finished (loaded = false: a temporary error, try later). */
typedef void (*build_ready_fn)(void *arg, struct build_waiter *list, bool loaded);

struct build_cache *build_cache_create(build_fetch_fn fetch, void *fetch_arg, build_ready_fn ready,
                                       void *ready_arg);
void build_cache_destroy(struct build_cache *c);
/* 0 with *out set and referenced (build_cache_put when done); BUILD_CACHE_PENDING (w queued, ready callback follows); or
 * BUILD_CACHE_UNKNOWN / BUILD_CACHE_INVALID (with *why). */
int build_cache_get(struct build_cache *c, const char *id, struct build_waiter *w,
                    struct build_ctx **out, const char **why);

/* Releases the reference a successful build_cache_get gave. */
void build_cache_put(struct build_ctx *ctx);

const char *build_campaign_from(const struct build_ctx *ctx);
uint64_t build_campaign_max_age_ms(const struct build_ctx *ctx);
const char *build_campaign_pool(const struct build_ctx *ctx);
unsigned build_campaign_max_attempts(const struct build_ctx *ctx);

/* Produces the message for job j (campaign ctx for campaign jobs, else NULL). The result is
 * either j's own content or bytes in body. 0, or -1 with *err (a reason for the dead letter). */
int build_message(struct build_ctx *ctx, const struct job *j, int64_t now_ms, uint64_t unique,
                  struct buf *body, const uint8_t **out, size_t *len, const char **err);

#endif
