/* tests/unit/schedulers/test_shaping.c — shaping rules: parse errors that name the field,
 * precedence at every level with provenance, provider matching on label boundaries, the
 * MX-rollup site key, the explain listing, and the shipped etc/shaping.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "schedulers/shaping.h"

static struct shaping_rules *parse_ok(const char *json)
{
    struct shaping_rules *r = NULL;
    char err[512] = "";
    if (shaping_parse(json, strlen(json), &r, err, sizeof err) != 0)
        fail_msg("parse failed: %s\n%s", err, json);
    assert_non_null(r);
    return r;
}

/* want is the whole message, or its beginning when it ends in '*' (for jansson's own text,
 * which varies between versions). */
static void expect_error(const char *json, const char *want)
{
    struct shaping_rules *r = (struct shaping_rules *)1;
    char err[512] = "";
    if (shaping_parse(json, strlen(json), &r, err, sizeof err) == 0)
        fail_msg("parsed, wanted error \"%s\":\n%s", want, json);
    assert_null(r);
    size_t wl = strlen(want);
    bool prefix = wl && want[wl - 1] == '*';
    if (prefix ? strncmp(err, want, wl - 1) != 0 : strcmp(err, want) != 0)
        fail_msg("error \"%s\", wanted \"%s\"\n%s", err, want, json);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("[]", "expected an object at the top level");
    expect_error("{\"defaults\": {}", "line 1 column *");
    expect_error("{\"defaults\": {}, \"defaults\": {}}", "line 1 column *");  /* duplicate key */
    expect_error("{\"providers\": [{\"name\":\"a\",\"mx_suffixes\":[\"a.com\"]},"
                 "{\"name\":\"b\",\"mx_suffixes\":[\"b.com\"]},"
                 "{\"name\":\"c\",\"mx_suffixes\":[\"c.com\"],"
                 "\"limits\":{\"max_msgs_per_second\":\"fast\"}}]}",
                 "providers[2].limits.max_msgs_per_second: expected a number, or null for no limit");
    expect_error("{\"defaults\": {\"max_connections\": 0}}",
                 "defaults.max_connections: must be between 1 and 10000");
    expect_error("{\"defaults\": {\"max_connections\": 2.5}}",
                 "defaults.max_connections: expected an integer");
    expect_error("{\"defaults\": {\"max_connections\": -1}}",
                 "defaults.max_connections: must be between 1 and 10000");
    expect_error("{\"defaults\": {\"max_connections\": 99999999999999999}}",
                 "defaults.max_connections: must be between 1 and 10000");
    expect_error("{\"defaults\": {\"max_connections\": null}}",
                 "defaults.max_connections: expected an integer");
    expect_error("{\"defaults\": {\"max_msgs_per_hour\": 0}}",
                 "defaults.max_msgs_per_hour: must be greater than 0 (null means no limit)");
    expect_error("{\"defaults\": {\"max_msgs_per_second\": 2000000}}",
                 "defaults.max_msgs_per_second: must be at most 1000000");
    expect_error("{\"defaults\": {\"retry_schedule_s\": []}}",
                 "defaults.retry_schedule_s: must have 1 to 32 entries");
    expect_error("{\"defaults\": {\"retry_schedule_s\": 60}}",
                 "defaults.retry_schedule_s: expected an array of integers");
    expect_error("{\"defaults\": {\"retry_schedule_s\": [60, 0]}}",
                 "defaults.retry_schedule_s[1]: must be between 1 and 31536000");
    expect_error("{\"defaults\": {\"tls\": \"maybe\"}}",
                 "defaults.tls: expected one of disabled, opportunistic, required, verify");
    expect_error("{\"defaults\": {\"replica_local\": 1}}",
                 "defaults.replica_local: expected true or false");
    expect_error("{\"defaults\": {\"timeouts\": {\"connect_ms\": 0}}}",
                 "defaults.timeouts.connect_ms: must be between 1 and 86400000");
    expect_error("{\"defaults\": {\"timeouts\": 5}}", "defaults.timeouts: expected an object");
    /* the embedded parts: their own errors, with their paths; ramps name real providers */
    expect_error("{\"backoff_rules\": 5}", "backoff_rules: *");
    expect_error("{\"warmup_plans\": {\"p\": {}}}", "warmup_plans.p*");
    expect_error("{\"providers\": [{\"name\": \"gmail\", \"domain_suffixes\": [\"gmail.com\"]}],"
                 " \"warmup_plans\": {\"p\": {\"daily\": [5], \"providers\": {\"gmial\": {\"daily\": [1]}}}}}",
                 "warmup_plans.p.providers.gmial: no such provider in \"providers\"");
    expect_error("{\"providers\": [{\"name\": \"gmail\", \"domain_suffixes\": [\"gmail.com\"]}],"
                 " \"backoff_rules\": [{\"name\": \"r\", \"match\": \"^421\", \"action\": \"suspend\","
                 " \"duration_s\": 60, \"providers\": [\"gmail\", \"yaho\"]}]}",
                 "backoff_rules[0].providers[1]: no such provider in \"providers\": yaho");
    expect_error("{\"defaults\": []}", "defaults: expected an object of limits");
    expect_error("{\"providers\": {}}", "providers: expected an array of providers");
    expect_error("{\"providers\": [{\"mx_suffixes\": [\"a.com\"]}]}", "providers[0].name: required");
    expect_error("{\"providers\": [{\"name\": \"a b\", \"mx_suffixes\": [\"a.com\"]}]}",
                 "providers[0].name: expected a name of 1 to 64 letters, digits, '.', '_', ':' or '-'");
    expect_error("{\"providers\": [{\"name\": \"a\", \"mx_suffixes\": [\"a.com\"]},"
                 "{\"name\": \"a\", \"mx_suffixes\": [\"b.com\"]}]}",
                 "providers[1].name: \"a\" is already the name of providers[0]");
    expect_error("{\"providers\": [{\"name\": \"a\"}]}",
                 "providers[0]: needs mx_suffixes or domain_suffixes (it would match nothing)");
    expect_error("{\"providers\": [{\"name\": \"a\", \"mx_suffixes\": [\"a..com\"]}]}",
                 "providers[0].mx_suffixes[0]: not a domain name");
    expect_error("{\"providers\": [{\"name\": \"a\", \"domain_suffixes\": [\"ok.com\", 7]}]}",
                 "providers[0].domain_suffixes[1]: expected a string");
    expect_error("{\"providers\": [{\"name\": \"a\", \"mx_suffixes\": [\".\"]}]}",
                 "providers[0].mx_suffixes[0]: not a domain name");
    expect_error("{\"domains\": {\"exa mple.com\": {}}}", "domains.exa mple.com: not a domain name");
    expect_error("{\"domains\": {\"Example.COM\": {}, \"example.com.\": {}}}",
                 "domains.example.com: listed twice (domain names ignore case and trailing dots)");
    expect_error("{\"domains\": {\"example.com\": {\"burst\": true}}}",
                 "domains.example.com.burst: expected an integer");
    expect_error("{\"sources\": {\"ip-a\": {\"providers\": {\"gmial\": {}}}}}",
                 "sources.ip-a.providers.gmial: no such provider (declare it in \"providers\")");
    expect_error("{\"sources\": {\"ip-a\": {\"domains\": {\"x.com\": {\"max_age_s\": \"1d\"}}}}}",
                 "sources.ip-a.domains.x.com.max_age_s: expected an integer");
    expect_error("{\"sources\": {\"ip a\": {}}}",
                 "sources.ip a: expected a name of 1 to 64 letters, digits, '.', '_', ':' or '-'");
    expect_error("{\"sources\": {\"ip-a\": []}}", "sources.ip-a: expected an object");
    expect_error("{\"comment\": 5}", "comment: expected a string");
    /* Control bytes in a key do not reach the message. */
    expect_error("{\"domains\": {\"a\\nb.com\": {}}}", "domains.a?b.com: not a domain name");
}

static void test_unknown_fields(void **state)
{
    (void)state;
    expect_error("{\"default\": {}}", "default: unknown field");
    expect_error("{\"defaults\": {\"max_conections\": 5}}", "defaults.max_conections: unknown field");
    expect_error("{\"defaults\": {\"connect_ms\": 5}}", "defaults.connect_ms: unknown field");
    expect_error("{\"defaults\": {\"timeouts.connect_ms\": 5}}",
                 "defaults.timeouts.connect_ms: unknown field");
    expect_error("{\"defaults\": {\"timeouts\": {\"max_connections\": 5}}}",
                 "defaults.timeouts.max_connections: unknown field");
    expect_error("{\"providers\": [{\"name\": \"a\", \"mx_suffix\": [\"a.com\"]}]}",
                 "providers[0].mx_suffix: unknown field");
    expect_error("{\"providers\": [{\"name\": \"a\", \"mx_suffixes\": [\"a.com\"],"
                 " \"limits\": {\"speed\": 1}}]}",
                 "providers[0].limits.speed: unknown field");
    expect_error("{\"sources\": {\"s\": {\"default\": {}}}}", "sources.s.default: unknown field");
    expect_error("{\"sources\": {\"s\": {\"defaults\": {\"nope\": 1}}}}",
                 "sources.s.defaults.nope: unknown field");
    /* "comment" is allowed wherever an object of ours is. */
    struct shaping_rules *r = parse_ok(
        "{\"comment\": \"x\", \"defaults\": {\"comment\": \"x\"},"
        " \"providers\": [{\"name\": \"a\", \"comment\": \"x\", \"mx_suffixes\": [\"a.com\"],"
        "   \"limits\": {\"comment\": \"x\"}}],"
        " \"domains\": {\"d.com\": {\"comment\": \"x\"}},"
        " \"sources\": {\"s\": {\"comment\": \"x\", \"defaults\": {\"comment\": \"x\"}}}}");
    shaping_free(r);
    /* Empty containers are fine (the fuzzer found qsort(NULL, 0) on "sources": {}). */
    r = parse_ok("{\"defaults\": {}, \"providers\": [], \"domains\": {}, \"sources\": {}}");
    shaping_free(r);
    r = parse_ok("{\"sources\": {\"s\": {\"providers\": {}, \"domains\": {}}}}");
    shaping_free(r);
}

/* Every level sets max_connections (and what it alone sets) so each override is visible. */
static const char *const levels_json =
    "{"
    " \"defaults\": {\"max_connections\": 2, \"burst\": 7, \"max_msgs_per_hour\": 1000},"
    " \"providers\": ["
    "   {\"name\": \"other\", \"mx_suffixes\": [\"other.net\"], \"limits\": {\"max_connections\": 99}},"
    "   {\"name\": \"gmail\", \"mx_suffixes\": [\"google.com\", \"googlemail.com\"],"
    "    \"domain_suffixes\": [\"gmail.com\"],"
    "    \"limits\": {\"max_connections\": 3, \"max_msgs_per_second\": 10, \"tls\": \"required\"}},"
    "   {\"name\": \"late\", \"domain_suffixes\": [\"example.com\"], \"limits\": {\"max_connections\": 98}}"
    " ],"
    " \"domains\": {\"Example.com\": {\"max_connections\": 4, \"max_rcpts_per_txn\": 5,"
    "               \"max_msgs_per_hour\": null, \"timeouts\": {\"connect_ms\": 1234}}},"
    " \"sources\": {"
    "   \"ip-a\": {"
    "     \"defaults\": {\"max_connections\": 5, \"max_age_s\": 600},"
    "     \"providers\": {\"gmail\": {\"max_connections\": 6, \"replica_local\": true}},"
    "     \"domains\": {\"example.com\": {\"max_connections\": 7, \"retry_schedule_s\": [1, 2, 3]}}"
    "   },"
    "   \"ip-b\": {\"defaults\": {\"max_msgs_per_connection\": 9}}"
    " }"
    "}";

static void test_precedence(void **state)
{
    (void)state;
    struct shaping_rules *r = parse_ok(levels_json);
    const char *mx[] = {"ASPMX.L.GOOGLE.COM.", "alt1.aspmx.l.google.com"};
    struct shaping_limits l;
    struct shaping_provenance p;

    /* No rules at all: built-in. */
    shaping_resolve(NULL, "example.com", mx, 2, "ip-a", &l, &p);
    struct shaping_limits b;
    shaping_limits_builtin(&b);
    assert_memory_equal(&l, &b, sizeof l);
    for (unsigned f = 0; f < SHAPING_F__COUNT; f++)
        assert_string_equal(p.from[f], "built-in");

    /* defaults only */
    shaping_resolve(r, "nowhere.org", NULL, 0, NULL, &l, &p);
    assert_int_equal(l.max_connections, 2);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "defaults");
    assert_int_equal(l.max_msgs_per_connection, 100);
    assert_string_equal(p.from[SHAPING_F_MAX_MSGS_PER_CONNECTION], "built-in");
    assert_true(l.max_msgs_per_hour == 1000);

    /* + provider (by MX; the first matching provider in file order wins) */
    shaping_resolve(r, "workspace-customer.org", mx, 2, NULL, &l, &p);
    assert_int_equal(l.max_connections, 3);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "provider gmail");
    assert_true(l.max_msgs_per_second == 10);
    assert_int_equal(l.tls, SHAPING_TLS_REQUIRED);
    assert_string_equal(p.from[SHAPING_F_TLS], "provider gmail");
    assert_int_equal(l.burst, 7);
    assert_string_equal(p.from[SHAPING_F_BURST], "defaults");

    /* + domain (exact, case- and trailing-dot-insensitive); null lifts an inherited rate */
    shaping_resolve(r, "EXAMPLE.com.", mx, 2, NULL, &l, &p);
    assert_int_equal(l.max_connections, 4);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "domain example.com");
    assert_int_equal(l.max_rcpts_per_txn, 5);
    assert_true(l.max_msgs_per_hour == 0);
    assert_string_equal(p.from[SHAPING_F_MAX_MSGS_PER_HOUR], "domain example.com");
    assert_int_equal(l.timeouts.connect_ms, 1234);
    assert_string_equal(p.from[SHAPING_F_CONNECT_MS], "domain example.com");
    assert_int_equal(l.timeouts.greeting_ms, 300000);
    assert_string_equal(p.from[SHAPING_F_GREETING_MS], "built-in");
    assert_true(l.max_msgs_per_second == 10);       /* the provider's, still */
    /* A subdomain is not the domain. */
    shaping_resolve(r, "mail.example.com", NULL, 0, NULL, &l, &p);
    assert_int_equal(l.max_connections, 98);          /* ...but matches "late"'s suffix */
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "provider late");

    /* + source defaults, source provider, source domain */
    shaping_resolve(r, "example.com", mx, 2, "ip-a", &l, &p);
    assert_int_equal(l.max_connections, 7);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "source ip-a domain example.com");
    assert_int_equal(l.nretry, 3);
    assert_int_equal(l.retry_schedule_s[2], 3);
    assert_string_equal(p.from[SHAPING_F_RETRY_SCHEDULE_S], "source ip-a domain example.com");
    assert_true(l.replica_local);
    assert_string_equal(p.from[SHAPING_F_REPLICA_LOCAL], "source ip-a provider gmail");
    assert_int_equal(l.max_age_s, 600);
    assert_string_equal(p.from[SHAPING_F_MAX_AGE_S], "source ip-a defaults");
    assert_int_equal(l.max_rcpts_per_txn, 5);
    assert_string_equal(p.from[SHAPING_F_MAX_RCPTS_PER_TXN], "domain example.com");

    shaping_resolve(r, "gmail.com", NULL, 0, "ip-a", &l, &p);   /* provider by domain suffix */
    assert_int_equal(l.max_connections, 6);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "source ip-a provider gmail");

    shaping_resolve(r, "nowhere.org", NULL, 0, "ip-a", &l, &p);
    assert_int_equal(l.max_connections, 5);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "source ip-a defaults");
    assert_false(l.replica_local);

    /* Another source sees none of ip-a's levels; an unknown source sees no source level. */
    shaping_resolve(r, "example.com", mx, 2, "ip-b", &l, &p);
    assert_int_equal(l.max_connections, 4);
    assert_int_equal(l.max_msgs_per_connection, 9);
    assert_string_equal(p.from[SHAPING_F_MAX_MSGS_PER_CONNECTION], "source ip-b defaults");
    shaping_resolve(r, "example.com", mx, 2, "ip-c", &l, &p);
    assert_int_equal(l.max_connections, 4);
    assert_int_equal(l.max_msgs_per_connection, 100);

    /* prov may be NULL; a NULL domain resolves to defaults (+ provider by MX). */
    shaping_resolve(r, NULL, mx, 2, NULL, &l, NULL);
    assert_int_equal(l.max_connections, 3);
    shaping_free(r);
}

static void test_set_base(void **state)
{
    (void)state;
    struct shaping_rules *r = parse_ok("{\"defaults\": {\"burst\": 3}}");
    struct shaping_limits base;
    shaping_limits_builtin(&base);
    base.max_connections = 42;
    base.burst = 1;
    assert_int_equal(shaping_set_base(r, &base, "config"), 0);
    struct shaping_limits l;
    struct shaping_provenance p;
    shaping_resolve(r, "x.org", NULL, 0, NULL, &l, &p);
    assert_int_equal(l.max_connections, 42);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "config");
    assert_int_equal(l.burst, 3);
    assert_string_equal(p.from[SHAPING_F_BURST], "defaults");
    shaping_free(r);
    shaping_free(NULL);
}

static void test_suffix_match(void **state)
{
    (void)state;
    assert_true(shaping_suffix_match("aspmx.l.google.com", "google.com"));
    assert_true(shaping_suffix_match("ASPMX.L.Google.COM.", "google.com"));
    assert_true(shaping_suffix_match("google.com", "google.com"));
    assert_true(shaping_suffix_match("google.com.", "Google.Com"));
    assert_false(shaping_suffix_match("notgoogle.com", "google.com"));
    assert_false(shaping_suffix_match("google.com.evil.net", "google.com"));
    assert_false(shaping_suffix_match("oogle.com", "google.com"));
    assert_false(shaping_suffix_match("com", "google.com"));
    assert_false(shaping_suffix_match("google.com", ""));
    assert_false(shaping_suffix_match("", "google.com"));

    struct shaping_rules *r = parse_ok(
        "{\"providers\": ["
        " {\"name\": \"g\", \"mx_suffixes\": [\".Google.COM.\"], \"domain_suffixes\": [\"gmail.com\"]},"
        " {\"name\": \"m\", \"mx_suffixes\": [\"outlook.com\"]}]}");
    const char *g[] = {"aspmx.l.google.com"};
    const char *ng[] = {"mx.notgoogle.com", "mx2.notgoogle.com"};
    const char *mixed[] = {"mx.notgoogle.com", NULL, "contoso-com.mail.protection.outlook.com."};
    assert_string_equal(shaping_provider_of(r, "anything.org", g, 1), "g");
    assert_null(shaping_provider_of(r, "anything.org", ng, 2));
    assert_string_equal(shaping_provider_of(r, "contoso.com", mixed, 3), "m");
    assert_string_equal(shaping_provider_of(r, "gmail.com", NULL, 0), "g");
    assert_string_equal(shaping_provider_of(r, "uk.Gmail.com.", ng, 2), "g");
    assert_null(shaping_provider_of(r, "notgmail.com", NULL, 0));
    assert_null(shaping_provider_of(r, NULL, NULL, 0));
    assert_null(shaping_provider_of(NULL, "gmail.com", g, 1));
    /* MX suffixes match MX hosts only, domain suffixes the domain only. */
    assert_null(shaping_provider_of(r, "outlook.com", NULL, 0));
    const char *gm[] = {"gmail.com"};
    assert_null(shaping_provider_of(r, "x.org", gm, 1));
    shaping_free(r);
}

static void test_site_key(void **state)
{
    (void)state;
    char k[256];
    const char *a[] = {"ALT1.aspmx.l.google.com.", "aspmx.l.google.com", "alt1.ASPMX.l.google.com",
                       "", ".", NULL, "alt2.aspmx.l.google.com.."};
    size_t n = shaping_site_key(a, 7, k, sizeof k);
    assert_string_equal(k, "alt1.aspmx.l.google.com,alt2.aspmx.l.google.com,aspmx.l.google.com");
    assert_int_equal(n, strlen(k));

    /* Order and case do not matter: the same set, the same key. */
    const char *b[] = {"aspmx.l.google.com", "alt2.aspmx.l.google.com", "Alt1.Aspmx.L.Google.Com"};
    char k2[256];
    shaping_site_key(b, 3, k2, sizeof k2);
    assert_string_equal(k, k2);

    /* A prefix sorts first; duplicates at the end go too. */
    const char *c[] = {"mx.a.com", "mx.a", "mx.a.com", "mx.a"};
    shaping_site_key(c, 4, k, sizeof k);
    assert_string_equal(k, "mx.a,mx.a.com");

    assert_int_equal(shaping_site_key(NULL, 0, k, sizeof k), 0);
    assert_string_equal(k, "");

    /* Truncation is reported like snprintf, and the output stays terminated. */
    char small[8];
    memset(small, 'x', sizeof small);
    n = shaping_site_key(b, 3, small, sizeof small);
    assert_int_equal(n, strlen(k2));
    assert_string_equal(small, "alt1.as");
    assert_int_equal(shaping_site_key(b, 3, NULL, 0), strlen(k2));
}

static void test_explain(void **state)
{
    (void)state;
    struct shaping_rules *r = parse_ok(levels_json);
    const char *mx[] = {"aspmx.l.google.com"};
    struct shaping_limits l;
    struct shaping_provenance p;
    shaping_resolve(r, "example.com", mx, 1, "ip-a", &l, &p);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    shaping_explain(&l, &p, f);
    fclose(f);
    unsigned lines = 0;
    for (char *s = text; *s; s++)
        lines += *s == '\n';
    assert_int_equal(lines, SHAPING_F__COUNT);
    assert_non_null(strstr(text, "max_connections                  7                    source ip-a domain example.com\n"));
    assert_non_null(strstr(text, "max_msgs_per_second              10                   provider gmail\n"));
    assert_non_null(strstr(text, "max_msgs_per_hour                none                 domain example.com\n"));
    assert_non_null(strstr(text, "retry_schedule_s                 1,2,3                source ip-a domain example.com\n"));
    assert_non_null(strstr(text, "tls                              required             provider gmail\n"));
    assert_non_null(strstr(text, "timeouts.connect_ms              1234                 domain example.com\n"));
    assert_non_null(strstr(text, "replica_local                    true                 source ip-a provider gmail\n"));
    assert_non_null(strstr(text, "timeouts.idle_ms                 5000                 built-in\n"));
    free(text);

    char v[8];
    assert_int_equal(shaping_value_to_text(&l, SHAPING_F_RETRY_SCHEDULE_S, v, 4), 5);
    assert_string_equal(v, "1,2");
    l.max_msgs_per_second = 0.5;
    shaping_value_to_text(&l, SHAPING_F_MAX_MSGS_PER_SECOND, v, sizeof v);
    assert_string_equal(v, "0.5");
    assert_string_equal(shaping_field_name(SHAPING_F_DATA_BLOCK_MS), "timeouts.data_block_ms");
    shaping_free(r);
}

static void test_buckets(void **state)
{
    (void)state;
    struct shaping_limits l;
    shaping_limits_builtin(&l);
    struct gcra_rate m[SHAPING_MSG_BUCKETS], c;
    shaping_msg_rates(&l, m);
    shaping_conn_rate(&l, &c);
    for (int i = 0; i < SHAPING_MSG_BUCKETS; i++)
        assert_int_equal(m[i].emission_us, 0);       /* built-in: no rate limits */
    assert_int_equal(c.emission_us, 0);

    l.max_msgs_per_second = 10;
    l.burst = 20;
    l.max_msgs_per_minute = 300;
    l.max_msgs_per_hour = 10000;
    l.max_new_connections_per_minute = 30;
    shaping_msg_rates(&l, m);
    shaping_conn_rate(&l, &c);
    assert_int_equal(m[0].emission_us, 100000);
    assert_int_equal(m[0].burst, 20);
    assert_int_equal(m[1].emission_us, 200000);
    assert_int_equal(m[1].burst, 299);               /* the minute's allowance at once */
    assert_int_equal(m[2].emission_us, 360000);
    assert_int_equal(m[2].burst, 9999);
    assert_int_equal(c.emission_us, 2000000);
    assert_int_equal(c.burst, 29);
    l.max_msgs_per_minute = 0.5;                     /* fractional allowance: one at a time */
    shaping_msg_rates(&l, m);
    assert_int_equal(m[1].burst, 0);
    l.max_msgs_per_minute = 2.5;
    shaping_msg_rates(&l, m);
    assert_int_equal(m[1].burst, 2);
}

static void test_tls_names(void **state)
{
    (void)state;
    enum shaping_tls t;
    const char *names[] = {"disabled", "opportunistic", "required", "verify"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(shaping_tls_from_text(names[i], &t), 0);
        assert_int_equal(t, i);
        assert_string_equal(shaping_tls_to_text(t), names[i]);
    }
    assert_int_equal(shaping_tls_from_text("Verify", &t), -1);
}

/* The repository root, from this file's path (CMake passes absolute source paths). */
static char *repo_path(const char *rel)
{
    const char *me = __FILE__, *tail = "tests/unit/schedulers/test_shaping.c";
    size_t ml = strlen(me), tl = strlen(tail);
    if (ml < tl || strcmp(me + ml - tl, tail) != 0)
        fail_msg("cannot find the repository root from %s", me);
    char *p = malloc(ml - tl + strlen(rel) + 1);
    memcpy(p, me, ml - tl);
    strcpy(p + ml - tl, rel);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
        }
        size_t n = fread(buf + *len, 1, cap - *len, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    return buf;
}

static void test_shipped_file(void **state)
{
    (void)state;
    char *path = repo_path("etc/shaping.json");
    size_t len;
    char *text = slurp(path, &len);
    struct shaping_rules *r = NULL;
    char err[512] = "";
    if (shaping_parse(text, len, &r, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);

    struct {
        const char *domain, *mx, *provider;
    } cases[] = {
        {"gmail.com", "gmail-smtp-in.l.google.com", "gmail"},
        {"workspace.example", "aspmx.l.google.com.", "gmail"},
        {"yahoo.com", "mta5.am0.yahoodns.net", "yahoo"},
        {"aol.com", "mx-aol.mail.gm0.yahoodns.net", "yahoo"},
        {"hotmail.com", "hotmail-com.olc.protection.outlook.com", "microsoft"},
        {"contoso.example", "contoso-example.mail.protection.outlook.com", "microsoft"},
        {"icloud.com", "mx01.mail.icloud.com", "apple"},
        {"me.com", NULL, "apple"},
        {"small.example", "mail.small.example", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *mx[] = {cases[i].mx};
        unsigned nmx = cases[i].mx ? 1 : 0;
        const char *pv = shaping_provider_of(r, cases[i].domain, mx, nmx);
        if ((pv == NULL) != (cases[i].provider == NULL) ||
            (pv && strcmp(pv, cases[i].provider) != 0))
            fail_msg("%s: provider %s, want %s", cases[i].domain, pv ? pv : "(none)",
                     cases[i].provider ? cases[i].provider : "(none)");
        struct shaping_limits l;
        struct shaping_provenance p;
        shaping_resolve(r, cases[i].domain, mx, nmx, NULL, &l, &p);
        /* Every shipped block is conservative and self-consistent. */
        assert_in_range(l.max_connections, 1, 20);
        assert_true(l.max_msgs_per_second > 0 && l.max_msgs_per_second <= 20);
        assert_true(l.max_msgs_per_minute > 0);
        assert_in_range(l.max_msgs_per_connection, 1, 100);
        assert_true(l.nretry >= 3);
        if (cases[i].provider) {
            assert_int_equal(l.tls, SHAPING_TLS_REQUIRED);
            char want[64];
            snprintf(want, sizeof want, "provider %s", cases[i].provider);
            assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], want);
            assert_true(l.max_msgs_per_hour > 0);
        } else {
            assert_int_equal(l.tls, SHAPING_TLS_OPPORTUNISTIC);
            assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "defaults");
        }
    }
    shaping_free(r);
    free(text);
    free(path);
}

/* The complete example in docs/shaping.md parses, and says what it says it does. */
static void test_docs_example(void **state)
{
    (void)state;
    char *path = repo_path("docs/shaping.md");
    size_t len;
    char *md = slurp(path, &len);
    md = realloc(md, len + 1);
    md[len] = '\0';
    char *sec = strstr(md, "## A complete example");
    assert_non_null(sec);
    char *start = strstr(sec, "```json\n");
    assert_non_null(start);
    start += 8;
    char *end = strstr(start, "```");
    assert_non_null(end);
    struct shaping_rules *r = NULL;
    char err[512] = "";
    if (shaping_parse(start, (size_t)(end - start), &r, err, sizeof err) != 0)
        fail_msg("docs example: %s", err);
    struct shaping_limits l;
    struct shaping_provenance p;
    shaping_resolve(r, "partner.example", NULL, 0, "new-ip-1", &l, &p);
    assert_int_equal(l.tls, SHAPING_TLS_VERIFY);
    assert_string_equal(p.from[SHAPING_F_TLS], "domain partner.example");
    assert_true(l.max_msgs_per_hour == 2000);
    assert_string_equal(p.from[SHAPING_F_MAX_MSGS_PER_HOUR], "source new-ip-1 domain partner.example");
    assert_true(l.replica_local);
    assert_string_equal(p.from[SHAPING_F_REPLICA_LOCAL], "source new-ip-1 defaults");
    assert_int_equal(l.max_connections, 5);
    assert_string_equal(p.from[SHAPING_F_MAX_CONNECTIONS], "defaults");
    const char *mx[] = {"customer7.mx.hoster.example"};
    assert_string_equal(shaping_provider_of(r, "customer7.example", mx, 1), "hoster");
    shaping_free(r);
    free(md);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_set_base),
        cmocka_unit_test(test_suffix_match),
        cmocka_unit_test(test_site_key),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_tls_names),
        cmocka_unit_test(test_shipped_file),
        cmocka_unit_test(test_docs_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
