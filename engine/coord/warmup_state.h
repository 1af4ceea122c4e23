/* engine/coord/warmup_state.h — the warm-up state of every warming source, as JSON: its day,
 * held days and why, step, and for each ramp (the global one and each provider's) today's and
 * this hour's cap, used and remaining, plus today's outcome counts per provider. Reads Redis
 * through a callback, so the command line and the API share it. Layout: docs/redis.md. */
#ifndef SALVO_ENGINE_COORD_WARMUP_STATE_H
#define SALVO_ENGINE_COORD_WARMUP_STATE_H

#include <jansson.h>
#include <stdint.h>

#include "engine/delivery/delivery.h"
#include "schedulers/shaping.h"

/* Runs one Redis command; the reply as JSON (rds_sync.h), or NULL on error. */
typedef json_t *(*warmup_state_redis_fn)(void *arg, int argc, const char *const *argv);

/* {"sources": [...]} for the sources in srcs[0..n) that have a warm-up plan in rules, at
 * now_s (Unix time). prefix: the key prefix ("salvo"). NULL when Redis could not be read. */
json_t *warmup_state_json(const struct dlv_source *srcs, unsigned n,
                          const struct shaping_rules *rules, const char *prefix, int64_t now_s,
                          warmup_state_redis_fn redis, void *arg);

#endif
