/* tests/unit/engine/util/test_buf.c — the capped growable buffer: growth, the cap (-ENOBUFS,
 * contents untouched), consume, printf, and reuse without reallocating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "engine/util/buf.h"

static void test_growth(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, "", 0), 0);      /* nothing: no allocation */
    assert_null(b.data);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_true(b.cap >= 3);
    assert_memory_equal(b.data, "abc", 3);
    /* grow well past the first allocation, byte pattern intact */
    uint8_t chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t)i;
    for (int k = 0; k < 300; k++)
        assert_int_equal(buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(b.len, 3 + 300 * 1000);
    assert_true(b.cap >= b.len && b.cap <= b.max);
    for (int k = 0; k < 300; k++)
        assert_memory_equal(b.data + 3 + k * 1000, chunk, sizeof chunk);
    /* reserve does not change len */
    size_t len = b.len;
    assert_int_equal(buf_reserve(&b, 5000), 0);
    assert_int_equal(b.len, len);
    assert_true(b.cap - b.len >= 5000);
    buf_fini(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_fini(&b);   /* twice: harmless */
}

static void test_cap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1000);
    uint8_t x[1001];
    memset(x, 'x', sizeof x);
    assert_int_equal(buf_append(&b, x, 1001), -ENOBUFS);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, x, 600), 0);
    assert_int_equal(buf_append(&b, x, 401), -ENOBUFS);
    assert_int_equal(b.len, 600);                     /* contents as before */
    assert_int_equal(buf_reserve(&b, 401), -ENOBUFS);
    assert_int_equal(buf_append(&b, x, 400), 0);      /* exactly the cap */
    assert_int_equal(b.len, 1000);
    assert_true(b.cap <= 1000);
    assert_int_equal(buf_append(&b, x, 1), -ENOBUFS);
    assert_int_equal(buf_printf(&b, "%d", 1), -ENOBUFS);
    assert_int_equal(b.len, 1000);
    buf_fini(&b);

    /* a cap below the first allocation size */
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_true(b.cap <= 10);
    assert_int_equal(buf_append(&b, "a", 1), -ENOBUFS);
    buf_fini(&b);

    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "a", 1), -ENOBUFS);
    assert_int_equal(buf_append(&b, "", 0), 0);
    buf_fini(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(buf_printf(&b, "%s=%d;", "a", 42), 0);
    assert_int_equal(buf_printf(&b, "%05.1f", 2.25), 0);
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, strlen("a=42;002.2"));
    assert_memory_equal(b.data, "a=42;002.2", b.len);
    /* long output grows the buffer */
    char big[3000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 10 + 3001);
    assert_int_equal(b.data[10], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    buf_fini(&b);
}

static void test_consume_clear_reuse(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(buf_append(&b, "hello world", 11), 0);
    buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    buf_consume(&b, 0);
    assert_int_equal(b.len, 5);
    buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    buf_consume(&b, 100);    /* more than held: empty */
    assert_int_equal(b.len, 0);
    /* clear keeps the memory: reuse for a same-sized message does not reallocate */
    uint8_t big[20000];
    memset(big, 7, sizeof big);
    assert_int_equal(buf_append(&b, big, sizeof big), 0);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    for (int i = 0; i < 10; i++) {
        buf_clear(&b);
        assert_int_equal(b.len, 0);
        assert_int_equal(buf_append(&b, big, sizeof big), 0);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.cap, cap);
    }
    buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_consume_clear_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
