/* tests/unit/engine/smtp/test_smtp_reply.c — the SMTP reply parser: line and continuation
 * rules, limits, enhanced status codes, text clean-up, and feeding split at any byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "engine/smtp/smtp_reply.h"

static struct smtp_reply_parser P;

/* Feeds a whole string in one call with default limits. */
static ssize_t parse_str(const char *s)
{
    smtp_reply_parser_init(&P, NULL);
    return smtp_reply_parse(&P, s, strlen(s));
}

static ssize_t parse_limited(const char *s, size_t max_line_bytes, unsigned max_lines)
{
    struct smtp_reply_limits lim = { max_line_bytes, max_lines };
    smtp_reply_parser_init(&P, &lim);
    return smtp_reply_parse(&P, s, strlen(s));
}

static void test_single_line(void **state)
{
    (void)state;
    const char *s = "250 OK\r\n";
    assert_int_equal(parse_str(s), strlen(s));
    assert_int_equal(P.reply.code, 250);
    assert_string_equal(P.reply.text, "OK");
    assert_int_equal(P.reply.text_len, 2);
    assert_int_equal(P.reply.nlines, 1);
    assert_int_equal(P.reply.enh_class, 0);
    assert_string_equal(P.reply.enhanced, "");
    assert_false(P.reply.truncated);
    assert_null(P.error);
}

static void test_multi_line(void **state)
{
    (void)state;
    const char *s = "250-mx.example.com Hello\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
    assert_int_equal(parse_str(s), strlen(s));
    assert_int_equal(P.reply.code, 250);
    assert_int_equal(P.reply.nlines, 3);
    assert_string_equal(P.reply.text, "mx.example.com Hello\nPIPELINING\nSIZE 1000");
}

static void test_incomplete_needs_more(void **state)
{
    (void)state;
    assert_int_equal(parse_str("250-first\r\n250 second"), -2);
    assert_int_equal(parse_str("250 OK\r"), -2);
    assert_int_equal(smtp_reply_parse(&P, "\n", 1), 1);
    assert_string_equal(P.reply.text, "OK");
    smtp_reply_parser_init(&P, NULL);
    assert_int_equal(smtp_reply_parse(&P, "", 0), -2);
}

static void check_split(const char *s)
{
    struct smtp_reply whole;
    size_t len = strlen(s);
    assert_int_equal(parse_str(s), len);
    whole = P.reply;
    for (size_t k = 0; k <= len; k++) {
        smtp_reply_parser_init(&P, NULL);
        ssize_t a = smtp_reply_parse(&P, s, k);
        if (k < len) {
            assert_int_equal(a, -2);
            assert_int_equal(smtp_reply_parse(&P, s + k, len - k), len - k);
        } else {
            assert_int_equal(a, len);
        }
        assert_int_equal(P.reply.code, whole.code);
        assert_int_equal(P.reply.nlines, whole.nlines);
        assert_string_equal(P.reply.text, whole.text);
        assert_string_equal(P.reply.enhanced, whole.enhanced);
    }
    /* And one byte per call. */
    smtp_reply_parser_init(&P, NULL);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(smtp_reply_parse(&P, s + i, 1), i + 1 == len ? 1 : -2);
    assert_string_equal(P.reply.text, whole.text);
    assert_string_equal(P.reply.enhanced, whole.enhanced);
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    check_split("550-5.1.1 No such user\r\n550-5.1.1 here\r\n550 5.1.1 see RFC\r\n");
    check_split("250-mx.example.com\n250-8BITMIME\r\n250 CHUNKING\n");
    check_split("451 4.7.1 a\rb\r\n");
    check_split("250\r\n");
}

static void test_bare_lf(void **state)
{
    (void)state;
    const char *s = "250-a\n250 b\n";
    assert_int_equal(parse_str(s), strlen(s));
    assert_string_equal(P.reply.text, "a\nb");
    assert_int_equal(P.reply.nlines, 2);
}

static void test_bare_code(void **state)
{
    (void)state;
    assert_int_equal(parse_str("250\r\n"), 5);
    assert_int_equal(P.reply.code, 250);
    assert_string_equal(P.reply.text, "");
    assert_int_equal(parse_str("354\n"), 4);
    assert_int_equal(P.reply.code, 354);
    /* Empty continuation lines keep their place in the text. */
    assert_int_equal(parse_str("250-\r\n250\r\n"), 11);
    assert_string_equal(P.reply.text, "\n");
    assert_int_equal(P.reply.nlines, 2);
}

static void test_misnumbered(void **state)
{
    (void)state;
    assert_int_equal(parse_str("250-a\r\n251 b\r\n"), -1);
    assert_string_equal(P.error, "mis-numbered reply");
    assert_int_equal(parse_str("250-a\r\n550 b\r\n"), -1);
}

static void test_non_numeric(void **state)
{
    (void)state;
    const char *bad[] = { "2x0 ok\r\n", "hello\r\n", "\r\n", "\n", "25\r\n", " 250 ok\r\n",
                          "250x\r\n", "2500 ok\r\n", "250-a\r\nxyz\r\n", "-250 a\r\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_str(bad[i]), -1);
        assert_non_null(P.error);
    }
}

static void test_code_range(void **state)
{
    (void)state;
    const char *bad[] = { "600 x\r\n", "199 x\r\n", "100 x\r\n", "260 x\r\n", "099 x\r\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_str(bad[i]), -1);
        assert_string_equal(P.error, "reply code out of range");
    }
    assert_int_equal(parse_str("200 x\r\n"), 7);
    assert_int_equal(parse_str("559 x\r\n"), 7);
    assert_int_equal(P.reply.code, 559);
}

static void test_errors_stick_until_reset(void **state)
{
    (void)state;
    assert_int_equal(parse_str("xyz\r\n"), -1);
    assert_int_equal(smtp_reply_parse(&P, "250 ok\r\n", 8), -1);
    smtp_reply_parser_reset(&P);
    assert_null(P.error);
    assert_int_equal(smtp_reply_parse(&P, "250 ok\r\n", 8), 8);
}

static void test_line_limit(void **state)
{
    (void)state;
    char line[2100];
    /* Exactly 2048 bytes including CRLF passes the default limit; one more fails. */
    memset(line, 'x', sizeof line);
    memcpy(line, "250 ", 4);
    memcpy(line + 2046, "\r\n", 3);
    assert_int_equal(parse_str(line), 2048);
    memset(line, 'x', sizeof line);
    memcpy(line, "250 ", 4);
    memcpy(line + 2047, "\r\n", 3);
    assert_int_equal(parse_str(line), -1);
    assert_string_equal(P.error, "reply line too long");
    /* The limit counts per line, not per reply. */
    assert_int_equal(parse_limited("250-aaaa\r\n250-bbbb\r\n250 cccc\r\n", 10, 0), 30);
    assert_int_equal(parse_limited("250-aaaa\r\n250-bbbbb\r\n250 c\r\n", 10, 0), -1);
}

static void test_megabyte_line_fails_early(void **state)
{
    (void)state;
    static char chunk[4096];
    memset(chunk, 'a', sizeof chunk);
    memcpy(chunk, "250 ", 4);
    smtp_reply_parser_init(&P, NULL);
    /* Fails inside the first chunk: nothing past the limit is looked at or kept. */
    assert_int_equal(smtp_reply_parse(&P, chunk, sizeof chunk), -1);
    memcpy(chunk, "aaaa", 4);
    for (size_t fed = sizeof chunk; fed < 1024 * 1024; fed += sizeof chunk)
        assert_int_equal(smtp_reply_parse(&P, chunk, sizeof chunk), -1);
    assert_true(P.reply.text_len < SMTP_REPLY_TEXT_MAX);
}

static void test_too_many_lines(void **state)
{
    (void)state;
    assert_int_equal(parse_limited("250-a\r\n250-b\r\n250 c\r\n", 0, 3), 21);
    assert_int_equal(parse_limited("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 0, 3), -1);
    assert_string_equal(P.error, "too many reply lines");
    /* Default 128. */
    char buf[8 * 130 + 1];
    size_t n = 0;
    for (int i = 0; i < 128; i++)
        n += (size_t)sprintf(buf + n, "250-%03d\n", i);
    assert_int_equal(parse_str(buf), -1);
    memcpy(buf + n - 8, "250 127\n", 8);
    assert_int_equal(parse_str(buf), n);
    assert_int_equal(P.reply.nlines, 128);
}

static void test_enhanced(void **state)
{
    (void)state;
    const char *s = "550-5.1.1 The email account does not exist.\r\n550 5.1.1 Try again\r\n";
    assert_int_equal(parse_str(s), strlen(s));
    assert_string_equal(P.reply.enhanced, "5.1.1");
    assert_int_equal(P.reply.enh_class, 5);
    assert_int_equal(P.reply.enh_subject, 1);
    assert_int_equal(P.reply.enh_detail, 1);
    assert_string_equal(P.reply.text, "The email account does not exist.\nTry again");

    assert_int_equal(parse_str("250 2.0.0\r\n"), 11);
    assert_string_equal(P.reply.enhanced, "2.0.0");
    assert_string_equal(P.reply.text, "");

    assert_int_equal(parse_str("452 4.5.3 Too many recipients\r\n"), 31);
    assert_string_equal(P.reply.enhanced, "4.5.3");
    assert_string_equal(P.reply.text, "Too many recipients");

    assert_int_equal(parse_str("550 5.1.10 null MX\r\n"), 20);
    assert_string_equal(P.reply.enhanced, "5.1.10");
    assert_int_equal(P.reply.enh_detail, 10);

    assert_int_equal(parse_str("554 5.123.456 x\r\n"), 17);
    assert_string_equal(P.reply.enhanced, "5.123.456");
    assert_int_equal(P.reply.enh_subject, 123);
}

static void test_not_enhanced(void **state)
{
    (void)state;
    const struct { const char *in, *text; } cases[] = {
        { "550 4.1.1 class differs\r\n", "4.1.1 class differs" },
        { "250 2.0 short\r\n", "2.0 short" },
        { "250 2.0.0x\r\n", "2.0.0x" },
        { "250 2.0.0.1 x\r\n", "2.0.0.1 x" },
        { "250 2.1000.0 x\r\n", "2.1000.0 x" },
        { "250 2.0.1000 x\r\n", "2.0.1000 x" },
        { "250 3.0.0 x\r\n", "3.0.0 x" },
        { "250  2.0.0 x\r\n", " 2.0.0 x" },
        { "250 2..0 x\r\n", "2..0 x" },
        { "250 20.0.0 x\r\n", "20.0.0 x" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse_str(cases[i].in), strlen(cases[i].in));
        assert_string_equal(P.reply.text, cases[i].text);
        assert_int_equal(P.reply.enh_class, 0);
        assert_string_equal(P.reply.enhanced, "");
    }
    /* Stored from the first line only, stripped wherever present. */
    const char *s = "250-mx.example.com\r\n250 2.0.0 ok\r\n";
    assert_int_equal(parse_str(s), strlen(s));
    assert_string_equal(P.reply.enhanced, "");
    assert_string_equal(P.reply.text, "mx.example.com\nok");
}

static void test_enhanced_parse(void **state)
{
    (void)state;
    int c = -1, s = -1, d = -1;
    assert_int_equal(smtp_enhanced_parse("5.7.1 blocked", 13, &c, &s, &d), 5);
    assert_int_equal(c, 5);
    assert_int_equal(s, 7);
    assert_int_equal(d, 1);
    assert_int_equal(smtp_enhanced_parse("4.4.7", 5, &c, &s, &d), 5);
    assert_int_equal(smtp_enhanced_parse("2.0.0\r\n", 7, NULL, NULL, NULL), 5);
    assert_int_equal(smtp_enhanced_parse("5.1.10", 5, &c, &s, &d), 5); /* len bounds it */
    assert_int_equal(d, 1);
    assert_int_equal(smtp_enhanced_parse("5.1.", 4, &c, &s, &d), 0);
    assert_int_equal(smtp_enhanced_parse("6.1.1", 5, &c, &s, &d), 0);
    assert_int_equal(smtp_enhanced_parse("5.1.1x", 6, &c, &s, &d), 0);
    assert_int_equal(smtp_enhanced_parse("5.a.1", 5, &c, &s, &d), 0);
    assert_int_equal(smtp_enhanced_parse("", 0, &c, &s, &d), 0);
}

static void test_text_cleanup(void **state)
{
    (void)state;
    static const char s[] = "250 a\0b\x01" "c\x7f" "d\te\r\n";
    assert_int_equal(smtp_reply_parse((smtp_reply_parser_init(&P, NULL), &P), s, sizeof s - 1),
                     sizeof s - 1);
    assert_string_equal(P.reply.text, "a?b?c?d e");
    assert_int_equal(strlen(P.reply.text), P.reply.text_len);
    /* A bare CR reads as a space, also right after the code and after an enhanced code. */
    assert_int_equal(parse_str("250 a\rb\r\n"), 9);
    assert_string_equal(P.reply.text, "a b");
    assert_int_equal(parse_str("250\rok\r\n"), 8);
    assert_string_equal(P.reply.text, "ok");
    assert_int_equal(parse_str("550 5.7.1\rno\r\n"), 14);
    assert_string_equal(P.reply.enhanced, "5.7.1");
    assert_string_equal(P.reply.text, "no");
    assert_int_equal(parse_str("250 a\r\r\n"), 8);
    assert_string_equal(P.reply.text, "a ");
    /* 8-bit text passes through untouched. */
    assert_int_equal(parse_str("250 caf\xc3\xa9\r\n"), 11);
    assert_string_equal(P.reply.text, "caf\xc3\xa9");
}

static void test_truncation(void **state)
{
    (void)state;
    static char buf[20 * 1000];
    size_t n = 0;
    for (int i = 0; i < 19; i++) {
        n += (size_t)sprintf(buf + n, "250-");
        memset(buf + n, 'a' + i, 990);
        n += 990;
        n += (size_t)sprintf(buf + n, "\r\n");
    }
    n += (size_t)sprintf(buf + n, "250 end\r\n");
    assert_int_equal(parse_str(buf), n);
    assert_true(P.reply.truncated);
    assert_int_equal(P.reply.text_len, SMTP_REPLY_TEXT_MAX - 1);
    assert_int_equal(P.reply.text[SMTP_REPLY_TEXT_MAX - 1], '\0');
    assert_int_equal(strlen(P.reply.text), SMTP_REPLY_TEXT_MAX - 1);
    assert_int_equal(P.reply.nlines, 20);
    assert_int_equal(P.reply.text[990], '\n');
    assert_int_equal(P.reply.text[991], 'b');
}

static void test_back_to_back(void **state)
{
    (void)state;
    const char *s = "220 mx ESMTP\r\n250-mx\r\n250 PIPELINING\r\n354 go\n";
    size_t len = strlen(s), off = 0;
    smtp_reply_parser_init(&P, NULL);
    ssize_t n = smtp_reply_parse(&P, s, len);
    assert_int_equal(n, 14);
    assert_int_equal(P.reply.code, 220);
    assert_string_equal(P.reply.text, "mx ESMTP");
    off += (size_t)n;
    /* The finished reply stays readable while nothing new is fed. */
    assert_int_equal(smtp_reply_parse(&P, s + off, 0), -2);
    assert_string_equal(P.reply.text, "mx ESMTP");
    n = smtp_reply_parse(&P, s + off, len - off);
    assert_int_equal(n, 24);
    assert_int_equal(P.reply.code, 250);
    assert_string_equal(P.reply.text, "mx\nPIPELINING");
    off += (size_t)n;
    n = smtp_reply_parse(&P, s + off, len - off);
    assert_int_equal(n, 7);
    assert_int_equal(P.reply.code, 354);
    assert_string_equal(P.reply.text, "go");
    assert_int_equal(P.reply.nlines, 1);
    assert_int_equal(off + (size_t)n, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_incomplete_needs_more),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_bare_code),
        cmocka_unit_test(test_misnumbered),
        cmocka_unit_test(test_non_numeric),
        cmocka_unit_test(test_code_range),
        cmocka_unit_test(test_errors_stick_until_reset),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_megabyte_line_fails_early),
        cmocka_unit_test(test_too_many_lines),
        cmocka_unit_test(test_enhanced),
        cmocka_unit_test(test_not_enhanced),
        cmocka_unit_test(test_enhanced_parse),
        cmocka_unit_test(test_text_cleanup),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_back_to_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
