/* tests/unit/engine/util/test_base64.c — RFC 4648 §10 test vectors, every padding case, all
 * byte values, and a round trip through an independent decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/util/base64.h"

static void check(const char *in, size_t n, const char *want)
{
    char out[256];
    memset(out, '#', sizeof out);
    size_t len = base64_encode((const uint8_t *)in, n, out);
    assert_int_equal(len, strlen(want));
    assert_int_equal(len, base64_encoded_len(n));
    assert_string_equal(out, want);
    assert_int_equal(out[len], '\0');
    assert_int_equal(out[len + 1], '#');   /* nothing written past the NUL */
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    check("", 0, "");
    check("f", 1, "Zg==");
    check("fo", 2, "Zm8=");
    check("foo", 3, "Zm9v");
    check("foob", 4, "Zm9vYg==");
    check("fooba", 5, "Zm9vYmE=");
    check("foobar", 6, "Zm9vYmFy");
    /* SMTP AUTH PLAIN: \0user\0pass */
    check("\0user\0pass", 10, "AHVzZXIAcGFzcw==");
    /* the last two alphabet characters and high bits */
    check("\xfb\xff\xbf", 3, "+/+/");
    check("\xff\xff\xff", 3, "////");
    check("\0\0\0", 3, "AAAA");
    check("\xff", 1, "/w==");
    check("\xff\xff", 2, "//8=");
}

static int dec(char c)
{
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(a, c);
    return p && c ? (int)(p - a) : -1;
}

static void test_roundtrip_all_bytes(void **state)
{
    (void)state;
    uint8_t in[600];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 7 + 3);
    char *out = malloc(base64_encoded_len(sizeof in) + 1);
    uint8_t back[600];
    for (size_t n = 0; n <= sizeof in; n += (n < 20 ? 1 : 37)) {
        size_t len = base64_encode(in, n, out);
        assert_int_equal(len % 4, 0);
        size_t o = 0;
        for (size_t i = 0; i < len; i += 4) {
            int a = dec(out[i]), b = dec(out[i + 1]);
            assert_true(a >= 0 && b >= 0);
            uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
            back[o++] = (uint8_t)(v >> 16);
            if (out[i + 2] != '=') {
                int c = dec(out[i + 2]);
                assert_true(c >= 0);
                v |= (uint32_t)c << 6;
                back[o++] = (uint8_t)(v >> 8);
                if (out[i + 3] != '=') {
                    int d = dec(out[i + 3]);
                    assert_true(d >= 0);
                    v |= (uint32_t)d;
                    back[o++] = (uint8_t)v;
                }
            } else {
                assert_int_equal(out[i + 3], '=');
            }
        }
        assert_int_equal(o, n);
        assert_memory_equal(back, in, n);
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_roundtrip_all_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
