/* schedulers/gcra.c — GCRA token buckets. Owns the arithmetic only: which bucket a message
 * or connection draws from, and what to do when it must wait, belong to the caller.
 * All sums saturate, so absurd rates or clocks give "wait a very long time", never a wrap. */
#include "schedulers/gcra.h"

#include <stddef.h>

static uint64_t gcra__mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t gcra__add(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

void gcra_rate_set(struct gcra_rate *r, double count, uint64_t period_ms, unsigned burst)
{
    r->burst = burst;
    r->emission_us = 0;
    if (!(count > 0) || period_ms == 0)
        return;
    double x = (double)period_ms * 1000.0 / count;
    if (!(x < (double)GCRA_EMISSION_MAX_US)) {
        r->emission_us = GCRA_EMISSION_MAX_US;
        return;
    }
    uint64_t em = (uint64_t)x;
    /* Round up so the rate never exceeds the limit, but do not let float noise in an exact
     * quotient (1e6 / 0.1) cost a microsecond. */
    if (x - (double)em > x * 1e-12)
        em++;
    r->emission_us = em ? em : 1;
}

uint64_t gcra_wait_us(const struct gcra *g, const struct gcra_rate *r, uint64_t now_us,
                      unsigned n)
{
    if (r->emission_us == 0 || n == 0)
        return 0;
    if (n - 1 > r->burst)
        return GCRA_NEVER;
    uint64_t tat = g->tat_us > now_us ? g->tat_us : now_us;
    uint64_t ahead = tat - now_us;
    /* Conforms when ahead + n*T <= (burst+1)*T, i.e. ahead <= (burst+1-n)*T. */
    uint64_t slack = gcra__mul(r->burst - (n - 1), r->emission_us);
    return ahead <= slack ? 0 : ahead - slack;
}

bool gcra_take(struct gcra *g, const struct gcra_rate *r, uint64_t now_us, unsigned n,
               uint64_t *retry_after_us)
{
    uint64_t wait = gcra_wait_us(g, r, now_us, n);
    if (retry_after_us)
        *retry_after_us = wait;
    if (wait)
        return false;
    if (r->emission_us == 0 || n == 0)
        return true;
    uint64_t tat = g->tat_us > now_us ? g->tat_us : now_us;
    g->tat_us = gcra__add(tat, gcra__mul(n, r->emission_us));
    return true;
}

uint64_t gcra_available(const struct gcra *g, const struct gcra_rate *r, uint64_t now_us)
{
    if (r->emission_us == 0)
        return UINT64_MAX;
    uint64_t tat = g->tat_us > now_us ? g->tat_us : now_us;
    uint64_t ahead = tat - now_us;
    uint64_t cap = gcra__mul(gcra__add(r->burst, 1), r->emission_us);
    return ahead >= cap ? 0 : (cap - ahead) / r->emission_us;
}

bool gcra_take_all(struct gcra *g, const struct gcra_rate *r, unsigned nbuckets,
                   uint64_t now_us, unsigned n, uint64_t *retry_after_us)
{
    uint64_t worst = 0;
    for (unsigned i = 0; i < nbuckets; i++) {
        uint64_t w = gcra_wait_us(&g[i], &r[i], now_us, n);
        if (w > worst)
            worst = w;
    }
    if (retry_after_us)
        *retry_after_us = worst;
    if (worst)
        return false;
    for (unsigned i = 0; i < nbuckets; i++)
        (void)gcra_take(&g[i], &r[i], now_us, n, NULL);
    return true;
}

void gcra_refund(struct gcra *g, const struct gcra_rate *r, uint64_t now_us, unsigned n)
{
    if (r->emission_us == 0 || g->tat_us <= now_us)
        return;
    uint64_t back = gcra__mul(n, r->emission_us);
    uint64_t tat = g->tat_us > back ? g->tat_us - back : 0;
    g->tat_us = tat > now_us ? tat : now_us;
}
