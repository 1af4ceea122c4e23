/* tests/unit/engine/intake/test_addr.c — envelope mailbox syntax (every accepted form and
 * each rejection's reason), the null sender, and header address lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "engine/intake/addr.h"

static bool ok(const char *s)
{
    const char *why = "unset";
    bool r = addr_valid(s, strlen(s), &why);
    if (r)
        assert_string_equal(why, "unset");     /* why is left alone on success */
    return r;
}

/* Asserts s is rejected and the reason contains want. */
static void bad(const char *s, const char *want)
{
    const char *why = NULL;
    if (addr_valid(s, strlen(s), &why))
        fail_msg("accepted %s", s);
    assert_non_null(why);
    if (!strstr(why, want))
        fail_msg("%s: reason \"%s\", wanted \"%s\"", s, why, want);
}

static void test_accepts(void **state)
{
    (void)state;
    const char *good[] = {
        "a@b.test", "user@example.com", "first.last@sub.example.co.uk",
        "x+tag@example.com", "!#$%&'*+-/=?^_`{|}~@example.com", "a@localhost",
        "a@x-y.example", "a@1.example", "a@123.example.com", "a@example.c0m",
        "\"john smith\"@example.com", "\"a\\\"b\"@example.com", "\"a@b\"@example.com",
        "\"\"@example.com", "\"<x>,y\"@example.com",
        "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "a@[ipv6:::1]",
        "\xc3\xbc" "ser@example.com", "user@b\xc3\xbc" "cher.example",
        "user@\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!ok(good[i])) {
            const char *why;
            addr_valid(good[i], strlen(good[i]), &why);
            fail_msg("rejected %s: %s", good[i], why);
        }
    /* why may be NULL. */
    assert_true(addr_valid("a@b.test", 8, NULL));
    assert_false(addr_valid("a@", 2, NULL));
}

static void test_lengths(void **state)
{
    (void)state;
    char local[80], addr[300], label[80];
    memset(local, 'l', 64);
    local[64] = '\0';
    snprintf(addr, sizeof addr, "%s@example.com", local);
    assert_true(ok(addr));
    memset(local, 'l', 65);
    local[65] = '\0';
    snprintf(addr, sizeof addr, "%s@example.com", local);
    bad(addr, "local part too long");

    memset(label, 'd', 63);
    label[63] = '\0';
    snprintf(addr, sizeof addr, "a@%s.example", label);
    assert_true(ok(addr));
    memset(label, 'd', 64);
    label[64] = '\0';
    snprintf(addr, sizeof addr, "a@%s.example", label);
    bad(addr, "domain label too long");

    /* 254 octets in all is the most; one more is too long. */
    char d[260];
    size_t n = 0;
    n += (size_t)snprintf(d, sizeof d, "%s", "a@");
    while (n < 254 - 4) {
        size_t room = 254 - 4 - n;
        size_t l = room > 60 ? 60 : room;
        memset(d + n, 'x', l);
        n += l;
        if (n < 254 - 4)
            d[n++] = '.';
    }
    if (d[n - 1] == '.')
        d[n - 1] = 'x';
    memcpy(d + n, ".com", 5);
    assert_int_equal(strlen(d), 254);
    assert_true(ok(d));
    char e[300] = "b";
    strcat(e, d);
    bad(e, "too long");
}

static void test_rejects(void **state)
{
    (void)state;
    bad("", "empty");
    bad("plain", "missing @");
    bad("@example.com", "local part empty");
    bad("a@", "domain empty");
    bad(".a@example.com", "starts with a dot");
    bad("a.@example.com", "ends with a dot");
    bad("a..b@example.com", "consecutive dots");
    bad("a b@example.com", "space");
    bad(" a@example.com", "space");
    bad("a@example.com ", "space");
    bad("a@exa mple.com", "space");
    bad("a\r\n@example.com", "control");
    bad("a@example.com\n", "control");
    bad("a\x01@example.com", "control");
    bad("<a@example.com>", "invalid character");
    bad("a,b@example.com", "invalid character");
    bad("a@b@example.com", "invalid character in domain");
    bad("a@exam,ple.com", "invalid character in domain");
    bad("a@exam_ple.com", "invalid character in domain");
    bad("a@example.com>", "invalid character in domain");
    bad("a@.example.com", "empty domain label");
    bad("a@example..com", "empty domain label");
    bad("a@example.com.", "empty domain label");
    bad("a@-x.example", "hyphen");
    bad("a@x-.example", "hyphen");
    bad("a@127.2.3.4", "numeric top-level");
    bad("a@[1.2.3]", "invalid IPv4");
    bad("a@[300.1.1.1]", "invalid IPv4");
    bad("a@[IPv6:zz::1]", "invalid IPv6");
    bad("a@[x400:foo]", "unsupported address literal");
    bad("a@[127.2.3.4", "unterminated address literal");
    bad("\"abc@example.com", "unterminated quoted");
    bad("\"a\"b@example.com", "text after quoted local part");
    bad("\"a\x01\"@example.com", "control");
    bad("\"a\\\x01\"@example.com", "bad escape");
    bad("\xff" "a@example.com", "invalid UTF-8");
    bad("a@\xc0\xaf.example", "invalid UTF-8");            /* overlong '/' */
    bad("a@\xed\xa0\x80.example", "invalid UTF-8");         /* surrogate */
    bad("a@exa\xe2\x82.com", "invalid UTF-8");              /* truncated */
    /* A NUL inside the length is a control character, not a terminator. */
    const char *why = NULL;
    assert_false(addr_valid("a\0b@example.com", 15, &why));
    assert_string_equal(why, "control character in address");
}

static void test_sender(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_true(addr_valid_sender("", 0, &why));
    assert_true(addr_valid_sender("bounce@example.com", 18, &why));
    assert_false(addr_valid("", 0, &why));
    assert_string_equal(why, "empty address");
    assert_false(addr_valid_sender("nope", 4, &why));
    assert_string_equal(why, "missing @");
    assert_false(addr_valid_sender("<>", 2, NULL));
}

static void hdr_ok(const char *s, bool list)
{
    const char *why = NULL;
    if (!addr_header_valid(s, strlen(s), list, &why))
        fail_msg("header \"%s\" rejected: %s", s, why);
}

static void hdr_bad(const char *s, bool list, const char *want)
{
    const char *why = NULL;
    if (addr_header_valid(s, strlen(s), list, &why))
        fail_msg("header \"%s\" accepted", s);
    if (!why || !strstr(why, want))
        fail_msg("header \"%s\": reason \"%s\", wanted \"%s\"", s, why ? why : "(none)", want);
}

static void test_header(void **state)
{
    (void)state;
    hdr_ok("a@b.test", false);
    hdr_ok("  a@b.test ", false);
    hdr_ok("Ann <a@b.test>", false);
    hdr_ok("\"Doe, Ann\" <a@b.test>", false);
    hdr_ok("\"Ann <the boss>\" <a@b.test>", false);
    hdr_ok("Ann (sales, EU) <a@b.test> (work)", false);
    hdr_ok("J\xc3\xbcrgen <j@b.test>", false);
    hdr_ok("<a@b.test>", false);
    hdr_ok("Ann <a@b.test>, Bob <b@b.test>", true);
    hdr_ok("a@b.test,b@b.test", true);
    hdr_ok("\"x,y\"@b.test, c@b.test", true);

    hdr_bad("", false, "empty");
    hdr_bad("Ann", false, "missing @");
    hdr_bad("Ann <a@b.test", false, "missing '>'");
    hdr_bad("Ann a@b.test>", false, "'>' without '<'");
    hdr_bad("Ann <a@b.test> x", false, "text after '>'");
    hdr_bad("Ann <a@b.test> <c@d.test>", false, "text after '>'");
    hdr_bad("Ann <a <b@c.test>", false, "more than one '<'");
    hdr_bad("\"Ann <a@b.test>", false, "unterminated quoted");
    hdr_bad("Ann (x <a@b.test>", false, "unterminated comment");
    hdr_bad("Ann <>", false, "empty address");
    hdr_bad("Ann <a b@c.test>", false, "space");
    hdr_bad("a@b.test, c@d.test", false, "only one address");
    hdr_bad("a@b.test,", true, "empty address in list");
    hdr_bad(", a@b.test", true, "empty address in list");
    hdr_bad("a@b.test,,c@d.test", true, "empty address in list");
    hdr_bad("a@b.test, nope", true, "missing @");
    hdr_bad("Ann <a@b.test>\r\nBcc: x@y.test", false, "control");
    hdr_bad("group: a@b.test;", true, "invalid character in local part");
    hdr_bad("\"x\\", false, "unterminated quoted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_sender),
        cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
