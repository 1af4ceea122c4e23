/* tests/unit/engine/intake/test_campaign.c — stored campaign definitions: the accepted
 * forms (templates everywhere they are allowed, unsubscribe headers, defaults) and every
 * rejection with its code and a detail naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine/intake/campaign.h"

static struct campaign C;
static struct job_error E;

/* JSON with single quotes for readability (see test_job.c). */
static int parse(const char *json)
{
    campaign_free(&C);
    char *s = strdup(json);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    int rc = campaign_parse(s, strlen(s), &C, &E);
    free(s);
    return rc;
}

static void parse_ok(const char *json)
{
    if (parse(json) != 0)
        fail_msg("rejected %s: %s: %s", json, E.code, E.detail);
    assert_null(E.code);
}

static void parse_bad(const char *json, const char *code, const char *field)
{
    if (parse(json) != -1)
        fail_msg("accepted %s", json);
    if (strcmp(E.code, code) != 0)
        fail_msg("%s: code %s (%s), wanted %s", json, E.code, E.detail, code);
    if (strncmp(E.detail, field, strlen(field)) != 0 || E.detail[strlen(field)] != ':')
        fail_msg("%s: detail \"%s\" does not start with \"%s:\"", json, E.detail, field);
    assert_null(C.priv);
    assert_null(C.id);
}

static int teardown(void **state)
{
    (void)state;
    campaign_free(&C);
    return 0;
}

#define HEAD "'id':'spring-2025','from':'bounces@news.example'"
#define MSG "'message':{'from':'News <news@news.example>','text':'Hi {{name}}'}"

static void test_full(void **state)
{
    (void)state;
    parse_ok("{'id':'spring-2025','from':'bounces@news.example',"
             "'message':{'from':'{{ sender | News }} <news@news.example>',"
             "'to':'{{name}} <{{email}}>','reply_to':'{{rep|help@news.example}}',"
             "'subject':'Hello {{ name | friend }}','text':'Hi {{name}},\\r\\nour news.',"
             "'html':'<p>Hi {{name}}</p>','headers':{'X-Campaign':'spring','X-User':'{{uid}}'},"
             "'attachments':[{'filename':'flyer.pdf','content_type':'application/pdf',"
             "'content_base64':'JVBERg=='}]},"
             "'list_unsubscribe':'<https://news.example/u/{{token}}>, <mailto:u@news.example?subject={{token}}>',"
             "'list_unsubscribe_post':true,'lane':'transactional','pool':'news',"
             "'max_age_s':86400,'max_attempts':8,'meta':{'team':'growth'}}");
    assert_string_equal(C.id, "spring-2025");
    assert_string_equal(C.from, "bounces@news.example");
    assert_string_equal(C.parts.from, "{{ sender | News }} <news@news.example>");
    assert_string_equal(C.parts.to, "{{name}} <{{email}}>");
    assert_string_equal(C.parts.reply_to, "{{rep|help@news.example}}");
    assert_string_equal(C.parts.subject, "Hello {{ name | friend }}");
    assert_string_equal(C.parts.text, "Hi {{name}},\r\nour news.");
    assert_int_equal(C.parts.text_len, strlen(C.parts.text));
    assert_string_equal(C.parts.html, "<p>Hi {{name}}</p>");
    assert_int_equal(C.parts.nheaders, 2);
    assert_string_equal(C.parts.headers[1].name, "X-User");
    assert_string_equal(C.parts.headers[1].value, "{{uid}}");
    assert_int_equal(C.parts.nattachments, 1);
    assert_int_equal(C.parts.attachments[0].len, 4);
    assert_memory_equal(C.parts.attachments[0].data, "%PDF", 4);
    assert_string_equal(C.list_unsubscribe,
                        "<https://news.example/u/{{token}}>, <mailto:u@news.example?subject={{token}}>");
    assert_true(C.list_unsubscribe_post);
    assert_int_equal(C.lane, JOB_LANE_TRANSACTIONAL);
    assert_string_equal(C.pool, "news");
    assert_int_equal(C.max_age_ms, 86400000);
    assert_int_equal(C.max_attempts, 8);
    assert_string_equal(C.meta_json, "{\"team\":\"growth\"}");
}

static void test_minimal(void **state)
{
    (void)state;
    parse_ok("{" HEAD "," MSG "}");
    assert_int_equal(C.lane, JOB_LANE_BULK);
    assert_null(C.list_unsubscribe);
    assert_false(C.list_unsubscribe_post);
    assert_null(C.pool);
    assert_null(C.meta_json);
    assert_int_equal(C.max_age_ms, 0);
    assert_int_equal(C.max_attempts, 0);
    assert_null(C.parts.subject);
    /* The null sender, http and mailto-only unsubscribe, post left false. */
    parse_ok("{'id':'c','from':''," MSG ",'list_unsubscribe':'<mailto:u@x.example>',"
             "'list_unsubscribe_post':false}");
    assert_string_equal(C.from, "");
    parse_ok("{" HEAD "," MSG ",'list_unsubscribe':'  <http://x.example/u>  '}");
    parse_ok("{" HEAD "," MSG ",'lane':null,'pool':null}");
    assert_int_equal(C.lane, JOB_LANE_BULK);
}

static void test_rejects(void **state)
{
    (void)state;
    parse_bad("", "bad_json", "campaign");
    parse_bad("[1]", "bad_json", "campaign");
    parse_bad("{'id':'a','id':'b'}", "bad_json", "campaign");
    parse_bad("{" MSG ",'from':'b@x.example'}", "missing_field", "id");
    parse_bad("{'id':'c'," MSG "}", "missing_field", "from");
    parse_bad("{" HEAD "}", "missing_field", "message");
    parse_bad("{" HEAD ",'message':{'text':'x'}}", "missing_field", "message.from");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example'}}", "missing_field", "message.text");

    parse_bad("{" HEAD "," MSG ",'subject':'x'}", "invalid_field", "subject");
    parse_bad("{" HEAD "," MSG ",'_state':{}}", "invalid_field", "_state");
    parse_bad("{'id':'a b','from':'b@x.example'," MSG "}", "invalid_field", "id");
    parse_bad("{'id':'c:1','from':'b@x.example'," MSG "}", "invalid_field", "id");
    parse_bad("{'id':7,'from':'b@x.example'," MSG "}", "invalid_field", "id");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'Hi {{name'}}", "invalid_field",
              "message.text");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','html':'{{ }}'}}", "invalid_field",
              "message.html");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','subject':'{{a b}}'}}",
              "invalid_field", "message.subject");
    parse_bad("{" HEAD ",'message':{'from':'{{bad name}} <a@x.example>','text':'x'}}",
              "invalid_field", "message.from");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','reply_to':'{{','text':'x'}}",
              "invalid_field", "message.reply_to");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','headers':{'X-A':'{{x'}}}",
              "invalid_field", "message.headers.X-A");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','headers':"
              "{'List-Unsubscribe':'<https://x>'}}}", "invalid_field",
              "message.headers.List-Unsubscribe");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','headers':"
              "{'List-Unsubscribe-Post':'List-Unsubscribe=One-Click'}}}", "invalid_field",
              "message.headers.List-Unsubscribe-Post");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','headers':{'Subject':'x'}}}",
              "invalid_field", "message.headers.Subject");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'https://x.example/u'}", "invalid_field",
              "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://x.example/u'}", "invalid_field",
              "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<ftp://x.example/u>'}", "invalid_field",
              "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://>'}", "invalid_field",
              "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://a> <mailto:b@c.example>'}",
              "invalid_field", "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://a>,'}", "invalid_field",
              "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':''}", "invalid_field", "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://x/{{tok>'}", "invalid_field",
              "list_unsubscribe");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<mailto:u@x.example>',"
              "'list_unsubscribe_post':true}", "invalid_field", "list_unsubscribe_post");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe_post':true}", "invalid_field",
              "list_unsubscribe_post");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://x.example/u>',"
              "'list_unsubscribe_post':'yes'}", "invalid_field", "list_unsubscribe_post");
    parse_bad("{" HEAD "," MSG ",'lane':'fast'}", "invalid_field", "lane");
    parse_bad("{" HEAD "," MSG ",'pool':''}", "invalid_field", "pool");
    parse_bad("{" HEAD "," MSG ",'max_age_s':-1}", "invalid_field", "max_age_s");
    parse_bad("{" HEAD "," MSG ",'max_attempts':1.5}", "invalid_field", "max_attempts");
    parse_bad("{" HEAD "," MSG ",'meta':[]}", "invalid_field", "meta");

    parse_bad("{'id':'c','from':'nope'," MSG "}", "invalid_address", "from");
    parse_bad("{'id':'c','from':'a@b.example\\r\\nRSET'," MSG "}", "header_injection", "from");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','subject':'{{a}}\\r\\nBcc: x'}}",
              "header_injection", "message.subject");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','headers':{'X-A':'a\\nb'}}}",
              "header_injection", "message.headers.X-A");
    parse_bad("{" HEAD ",'message':{'from':'a@x.example','text':'x','headers':{'X A':'a'}}}",
              "header_injection", "message.headers.X A");
    parse_bad("{" HEAD "," MSG ",'list_unsubscribe':'<https://x.example/u>\\r\\nBcc: x'}",
              "header_injection", "list_unsubscribe");
}

static void test_oversized(void **state)
{
    (void)state;
    size_t n = CAMPAIGN_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    assert_int_equal(campaign_parse(big, n, &C, &E), -1);
    assert_string_equal(E.code, "oversized");
    assert_non_null(strstr(E.detail, "campaign: "));
    free(big);
    /* Attachments are bounded like a job's (10 MiB decoded). */
    size_t b64 = (JOB_DEFAULT_MAX_ATTACHMENT_BYTES / 3 + 1) * 4;
    char *json = malloc(b64 + 200);
    int k = sprintf(json, "{\"id\":\"c\",\"from\":\"\",\"message\":{\"from\":\"a@x.example\","
                          "\"attachments\":[{\"content_base64\":\"");
    memset(json + k, 'A', b64);
    strcpy(json + k + b64, "\"}]}}");
    assert_int_equal(campaign_parse(json, strlen(json), &C, &E), -1);
    assert_string_equal(E.code, "oversized");
    assert_non_null(strstr(E.detail, "message.attachments[0].content_base64: "));
    free(json);
}

static void test_free_twice(void **state)
{
    (void)state;
    struct campaign z;
    memset(&z, 0, sizeof z);
    campaign_free(&z);
    campaign_free(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_full, teardown),
        cmocka_unit_test_teardown(test_minimal, teardown),
        cmocka_unit_test_teardown(test_rejects, teardown),
        cmocka_unit_test_teardown(test_oversized, teardown),
        cmocka_unit_test_teardown(test_free_twice, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
