/* tests/unit/schedulers/test_concurrency.c — the connection window: full until pushback,
 * halved by each 421 (never below 1), grown back by deliveries at 1/window each, never above
 * the limit; a lowered limit applies at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "schedulers/concurrency.h"

static void test_untouched_is_the_limit(void **state)
{
    (void)state;
    struct conc_window c = {0};
    assert_int_equal(conc_allowed(&c, 10), 10);
    assert_true(conc_may_open(&c, 10, 9));
    assert_false(conc_may_open(&c, 10, 10));
    assert_int_equal(conc_allowed(&c, 0), 1);   /* a limit of 0 still allows one */
}

static void test_pushback_halves_down_to_one(void **state)
{
    (void)state;
    struct conc_window c = {0};
    conc_feedback(&c, 10, false);
    assert_int_equal(conc_allowed(&c, 10), 5);
    conc_feedback(&c, 10, false);
    assert_int_equal(conc_allowed(&c, 10), 2);  /* 2.5 */
    conc_feedback(&c, 10, false);
    conc_feedback(&c, 10, false);
    conc_feedback(&c, 10, false);
    assert_int_equal(conc_allowed(&c, 10), 1);
    assert_true(conc_may_open(&c, 10, 0));
    assert_false(conc_may_open(&c, 10, 1));
}

static void test_deliveries_grow_it_back_slowly(void **state)
{
    (void)state;
    struct conc_window c = {0};
    for (int i = 0; i < 10; i++)
        conc_feedback(&c, 8, false);
    assert_int_equal(conc_allowed(&c, 8), 1);
    /* from 1 to 2 takes one delivery, 2 to 3 two more, ...: about n deliveries per step */
    unsigned n = 0;
    while (conc_allowed(&c, 8) < 8) {
        conc_feedback(&c, 8, true);
        n++;
        assert_true(n < 100);
    }
    assert_in_range(n, 20, 40);   /* sum of 1/w steps from 1 to 8 is about 28 */
    for (int i = 0; i < 1000; i++)
        conc_feedback(&c, 8, true);
    assert_int_equal(conc_allowed(&c, 8), 8);   /* never above the limit */
}

static void test_lowered_limit_applies_at_once(void **state)
{
    (void)state;
    struct conc_window c = {0};
    conc_feedback(&c, 10, true);                 /* window at the limit, 10 */
    assert_int_equal(conc_allowed(&c, 3), 3);
    conc_feedback(&c, 3, false);                 /* halves from the new limit */
    assert_int_equal(conc_allowed(&c, 3), 1);    /* 1.5 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untouched_is_the_limit),
        cmocka_unit_test(test_pushback_halves_down_to_one),
        cmocka_unit_test(test_deliveries_grow_it_back_slowly),
        cmocka_unit_test(test_lowered_limit_applies_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
