/* tests/unit/engine/dns/test_dns_ttl.c — TTL extraction from hand-built DNS responses:
 * answers, SOA of negative answers, compression pointers, and every kind of truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine/dns/dns_ttl.h"

/* ---- a tiny packet builder ---- */
struct pkt { uint8_t b[1024]; size_t n; };

static void u8(struct pkt *p, unsigned v) { p->b[p->n++] = (uint8_t)v; }
static void u16(struct pkt *p, unsigned v) { u8(p, v >> 8); u8(p, v & 0xFF); }
static void u32(struct pkt *p, uint32_t v) { u16(p, v >> 16); u16(p, v & 0xFFFF); }
static void name(struct pkt *p, const char *dotted) /* uncompressed, ends with root */
{
    while (*dotted) {
        const char *dot = strchr(dotted, '.');
        size_t len = dot ? (size_t)(dot - dotted) : strlen(dotted);
        u8(p, (unsigned)len);
        memcpy(p->b + p->n, dotted, len);
        p->n += len;
        dotted += len + (dot ? 1 : 0);
    }
    u8(p, 0);
}
static void ptr(struct pkt *p, unsigned off) { u16(p, 0xC000 | off); }
static void header(struct pkt *p, unsigned rcode, unsigned qd, unsigned an, unsigned ns)
{
    p->n = 0;
    u16(p, 0x1234);
    u16(p, 0x8180 | rcode);
    u16(p, qd);
    u16(p, an);
    u16(p, ns);
    u16(p, 0);
}
/* Question for example.org (its name starts at offset 12). */
static void question(struct pkt *p, unsigned qtype)
{
    name(p, "example.org");
    u16(p, qtype);
    u16(p, 1);
}
static size_t mx_rr(struct pkt *p, uint32_t ttl, unsigned pref, const char *label)
{
    ptr(p, 12);
    u16(p, 15);
    u16(p, 1);
    u32(p, ttl);
    size_t rdlen_at = p->n;
    u16(p, 0);
    u16(p, pref);
    u8(p, (unsigned)strlen(label));
    memcpy(p->b + p->n, label, strlen(label));
    p->n += strlen(label);
    ptr(p, 12);
    size_t rdlen = p->n - rdlen_at - 2;
    p->b[rdlen_at] = (uint8_t)(rdlen >> 8);
    p->b[rdlen_at + 1] = (uint8_t)rdlen;
    return rdlen_at;
}
static size_t soa_rr(struct pkt *p, uint32_t ttl, uint32_t minimum)
{
    ptr(p, 12);
    u16(p, 6);
    u16(p, 1);
    u32(p, ttl);
    size_t rdlen_at = p->n;
    u16(p, 0);
    u8(p, 3); memcpy(p->b + p->n, "ns1", 3); p->n += 3; ptr(p, 12); /* mname ns1.example.org */
    u8(p, 4); memcpy(p->b + p->n, "host", 4); p->n += 4; ptr(p, 12);
    u32(p, 2024010101);
    u32(p, 7200);
    u32(p, 900);
    u32(p, 1209600);
    u32(p, minimum);
    size_t rdlen = p->n - rdlen_at - 2;
    p->b[rdlen_at] = (uint8_t)(rdlen >> 8);
    p->b[rdlen_at + 1] = (uint8_t)rdlen;
    return rdlen_at;
}

static struct pkt p;
static struct dns_ttl_info info;
static const char *err;

static int parse(void)
{
    err = NULL;
    return dns_ttl_parse(p.b, p.n, &info, &err);
}

/* Every proper prefix of a valid packet must be rejected, never read past its end. */
static void assert_all_prefixes_fail(void)
{
    for (size_t cut = 0; cut < p.n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size so ASan sees any overread */
        memcpy(copy, p.b, cut);
        err = NULL;
        assert_int_equal(dns_ttl_parse(copy, cut, &info, &err), -1);
        assert_non_null(err);
        free(copy);
    }
}

static void test_mx_answer_min_ttl(void **state)
{
    (void)state;
    header(&p, 0, 1, 3, 0);
    question(&p, 15);
    mx_rr(&p, 300, 10, "mx1");
    mx_rr(&p, 120, 20, "mx2");
    mx_rr(&p, 900, 30, "mx3");
    assert_int_equal(parse(), 0);
    assert_int_equal(info.rcode, 0);
    assert_int_equal(info.answers, 3);
    assert_true(info.has_answer_ttl);
    assert_int_equal(info.answer_ttl_s, 120);
    assert_false(info.has_soa);
    assert_false(info.truncated);
    assert_all_prefixes_fail();
}

static void test_nxdomain_soa(void **state)
{
    (void)state;
    header(&p, 3, 1, 0, 1);
    question(&p, 15);
    soa_rr(&p, 3600, 60);
    assert_int_equal(parse(), 0);
    assert_int_equal(info.rcode, 3);
    assert_int_equal(info.answers, 0);
    assert_false(info.has_answer_ttl);
    assert_true(info.has_soa);
    assert_int_equal(info.negative_ttl_s, 60);
    assert_all_prefixes_fail();

    /* RFC 2308 §5: the SOA's own TTL bounds it too; the first SOA counts. */
    header(&p, 3, 1, 0, 2);
    question(&p, 15);
    soa_rr(&p, 30, 600);
    soa_rr(&p, 1, 1);
    assert_int_equal(parse(), 0);
    assert_int_equal(info.negative_ttl_s, 30);
}

static void test_nodata_soa_after_other_authority(void **state)
{
    (void)state;
    header(&p, 0, 1, 0, 2);
    question(&p, 15);
    /* An NS record first: skipped. */
    ptr(&p, 12);
    u16(&p, 2);
    u16(&p, 1);
    u32(&p, 5);
    u16(&p, 6);
    u8(&p, 3); memcpy(p.b + p.n, "ns1", 3); p.n += 3; ptr(&p, 12);
    soa_rr(&p, 3600, 90);
    assert_int_equal(parse(), 0);
    assert_int_equal(info.answers, 0);
    assert_true(info.has_soa);
    assert_int_equal(info.negative_ttl_s, 90);
    assert_all_prefixes_fail();
}

static void test_ttl_high_bit_is_zero(void **state)
{
    (void)state;
    header(&p, 0, 1, 2, 1);
    question(&p, 15);
    mx_rr(&p, 300, 10, "mx1");
    mx_rr(&p, 0x80000010u, 20, "mx2");
    soa_rr(&p, 0xFFFFFFFFu, 50);
    assert_int_equal(parse(), 0);
    assert_int_equal(info.answer_ttl_s, 0);
    assert_int_equal(info.negative_ttl_s, 0);
}

static void test_truncated_flag(void **state)
{
    (void)state;
    header(&p, 0, 1, 0, 0);
    p.b[2] |= 0x02;
    question(&p, 15);
    assert_int_equal(parse(), 0);
    assert_true(info.truncated);
}

static void test_short_header(void **state)
{
    (void)state;
    err = NULL;
    assert_int_equal(dns_ttl_parse((const uint8_t *)"abc", 3, &info, &err), -1);
    assert_non_null(err);
    assert_int_equal(dns_ttl_parse(NULL, 0, &info, &err), -1);
}

static void test_counts_larger_than_packet(void **state)
{
    (void)state;
    header(&p, 0, 1, 0xFFFF, 0xFFFF);
    question(&p, 15);
    mx_rr(&p, 300, 10, "mx1");
    assert_int_equal(parse(), -1);
    assert_non_null(err);
}

static void test_pointer_to_itself(void **state)
{
    (void)state;
    header(&p, 0, 1, 0, 0);
    ptr(&p, 12);
    u16(&p, 15);
    u16(&p, 1);
    assert_int_equal(parse(), -1);
    assert_string_equal(err, "forward DNS compression pointer");
}

static void test_forward_pointer(void **state)
{
    (void)state;
    header(&p, 0, 1, 0, 0);
    ptr(&p, 20);
    u16(&p, 15);
    u16(&p, 1);
    name(&p, "x");
    assert_int_equal(parse(), -1);
}

static void test_label_runs_into_its_pointer(void **state)
{
    (void)state;
    /* At 12: label "a", then at 14 a pointer back to 12: the name would never end. */
    header(&p, 0, 1, 0, 0);
    u8(&p, 1);
    u8(&p, 'a');
    ptr(&p, 12);
    u16(&p, 15);
    u16(&p, 1);
    assert_int_equal(parse(), -1);
    assert_string_equal(err, "DNS compression pointer loop");
}

static void test_pointer_chain_loop(void **state)
{
    (void)state;
    /* Question name at 12 is fine; the answer's owner is "b" + pointer to a pointer that
     * leads back into the answer's own name. */
    header(&p, 0, 1, 1, 0);
    question(&p, 15);               /* 12..28 name, then type/class: 29..32 */
    size_t at = p.n;                /* 33 */
    u8(&p, 1);
    u8(&p, 'b');
    ptr(&p, (unsigned)at + 4);      /* points just past itself: forward */
    ptr(&p, (unsigned)at);
    assert_int_equal(parse(), -1);
}

static void test_reserved_label_type(void **state)
{
    (void)state;
    header(&p, 0, 1, 0, 0);
    u8(&p, 0x41);
    u8(&p, 'a');
    u8(&p, 0);
    u16(&p, 15);
    u16(&p, 1);
    assert_int_equal(parse(), -1);
    assert_string_equal(err, "reserved DNS label type");
}

static void test_name_too_long(void **state)
{
    (void)state;
    char longname[400] = "";
    for (int i = 0; i < 5; i++) {
        strcat(longname, i ? "." : "");
        size_t l = strlen(longname);
        memset(longname + l, 'x', 63);
        longname[l + 63] = '\0';
    }
    header(&p, 0, 1, 0, 0);
    name(&p, longname);
    u16(&p, 15);
    u16(&p, 1);
    assert_int_equal(parse(), -1);
    assert_string_equal(err, "DNS name too long");

    /* 3 x 64 bytes in the question, then 2 more 63-byte labels via a pointer: 320 > 255. */
    header(&p, 0, 1, 1, 0);
    name(&p, longname + 64 * 2);            /* 3 labels: 12 .. 204 */
    u16(&p, 15);
    u16(&p, 1);
    u8(&p, 63); memset(p.b + p.n, 'y', 63); p.n += 63;
    u8(&p, 63); memset(p.b + p.n, 'y', 63); p.n += 63;
    ptr(&p, 12);
    u16(&p, 1);
    u16(&p, 1);
    u32(&p, 1);
    u16(&p, 0);
    assert_int_equal(parse(), -1);
    assert_string_equal(err, "DNS name too long");
}

static void test_max_length_name_ok(void **state)
{
    (void)state;
    /* Labels of 63, 63, 63 and 61 bytes: 3 x 64 + 62 + the root = 255, exactly the limit. */
    char n255[300] = "";
    const int lens[] = { 63, 63, 63, 61 };
    for (int i = 0; i < 4; i++) {
        strcat(n255, i ? "." : "");
        size_t l = strlen(n255);
        memset(n255 + l, 'z', (size_t)lens[i]);
        n255[l + (size_t)lens[i]] = '\0';
    }
    header(&p, 0, 1, 0, 0);
    name(&p, n255);
    u16(&p, 15);
    u16(&p, 1);
    assert_int_equal(p.n, 12 + 255 + 4);
    assert_int_equal(parse(), 0);
}

static void test_soa_rdata_too_short(void **state)
{
    (void)state;
    header(&p, 3, 1, 0, 1);
    question(&p, 15);
    size_t rdlen_at = soa_rr(&p, 3600, 60);
    /* Claim 4 bytes less RDATA and drop them: MINIMUM no longer fits. */
    unsigned rdlen = (unsigned)(p.b[rdlen_at] << 8 | p.b[rdlen_at + 1]);
    assert_int_equal(rdlen, 20 + 6 + 7);
    p.b[rdlen_at + 1] = (uint8_t)(rdlen - 4);
    p.n -= 4;
    assert_int_equal(parse(), -1);
    assert_string_equal(err, "truncated SOA record");
}

static void test_rdata_past_end(void **state)
{
    (void)state;
    header(&p, 0, 1, 1, 0);
    question(&p, 15);
    size_t rdlen_at = mx_rr(&p, 60, 10, "mx1");
    p.b[rdlen_at] = 0xFF; /* far past the end */
    assert_int_equal(parse(), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mx_answer_min_ttl),
        cmocka_unit_test(test_nxdomain_soa),
        cmocka_unit_test(test_nodata_soa_after_other_authority),
        cmocka_unit_test(test_ttl_high_bit_is_zero),
        cmocka_unit_test(test_truncated_flag),
        cmocka_unit_test(test_short_header),
        cmocka_unit_test(test_counts_larger_than_packet),
        cmocka_unit_test(test_pointer_to_itself),
        cmocka_unit_test(test_forward_pointer),
        cmocka_unit_test(test_label_runs_into_its_pointer),
        cmocka_unit_test(test_pointer_chain_loop),
        cmocka_unit_test(test_reserved_label_type),
        cmocka_unit_test(test_name_too_long),
        cmocka_unit_test(test_max_length_name_ok),
        cmocka_unit_test(test_soa_rdata_too_short),
        cmocka_unit_test(test_rdata_past_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
