/* tests/unit/engine/smtp/test_smtp_caps.c — EHLO keyword parsing: every flag, SIZE values,
 * both AUTH forms, case and white space tolerance, the ignored greeting line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "engine/smtp/smtp_caps.h"

static struct smtp_caps C;

static void parse(const char *text)
{
    memset(&C, 0xa5, sizeof C);    /* parse must clear what it does not set */
    smtp_caps_parse(&C, text, strlen(text));
}

static void test_typical(void **state)
{
    (void)state;
    parse("mx.google.com at your service\nSIZE 157286400\n8BITMIME\nSTARTTLS\n"
          "ENHANCEDSTATUSCODES\nPIPELINING\nCHUNKING\nSMTPUTF8");
    assert_true(C.size);
    assert_int_equal(C.size_max, 157286400);
    assert_true(C.eightbitmime);
    assert_true(C.starttls);
    assert_true(C.enhancedstatuscodes);
    assert_true(C.pipelining);
    assert_true(C.chunking);
    assert_true(C.smtputf8);
    assert_false(C.dsn);
    assert_int_equal(C.auth, 0);
}

static void test_nothing(void **state)
{
    (void)state;
    parse("");
    assert_false(C.pipelining || C.starttls || C.size || C.dsn);
    assert_int_equal(C.size_max, 0);
    assert_int_equal(C.auth, 0);
    /* The first line is the greeting, even when it looks like a keyword. */
    parse("PIPELINING");
    assert_false(C.pipelining);
    parse("STARTTLS\nDSN");
    assert_false(C.starttls);
    assert_true(C.dsn);
    smtp_caps_parse(&C, NULL, 0);
    assert_false(C.dsn);
}

static void test_case_and_spaces(void **state)
{
    (void)state;
    parse("mx\npipelining  \n  StartTLS\t\ndsn\r\n8bitmime \nunknownthing\nXFOO bar");
    assert_true(C.pipelining);
    assert_true(C.starttls);
    assert_true(C.dsn);
    assert_true(C.eightbitmime);
    /* Prefixes and longer words are not the keyword. */
    parse("mx\nPIPELININGX\nSTART\nDSNX");
    assert_false(C.pipelining || C.starttls || C.dsn);
}

static void test_size(void **state)
{
    (void)state;
    parse("mx\nSIZE");
    assert_true(C.size);
    assert_int_equal(C.size_max, 0);
    parse("mx\nsize 0");
    assert_true(C.size);
    assert_int_equal(C.size_max, 0);
    parse("mx\nSIZE 10240000   ");
    assert_int_equal(C.size_max, 10240000);
    parse("mx\nSIZE 18446744073709551615");
    assert_true(C.size_max == UINT64_MAX);
    parse("mx\nSIZE 18446744073709551616");
    assert_true(C.size);
    assert_int_equal(C.size_max, 0);
    parse("mx\nSIZE 99999999999999999999999");
    assert_int_equal(C.size_max, 0);
    parse("mx\nSIZE 12a");
    assert_true(C.size);
    assert_int_equal(C.size_max, 0);
    parse("mx\nSIZE -5");
    assert_int_equal(C.size_max, 0);
    parse("mx\nSIZE=2048");
    assert_int_equal(C.size_max, 2048);
}

static void test_auth(void **state)
{
    (void)state;
    parse("mx\nAUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 GSSAPI");
    assert_int_equal(C.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 |
                                 SMTP_AUTH_XOAUTH2);
    parse("mx\nAUTH=LOGIN PLAIN");
    assert_int_equal(C.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN);
    parse("mx\nauth login\nAUTH=cram-md5  ");
    assert_int_equal(C.auth, SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5);
    parse("mx\nAUTH");
    assert_int_equal(C.auth, 0);
    parse("mx\nAUTH PLAINX LOGI");
    assert_int_equal(C.auth, 0);
}

static void test_length_bounds_the_text(void **state)
{
    (void)state;
    const char text[] = "mx\nDSN\nCHUNKING";
    smtp_caps_parse(&C, text, 6);   /* "mx\nDSN" */
    assert_true(C.dsn);
    assert_false(C.chunking);
    smtp_caps_parse(&C, text, 5);   /* "mx\nDS" */
    assert_false(C.dsn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typical),
        cmocka_unit_test(test_nothing),
        cmocka_unit_test(test_case_and_spaces),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_length_bounds_the_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
