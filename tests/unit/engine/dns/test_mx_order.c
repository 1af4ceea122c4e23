/* tests/unit/engine/dns/test_mx_order.c — MX ordering: preference, de-duplication and the
 * shuffle of equal preferences, driven by a deterministic random source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "engine/dns/mx_order.h"

static struct dns_host hosts[DNS_MAX_HOSTS];

static unsigned fill(const char *spec[], const unsigned prefs[], unsigned n)
{
    memset(hosts, 0, sizeof hosts);
    for (unsigned i = 0; i < n; i++) {
        snprintf(hosts[i].name, sizeof hosts[i].name, "%s", spec[i]);
        hosts[i].pref = prefs[i];
        hosts[i].naddrs = i; /* a marker that travels with the host */
    }
    return n;
}

/* Replays a fixed sequence, counting how often it was asked. */
struct seq { const uint32_t *v; unsigned n, pos, calls; };
static uint32_t seq_next(void *arg)
{
    struct seq *s = arg;
    s->calls++;
    return s->n ? s->v[s->pos++ % s->n] : 0;
}

static void test_sorts_by_preference(void **state)
{
    (void)state;
    const char *names[] = { "c.example", "a.example", "b.example" };
    const unsigned prefs[] = { 30, 10, 20 };
    unsigned n = mx_order(hosts, fill(names, prefs, 3), NULL, NULL);
    assert_int_equal(n, 3);
    assert_string_equal(hosts[0].name, "a.example");
    assert_string_equal(hosts[1].name, "b.example");
    assert_string_equal(hosts[2].name, "c.example");
    assert_int_equal(hosts[0].naddrs, 1); /* whole struct moved, not just the name */
}

static void test_stable_without_random(void **state)
{
    (void)state;
    const char *names[] = { "x", "y", "z", "w" };
    const unsigned prefs[] = { 5, 5, 1, 5 };
    unsigned n = mx_order(hosts, fill(names, prefs, 4), NULL, NULL);
    assert_int_equal(n, 4);
    assert_string_equal(hosts[0].name, "z");
    assert_string_equal(hosts[1].name, "x");
    assert_string_equal(hosts[2].name, "y");
    assert_string_equal(hosts[3].name, "w");
}

static void test_dedupe_keeps_lowest_preference(void **state)
{
    (void)state;
    const char *names[] = { "MX1.Example.", "mx2.example", "mx1.example", "mx2.example." };
    const unsigned prefs[] = { 20, 10, 5, 30 };
    unsigned n = mx_order(hosts, fill(names, prefs, 4), NULL, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(hosts[0].name, "mx1.example");
    assert_int_equal(hosts[0].pref, 5);
    assert_string_equal(hosts[1].name, "mx2.example");
    assert_int_equal(hosts[1].pref, 10);
}

static void test_shuffles_only_within_equal_preference(void **state)
{
    (void)state;
    const char *names[] = { "a", "b", "c", "d", "e" };
    const unsigned prefs[] = { 10, 10, 10, 20, 0 };
    /* Fisher-Yates over [a b c]: i=3 -> j=0 swaps a,c -> [c b a]; i=2 -> j=0 swaps c,b ->
     * [b c a]. The single-element runs ask for nothing. */
    const uint32_t v[] = { 0, 0 };
    struct seq s = { v, 2, 0, 0 };
    unsigned n = mx_order(hosts, fill(names, prefs, 5), seq_next, &s);
    assert_int_equal(n, 5);
    assert_int_equal(s.calls, 2);
    assert_string_equal(hosts[0].name, "e");
    assert_string_equal(hosts[1].name, "b");
    assert_string_equal(hosts[2].name, "c");
    assert_string_equal(hosts[3].name, "a");
    assert_string_equal(hosts[4].name, "d");
}

static void test_shuffle_reaches_every_order(void **state)
{
    (void)state;
    const char *names[] = { "a", "b", "c" };
    const unsigned prefs[] = { 1, 1, 1 };
    bool seen[3][3] = { { false } };
    /* All 6 (j1, j2) choices give all 6 permutations: every name appears first. */
    for (uint32_t j1 = 0; j1 < 3; j1++)
        for (uint32_t j2 = 0; j2 < 2; j2++) {
            const uint32_t v[] = { j1, j2 };
            struct seq s = { v, 2, 0, 0 };
            mx_order(hosts, fill(names, prefs, 3), seq_next, &s);
            for (unsigned k = 0; k < 3; k++)
                seen[hosts[k].name[0] - 'a'][k] = true;
        }
    for (unsigned a = 0; a < 3; a++)
        for (unsigned k = 0; k < 3; k++)
            assert_true(seen[a][k]);
}

static void test_empty_and_single(void **state)
{
    (void)state;
    assert_int_equal(mx_order(hosts, 0, seq_next, &(struct seq){ 0 }), 0);
    const char *names[] = { "only" };
    const unsigned prefs[] = { 7 };
    struct seq s = { 0 };
    assert_int_equal(mx_order(hosts, fill(names, prefs, 1), seq_next, &s), 1);
    assert_int_equal(s.calls, 0);
}

static void test_same_name(void **state)
{
    (void)state;
    assert_true(mx_order_same_name("A.B", "a.b."));
    assert_true(mx_order_same_name("", "."));
    assert_false(mx_order_same_name("a.b", "a.bc"));
    assert_false(mx_order_same_name("a.b", "a.c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorts_by_preference),
        cmocka_unit_test(test_stable_without_random),
        cmocka_unit_test(test_dedupe_keeps_lowest_preference),
        cmocka_unit_test(test_shuffles_only_within_equal_preference),
        cmocka_unit_test(test_shuffle_reaches_every_order),
        cmocka_unit_test(test_empty_and_single),
        cmocka_unit_test(test_same_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
