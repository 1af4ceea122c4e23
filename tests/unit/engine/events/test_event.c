/* tests/unit/engine/events/test_event.c — event JSON: parses with jansson, carries every field
 * of docs/events.md in the documented order for every event type (null when it does not
 * apply), escapes hostile server text, embeds meta as an object, and has a unique id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/events/event.h"

/* docs/events.md, "Fields", in order. */
static const char *const FIELDS[] = {
    "event_id", "type", "timestamp", "instance", "message_id", "job_id", "campaign_id", "lane",
    "sender", "recipient", "domain", "site", "mx_host", "mx_ip", "mx_port", "egress_source",
    "egress_ip", "warmup_hold", "attempt", "smtp_code", "enhanced_code", "reply", "command", "bounce_class",
    "bounce_category", "scope", "tls_version", "tls_cipher", "conn_id", "reason", "detail",
    "next_attempt_at", "queue_ms", "delivery_ms", "size", "meta",
};
#define NFIELDS (sizeof FIELDS / sizeof *FIELDS)

#define NOW_MS INT64_C(1700000000123)   /* 2023-11-14T22:13:20.123Z */

static json_t *J;

static int teardown(void **state)
{
    (void)state;
    json_decref(J);
    J = NULL;
    return 0;
}

/* Formats e, parses it, checks the field set and order; leaves the object in J. */
static json_t *format(const struct event_info *e, uint64_t seq)
{
    json_decref(J);
    J = NULL;
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_append(&b, "prefix", 6), 0);   /* appends, keeps what was there */
    assert_int_equal(event_format(e, NOW_MS, seq, &b), 0);
    assert_memory_equal(b.data, "prefix", 6);
    assert_null(memchr(b.data, '\n', b.len));            /* one line */
    json_error_t je;
    J = json_loadb((const char *)b.data + 6, b.len - 6, JSON_REJECT_DUPLICATES, &je);
    if (!J) {
        fprintf(stderr, "%.*s\n", (int)(b.len - 6), b.data + 6);
        buf_fini(&b);
        fail_msg("not JSON (%s)", je.text);
    }
    buf_fini(&b);
    assert_true(json_is_object(J));
    if (json_object_size(J) != NFIELDS)
        fail_msg("%zu fields, documented %zu", json_object_size(J), NFIELDS);
    size_t i = 0;
    for (void *it = json_object_iter(J); it; it = json_object_iter_next(J, it), i++)
        if (strcmp(json_object_iter_key(it), FIELDS[i]) != 0)
            fail_msg("field %zu is '%s', documented '%s'", i, json_object_iter_key(it), FIELDS[i]);
    return J;
}

static const char *str(const char *k)
{
    json_t *v = json_object_get(J, k);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", k);
    return json_string_value(v);
}

static long long num(const char *k)
{
    json_t *v = json_object_get(J, k);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", k);
    return json_integer_value(v);
}

static void null(const char *k)
{
    if (!json_is_null(json_object_get(J, k)))
        fail_msg("'%s' is not null", k);
}

static struct smtp_conn_info conn_info(void)
{
    struct smtp_conn_info c = {0};
    snprintf(c.mx_host, sizeof c.mx_host, "mx1.example.net");
    snprintf(c.mx_addr, sizeof c.mx_addr, "127.0.93.25");
    c.mx_port = 25;
    snprintf(c.source_addr, sizeof c.source_addr, "127.0.93.7");
    snprintf(c.tls_version, sizeof c.tls_version, "TLSv1.3");
    snprintf(c.tls_cipher, sizeof c.tls_cipher, "TLS_AES_256_GCM_SHA384");
    c.conn_id = 17;
    return c;
}

static struct smtp_outcome outcome(int code, const char *enh, int subject, enum fail_phase ph,
                                   const char *text)
{
    struct smtp_outcome o = {0};
    o.ok = code >= 200 && code < 300;
    o.phase = ph;
    o.code = code;
    if (enh) {
        snprintf(o.enhanced, sizeof o.enhanced, "%s", enh);
        o.enh_class = enh[0] - '0';
        o.enh_subject = subject;
        o.enh_detail = 1;
    }
    snprintf(o.text, sizeof o.text, "%s", text);
    return o;
}

static void test_delivered(void **state)
{
    (void)state;
    struct smtp_conn_info c = conn_info();
    struct smtp_outcome o = outcome(250, "2.0.0", 0, FAIL_PHASE_BODY, "Ok: queued as 4F1A2B");
    struct fail_verdict v = {FAIL_SCOPE_RECIPIENT, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER};
    struct event_info e = {
        .type = EVENT_DELIVERED, .instance = "salvo-a", .message_id = "1795357134664-0",
        .job_id = "spring-2025/1201", .campaign_id = "spring-2025", .lane = "bulk",
        .sender = "bounces@news.example.com", .recipient = "ann@Example.NET", .attempt = 1,
        .outcome = &o, .conn = &c, .verdict = &v, .created_ms = NOW_MS - 4, .delivery_ms = 0,
        .size = 265, .meta_json = "{\"subscriber\":1201,\"tags\":[\"a\",{\"b\":null}]}",
    };
    format(&e, 8);
    assert_string_equal(str("event_id"), "salvo-a-18bcfe5687b-8");
    assert_string_equal(str("type"), "delivered");
    assert_string_equal(str("timestamp"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(str("instance"), "salvo-a");
    assert_string_equal(str("message_id"), "1795357134664-0");
    assert_string_equal(str("job_id"), "spring-2025/1201");
    assert_string_equal(str("campaign_id"), "spring-2025");
    assert_string_equal(str("lane"), "bulk");
    assert_string_equal(str("sender"), "bounces@news.example.com");
    assert_string_equal(str("recipient"), "ann@Example.NET");
    assert_string_equal(str("domain"), "Example.NET");
    assert_string_equal(str("site"), "mx1.example.net");
    assert_string_equal(str("mx_host"), "mx1.example.net");
    assert_string_equal(str("mx_ip"), "127.0.93.25");
    assert_int_equal(num("mx_port"), 25);
    assert_string_equal(str("egress_source"), "default");
    assert_string_equal(str("egress_ip"), "127.0.93.7");
    null("warmup_hold");
    assert_int_equal(num("attempt"), 1);
    assert_int_equal(num("smtp_code"), 250);
    assert_string_equal(str("enhanced_code"), "2.0.0");
    assert_string_equal(str("reply"), "Ok: queued as 4F1A2B");
    assert_string_equal(str("command"), "end-of-data");
    null("bounce_class");
    null("bounce_category");
    null("scope");                    /* even with a verdict at hand */
    assert_string_equal(str("tls_version"), "TLSv1.3");
    assert_string_equal(str("tls_cipher"), "TLS_AES_256_GCM_SHA384");
    assert_int_equal(num("conn_id"), 17);
    null("reason");
    null("detail");
    null("next_attempt_at");
    assert_int_equal(num("queue_ms"), 4);
    assert_int_equal(num("delivery_ms"), 0);
    assert_int_equal(num("size"), 265);
    json_error_t je;
    json_t *want = json_loads("{\"subscriber\":1201,\"tags\":[\"a\",{\"b\":null}]}", 0, &je);
    assert_true(json_is_object(json_object_get(J, "meta")));
    assert_true(json_equal(json_object_get(J, "meta"), want));
    json_decref(want);
}

static void test_deferred_and_bounced(void **state)
{
    (void)state;
    struct smtp_conn_info c = conn_info();
    c.tls_version[0] = c.tls_cipher[0] = '\0';   /* plaintext */
    struct smtp_outcome o = outcome(451, "4.7.1", 7, FAIL_PHASE_RCPT, "Greylisted, try again later");
    struct fail_verdict v = {FAIL_SCOPE_RECIPIENT, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER};
    struct event_info e = {
        .type = EVENT_DEFERRED, .instance = "i", .message_id = "1-0", .lane = "transactional",
        .sender = "", .recipient = "carl@example.net", .attempt = 2, .outcome = &o, .conn = &c,
        .verdict = &v, .next_attempt_ms = NOW_MS + 60000, .created_ms = 0, .delivery_ms = 3,
        .size = 58, .warmup_hold = "warm-up ramp of ip-a held at step 2 (day 3): at gmail: "
                                   "deferral rate 40.0% over 30.0% (80 of 200)",
    };
    format(&e, 5);
    assert_string_equal(str("warmup_hold"), e.warmup_hold);
    assert_string_equal(str("type"), "deferred");
    null("job_id");
    null("campaign_id");
    assert_string_equal(str("sender"), "");           /* the null sender is "" */
    assert_int_equal(num("smtp_code"), 451);
    assert_string_equal(str("command"), "rcpt");
    assert_string_equal(str("bounce_class"), "soft");
    assert_string_equal(str("bounce_category"), "policy");
    assert_string_equal(str("scope"), "recipient");
    null("tls_version");
    null("tls_cipher");
    assert_string_equal(str("next_attempt_at"), "2023-11-14T22:14:20.123Z");
    assert_int_equal(num("queue_ms"), 0);             /* created unknown */
    null("meta");

    o = outcome(550, "5.1.1", 1, FAIL_PHASE_RCPT, "<old@example.net>: User unknown");
    v = (struct fail_verdict){FAIL_SCOPE_RECIPIENT, FAIL_PERMANENT, FAIL_ACT_BOUNCE};
    e.type = EVENT_BOUNCED;
    e.next_attempt_ms = NOW_MS + 60000;   /* only deferred events show it */
    format(&e, 6);
    assert_string_equal(str("type"), "bounced");
    assert_string_equal(str("bounce_class"), "hard");
    assert_string_equal(str("bounce_category"), "address");
    null("next_attempt_at");

    /* a connection failure: no reply code, Salvo's text, network category */
    struct smtp_outcome cf = outcome(0, NULL, 0, FAIL_PHASE_CONNECT, "connect: Connection refused");
    cf.transport = FAIL_T_REFUSED;
    v = (struct fail_verdict){FAIL_SCOPE_HOST, FAIL_TEMPORARY, FAIL_ACT_NEXT_HOST};
    e.type = EVENT_DEFERRED;
    e.outcome = &cf;
    e.conn = NULL;
    format(&e, 7);
    null("smtp_code");
    null("enhanced_code");
    assert_string_equal(str("reply"), "connect: Connection refused");
    assert_string_equal(str("command"), "connect");
    assert_string_equal(str("bounce_category"), "network");
    assert_string_equal(str("scope"), "host");
    assert_string_equal(str("site"), "example.net");   /* no connection: the domain */
    null("mx_host");
    null("mx_ip");
    null("mx_port");
    null("egress_source");
    null("egress_ip");
    null("conn_id");
}

static void test_expired_and_rejected(void **state)
{
    (void)state;
    /* expired without an attempt */
    struct event_info e = {
        .type = EVENT_EXPIRED, .instance = "salvo-a", .message_id = "9-0", .job_id = "pw-1",
        .lane = "transactional", .sender = "b@x.example", .recipient = "ann@example.net",
        .reason = "expired", .detail = "expired before the first attempt", .delivery_ms = -1,
        .meta_json = "{\"user_id\":8812}",
    };
    format(&e, 2);
    assert_string_equal(str("type"), "expired");
    assert_int_equal(num("attempt"), 0);
    null("smtp_code");
    null("enhanced_code");
    assert_string_equal(str("reply"), "expired before the first attempt");  /* = detail */
    null("command");
    null("bounce_class");
    null("bounce_category");
    null("scope");
    null("conn_id");
    assert_string_equal(str("reason"), "expired");
    assert_string_equal(str("detail"), "expired before the first attempt");
    null("delivery_ms");
    assert_int_equal(num("size"), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(J, "meta"), "user_id")), 8812);

    /* expired after the last attempt: the attempt's fields and the reason */
    struct smtp_conn_info c = conn_info();
    struct smtp_outcome o = outcome(451, "4.7.1", 7, FAIL_PHASE_RCPT, "Greylisted");
    struct fail_verdict v = {FAIL_SCOPE_RECIPIENT, FAIL_TEMPORARY, FAIL_ACT_RETRY_LATER};
    e.outcome = &o;
    e.conn = &c;
    e.verdict = &v;
    e.attempt = 2;
    e.detail = "maximum attempts reached";
    e.delivery_ms = 12;
    format(&e, 3);
    assert_string_equal(str("reply"), "Greylisted");
    assert_string_equal(str("bounce_class"), "soft");
    assert_string_equal(str("scope"), "recipient");
    assert_string_equal(str("detail"), "maximum attempts reached");

    /* rejected: no recipient could be read, no meta */
    struct event_info r = {
        .type = EVENT_REJECTED, .instance = "salvo-a", .message_id = "10-0", .lane = "bulk",
        .reason = "invalid_field", .detail = "not_befor: unknown field", .delivery_ms = -1,
    };
    format(&r, 4);
    assert_string_equal(str("type"), "rejected");
    null("job_id");
    null("sender");
    null("recipient");
    null("domain");
    null("site");
    assert_string_equal(str("reply"), "not_befor: unknown field");
    assert_string_equal(str("reason"), "invalid_field");
    null("meta");

    /* a detail without a reason is not shown as detail */
    r.reason = NULL;
    format(&r, 5);
    null("detail");

    /* every type has its name */
    static const char *const names[] = {"delivered", "deferred", "bounced", "expired",
                                        "suppressed", "rejected"};
    for (int t = EVENT_DELIVERED; t <= EVENT_REJECTED; t++) {
        assert_string_equal(event_type_to_text((enum event_type)t), names[t]);
        r.type = (enum event_type)t;
        format(&r, 10 + (uint64_t)t);
        assert_string_equal(str("type"), names[t]);
    }
}

static void test_hostile_text(void **state)
{
    (void)state;
    struct smtp_conn_info c = conn_info();
    snprintf(c.mx_host, sizeof c.mx_host, "evil\"host\\");
    struct smtp_outcome o = outcome(550, "5.7.1", 7, FAIL_PHASE_BODY, "");
    static const char hostile[] = "line1\r\nline2 \"quoted\" back\\slash \x01\x1b[31m \x7f "
                                  "bad\xff\xfe utf8 \xc3\xa9 trunc\xe2\x82";
    memcpy(o.text, hostile, sizeof hostile);
    struct fail_verdict v = {FAIL_SCOPE_MESSAGE, FAIL_PERMANENT, FAIL_ACT_BOUNCE};
    struct event_info e = {
        .type = EVENT_BOUNCED, .instance = "i", .message_id = "1-0", .lane = "bulk",
        .sender = "a\"b@x.example", .recipient = "\"\\\"\"@x.example", .job_id = "id\n\x00",
        .outcome = &o, .conn = &c, .verdict = &v, .delivery_ms = 1,
        .meta_json = "{\"note\":\"<\\u00e9 \\\" \\n>\"}",
    };
    format(&e, 1);
    assert_string_equal(str("reply"), "line1\r\nline2 \"quoted\" back\\slash \x01\x1b[31m \x7f "
                                      "bad\xef\xbf\xbd\xef\xbf\xbd utf8 \xc3\xa9 trunc"
                                      "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str("mx_host"), "evil\"host\\");
    assert_string_equal(str("sender"), "a\"b@x.example");
    assert_string_equal(str("recipient"), "\"\\\"\"@x.example");
    assert_string_equal(str("domain"), "x.example");
    assert_string_equal(str("job_id"), "id\n");
    assert_string_equal(str("bounce_category"), "policy");
    assert_string_equal(str("scope"), "message");
    assert_string_equal(json_string_value(json_object_get(json_object_get(J, "meta"), "note")),
                        "<\xc3\xa9 \" \n>");
}

static void test_bounce_category(void **state)
{
    (void)state;
    assert_string_equal(event_bounce_category(NULL), "other");
    static const char *const by_subject[] = {"other", "address", "mailbox", "system", "network",
                                             "protocol", "content", "policy"};
    for (int s = 1; s <= 7; s++) {
        struct smtp_outcome o = outcome(550, "5.0.0", s, FAIL_PHASE_RCPT, "x");
        assert_string_equal(event_bounce_category(&o), by_subject[s]);
    }
    struct smtp_outcome o = outcome(0, NULL, 0, FAIL_PHASE_DNS, "dns");
    o.transport = FAIL_T_DNS_TEMP;
    assert_string_equal(event_bounce_category(&o), "dns");
    o = outcome(0, "5.1.10", 1, FAIL_PHASE_LOCAL, "null MX");
    o.transport = FAIL_T_NULLMX;
    assert_string_equal(event_bounce_category(&o), "dns");
    o = outcome(0, NULL, 0, FAIL_PHASE_EHLO, "timeout");
    o.transport = FAIL_T_TIMEOUT;
    assert_string_equal(event_bounce_category(&o), "network");
    o = outcome(550, NULL, 0, FAIL_PHASE_RCPT, "no enhanced code");
    assert_string_equal(event_bounce_category(&o), "other");
    o = outcome(0, "5.6.3", 0, FAIL_PHASE_LOCAL, "8bit");
    o.transport = FAIL_T_LOCAL_PERM;
    assert_string_equal(event_bounce_category(&o), "other");
}

/* Regression (fixed): event_id is "<instance>-<ms hex>-<seq hex>" built in a 96-byte buffer (event.c:53,
 * char idbuf[96]); config accepts an instance name of up to 1000 bytes (config.c "instance",
 * CF_STR limit 1000), so with an instance name of 90+ bytes the time and sequence are cut
 * off and every event of the replica gets the same event_id. Expected: ids that differ by
 * seq; actual: identical ids. */
static void test_event_id_unique_long_instance(void **state)
{
    (void)state;
    char inst[121];
    memset(inst, 'r', sizeof inst - 1);
    inst[sizeof inst - 1] = '\0';
    struct event_info e = {.type = EVENT_REJECTED, .instance = inst, .message_id = "1-0",
                           .lane = "bulk", .delivery_ms = -1};
    format(&e, 1);
    char *id1 = strdup(str("event_id"));
    format(&e, 2);
    char *id2 = strdup(str("event_id"));
    bool same = strcmp(id1, id2) == 0;
    bool prefixed = strncmp(id1, inst, strlen(inst)) == 0 && id1[strlen(inst)] == '-';
    char msg[400];
    snprintf(msg, sizeof msg, "seq 1 -> %s, seq 2 -> %s", id1, id2);
    free(id1);
    free(id2);
    if (same || !prefixed)
        fail_msg("event ids %s (%s)", same ? "collide" : "lost the instance-ms-seq form", msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_delivered, teardown),
        cmocka_unit_test_teardown(test_deferred_and_bounced, teardown),
        cmocka_unit_test_teardown(test_expired_and_rejected, teardown),
        cmocka_unit_test_teardown(test_hostile_text, teardown),
        cmocka_unit_test_teardown(test_bounce_category, teardown),
        cmocka_unit_test_teardown(test_event_id_unique_long_instance, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
