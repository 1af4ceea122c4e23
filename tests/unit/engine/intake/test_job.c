/* tests/unit/engine/intake/test_job.c — the JSON job format: every accepted form, every
 * rejection with its code and a detail that names the field, merge lookup, and the
 * job_to_payload -> job_parse round trip the retry set depends on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "engine/intake/job.h"

static struct job J;
static struct job_error E;

/* Tests write JSON with single quotes for readability; a literal ' is \u0027. */
static char *dq(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; *p; p++)
        if (*p == '\'')
            *p = '"';
    return d;
}

static int parse_lim(const char *json, const struct job_limits *lim)
{
    job_free(&J);
    char *s = dq(json);
    int rc = job_parse(s, strlen(s), lim, &J, &E);
    free(s);
    return rc;
}

static void parse_ok(const char *json)
{
    if (parse_lim(json, NULL) != 0)
        fail_msg("rejected %s: %s: %s", json, E.code, E.detail);
    assert_null(E.code);
}

/* Rejected with code, and the detail starts with the field's path. */
static void parse_bad_lim(const char *json, const struct job_limits *lim, const char *code,
                          const char *field)
{
    if (parse_lim(json, lim) != -1)
        fail_msg("accepted %s", json);
    assert_non_null(E.code);
    if (strcmp(E.code, code) != 0)
        fail_msg("%s: code %s (%s), wanted %s", json, E.code, E.detail, code);
    if (strncmp(E.detail, field, strlen(field)) != 0 || E.detail[strlen(field)] != ':')
        fail_msg("%s: detail \"%s\" does not start with \"%s:\"", json, E.detail, field);
    /* A failed parse leaves nothing to free. */
    assert_null(J.priv);
    assert_int_equal(J.nto, 0);
}

static void parse_bad(const char *json, const char *code, const char *field)
{
    parse_bad_lim(json, NULL, code, field);
}

static int teardown(void **state)
{
    (void)state;
    job_free(&J);
    return 0;
}

#define ENV "'from':'s@origin.test','to':'r@dest.test'"

static void test_raw_minimal(void **state)
{
    (void)state;
    parse_ok("{" ENV ",'content':'Subject: hi\\r\\n\\r\\nbody\\r\\n'}");
    assert_int_equal(J.kind, JOB_RAW);
    assert_int_equal(J.lane, JOB_LANE_TRANSACTIONAL);
    assert_false(J.lane_given);
    assert_string_equal(J.from, "s@origin.test");
    assert_int_equal(J.nto, 1);
    assert_string_equal(J.to[0], "r@dest.test");
    assert_int_equal(J.content_len, strlen("Subject: hi\r\n\r\nbody\r\n"));
    assert_memory_equal(J.content, "Subject: hi\r\n\r\nbody\r\n", J.content_len);
    assert_null(J.id);
    assert_null(J.idempotency_key);
    assert_null(J.campaign_id);
    assert_null(J.pool);
    assert_null(J.meta_json);
    assert_int_equal(J.not_before_ms, 0);
    assert_int_equal(J.expires_at_ms, 0);
    assert_int_equal(J.max_age_ms, 0);
    assert_int_equal(J.max_attempts, 0);
    assert_int_equal(J.attempt, 0);
    assert_int_equal(J.created_ms, 0);
    assert_string_equal(J.last_error, "");
    assert_null(J.parts.from);
}

static void test_raw_full(void **state)
{
    (void)state;
    parse_ok("{'id':'job-1','idempotency_key':'order-77/confirm','lane':'bulk',"
             "'from':'','to':['a@x.test','B@Y.test','c@[192.0.2.1]'],"
             "'content':'x','not_before':'2025-03-01T12:00:00Z','expires_at':1740834000000,"
             "'max_age_s':3600,'max_attempts':5,'pool':'eu-1','meta':{'order':77,'tags':['a']},"
             "'_state':{'attempt':2,'created_ms':1740830000000,'last_error':'421 busy'}}");
    assert_string_equal(J.id, "job-1");
    assert_string_equal(J.idempotency_key, "order-77/confirm");
    assert_int_equal(J.lane, JOB_LANE_BULK);
    assert_true(J.lane_given);
    assert_string_equal(J.from, "");
    assert_int_equal(J.nto, 3);
    assert_string_equal(J.to[1], "B@Y.test");
    assert_string_equal(J.to[2], "c@[192.0.2.1]");
    assert_int_equal(J.not_before_ms, INT64_C(1740830400000));
    assert_int_equal(J.expires_at_ms, INT64_C(1740834000000));
    assert_int_equal(J.max_age_ms, 3600000);
    assert_int_equal(J.max_attempts, 5);
    assert_string_equal(J.pool, "eu-1");
    assert_string_equal(J.meta_json, "{\"order\":77,\"tags\":[\"a\"]}");
    assert_int_equal(J.attempt, 2);
    assert_int_equal(J.created_ms, INT64_C(1740830000000));
    assert_string_equal(J.last_error, "421 busy");
}

static void test_optional_null(void **state)
{
    (void)state;
    /* null is the same as leaving an optional field out. */
    parse_ok("{" ENV ",'content':'x','id':null,'lane':null,'pool':null,'meta':null,"
             "'not_before':null,'max_age_s':null,'_state':null,'message':null,'merge':null}");
    assert_int_equal(J.kind, JOB_RAW);
    assert_false(J.lane_given);
    assert_null(J.id);
}

static void test_dedupe(void **state)
{
    (void)state;
    parse_ok("{'from':'s@o.test','to':['a@x.test','b@x.test','a@X.TEST','A@x.test',"
             "'b@x.test','a@x.test'],'content':'x'}");
    assert_int_equal(J.nto, 3);
    assert_string_equal(J.to[0], "a@x.test");
    assert_string_equal(J.to[1], "b@x.test");
    assert_string_equal(J.to[2], "A@x.test");     /* local parts are case-sensitive */

    /* Many recipients (past the on-stack sort buffer), every other one repeated. */
    char big[20000] = "{'from':'s@o.test','content':'x','to':[";
    for (int i = 0; i < 300; i++) {
        char one[40];
        snprintf(one, sizeof one, "%s'u%d@x.test'", i ? "," : "", i % 150);
        strcat(big, one);
    }
    strcat(big, "]}");
    parse_ok(big);
    assert_int_equal(J.nto, 150);
    for (unsigned i = 0; i < J.nto; i++) {
        char want[32];
        snprintf(want, sizeof want, "u%u@x.test", i);
        assert_string_equal(J.to[i], want);
    }
}

static void test_parts(void **state)
{
    (void)state;
    parse_ok("{" ENV ",'message':{'from':'Ann Example <ann@origin.test>',"
             "'to':'Rob <r@dest.test>, c@dest.test','reply_to':'help@origin.test',"
             "'subject':'Your receipt \\u2014 #77','text':'Hello\\nthere','html':'<p>Hello</p>',"
             "'headers':{'X-Order':'77','Message-ID':'<77@origin.test>','Cc':'c@dest.test'},"
             "'attachments':[{'filename':'r.txt','content_type':'text/plain; charset=utf-8',"
             "'content_base64':'aGVs\\r\\nbG8='},{'content_base64':''},"
             "{'filename':'a.ics','content_type':'text/calendar; method=REQUEST',"
             "'content_base64':'YQ'}]}}");
    assert_int_equal(J.kind, JOB_PARTS);
    const struct mime_parts *p = &J.parts;
    assert_string_equal(p->from, "Ann Example <ann@origin.test>");
    assert_string_equal(p->to, "Rob <r@dest.test>, c@dest.test");
    assert_string_equal(p->reply_to, "help@origin.test");
    assert_string_equal(p->subject, "Your receipt \xe2\x80\x94 #77");
    assert_int_equal(p->text_len, 11);
    assert_string_equal(p->text, "Hello\nthere");
    assert_string_equal(p->html, "<p>Hello</p>");
    assert_int_equal(p->html_len, 12);
    assert_int_equal(p->nheaders, 3);
    assert_string_equal(p->headers[0].name, "X-Order");
    assert_string_equal(p->headers[0].value, "77");
    assert_string_equal(p->headers[1].name, "Message-ID");
    assert_string_equal(p->headers[2].name, "Cc");
    assert_int_equal(p->nattachments, 3);
    assert_string_equal(p->attachments[0].filename, "r.txt");
    assert_string_equal(p->attachments[0].content_type, "text/plain; charset=utf-8");
    assert_int_equal(p->attachments[0].len, 5);
    assert_memory_equal(p->attachments[0].data, "hello", 5);
    assert_null(p->attachments[1].filename);
    assert_null(p->attachments[1].content_type);
    assert_int_equal(p->attachments[1].len, 0);
    assert_int_equal(p->attachments[2].len, 1);     /* unpadded base64 */
    assert_memory_equal(p->attachments[2].data, "a", 1);
    assert_null(p->message_id_domain);

    /* A body is text, html or an attachment; any one will do. */
    parse_ok("{" ENV ",'message':{'from':'a@o.test','html':'<b>x</b>'}}");
    parse_ok("{" ENV ",'message':{'from':'a@o.test','text':''}}");
    parse_ok("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA=='}]}}");
    assert_int_equal(J.parts.attachments[0].len, 1);
    assert_int_equal(J.parts.attachments[0].data[0], 0);
}

static void test_campaign(void **state)
{
    (void)state;
    parse_ok("{'to':'r@dest.test','campaign':'spring-2025','merge':{'name':'Ann',"
             "'n':42,'neg':-7,'r':1.5,'tenth':0.1,'big':1e300,'yes':true,'no':false,"
             "'gone':null,'first.name':'A','x-y_z':'B','empty':''}}");
    assert_int_equal(J.kind, JOB_CAMPAIGN);
    assert_null(J.from);        /* the campaign's envelope sender applies */
    assert_string_equal(J.campaign_id, "spring-2025");
    assert_int_equal(J.nto, 1);
    static const struct { const char *name, *value; } want[] = {
        {"name", "Ann"}, {"n", "42"}, {"neg", "-7"}, {"r", "1.5"}, {"tenth", "0.1"},
        {"big", "1e+300"}, {"yes", "true"}, {"no", "false"}, {"first.name", "A"},
        {"x-y_z", "B"}, {"empty", ""},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        size_t vl = 99;
        const char *v = job_merge_lookup(&J, want[i].name, strlen(want[i].name), &vl);
        if (!v)
            fail_msg("merge field %s missing", want[i].name);
        assert_int_equal(vl, strlen(want[i].value));
        assert_memory_equal(v, want[i].value, vl);
    }
    size_t vl = 0;
    assert_null(job_merge_lookup(&J, "gone", 4, &vl));
    assert_null(job_merge_lookup(&J, "nope", 4, &vl));
    assert_null(job_merge_lookup(&J, "nam", 3, &vl));
    /* name is not NUL-terminated when it comes from inside a template. */
    assert_non_null(job_merge_lookup(&J, "namexyz", 4, &vl));
    assert_int_equal(vl, 3);

    /* A one-element array is one recipient; from and lane may be given. */
    parse_ok("{'from':'bounce@o.test','lane':'transactional','to':['r@d.test'],'campaign':'c1'}");
    assert_string_equal(J.from, "bounce@o.test");
    assert_true(J.lane_given);
    assert_null(job_merge_lookup(&J, "x", 1, &vl));
}

static void test_times(void **state)
{
    (void)state;
    static const struct { const char *in; int64_t ms; } t[] = {
        {"'1970-01-01T00:00:00.001Z'", 1},
        {"'2025-03-01T12:00:00Z'", INT64_C(1740830400000)},
        {"'2025-03-01t12:00:00z'", INT64_C(1740830400000)},
        {"'2025-03-01 12:00:00Z'", INT64_C(1740830400000)},
        {"'2025-03-01T13:00:00+01:00'", INT64_C(1740830400000)},
        {"'2025-03-01T07:30:00-04:30'", INT64_C(1740830400000)},
        {"'2025-03-01T12:00:00.5Z'", INT64_C(1740830400500)},
        {"'2025-03-01T12:00:00.123456789Z'", INT64_C(1740830400123)},
        {"'2024-02-29T00:00:00Z'", INT64_C(1709164800000)},
        {"'2016-12-31T23:59:60Z'", INT64_C(1483228800000)},
        {"'9999-12-31T23:59:59.999Z'", INT64_C(253402300799999)},
        {"1740830400000", INT64_C(1740830400000)},
        {"0", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char json[200];
        snprintf(json, sizeof json, "{" ENV ",'content':'x','not_before':%s}", t[i].in);
        parse_ok(json);
        if (J.not_before_ms != t[i].ms)
            fail_msg("%s: %lld, wanted %lld", t[i].in, (long long)J.not_before_ms,
                     (long long)t[i].ms);
    }
    static const char *const bad[] = {
        "'2025-03-01'", "'2025-03-01T12:00:00'", "'2025-02-29T00:00:00Z'",
        "'2025-13-01T00:00:00Z'", "'2025-00-01T00:00:00Z'", "'2025-04-31T00:00:00Z'",
        "'2025-03-01T24:00:00Z'", "'2025-03-01T12:60:00Z'", "'2025-03-01T12:00:61Z'",
        "'2025-03-01T12:00:00.Z'", "'2025-03-01T12:00:00+1:00'", "'2025-03-01T12:00:00+24:00'",
        "'2025-03-01T12:00:00Zjunk'", "'2025-03-01X12:00:00Z'", "'1969-12-31T23:59:59Z'",
        "'1970-01-01T00:00:00Z'", "'+2025-03-01T12:00:00Z'", "'2025-3-1T12:00:00Z'",
        "-1", "253402300800000", "1.5", "true", "{}", "'now'",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[200];
        snprintf(json, sizeof json, "{" ENV ",'content':'x','expires_at':%s}", bad[i]);
        parse_bad(json, "invalid_field", "expires_at");
    }
}

static void test_bad_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "{", "[]", "'job'", "null", "42", "{} {}", "{'from':'a@b.test','from':'c@d.test'}",
        "{'to':'a@b.test',}", "{'x':1e999999}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i], "bad_json", "job");
    /* Invalid UTF-8 is not JSON. */
    const char raw[] = "{\"from\":\"a\xff@b.test\",\"to\":\"c@d.test\",\"content\":\"x\"}";
    assert_int_equal(job_parse(raw, sizeof raw - 1, NULL, &J, &E), -1);
    assert_string_equal(E.code, "bad_json");
    /* The length bounds the parse: nothing past len is read. */
    const char cut[] = "{\"from\":\"a@b.test\",\"to\":\"c@d.test\",\"content\":\"x\"}GARBAGE";
    assert_int_equal(job_parse(cut, sizeof cut - 1 - 7, NULL, &J, &E), 0);
    job_free(&J);
}

static void test_oversized(void **state)
{
    (void)state;
    struct job_limits lim = {.max_job_bytes = 60};
    parse_bad_lim("{" ENV ",'content':'0123456789012345678901234567890'}", &lim, "oversized",
                  "job");
    lim.max_attachment_bytes = 4;
    parse_ok("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AAAAAA=='}]}}");
    assert_int_equal(J.parts.attachments[0].len, 4);
    parse_bad_lim("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':"
                  "'AAAAAA=='}]}}", &lim, "oversized", "job");   /* lim.max_job_bytes = 60 */
    lim.max_job_bytes = 0;
    assert_int_equal(parse_lim("{" ENV ",'message':{'from':'a@o.test','attachments':"
                               "[{'content_base64':'AAAAAA=='}]}}", &lim), 0);
    parse_bad_lim("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':"
                  "'AAAAAAA='}]}}", &lim, "oversized", "message.attachments[0].content_base64");
    parse_lim("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AAAAAAA='}]}}",
              &lim);
    assert_string_equal(E.detail, "message.attachments[0].content_base64: 5 bytes decoded, limit 4");
    assert_int_equal(parse_lim("{" ENV ",'message':{'from':'a@o.test','attachments':"
                               "[{'content_base64':'AAAAAAA='}]}}", NULL), 0);
    /* meta: 4096 bytes serialised is the most. */
    char meta[5000];
    snprintf(meta, sizeof meta, "{" ENV ",'content':'x','meta':{'k':'%0*d'}}", 4096 - 8, 0);
    parse_ok(meta);
    assert_int_equal(strlen(J.meta_json), 4096);
    snprintf(meta, sizeof meta, "{" ENV ",'content':'x','meta':{'k':'%0*d'}}", 4096 - 7, 0);
    parse_bad(meta, "oversized", "meta");
}

static void test_missing(void **state)
{
    (void)state;
    parse_bad("{'to':'r@d.test','content':'x'}", "missing_field", "from");
    parse_bad("{'from':'s@o.test','content':'x'}", "missing_field", "to");
    parse_bad("{'from':'s@o.test','to':null,'content':'x'}", "missing_field", "to");
    parse_bad("{" ENV "}", "missing_field", "content");
    parse_bad("{" ENV ",'message':{'text':'x'}}", "missing_field", "message.from");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','subject':'s'}}", "missing_field",
              "message.text");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','attachments':[{'filename':'a'}]}}",
              "missing_field", "message.attachments[0].content_base64");
    parse_bad("{}", "missing_field", "content");
}

static void test_invalid_field(void **state)
{
    (void)state;
    /* Unknown fields surface typos, at every level. */
    parse_bad("{" ENV ",'content':'x','not_befor':1}", "invalid_field", "not_befor");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','subjet':'s'}}", "invalid_field",
              "message.subjet");
    parse_bad("{" ENV ",'content':'x','_state':{'attempts':1}}", "invalid_field",
              "_state.attempts");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'',"
              "'name':'a'}]}}", "invalid_field", "message.attachments[0].name");
    /* Types and values. */
    parse_bad("{" ENV ",'content':'x','id':''}", "invalid_field", "id");
    parse_bad("{" ENV ",'content':'x','id':7}", "invalid_field", "id");
    parse_bad("{" ENV ",'content':'x','id':'a\\tb\\u0001'}", "invalid_field", "id");
    parse_bad("{" ENV ",'content':'x','idempotency_key':[]}", "invalid_field", "idempotency_key");
    char longid[400];
    snprintf(longid, sizeof longid, "{" ENV ",'content':'x','id':'%0*d'}", 257, 0);
    parse_bad(longid, "invalid_field", "id");
    parse_bad("{" ENV ",'content':'x','lane':'urgent'}", "invalid_field", "lane");
    parse_bad("{" ENV ",'content':'x','lane':1}", "invalid_field", "lane");
    parse_bad("{'from':'s@o.test','to':5,'content':'x'}", "invalid_field", "to");
    parse_bad("{'from':'s@o.test','to':[],'content':'x'}", "invalid_field", "to");
    parse_bad("{'from':'s@o.test','to':['a@b.test',7],'content':'x'}", "invalid_field", "to[1]");
    parse_bad("{'from':7,'to':'a@b.test','content':'x'}", "invalid_field", "from");
    parse_bad("{" ENV ",'content':''}", "invalid_field", "content");
    parse_bad("{" ENV ",'content':'a\\u0000b'}", "invalid_field", "content");
    parse_bad("{" ENV ",'content':'x','message':{'from':'a@o.test','text':'x'}}", "invalid_field",
              "message");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x'},'campaign':'c'}",
              "invalid_field", "campaign");
    parse_bad("{" ENV ",'content':'x','merge':{'a':'b'}}", "invalid_field", "merge");
    parse_bad("{'to':'r@d.test','campaign':'has space'}", "invalid_field", "campaign");
    parse_bad("{'to':'r@d.test','campaign':''}", "invalid_field", "campaign");
    parse_bad("{'to':'r@d.test','campaign':'c','merge':[]}", "invalid_field", "merge");
    parse_bad("{'to':'r@d.test','campaign':'c','merge':{'first name':'A'}}", "invalid_field",
              "merge.first name");
    parse_bad("{'to':'r@d.test','campaign':'c','merge':{'':'A'}}", "invalid_field", "merge.");
    parse_bad("{'to':'r@d.test','campaign':'c','merge':{'a':{'b':1}}}", "invalid_field",
              "merge.a");
    parse_bad("{'to':'r@d.test','campaign':'c','merge':{'a':[1]}}", "invalid_field", "merge.a");
    parse_bad("{'to':'r@d.test','campaign':'c','merge':{'a':'x\\u0000'}}", "invalid_field",
              "merge.a");
    parse_bad("{" ENV ",'content':'x','not_before':2000,'expires_at':1000}", "invalid_field",
              "expires_at");
    parse_bad("{" ENV ",'content':'x','not_before':2000,'expires_at':2000}", "invalid_field",
              "expires_at");
    parse_bad("{" ENV ",'content':'x','max_age_s':-1}", "invalid_field", "max_age_s");
    parse_bad("{" ENV ",'content':'x','max_age_s':31536001}", "invalid_field", "max_age_s");
    parse_bad("{" ENV ",'content':'x','max_age_s':1.0}", "invalid_field", "max_age_s");
    parse_bad("{" ENV ",'content':'x','max_attempts':'3'}", "invalid_field", "max_attempts");
    parse_bad("{" ENV ",'content':'x','max_attempts':1001}", "invalid_field", "max_attempts");
    parse_bad("{" ENV ",'content':'x','pool':'eu/1'}", "invalid_field", "pool");
    parse_bad("{" ENV ",'content':'x','meta':[1]}", "invalid_field", "meta");
    parse_bad("{" ENV ",'content':'x','meta':'x'}", "invalid_field", "meta");
    parse_bad("{" ENV ",'content':'x','_state':[]}", "invalid_field", "_state");
    parse_bad("{" ENV ",'content':'x','_state':{'attempt':'1'}}", "invalid_field",
              "_state.attempt");
    parse_bad("{" ENV ",'content':'x','_state':{'created_ms':-5}}", "invalid_field",
              "_state.created_ms");
    parse_bad("{" ENV ",'content':'x','_state':{'last_error':1}}", "invalid_field",
              "_state.last_error");
    /* The message object. */
    parse_bad("{" ENV ",'message':'hi'}", "invalid_field", "message");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':1}}", "invalid_field", "message.text");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','html':'\\u0000'}}", "invalid_field",
              "message.html");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','subject':'a\\u0007b'}}",
              "invalid_field", "message.subject");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':[]}}", "invalid_field",
              "message.headers");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'X-A':1}}}",
              "invalid_field", "message.headers.X-A");
    static const char *const reserved[] = {"Subject", "from", "TO", "Reply-To", "Bcc",
                                           "Content-Type", "MIME-Version",
                                           "content-transfer-encoding"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        char json[300], field[80];
        snprintf(json, sizeof json,
                 "{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'%s':'v'}}}",
                 reserved[i]);
        snprintf(field, sizeof field, "message.headers.%s", reserved[i]);
        parse_bad(json, "invalid_field", field);
    }
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'Message-ID':'nope'}}}",
              "invalid_field", "message.headers.Message-ID");
    char many[4000] = "{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{";
    for (int i = 0; i <= 100; i++) {
        char one[32];
        snprintf(one, sizeof one, "%s'X-H%d':'v'", i ? "," : "", i);
        strcat(many, one);
    }
    strcat(many, "}}}");
    parse_bad(many, "invalid_field", "message.headers");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':{}}}", "invalid_field",
              "message.attachments");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':['x']}}", "invalid_field",
              "message.attachments[0]");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'A'}]}}",
              "invalid_field", "message.attachments[0].content_base64");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA*A'}]}}",
              "invalid_field", "message.attachments[0].content_base64");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA=A'}]}}",
              "invalid_field", "message.attachments[0].content_base64");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AAAA='}]}}",
              "invalid_field", "message.attachments[0].content_base64");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA',"
              "'content_type':'text'}]}}", "invalid_field", "message.attachments[0].content_type");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA',"
              "'content_type':'text/plain x'}]}}", "invalid_field",
              "message.attachments[0].content_type");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA',"
              "'content_type':'multipart/mixed'}]}}", "invalid_field",
              "message.attachments[0].content_type");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'AA',"
              "'filename':''}]}}", "invalid_field", "message.attachments[0].filename");
}

static void test_invalid_address(void **state)
{
    (void)state;
    char label[64 + 1];
    memset(label, 'x', 64);
    label[64] = '\0';
    char json[300];
    snprintf(json, sizeof json,
             "{'from':'s@o.test','to':['a@b.test','c@d.test','e@%s.test'],'content':'x'}", label);
    parse_bad(json, "invalid_address", "to[2]");
    assert_string_equal(E.detail, "to[2]: invalid address: domain label too long");
    parse_bad("{'from':'nope','to':'a@b.test','content':'x'}", "invalid_address", "from");
    parse_bad("{'from':'<a@b.test>','to':'a@b.test','content':'x'}", "invalid_address", "from");
    parse_bad("{'from':'s@o.test','to':'','content':'x'}", "invalid_address", "to");
    parse_bad("{'from':'s@o.test','to':['a b@c.test'],'content':'x'}", "invalid_address",
              "to[0]");
    parse_bad("{" ENV ",'message':{'from':'Ann','text':'x'}}", "invalid_address", "message.from");
    parse_bad("{" ENV ",'message':{'from':'a@b.test, c@d.test','text':'x'}}", "invalid_address",
              "message.from");
    parse_bad("{" ENV ",'message':{'from':'Ann <a@b.test> (x)','text':'x'}}", "invalid_address",
              "message.from");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','to':'a@b.test,','text':'x'}}",
              "invalid_address", "message.to");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','reply_to':'x@','text':'x'}}",
              "invalid_address", "message.reply_to");
    parse_bad("{" ENV ",'message':{'from':'','text':'x'}}", "invalid_field", "message.from");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'Cc':'nope'}}}",
              "invalid_field", "message.headers.Cc");
}

static void test_header_injection(void **state)
{
    (void)state;
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','subject':'hi\\r\\nBcc: x@y.test'}}",
              "header_injection", "message.subject");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','subject':'hi\\u0000'}}",
              "header_injection", "message.subject");
    parse_bad("{" ENV ",'message':{'from':'a@o.test\\nBcc: v@x.test','text':'x'}}",
              "header_injection", "message.from");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','to':'b@d.test\\r','text':'x'}}",
              "header_injection", "message.to");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','reply_to':'b@d.test\\u0000','text':'x'}}",
              "header_injection", "message.reply_to");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'X-A':'v\\r\\nX-B: w'}}}",
              "header_injection", "message.headers.X-A");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'X-A':'v\\n'}}}",
              "header_injection", "message.headers.X-A");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'X A':'v'}}}",
              "header_injection", "message.headers.X A");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'X:A':'v'}}}",
              "header_injection", "message.headers.X:A");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'':'v'}}}",
              "header_injection", "message.headers.");
    /* The detail never carries the CR/LF itself. */
    parse_bad("{" ENV ",'message':{'from':'a@o.test','text':'x','headers':{'X\\r\\nBcc':'v'}}}",
              "header_injection", "message.headers.X??Bcc");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'',"
              "'filename':'a\\r\\nContent-Type: text/html'}]}}", "header_injection",
              "message.attachments[0].filename");
    parse_bad("{" ENV ",'message':{'from':'a@o.test','attachments':[{'content_base64':'',"
              "'content_type':'text/plain\\r\\nX: y'}]}}", "header_injection",
              "message.attachments[0].content_type");
    /* CR/LF in an envelope address would smuggle an SMTP command. */
    parse_bad("{'from':'s@o.test','to':['a@b.test','c@d.test\\r\\nRCPT TO:<x@y.test>'],"
              "'content':'x'}", "header_injection", "to[1]");
    parse_bad("{'from':'s@o.test\\r\\nRSET','to':'a@b.test','content':'x'}", "header_injection",
              "from");
    /* Bodies may hold line breaks. */
    parse_ok("{" ENV ",'message':{'from':'a@o.test','text':'a\\r\\nb\\nc','html':'<p>\\n</p>'}}");
}

static void test_too_many(void **state)
{
    (void)state;
    struct job_limits lim = {.max_rcpts = 3};
    if (parse_lim("{'from':'s@o.test','to':['a@x.test','b@x.test','c@x.test'],'content':'x'}",
                  &lim) != 0)
        fail_msg("%s", E.detail);
    parse_bad_lim("{'from':'s@o.test','to':['a@x.test','b@x.test','c@x.test','d@x.test'],"
                  "'content':'x'}", &lim, "too_many_recipients", "to");
    assert_string_equal(E.detail, "to: 4 recipients, limit 3");
    parse_bad("{'to':['a@x.test','b@x.test'],'campaign':'c'}", "too_many_recipients", "to");
    /* The default is 1000. */
    char *big = malloc(20 * 1001 + 100);
    strcpy(big, "{'from':'s@o.test','content':'x','to':[");
    for (int i = 0; i < 1001; i++)
        sprintf(big + strlen(big), "%s'u%d@x.test'", i ? "," : "", i);
    strcat(big, "]}");
    parse_bad(big, "too_many_recipients", "to");
    free(big);
}

/* Serialises J with the given recipients and state, and parses the result into *out. */
static void roundtrip(const char *const *rcpts, unsigned n, unsigned attempt, int64_t created,
                      const char *last_error, struct job *out, struct buf *b)
{
    buf_init(b, 64 << 20);
    int rc = job_to_payload(&J, rcpts, n, attempt, created, last_error, b);
    assert_int_equal(rc, 0);
    struct job_error err;
    rc = job_parse((const char *)b->data, b->len, NULL, out, &err);
    if (rc)
        fail_msg("re-parse failed: %s: %s\n%.*s", err.code, err.detail, (int)b->len,
                 (const char *)b->data);
}

static void same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void same_common(const struct job *a, const struct job *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->lane, b->lane);
    assert_int_equal(a->lane_given, b->lane_given);
    same_str(a->id, b->id);
    same_str(a->idempotency_key, b->idempotency_key);
    same_str(a->from, b->from);
    assert_int_equal(a->not_before_ms, b->not_before_ms);
    assert_int_equal(a->expires_at_ms, b->expires_at_ms);
    assert_int_equal(a->max_age_ms, b->max_age_ms);
    assert_int_equal(a->max_attempts, b->max_attempts);
    same_str(a->pool, b->pool);
    same_str(a->meta_json, b->meta_json);
    same_str(a->campaign_id, b->campaign_id);
    assert_int_equal(a->content_len, b->content_len);
    if (a->content)
        assert_memory_equal(a->content, b->content, a->content_len);
}

static void test_roundtrip_raw(void **state)
{
    (void)state;
    parse_ok("{'id':'j\\u00e9\\\"1','idempotency_key':'k','lane':'bulk','from':'',"
             "'to':['a@x.test','b@x.test','\\\"q r\\\"@x.test'],"
             "'content':'Subject: \\u00fc\\r\\n\\r\\n\\u0001\\t\\\"\\\\body','not_before':5,"
             "'expires_at':'2030-01-01T00:00:00Z','max_age_s':7,'max_attempts':9,'pool':'p.1',"
             "'meta':{'a':[1,2.5,'x',null,true],'b':{'c':'\\u2603'}},"
             "'_state':{'attempt':1,'created_ms':3,'last_error':'old'}}");
    const char *rest[] = {J.to[0], J.to[2]};
    struct job k;
    struct buf b;
    roundtrip(rest, 2, 4, 1234, "451 4.3.0 try \"later\"\r\n", &k, &b);
    same_common(&J, &k);
    assert_int_equal(k.nto, 2);
    assert_string_equal(k.to[0], "a@x.test");
    assert_string_equal(k.to[1], "\"q r\"@x.test");
    assert_int_equal(k.attempt, 4);
    assert_int_equal(k.created_ms, 1234);
    assert_string_equal(k.last_error, "451 4.3.0 try \"later\"\r\n");

    /* And once more: the payload of the payload is byte-identical. */
    struct buf b2;
    buf_init(&b2, 1 << 20);
    assert_int_equal(job_to_payload(&k, k.to, k.nto, 4, 1234, k.last_error, &b2), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    buf_fini(&b2);
    job_free(&k);
    buf_fini(&b);
}

static void test_roundtrip_parts(void **state)
{
    (void)state;
    parse_ok("{" ENV ",'message':{'from':'\\\"Ann, Sales\\\" <ann@origin.test>',"
             "'to':'r@dest.test','reply_to':'h@o.test','subject':'S\\u00fcbject',"
             "'text':'t\\r\\n','html':'<p>h</p>',"
             "'headers':{'X-B':'2','X-A':'1'},"
             "'attachments':[{'filename':'f.bin','content_type':'application/pdf',"
             "'content_base64':'AAEC/f7/'},{'content_base64':'aGk='}]}}");
    struct job k;
    struct buf b;
    roundtrip(J.to, J.nto, 0, 0, NULL, &k, &b);
    same_common(&J, &k);
    const struct mime_parts *p = &J.parts, *q = &k.parts;
    same_str(p->from, q->from);
    same_str(p->to, q->to);
    same_str(p->reply_to, q->reply_to);
    same_str(p->subject, q->subject);
    assert_int_equal(p->text_len, q->text_len);
    assert_memory_equal(p->text, q->text, p->text_len);
    assert_int_equal(p->html_len, q->html_len);
    assert_memory_equal(p->html, q->html, p->html_len);
    assert_int_equal(q->nheaders, 2);
    assert_string_equal(q->headers[0].name, "X-B");     /* order kept */
    assert_string_equal(q->headers[1].value, "1");
    assert_int_equal(q->nattachments, 2);
    for (unsigned i = 0; i < 2; i++) {
        same_str(p->attachments[i].filename, q->attachments[i].filename);
        same_str(p->attachments[i].content_type, q->attachments[i].content_type);
        assert_int_equal(p->attachments[i].len, q->attachments[i].len);
        assert_memory_equal(p->attachments[i].data, q->attachments[i].data, p->attachments[i].len);
    }
    assert_int_equal(q->attachments[0].len, 6);
    assert_string_equal(k.last_error, "");
    assert_int_equal(k.attempt, 0);
    job_free(&k);
    buf_fini(&b);
}

static void test_roundtrip_campaign(void **state)
{
    (void)state;
    parse_ok("{'to':'r@d.test','campaign':'c-1','merge':{'name':'\\u00c5sa','n':3,'t':true,"
             "'z':null},'pool':'bulk-1'}");
    struct job k;
    struct buf b;
    roundtrip(J.to, 1, 2, 99, "", &k, &b);
    same_common(&J, &k);
    assert_null(k.from);
    size_t vl;
    const char *v = job_merge_lookup(&k, "name", 4, &vl);
    assert_non_null(v);
    assert_memory_equal(v, "\xc3\x85sa", vl);
    v = job_merge_lookup(&k, "n", 1, &vl);
    assert_memory_equal(v, "3", 1);
    v = job_merge_lookup(&k, "t", 1, &vl);
    assert_memory_equal(v, "true", 4);
    assert_null(job_merge_lookup(&k, "z", 1, &vl));
    job_free(&k);
    buf_fini(&b);
}

static void test_payload_state(void **state)
{
    (void)state;
    parse_ok("{" ENV ",'content':'x'}");
    /* last_error: cut to what struct job holds, at a character boundary; bad UTF-8
     * (a remote server's reply) replaced. */
    char err[700];
    memset(err, 'e', sizeof err);
    memcpy(err + 509, "\xc3\xa9", 2);  /* a 2-byte character straddling byte 511 */
    err[sizeof err - 1] = '\0';
    struct job k;
    struct buf b;
    roundtrip(J.to, 1, 1, 1, err, &k, &b);
    assert_int_equal(strlen(k.last_error), 511);
    assert_memory_equal(k.last_error + 509, "\xc3\xa9", 2);
    job_free(&k);
    buf_fini(&b);

    memset(err, 'e', sizeof err);
    memcpy(err + 510, "\xc3\xa9", 2);
    err[sizeof err - 1] = '\0';
    roundtrip(J.to, 1, 1, 1, err, &k, &b);
    assert_int_equal(strlen(k.last_error), 510);
    job_free(&k);
    buf_fini(&b);

    roundtrip(J.to, 1, 1, 1, "bad \xff\xfe utf8", &k, &b);
    assert_string_equal(k.last_error, "bad \xef\xbf\xbd\xef\xbf\xbd utf8");
    job_free(&k);
    buf_fini(&b);
}

static void test_payload_errors(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    parse_ok("{" ENV ",'content':'x'}");
    assert_int_equal(job_to_payload(&J, J.to, 0, 1, 1, NULL, &b), -EINVAL);
    parse_ok("{'to':'r@d.test','campaign':'c'}");
    const char *two[] = {"a@b.test", "c@d.test"};
    assert_int_equal(job_to_payload(&J, two, 2, 1, 1, NULL, &b), -EINVAL);
    assert_int_equal(b.len, 0);
    buf_fini(&b);
    /* A full buffer fails cleanly and leaves what was there. */
    buf_init(&b, 40);
    buf_append(&b, "prefix", 6);
    parse_ok("{" ENV ",'content':'a long enough body to overflow the buffer'}");
    assert_int_equal(job_to_payload(&J, J.to, 1, 1, 1, NULL, &b), -ENOBUFS);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "prefix", 6);
    /* It appends. */
    buf_fini(&b);
    buf_init(&b, 1 << 20);
    buf_append(&b, "prefix", 6);
    assert_int_equal(job_to_payload(&J, J.to, 1, 1, 1, NULL, &b), 0);
    assert_memory_equal(b.data, "prefix{", 7);
    buf_fini(&b);
}

static void test_misc(void **state)
{
    (void)state;
    struct job z;
    memset(&z, 0, sizeof z);
    job_free(&z);
    job_free(&z);
    size_t vl;
    assert_null(job_merge_lookup(&z, "a", 1, &vl));
    assert_string_equal(job_kind_to_text(JOB_RAW), "raw");
    assert_string_equal(job_kind_to_text(JOB_PARTS), "parts");
    assert_string_equal(job_kind_to_text(JOB_CAMPAIGN), "campaign");
    assert_string_equal(job_lane_to_text(JOB_LANE_BULK), "bulk");
    assert_string_equal(job_lane_to_text(JOB_LANE_TRANSACTIONAL), "transactional");
    struct job_error e;
    job_error_set(&e, JOB_ERR_UNKNOWN_CAMPAIGN, "campaign: '%s' not found\n", "x");
    assert_string_equal(e.code, "unknown_campaign");
    assert_string_equal(e.detail, "campaign: 'x' not found?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_raw_minimal, teardown),
        cmocka_unit_test_teardown(test_raw_full, teardown),
        cmocka_unit_test_teardown(test_optional_null, teardown),
        cmocka_unit_test_teardown(test_dedupe, teardown),
        cmocka_unit_test_teardown(test_parts, teardown),
        cmocka_unit_test_teardown(test_campaign, teardown),
        cmocka_unit_test_teardown(test_times, teardown),
        cmocka_unit_test_teardown(test_bad_json, teardown),
        cmocka_unit_test_teardown(test_oversized, teardown),
        cmocka_unit_test_teardown(test_missing, teardown),
        cmocka_unit_test_teardown(test_invalid_field, teardown),
        cmocka_unit_test_teardown(test_invalid_address, teardown),
        cmocka_unit_test_teardown(test_header_injection, teardown),
        cmocka_unit_test_teardown(test_too_many, teardown),
        cmocka_unit_test_teardown(test_roundtrip_raw, teardown),
        cmocka_unit_test_teardown(test_roundtrip_parts, teardown),
        cmocka_unit_test_teardown(test_roundtrip_campaign, teardown),
        cmocka_unit_test_teardown(test_payload_state, teardown),
        cmocka_unit_test_teardown(test_payload_errors, teardown),
        cmocka_unit_test_teardown(test_misc, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
