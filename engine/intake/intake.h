/* engine/intake/intake.h — the durable message lifecycle on Redis (DESIGN §2): reads jobs from
 * the intake streams (consumer group, one consumer per replica), builds and hands them to the
 * delivery layer, and settles every outcome with one atomic script call per batch: done
 * (event + ack), waiting (retry set + event + ack) or dead-letter. Promotes due retries,
 * heartbeats, and claims the pending entries of dead replicas.
 * Owns: both Redis connections, the in-memory message slots, the campaign cache. */
#ifndef SALVO_ENGINE_INTAKE_INTAKE_H
#define SALVO_ENGINE_INTAKE_INTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/delivery/delivery.h"
#include "engine/intake/job.h"
#include "engine/ring/ring.h"

#define INTAKE_MAX_RETRY_STEPS 32

struct intake_config {
    const char *redis_url;
    const char *prefix;            /* key prefix (default "salvo") */
    const char *instance;          /* consumer name of this replica */
    unsigned max_in_memory;        /* messages held at once (default 5000) */
    unsigned tx_reserve;           /* of which kept free for transactional mail (default 500) */
    unsigned read_batch;           /* entries per XREADGROUP (default 500) */
    unsigned block_ms;             /* XREADGROUP BLOCK (default 1000) */
    unsigned heartbeat_ttl_ms;     /* default 10000 */
    unsigned claim_interval_ms;    /* default 5000 */
    unsigned promote_interval_ms;  /* default 500 */
    unsigned events_max;           /* events stream cap (default 1000000) */
    unsigned dead_max;             /* dead-letter stream cap (default 100000) */
    unsigned retry_s[INTAKE_MAX_RETRY_STEPS]; /* delay before attempt n+1; last repeats */
    unsigned nretry;
    double retry_jitter;           /* +- fraction (default 0.1) */
    unsigned max_attempts;         /* default 30 */
    uint64_t max_age_ms;           /* default 3 days */
    unsigned idempotency_ttl_s;    /* default 86400 */
    unsigned busy_retry_ms;        /* a message its destination could not take now waits this
                                      long in the retry set, no attempt used (default 5000) */
    const char *events_file;       /* JSON lines, or NULL */
    struct job_limits job_limits;
};
void intake_config_defaults(struct intake_config *c);

struct intake;

int intake_create(struct intake **out, struct ring *ring, struct dlv *dlv,
                  const struct intake_config *cfg, const char **why);
/* Stops reading new work; what is in memory still finishes. */
void intake_stop_reading(struct intake *in);
/* Messages in memory (read, delivering or settling). */
unsigned intake_in_memory(const struct intake *in);
/* True when both Redis connections are up and scripts are loaded. */
bool intake_ready(const struct intake *in);
/* Reopens the events file (log rotation). */
void intake_reopen_events(struct intake *in);
/* Removes this replica's heartbeat so others may claim what it leaves pending, then frees. */
void intake_destroy(struct intake *in);

struct intake_stats {
    uint64_t read, delivered, deferred, bounced, expired, rejected, settled_batches;
    uint64_t redis_commands;
};
void intake_get_stats(const struct intake *in, struct intake_stats *out);

#endif
