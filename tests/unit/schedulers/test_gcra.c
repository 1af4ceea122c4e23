/* tests/unit/schedulers/test_gcra.c — GCRA buckets over simulated time: exact rates, burst,
 * retry_after that is neither early nor late, several buckets taken all-or-nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "schedulers/gcra.h"

#define MS 1000ull
#define S (1000ull * MS)

/* Takes one token whenever one conforms over [0, span_us): either polling every step_us, or
 * (step_us == 0) sleeping exactly as long as retry_after says. */
static unsigned drain(const struct gcra_rate *r, uint64_t span_us, uint64_t step_us)
{
    struct gcra g = {0};
    unsigned n = 0;
    uint64_t ra;
    for (uint64_t t = 0; t < span_us;) {
        if (gcra_take(&g, r, t, 1, &ra))
            n++;
        else
            t += step_us ? step_us : ra;
    }
    return n;
}

static void test_rate_set(void **state)
{
    (void)state;
    struct gcra_rate r;
    gcra_rate_set(&r, 10, 1000, 0);
    assert_int_equal(r.emission_us, 100 * MS);
    gcra_rate_set(&r, 600, 60000, 3);
    assert_int_equal(r.emission_us, 100 * MS);
    assert_int_equal(r.burst, 3);
    gcra_rate_set(&r, 3, 1000, 0);              /* rounded up: never faster than the limit */
    assert_int_equal(r.emission_us, 333334);
    gcra_rate_set(&r, 0.1, 1000, 0);            /* no float noise on an exact quotient */
    assert_int_equal(r.emission_us, 10 * S);
    gcra_rate_set(&r, 0.5, 1000, 0);
    assert_int_equal(r.emission_us, 2 * S);
    gcra_rate_set(&r, 0, 1000, 5);              /* no limit */
    assert_int_equal(r.emission_us, 0);
    gcra_rate_set(&r, -1, 1000, 5);
    assert_int_equal(r.emission_us, 0);
    gcra_rate_set(&r, 5, 0, 5);
    assert_int_equal(r.emission_us, 0);
    gcra_rate_set(&r, 1e-30, 3600000, 1);       /* absurdly slow is clamped, and still holds */
    assert_int_equal(r.emission_us, GCRA_EMISSION_MAX_US);
    struct gcra g = {0};
    assert_true(gcra_take(&g, &r, 1700000000 * S, 2, NULL));
    assert_false(gcra_take(&g, &r, 1700000000 * S + 3600 * S, 1, NULL));
    gcra_rate_set(&r, 1e12, 1000, 0);           /* faster than 1/us is 1/us */
    assert_int_equal(r.emission_us, 1);
}

static void test_rate_exact(void **state)
{
    (void)state;
    struct gcra_rate r;
    gcra_rate_set(&r, 10, 1000, 0);
    assert_int_equal(drain(&r, 100 * S, 1 * MS), 1000);       /* t = 0, 100 ms, ... 99.9 s */
    gcra_rate_set(&r, 600, 60000, 0);
    assert_int_equal(drain(&r, 60 * S, 1 * MS), 600);
    gcra_rate_set(&r, 3, 1000, 0);
    assert_int_equal(drain(&r, 3600 * S, 0), 10800);     /* 3/s for an hour, exactly */
    gcra_rate_set(&r, 0.5, 1000, 0);
    assert_int_equal(drain(&r, 60 * S, 100 * MS), 30);
    gcra_rate_set(&r, 1000, 3600000, 0);                      /* per hour: one every 3.6 s */
    assert_int_equal(drain(&r, 3600 * S, 0), 1000);

    /* The takes fall exactly on the emission grid. */
    gcra_rate_set(&r, 10, 1000, 0);
    struct gcra g = {0};
    for (uint64_t t = 0, k = 0; t < 2 * S; t += 1 * MS)
        if (gcra_take(&g, &r, t, 1, NULL))
            assert_int_equal(t, 100 * MS * k++);
}

static void test_burst(void **state)
{
    (void)state;
    struct gcra_rate r;
    gcra_rate_set(&r, 10, 1000, 4);
    struct gcra g = {0};
    assert_int_equal(gcra_available(&g, &r, 5 * S), 5);
    for (int i = 0; i < 5; i++)
        assert_true(gcra_take(&g, &r, 5 * S, 1, NULL));
    assert_false(gcra_take(&g, &r, 5 * S, 1, NULL));
    assert_int_equal(gcra_available(&g, &r, 5 * S), 0);
    assert_int_equal(gcra_available(&g, &r, 5 * S + 250 * MS), 2);
    /* Burst + the steady rate over a span. */
    assert_int_equal(drain(&r, 100 * S, 1 * MS), 1004);

    /* n at once: up to burst + 1, never more. */
    struct gcra h = {0};
    uint64_t ra = 0;
    assert_false(gcra_take(&h, &r, 0, 6, &ra));
    assert_int_equal(ra, GCRA_NEVER);
    assert_int_equal(h.tat_us, 0);
    assert_true(gcra_take(&h, &r, 0, 5, &ra));
    assert_int_equal(ra, 0);
    assert_false(gcra_take(&h, &r, 0, 1, &ra));
    assert_int_equal(ra, 100 * MS);
    assert_true(gcra_take(&h, &r, 0, 0, &ra));     /* nothing always conforms */

    /* An idle bucket refills to burst + 1, not beyond. */
    assert_int_equal(gcra_available(&h, &r, 3600 * S), 5);
}

static void test_retry_after(void **state)
{
    (void)state;
    /* For random rates, bursts, times and sizes: a refused take says when, and is refused
     * one microsecond earlier and granted at that time. */
    srand(12345);
    for (int iter = 0; iter < 2000; iter++) {
        struct gcra_rate r;
        double count = 1 + rand() % 50;
        uint64_t period = (uint64_t)(1 + rand() % 3) * (rand() % 2 ? 1000 : 60000);
        unsigned burst = (unsigned)(rand() % 6);
        gcra_rate_set(&r, count, period, burst);
        struct gcra g = {0};
        uint64_t now = (uint64_t)(rand() % 1000) * MS;
        for (int step = 0; step < 20; step++) {
            unsigned n = 1 + (unsigned)(rand() % (burst + 1));
            uint64_t ra;
            if (gcra_take(&g, &r, now, n, &ra)) {
                assert_int_equal(ra, 0);
            } else {
                assert_true(ra > 0 && ra != GCRA_NEVER);
                struct gcra copy = g;
                assert_int_equal(gcra_wait_us(&g, &r, now, n), ra);
                assert_false(gcra_take(&copy, &r, now + ra - 1, n, NULL));
                assert_memory_equal(&copy, &g, sizeof g);    /* a refusal takes nothing */
                assert_true(gcra_take(&copy, &r, now + ra, n, NULL));
            }
            now += (uint64_t)(rand() % 500) * MS / (1 + (unsigned)(rand() % 10));
        }
    }
}

static void test_unlimited(void **state)
{
    (void)state;
    struct gcra_rate r;
    gcra_rate_set(&r, 0, 1000, 0);
    struct gcra g = {0};
    uint64_t ra = 7;
    for (int i = 0; i < 100000; i++)
        assert_true(gcra_take(&g, &r, 0, 1000, &ra));
    assert_int_equal(ra, 0);
    assert_int_equal(g.tat_us, 0);
    assert_int_equal(gcra_available(&g, &r, 0), UINT64_MAX);
}

static void test_multi_bucket(void **state)
{
    (void)state;
    /* 10/s with burst 9, 20/min holding the whole minute, 30/hour holding the whole hour. */
    struct gcra_rate r[3];
    gcra_rate_set(&r[0], 10, 1000, 9);
    gcra_rate_set(&r[1], 20, 60000, 19);
    gcra_rate_set(&r[2], 30, 3600000, 29);
    struct gcra g[3] = {{0}};
    uint64_t ra;

    assert_true(gcra_take_all(g, r, 3, 0, 10, &ra));          /* all ten at once */
    struct gcra before[3];
    memcpy(before, g, sizeof g);
    /* The second bucket still has 10, but the first is empty: nothing is taken anywhere. */
    assert_false(gcra_take_all(g, r, 3, 0, 1, &ra));
    assert_int_equal(ra, 100 * MS);
    assert_memory_equal(before, g, sizeof g);

    unsigned sent = 10;
    uint64_t t = 0;
    while (t < 60 * S) {
        if (gcra_take_all(g, r, 3, t, 1, &ra)) {
            sent++;
            continue;
        }
        /* The wait is the longest of the buckets' waits, and is exact. */
        uint64_t w = 0;
        for (int i = 0; i < 3; i++) {
            uint64_t wi = gcra_wait_us(&g[i], &r[i], t, 1);
            w = wi > w ? wi : w;
        }
        assert_int_equal(ra, w);
        memcpy(before, g, sizeof g);
        assert_false(gcra_take_all(g, r, 3, t + ra - 1, 1, NULL));
        assert_memory_equal(before, g, sizeof g);
        t += ra;
    }
    /* The minute allowance (20) went in the first two seconds; within the first minute
     * refill gives one more every 3 s, until the hour bucket (30) runs dry. */
    assert_int_equal(sent, 30);
    assert_true(gcra_take_all(g, r, 0, t, 1000, &ra));        /* no buckets: no limit */
}

static void test_refund(void **state)
{
    (void)state;
    struct gcra_rate r;
    gcra_rate_set(&r, 1, 1000, 0);
    struct gcra g = {0};
    assert_true(gcra_take(&g, &r, 10 * S, 1, NULL));
    assert_false(gcra_take(&g, &r, 10 * S, 1, NULL));
    gcra_refund(&g, &r, 10 * S, 1);
    assert_true(gcra_take(&g, &r, 10 * S, 1, NULL));
    gcra_refund(&g, &r, 10 * S + 500 * MS, 5);               /* never below now */
    assert_int_equal(g.tat_us, 10 * S + 500 * MS);
}

static void test_saturation(void **state)
{
    (void)state;
    /* Absurd rates and clocks must not wrap round into "conforms". */
    struct gcra_rate r = {.emission_us = UINT64_MAX / 2, .burst = 0};
    struct gcra g = {0};
    uint64_t ra;
    assert_true(gcra_take(&g, &r, 0, 1, NULL));
    assert_false(gcra_take(&g, &r, 0, 1, &ra));
    assert_int_equal(ra, UINT64_MAX / 2);
    assert_int_equal(gcra_available(&g, &r, 0), 0);
    uint64_t now = UINT64_MAX - 10;
    assert_true(gcra_take(&g, &r, now, 1, NULL));
    assert_int_equal(g.tat_us, UINT64_MAX);
    assert_false(gcra_take(&g, &r, now, 1, &ra));
    assert_true(ra > 0);
    struct gcra_rate big = {.emission_us = 1000, .burst = UINT64_MAX};
    struct gcra h = {0};
    assert_true(gcra_take(&h, &big, 0, 4000000000u, NULL));
    assert_int_equal(gcra_available(&h, &big, 0), UINT64_MAX / 1000 - 4000000000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_set),
        cmocka_unit_test(test_rate_exact),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_multi_bucket),
        cmocka_unit_test(test_refund),
        cmocka_unit_test(test_saturation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
