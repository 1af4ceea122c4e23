/* schedulers/gcra.h — token buckets as GCRA (the generic cell rate algorithm): one 64-bit
 * "theoretical arrival time" per bucket, no refill timer. Pure: time is passed in, in
 * microseconds; nothing here reads a clock or allocates. */
#ifndef SALVO_SCHEDULERS_GCRA_H
#define SALVO_SCHEDULERS_GCRA_H

#include <stdbool.h>
#include <stdint.h>

/* Per-bucket state. Zero-initialised means "full" (idle since the epoch). */
struct gcra {
    uint64_t tat_us;      /* theoretical arrival time of the next token at the steady pace */
};

/* A rate: one token every emission_us, and up to burst tokens beyond the steady pace at once
 * (a full bucket holds burst + 1). emission_us == 0 means "no limit": every take conforms. */
struct gcra_rate {
    uint64_t emission_us;
    uint64_t burst;
};

/* Returned in *retry_after_us when n can never conform (n > burst + 1). */
#define GCRA_NEVER UINT64_MAX

/* The longest emission interval gcra_rate_set gives (about 11.6 days): slower rates are this
 * slow, which keeps every sum far from saturating. */
#define GCRA_EMISSION_MAX_US 1000000000000ull

/* Sets r to count tokens per period_ms (count may be fractional: 0.5 per 1000 ms is one every
 * 2 s) with burst extra tokens at once. The emission interval is rounded up, so the rate never
 * exceeds the limit. count <= 0 (or period_ms == 0) gives "no limit". */
void gcra_rate_set(struct gcra_rate *r, double count, uint64_t period_ms, unsigned burst);

/* Takes n tokens at now_us if they conform and returns true; otherwise takes nothing, returns
 * false and sets *retry_after_us (may be NULL) to the delay after which the same take would
 * conform, or GCRA_NEVER. n == 0 always conforms. */
bool gcra_take(struct gcra *g, const struct gcra_rate *r, uint64_t now_us, unsigned n,
               uint64_t *retry_after_us);

/* The delay before n tokens would conform at now_us (0: now; GCRA_NEVER: never). Takes nothing. */
uint64_t gcra_wait_us(const struct gcra *g, const struct gcra_rate *r, uint64_t now_us,
                      unsigned n);

/* Tokens that could be taken at now_us without waiting (UINT64_MAX for "no limit"). */
uint64_t gcra_available(const struct gcra *g, const struct gcra_rate *r, uint64_t now_us);

/* A limit made of several buckets (per second AND per minute AND per hour): takes n tokens
 * from every bucket only if n conforms in all of them; otherwise takes none and sets
 * *retry_after_us to the longest wait among them. g[i] is governed by r[i]. */
bool gcra_take_all(struct gcra *g, const struct gcra_rate *r, unsigned nbuckets,
                   uint64_t now_us, unsigned n, uint64_t *retry_after_us);

/* Returns n tokens taken earlier (a transaction that was never started): moves the bucket
 * back by n emission intervals, never below now_us - as if it had been idle. */
void gcra_refund(struct gcra *g, const struct gcra_rate *r, uint64_t now_us, unsigned n);

#endif
