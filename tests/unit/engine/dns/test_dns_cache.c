/* tests/unit/engine/dns/test_dns_cache.c — the resolution cache: keys, lifetimes per status,
 * expiry, LRU eviction and that a stored result comes back intact. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "engine/dns/dns_cache.h"

static const struct dns_cache_config cfg = {
    .entries = 4, .ttl_min_s = 5, .ttl_max_s = 3600, .negative_ttl_s = 300,
    .tempfail_ttl_s = 7,
};

static struct dns_result res, got;

static void add_host(struct dns_result *r, const char *name, unsigned pref, const char *a1,
                     const char *a2)
{
    struct dns_host *h = &r->hosts[r->nhosts++];
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    h->pref = pref;
    const char *addrs[] = { a1, a2 };
    for (unsigned i = 0; i < 2 && addrs[i]; i++) {
        struct sockaddr_storage *ss = &h->addrs[h->naddrs++];
        memset(ss, 0, sizeof *ss);
        if (strchr(addrs[i], ':')) {
            ss->ss_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, addrs[i],
                                       &((struct sockaddr_in6 *)ss)->sin6_addr), 1);
        } else {
            ss->ss_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, addrs[i],
                                       &((struct sockaddr_in *)ss)->sin_addr), 1);
        }
    }
}

static void ok_result(void)
{
    memset(&res, 0, sizeof res);
    res.status = DNS_OK;
    add_host(&res, "mx1.example.org", 10, "192.0.2.1", "2001:db8::1");
    add_host(&res, "mx2.example.org", 20, "192.0.2.2", NULL);
}

static void neg_result(enum dns_status st)
{
    memset(&res, 0, sizeof res);
    res.status = st;
    res.error = "some static text";
}

static struct dns_cache *mk(void)
{
    struct dns_cache *c = NULL;
    assert_int_equal(dns_cache_create(&c, &cfg), 0);
    return c;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct dns_cache *c = mk();
    uint32_t left = 0;
    ok_result();
    res.implicit_mx = true;
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "example.org", 0, &got, &left));
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "example.org", &res, 60, 1000), 0);
    memset(&got, 0xAB, sizeof got);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "example.org", 1000, &got, &left));
    assert_int_equal(left, 60);
    assert_int_equal(got.status, DNS_OK);
    assert_true(got.implicit_mx);
    assert_int_equal(got.nhosts, 2);
    assert_string_equal(got.hosts[0].name, "mx1.example.org");
    assert_int_equal(got.hosts[0].pref, 10);
    assert_int_equal(got.hosts[0].naddrs, 2);
    assert_int_equal(got.hosts[1].naddrs, 1);
    char buf[64];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&got.hosts[0].addrs[0];
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(sin->sin_port, 0);
    assert_string_equal(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf), "192.0.2.1");
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&got.hosts[0].addrs[1];
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_string_equal(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf), "2001:db8::1");
    sin = (const struct sockaddr_in *)&got.hosts[1].addrs[0];
    assert_string_equal(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf), "192.0.2.2");
    dns_cache_destroy(c);
}

static void test_key_case_dot_and_kind(void **state)
{
    (void)state;
    struct dns_cache *c = mk();
    uint32_t left;
    ok_result();
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "Example.ORG.", &res, 60, 0), 0);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "example.org", 0, &got, &left));
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "EXAMPLE.org.", 0, &got, &left));
    assert_false(dns_cache_get(c, DNS_CACHE_HOST, "example.org", 0, &got, &left));
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "example.com", 0, &got, &left));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, longname, &res, 60, 0), -EINVAL);
    assert_false(dns_cache_get(c, DNS_CACHE_MX, longname, 0, &got, &left));
    dns_cache_destroy(c);
}

static void test_positive_expiry_and_clamps(void **state)
{
    (void)state;
    struct dns_cache *c = mk();
    uint32_t left;
    ok_result();
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "a.example", &res, 60, 10000), 0);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "a.example", 69999, &got, &left));
    assert_int_equal(left, 1);
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "a.example", 70000, &got, &left));
    /* TTL 0 is raised to ttl_min_s, a huge one cut to ttl_max_s. */
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "b.example", &res, 0, 0), 0);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "b.example", 4999, &got, &left));
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "b.example", 5000, &got, &left));
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "c.example", &res, 1u << 30, 0), 0);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "c.example", 0, &got, &left));
    assert_int_equal(left, 3600);
    dns_cache_destroy(c);
}

static void test_lifetimes(void **state)
{
    (void)state;
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_OK, 3), 5);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_OK, 100), 100);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_OK, 99999), 3600);
    /* Negative: the SOA-derived TTL, capped by negative_ttl_s. */
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_NXDOMAIN, 60), 60);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_NXDOMAIN, 3600), 300);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_NOHOSTS, 1000), 300);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_NULLMX, 86400), 300);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_NULLMX, 0), 5);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_NXDOMAIN, DNS_CACHE_TTL_UNKNOWN), 5);
    assert_int_equal(dns_cache_lifetime_s(&cfg, DNS_TEMPFAIL, 1000), 7);
    struct dns_cache_config small = cfg;
    small.negative_ttl_s = 2;
    assert_int_equal(dns_cache_lifetime_s(&small, DNS_NXDOMAIN, 60), 2);
    small.tempfail_ttl_s = 0;
    assert_int_equal(dns_cache_lifetime_s(&small, DNS_TEMPFAIL, 60), 0);
}

static void test_negative_and_tempfail(void **state)
{
    (void)state;
    struct dns_cache *c = mk();
    uint32_t left;
    neg_result(DNS_NXDOMAIN);
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "nx.example", &res, 30, 0), 0);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "nx.example", 29999, &got, &left));
    assert_int_equal(got.status, DNS_NXDOMAIN);
    assert_string_equal(got.error, "some static text");
    assert_int_equal(got.nhosts, 0);
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "nx.example", 30000, &got, &left));

    neg_result(DNS_TEMPFAIL);
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "tf.example", &res, 9999, 0), 0);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "tf.example", 6999, &got, &left));
    assert_int_equal(got.status, DNS_TEMPFAIL);
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "tf.example", 7000, &got, &left));

    /* An expired name is refreshed in place: no new entry. */
    unsigned before = dns_cache_count(c);
    ok_result();
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "tf.example", &res, 60, 8000), 0);
    assert_int_equal(dns_cache_count(c), before);
    assert_true(dns_cache_get(c, DNS_CACHE_MX, "tf.example", 8000, &got, &left));
    assert_int_equal(got.status, DNS_OK);
    assert_int_equal(got.nhosts, 2);
    dns_cache_destroy(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    struct dns_cache *c = mk();
    uint32_t left;
    ok_result();
    const char *names[] = { "n0", "n1", "n2", "n3" };
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(dns_cache_put(c, DNS_CACHE_HOST, names[i], &res, 60, 0), 0);
    assert_int_equal(dns_cache_count(c), 4);
    /* Touch n0 so n1 is the least recently used. */
    assert_true(dns_cache_get(c, DNS_CACHE_HOST, "n0", 0, &got, &left));
    neg_result(DNS_NOHOSTS);
    assert_int_equal(dns_cache_put(c, DNS_CACHE_HOST, "n4", &res, 60, 0), 0);
    assert_int_equal(dns_cache_count(c), 4);
    assert_false(dns_cache_get(c, DNS_CACHE_HOST, "n1", 0, &got, &left));
    assert_true(dns_cache_get(c, DNS_CACHE_HOST, "n0", 0, &got, &left));
    assert_true(dns_cache_get(c, DNS_CACHE_HOST, "n2", 0, &got, &left));
    assert_true(dns_cache_get(c, DNS_CACHE_HOST, "n4", 0, &got, &left));
    assert_int_equal(got.status, DNS_NOHOSTS);
    /* n3 is now the oldest; a bigger result for a new name must grow the recycled block. */
    ok_result();
    for (unsigned i = 0; i < 6; i++)
        add_host(&res, "a-rather-long-host-name-to-grow-the-entry.example.org", 30 + i,
                 "2001:db8::10", "2001:db8::11");
    assert_int_equal(dns_cache_put(c, DNS_CACHE_HOST, "n5", &res, 60, 0), 0);
    assert_false(dns_cache_get(c, DNS_CACHE_HOST, "n3", 0, &got, &left));
    assert_true(dns_cache_get(c, DNS_CACHE_HOST, "n5", 0, &got, &left));
    assert_int_equal(got.nhosts, 8);
    assert_int_equal(got.hosts[7].pref, 35);
    assert_int_equal(got.hosts[7].naddrs, 2);
    dns_cache_destroy(c);
}

static void test_full_table_many_names(void **state)
{
    (void)state;
    struct dns_cache_config big = cfg;
    big.entries = 100;
    struct dns_cache *c = NULL;
    assert_int_equal(dns_cache_create(&c, &big), 0);
    uint32_t left;
    ok_result();
    char name[32];
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "d%u.example", i);
        assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, name, &res, 60, i), 0);
    }
    assert_int_equal(dns_cache_count(c), 100);
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "d%u.example", i);
        assert_int_equal(dns_cache_get(c, DNS_CACHE_MX, name, 1000, &got, &left), i >= 900);
    }
    dns_cache_destroy(c);
}

static void test_disabled_and_invalid(void **state)
{
    (void)state;
    struct dns_cache_config off = cfg;
    off.entries = 0;
    struct dns_cache *c = NULL;
    uint32_t left;
    assert_int_equal(dns_cache_create(&c, &off), 0);
    ok_result();
    assert_int_equal(dns_cache_put(c, DNS_CACHE_MX, "x", &res, 60, 0), 0);
    assert_false(dns_cache_get(c, DNS_CACHE_MX, "x", 0, &got, &left));
    dns_cache_destroy(c);
    off = cfg;
    off.ttl_min_s = 10;
    off.ttl_max_s = 5;
    assert_int_equal(dns_cache_create(&c, &off), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_key_case_dot_and_kind),
        cmocka_unit_test(test_positive_expiry_and_clamps),
        cmocka_unit_test(test_lifetimes),
        cmocka_unit_test(test_negative_and_tempfail),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_full_table_many_names),
        cmocka_unit_test(test_disabled_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
