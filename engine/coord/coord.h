/* engine/coord/coord.h — shaping state shared by every replica, in Redis: message-rate tokens
 * (GCRA in a Lua script, leased a few at a time), connection leases (taken before connect,
 * renewed while open, released on close, expiring with a dead replica), warm-up budgets and
 * outcome counts, and backoff holds (suspensions) that every replica sees.
 * The delivery layer asks synchronously and never waits on Redis: answers come from what this
 * replica already holds; when it holds nothing, one request goes out and the caller asks again
 * after *wait_ms. While Redis is down, rate and connection checks pass (each replica's own
 * buckets still hold) and warm-up budgets do not (no cap may be exceeded).
 * Owns: its Redis connection and every lease, budget and count it holds. */
#ifndef SALVO_ENGINE_COORD_COORD_H
#define SALVO_ENGINE_COORD_COORD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ring/ring.h"
#include "schedulers/backoff.h"
#include "schedulers/gcra.h"

struct coord_config {
    const char *redis_url;
    const char *prefix;              /* key prefix ("salvo") */
    const char *instance;            /* this replica's name, in lease members */
    unsigned conn_lease_ttl_ms;      /* a lease not renewed for this long is free (15000) */
    unsigned rate_lease_ms;          /* tokens leased at once: about this many ms of the
                                        rate (100), 1..64 tokens */
    unsigned holds_poll_ms;          /* how often other replicas' holds are read (1000) */
    struct backoff_table *holds;     /* filled with the holds read from Redis */
    void (*on_holds)(void *arg);     /* the table changed, or was read for the first time */
    void (*on_yield)(void *arg, const char *key); /* close idle connections of key: others wait
                                                     (coord_conn_yield says how many) */
    void *arg;
};
void coord_config_defaults(struct coord_config *c);

struct coord;
int coord_create(struct coord **out, struct ring *ring, const struct coord_config *cfg,
                 const char **why);
/* Releases held connection leases and unused budgets (queued; a turn of the ring sends them),
 * then frees. */
void coord_destroy(struct coord *c);
bool coord_up(const struct coord *c);
/* Queues the release of every lease and budget this replica holds (shutdown). */
void coord_release_all(struct coord *c);

/* One message token for key under the given buckets (emission_us 0 = no limit). true: go.
 * false: ask again in *wait_ms (a lease is on its way, or the cluster's bucket is empty for
 * that long). */
bool coord_rate_take(struct coord *c, const char *key, const struct gcra_rate *rates,
                     unsigned nrates, uint64_t *wait_ms);

/* A connection lease for key, at most limit held over the cluster. true: one is now in use
 * (coord_conn_release when the connection closes). false: ask again in *wait_ms. */
bool coord_conn_acquire(struct coord *c, const char *key, unsigned limit, uint64_t *wait_ms);
void coord_conn_release(struct coord *c, const char *key);
/* Whether one connection of key should close to make room: another replica waits with no
 * connection while this one holds more than a fair share (limit / replicas that want it).
 * true: close one (at its next idle moment); its lease goes back at once on release. */
bool coord_conn_yield(struct coord *c, const char *key);

/* Warm-up budgets: counters in Redis, each with a cap, all taken from together. */
#define COORD_BUDGET_MAX 4
struct coord_budget {
    char key[300];                   /* counter key, without the prefix */
    uint64_t cap;
};
enum coord_budget_result { COORD_GO, COORD_WAIT, COORD_EXHAUSTED };
/* One message from every budget in b[0..n), which belong to the window ending at
 * window_end_wall_ms (wall clock). want: how many this caller expects to need soon (a lease
 * takes up to that many, at most 32). GO: taken. WAIT: ask again in *wait_ms. EXHAUSTED: some
 * cap is reached; *wait_ms is the time to the window's end. */
enum coord_budget_result coord_budget_take(struct coord *c, const struct coord_budget *b,
                                           unsigned n, int64_t window_end_wall_ms,
                                           unsigned want, uint64_t *wait_ms);
/* Gives back one message taken with COORD_GO that was not sent after all. */
void coord_budget_return(struct coord *c, const struct coord_budget *b, unsigned n);
/* Whether the budget set was found exhausted (cheap; no request). */
bool coord_budget_exhausted(struct coord *c, const struct coord_budget *b, unsigned n);

/* Adds by to field of hash key (without the prefix); sent in batches about once a second.
 * Keys expire after ttl_s. */
void coord_count(struct coord *c, const char *key, const char *field, long long by,
                 unsigned ttl_s);

/* A source's warm-up ramp state: held days and why the last one held. Rolled over once a day
 * by whichever replica asks first; decide() says whether the day that ended holds the ramp,
 * from that day's outcome counts (stats: hash of "<provider>:<sent|bounced|deferred>"). */
struct coord_warmup_day_stats {
    char provider[64];
    uint64_t sent, bounced, deferred;
};
typedef bool (*coord_hold_fn)(void *arg, const struct coord_warmup_day_stats *s, unsigned n,
                              char *why, size_t whylen);
/* 1 and *held, why (may be ""; valid until the next call) known for today; 0 while it is
 * being read (ask again in a few ms). stats_prefix: the hash of a day is stats_prefix + day. */
int coord_warmup_state(struct coord *c, const char *source, int64_t today,
                       const char *stats_prefix, coord_hold_fn decide, void *arg,
                       unsigned *held, const char **why);

/* Publishes a hold (until_ms on the ring's monotonic clock) for every replica; the caller has
 * put it in its own table already. */
void coord_publish_hold(struct coord *c, const struct backoff_hold *h);

/* Key prefix for warm-up keys: "<prefix>:{p0}:wu:". */
const char *coord_key_prefix(const struct coord *c);

struct coord_stats {
    uint64_t rate_requests, conn_requests, budget_requests, denied;
};
void coord_get_stats(const struct coord *c, struct coord_stats *out);

#endif
