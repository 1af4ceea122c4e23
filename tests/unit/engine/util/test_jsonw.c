/* tests/unit/engine/util/test_jsonw.c — the streaming JSON writer: every value kind, escaping of
 * quotes, backslashes and control bytes, invalid UTF-8 -> U+FFFD (one per bad byte), valid
 * UTF-8 kept as is; output always parses with jansson and strings round-trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/jsonw.h"

/* Escapes s[0..n) and parses it back; returns the decoded string (malloc'd). */
static char *escape_roundtrip(const char *s, size_t n, size_t *out_len, struct buf *raw)
{
    buf_clear(raw);
    assert_int_equal(jsonw_escape(raw, s, n), 0);
    json_error_t je;
    json_t *v = json_loadb((const char *)raw->data, raw->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v)
        fail_msg("not JSON: %.*s (%s)", (int)raw->len, raw->data, je.text);
    assert_true(json_is_string(v));
    *out_len = json_string_length(v);
    char *r = malloc(*out_len + 1);
    memcpy(r, json_string_value(v), *out_len + 1);
    json_decref(v);
    return r;
}

static void expect(const char *in, size_t n, const char *want_json, const char *want_value,
                   size_t want_len)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    size_t len;
    char *got = escape_roundtrip(in, n, &len, &b);
    if (want_json && (b.len != strlen(want_json) || memcmp(b.data, want_json, b.len) != 0))
        fail_msg("escaped as %.*s, wanted %s", (int)b.len, b.data, want_json);
    assert_int_equal(len, want_len);
    assert_memory_equal(got, want_value, want_len);
    free(got);
    buf_fini(&b);
}
#define EXPECT(in, json, value) expect(in, sizeof in - 1, json, value, sizeof value - 1)

static void test_escaping(void **state)
{
    (void)state;
    EXPECT("", "\"\"", "");
    EXPECT("plain text", "\"plain text\"", "plain text");
    EXPECT("say \"hi\"", "\"say \\\"hi\\\"\"", "say \"hi\"");
    EXPECT("C:\\dir\\", "\"C:\\\\dir\\\\\"", "C:\\dir\\");
    EXPECT("a\r\nb\tc", "\"a\\r\\nb\\tc\"", "a\r\nb\tc");
    EXPECT("\x01\x1f\x08\x0c", "\"\\u0001\\u001f\\u0008\\u000c\"", "\x01\x1f\x08\x0c");
    EXPECT("nul\0in", "\"nul\\u0000in\"", "nul\0in");
    EXPECT("del\x7f", "\"del\x7f\"", "del\x7f");
    EXPECT("</script>", NULL, "</script>");
}

static void test_utf8(void **state)
{
    (void)state;
    /* valid UTF-8 of every length is copied, not escaped */
    EXPECT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xef\xbf\xbf \xf4\x8f\xbf\xbf",
           "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xef\xbf\xbf \xf4\x8f\xbf\xbf\"",
           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xef\xbf\xbf \xf4\x8f\xbf\xbf");
    /* invalid: each offending byte becomes U+FFFD */
    EXPECT("a\x80z", "\"a\\ufffdz\"", "a\xef\xbf\xbdz");                       /* lone continuation */
    EXPECT("\xff\xfe", "\"\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd");       /* never valid */
    EXPECT("\xc0\xaf", "\"\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd");       /* overlong '/' */
    EXPECT("\xe0\x80\xaf", NULL, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");       /* overlong, 3 */
    EXPECT("\xed\xa0\x80", NULL, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");       /* surrogate */
    EXPECT("\xf4\x90\x80\x80", NULL,
           "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");                 /* > U+10FFFF */
    EXPECT("x\xe2\x82", "\"x\\ufffd\\ufffd\"", "x\xef\xbf\xbd\xef\xbf\xbd");    /* truncated */
    EXPECT("\xc3(", "\"\\ufffd(\"", "\xef\xbf\xbd(");                          /* bad follower */
    EXPECT("\xc3\"", "\"\\ufffd\\\"\"", "\xef\xbf\xbd\"");  /* a quote is not swallowed */
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Any bytes give valid JSON; valid UTF-8 comes back unchanged. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    unsigned seed = 99;
    static const char *const pieces[] = {"a", "\"", "\\", "\n", "\x01", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", " ", "}", "\x7f", "/"};
    for (int iter = 0; iter < 2000; iter++) {
        char in[300];
        size_t n = 0;
        unsigned parts = rnd(&seed) % 40;
        for (unsigned k = 0; k < parts; k++) {
            const char *p = pieces[rnd(&seed) % (sizeof pieces / sizeof *pieces)];
            memcpy(in + n, p, strlen(p));
            n += strlen(p);
        }
        size_t len;
        char *got = escape_roundtrip(in, n, &len, &b);
        assert_int_equal(len, n);
        assert_memory_equal(got, in, n);
        free(got);

        /* arbitrary bytes: still parses (jansson accepts only valid UTF-8) */
        for (size_t i = 0; i < n; i++)
            in[i] = (char)rnd(&seed);
        got = escape_roundtrip(in, n, &len, &b);
        free(got);
    }
    buf_fini(&b);
}

static void test_object(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 16);
    struct jsonw w;
    jsonw_begin(&w, &b);
    jsonw_str(&w, "s", "v\"1\n");
    jsonw_str(&w, "nul", NULL);
    jsonw_strn(&w, "part", "abcdef", 3);
    jsonw_int(&w, "min", LLONG_MIN);
    jsonw_int(&w, "max", LLONG_MAX);
    jsonw_int(&w, "zero", 0);
    jsonw_bool(&w, "t", true);
    jsonw_bool(&w, "f", false);
    jsonw_null(&w, "n");
    jsonw_raw(&w, "meta", "{\"a\":[1,2,{\"b\":null}]}");
    jsonw_raw(&w, "nometa", NULL);
    jsonw_str(&w, "k\"ey\x01", "x");
    assert_int_equal(jsonw_end(&w), 0);
    json_error_t je;
    json_t *o = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        fail_msg("not JSON: %.*s (%s)", (int)b.len, b.data, je.text);
    assert_int_equal(json_object_size(o), 12);
    assert_string_equal(json_string_value(json_object_get(o, "s")), "v\"1\n");
    assert_true(json_is_null(json_object_get(o, "nul")));
    assert_string_equal(json_string_value(json_object_get(o, "part")), "abc");
    assert_true(json_integer_value(json_object_get(o, "min")) == LLONG_MIN);
    assert_true(json_integer_value(json_object_get(o, "max")) == LLONG_MAX);
    assert_true(json_is_integer(json_object_get(o, "zero")));
    assert_true(json_is_true(json_object_get(o, "t")));
    assert_true(json_is_false(json_object_get(o, "f")));
    assert_true(json_is_null(json_object_get(o, "n")));
    json_t *meta = json_object_get(o, "meta");
    assert_true(json_is_object(meta));
    assert_int_equal(json_array_size(json_object_get(meta, "a")), 3);
    assert_true(json_is_null(json_object_get(o, "nometa")));
    assert_string_equal(json_string_value(json_object_get(o, "k\"ey\x01")), "x");
    json_decref(o);

    /* the empty object */
    buf_clear(&b);
    jsonw_begin(&w, &b);
    assert_int_equal(jsonw_end(&w), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "{}", 2);
    buf_fini(&b);
}

/* Regression (fixed): jsonw.h says jsonw_end "returns 0 or -errno", but a value that does not fit
 * makes it return -1 (= -EPERM): jsonw__key/jsonw_strn/... set w->err = -1 instead of
 * passing on buf_*'s -ENOBUFS (engine/util/jsonw.c:83,86,99,107,123,130,137,148). The first half of this
 * test (an error is reported, nothing crashes) passes; the errno check fails. */
static void test_full_buffer_errno(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 32);
    struct jsonw w;
    jsonw_begin(&w, &b);
    jsonw_str(&w, "k", "a value that is much longer than thirty-two bytes");
    jsonw_int(&w, "i", 1);
    int rc = jsonw_end(&w);
    assert_true(rc < 0);
    assert_true(b.len <= 32);
    buf_fini(&b);
    assert_int_equal(rc, -ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_full_buffer_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
