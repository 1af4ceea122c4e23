/* tests/unit/engine/smtp/test_smtp_data.c — the body stuffer: line ending normalisation,
 * dot-stuffing, the end mark, tiny output buffers, splits at every byte, and the exact size
 * promise; plus the message and address scans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "engine/smtp/smtp_data.h"

static uint8_t OUT[1 << 16];

/* Runs the stuffer over in, split into in_chunk-sized pieces, into out_cap-sized windows. */
static size_t run(const uint8_t *in, size_t len, bool dot, size_t in_chunk, size_t out_cap)
{
    struct smtp_stuffer s;
    size_t pos = 0, w = 0;
    smtp_stuffer_init(&s, dot);
    while (pos < len) {
        size_t take = len - pos < in_chunk ? len - pos : in_chunk, used = 0;
        while (used < take || s.npend) {
            size_t c = 0;
            w += smtp_stuff(&s, in + pos + used, take - used, &c, OUT + w, out_cap);
            used += c;
            assert_true(w + out_cap <= sizeof OUT);
        }
        pos += take;
    }
    do
        w += smtp_stuff_finish(&s, OUT + w, out_cap);
    while (s.npend);
    assert_int_equal(w, smtp_stuffed_size(in, len, dot));
    return w;
}

static void expect(const char *in, bool dot, const char *want)
{
    const uint8_t *u = (const uint8_t *)in;
    size_t len = strlen(in), want_len = strlen(want);
    /* Whole, then every input split with every small output window. */
    assert_int_equal(run(u, len, dot, len ? len : 1, sizeof OUT / 2), want_len);
    assert_memory_equal(OUT, want, want_len);
    for (size_t chunk = 1; chunk <= 3; chunk++) {
        for (size_t cap = 1; cap <= 6; cap++) {
            assert_int_equal(run(u, len, dot, chunk, cap), want_len);
            assert_memory_equal(OUT, want, want_len);
        }
    }
}

static void test_plain(void **state)
{
    (void)state;
    expect("hello\r\n", true, "hello\r\n.\r\n");
    expect("hello", true, "hello\r\n.\r\n");
    expect("hello\r\n", false, "hello\r\n");
    expect("hello", false, "hello\r\n");
}

static void test_empty_body(void **state)
{
    (void)state;
    expect("", true, ".\r\n");
    expect("", false, "");
}

static void test_dots(void **state)
{
    (void)state;
    expect(".", true, "..\r\n.\r\n");
    expect(".hidden\r\n", true, "..hidden\r\n.\r\n");
    expect("a\r\n.\r\nb\r\n", true, "a\r\n..\r\nb\r\n.\r\n");
    expect("a.b\r\n..\r\n", true, "a.b\r\n...\r\n.\r\n");
    expect("a\n.\nb", true, "a\r\n..\r\nb\r\n.\r\n");
    /* BDAT: dots pass untouched. */
    expect("a\r\n.\r\nb", false, "a\r\n.\r\nb\r\n");
}

static void test_line_endings(void **state)
{
    (void)state;
    expect("a\rb", true, "a\r\nb\r\n.\r\n");
    expect("a\nb", true, "a\r\nb\r\n.\r\n");
    expect("a\r\n\r\nb", false, "a\r\n\r\nb\r\n");
    expect("a\n\rb", false, "a\r\n\r\nb\r\n");
    expect("a\r\r\nb", false, "a\r\n\r\nb\r\n");
    expect("\r", true, "\r\n.\r\n");
    expect("\n", false, "\r\n");
    expect("\r\n", false, "\r\n");
    /* A bare CR then a dot: the dot starts a line. */
    expect("a\r.b", true, "a\r\n..b\r\n.\r\n");
    /* The smuggling shape: "\n.\n" and "\r.\r" never leave an end mark mid-body. */
    expect("x\n.\ny", true, "x\r\n..\r\ny\r\n.\r\n");
    expect("x\r.\ry", true, "x\r\n..\r\ny\r\n.\r\n");
}

static void test_crlf_split_across_calls(void **state)
{
    (void)state;
    struct smtp_stuffer s;
    uint8_t out[16];
    size_t used, w;
    smtp_stuffer_init(&s, true);
    w = smtp_stuff(&s, (const uint8_t *)"ab\r", 3, &used, out, sizeof out);
    assert_int_equal(used, 3);
    w += smtp_stuff(&s, (const uint8_t *)"\n.c", 3, &used, out + w, sizeof out - w);
    assert_int_equal(used, 3);
    w += smtp_stuff_finish(&s, out + w, sizeof out - w);
    assert_int_equal(w, 12);
    assert_memory_equal(out, "ab\r\n..c\r\n.\r\n", 12);
}

static void test_out_cap_one(void **state)
{
    (void)state;
    struct smtp_stuffer s;
    const uint8_t *in = (const uint8_t *)".\n";
    uint8_t out[8];
    size_t used, w = 0, pos = 0;
    smtp_stuffer_init(&s, true);
    /* One byte a call: the stuffer keeps what does not fit and takes input only with room. */
    w += smtp_stuff(&s, in, 2, &used, out + w, 1);
    assert_int_equal(w, 1);
    assert_int_equal(used, 1);
    assert_int_equal(s.npend, 1);
    pos += used;
    w += smtp_stuff(&s, in + pos, 2 - pos, &used, out + w, 1);
    assert_int_equal(used, 0);          /* only the pending dot went out */
    w += smtp_stuff(&s, in + pos, 2 - pos, &used, out + w, 1);
    assert_int_equal(used, 1);
    w += smtp_stuff(&s, in + 2, 0, &used, out + w, 1);
    assert_int_equal(s.npend, 0);
    assert_int_equal(w, 4);
    /* finish with no room at all keeps its end mark pending. */
    assert_int_equal(smtp_stuff_finish(&s, out + w, 0), 0);
    assert_int_equal(s.npend, 3);
    while (s.npend)
        w += smtp_stuff_finish(&s, out + w, 1);
    assert_int_equal(smtp_stuff_finish(&s, out + w, 8), 0);   /* spent */
    assert_int_equal(w, 7);
    assert_memory_equal(out, "..\r\n.\r\n", 7);
}

static void test_out_cap_zero(void **state)
{
    (void)state;
    struct smtp_stuffer s;
    uint8_t out[1];
    size_t used = 99;
    smtp_stuffer_init(&s, false);
    assert_int_equal(smtp_stuff(&s, (const uint8_t *)"abc", 3, &used, out, 0), 0);
    assert_int_equal(used, 0);
}

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* No bare CR or LF, no end mark before the end, and un-stuffing gives the normalised input. */
static void check_wire(const uint8_t *in, size_t len, const uint8_t *out, size_t n, bool dot)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '\r')
            assert_true(i + 1 < n && out[i + 1] == '\n');
        if (out[i] == '\n')
            assert_true(i > 0 && out[i - 1] == '\r');
    }
    size_t j = 0, end = dot ? n - 3 : n;
    bool bol = true;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == '\n' && i > 0 && in[i - 1] == '\r')
            continue;
        if (c == '\r' || c == '\n') {
            assert_true(j + 2 <= end && out[j] == '\r' && out[j + 1] == '\n');
            j += 2;
            bol = true;
            continue;
        }
        if (dot && bol && c == '.') {
            assert_int_equal(out[j++], '.');
        }
        assert_true(j < end);
        assert_int_equal(out[j++], c);
        bol = false;
    }
    if (!bol) {
        assert_memory_equal(out + j, "\r\n", 2);
        j += 2;
    }
    assert_int_equal(j, end);
    if (dot)
        assert_memory_equal(out + end, ".\r\n", 3);
}

static void test_size_property_random(void **state)
{
    (void)state;
    static const uint8_t alphabet[] = { '\r', '\n', '.', 'a', ' ', 0, 0xff };
    uint8_t in[300];
    for (int round = 0; round < 2000; round++) {
        size_t len = rng() % sizeof in;
        for (size_t i = 0; i < len; i++)
            in[i] = rng() % 4 ? alphabet[rng() % sizeof alphabet] : (uint8_t)rng();
        bool dot = rng() & 1;
        size_t n = run(in, len, dot, 1 + rng() % 17, 1 + rng() % 9);
        check_wire(in, len, OUT, n, dot);
    }
}

static void test_msg_scan(void **state)
{
    (void)state;
    struct smtp_msg_info mi;
    const char *m = "Subject: hi\r\n\r\nabc\rdefgh\nxy";
    smtp_msg_scan((const uint8_t *)m, strlen(m), &mi);
    assert_false(mi.has_8bit);
    assert_false(mi.has_nul);
    assert_int_equal(mi.max_line_bytes, 11);
    smtp_msg_scan((const uint8_t *)"a\r\nbcdef\xc3\xa9", 10, &mi);
    assert_true(mi.has_8bit);
    assert_int_equal(mi.max_line_bytes, 7);
    smtp_msg_scan((const uint8_t *)"a\0b", 3, &mi);
    assert_true(mi.has_nul);
    assert_false(mi.has_8bit);
    assert_int_equal(mi.max_line_bytes, 3);
    smtp_msg_scan(NULL, 0, &mi);
    assert_int_equal(mi.max_line_bytes, 0);
}

static void test_addr_needs_utf8(void **state)
{
    (void)state;
    assert_false(smtp_addr_needs_utf8("user@example.com"));
    assert_false(smtp_addr_needs_utf8(""));
    assert_false(smtp_addr_needs_utf8(NULL));
    assert_true(smtp_addr_needs_utf8("j\xc3\xb6rg@example.com"));
    assert_true(smtp_addr_needs_utf8("user@\xe4\xbe\x8b\xe3\x81\x88.jp"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_dots),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_crlf_split_across_calls),
        cmocka_unit_test(test_out_cap_one),
        cmocka_unit_test(test_out_cap_zero),
        cmocka_unit_test(test_size_property_random),
        cmocka_unit_test(test_msg_scan),
        cmocka_unit_test(test_addr_needs_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
