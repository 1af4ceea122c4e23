/* tests/unit/engine/intake/test_build.c — message bytes for a job: raw content as given, parts
 * assembled, campaigns through the cache (fetched synchronously or later, unknown, invalid,
 * temporary errors, references) and merged: fields substituted, HTML escaped, header
 * injection through a merge value refused, List-Unsubscribe headers present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/intake/build.h"
#include "engine/intake/campaign.h"
#include "engine/intake/job.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"   /* a shared helper: not all used here */
#include "tests/unit/engine/msg/mime_readback.h"
#pragma GCC diagnostic pop

#define NOW_MS INT64_C(1700000000000)

/* JSON with single quotes for readability (as in test_job.c). */
static void parse_job(const char *json, struct job *j)
{
    char *s = strdup(json);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    struct job_error err = {0};
    memset(j, 0, sizeof *j);
    if (job_parse(s, strlen(s), NULL, j, &err) != 0)
        fail_msg("job rejected: %s: %s (%s)", err.code, err.detail, json);
    free(s);
}

static char *quotes(const char *json)
{
    char *s = strdup(json);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

/* The header value of name in message m (unfolded), or NULL; asserts it occurs once. */
static const char *header(const uint8_t *m, size_t n, const char *name)
{
    static char v[4096];
    size_t he = tm_header_end(m, n);
    int count = tm_header(m, he + 2, name, v, sizeof v);
    if (count == 0)
        return NULL;
    assert_int_equal(count, 1);
    return v;
}

/* ------------------------------------------------------------------ raw and parts */

static void test_raw(void **state)
{
    (void)state;
    struct job j;
    parse_job("{'from':'b@x.example','to':'r@y.example',"
              "'content':'Subject: hi\\r\\nX-Odd:  spaced \\r\\n\\r\\nbody\\nwith bare LF\\n.\\n'}", &j);
    struct buf body;
    buf_init(&body, 1 << 20);
    assert_int_equal(buf_append(&body, "stale", 5), 0);
    const uint8_t *out = NULL;
    size_t len = 0;
    const char *err = NULL;
    assert_int_equal(build_message(NULL, &j, NOW_MS, 1, &body, &out, &len, &err), 0);
    assert_ptr_equal(out, j.content);           /* the job's own bytes, not a copy */
    assert_int_equal(len, j.content_len);
    static const char want[] = "Subject: hi\r\nX-Odd:  spaced \r\n\r\nbody\nwith bare LF\n.\n";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(out, want, len);
    assert_int_equal(body.len, 0);              /* the scratch body was cleared */
    buf_fini(&body);
    job_free(&j);
}

static void test_parts(void **state)
{
    (void)state;
    struct job j;
    parse_job("{'from':'b@x.example','to':['r@y.example','s@y.example'],'message':{"
              "'from':'Shop <shop@x.example>','subject':'Your receipt 77',"
              "'text':'Thanks for your order.','headers':{'X-Order':'77'}}}", &j);
    struct buf body;
    buf_init(&body, 1 << 20);
    const uint8_t *out;
    size_t len;
    const char *err = NULL;
    assert_int_equal(build_message(NULL, &j, NOW_MS, 42, &body, &out, &len, &err), 0);
    assert_ptr_equal(out, body.data);
    assert_int_equal(len, body.len);
    tm_check_wire(out, len);
    /* it starts with a header field, not a blank line or a body */
    size_t name = strspn((const char *)out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-");
    assert_true(name > 0 && out[name] == ':');
    assert_string_equal(header(out, len, "Subject"), "Your receipt 77");
    assert_string_equal(header(out, len, "From"), "Shop <shop@x.example>");
    assert_string_equal(header(out, len, "To"), "r@y.example");   /* the first recipient */
    assert_string_equal(header(out, len, "X-Order"), "77");
    assert_non_null(header(out, len, "Date"));
    assert_non_null(header(out, len, "Message-ID"));
    assert_string_equal(header(out, len, "MIME-Version"), "1.0");
    size_t he = tm_header_end(out, len);
    assert_non_null(memmem(out + he, len - he, "Thanks for your order.", 22));

    /* the body buffer is reused: a second build gives the same bytes (same time and id) */
    uint8_t *first = malloc(len);
    memcpy(first, out, len);
    size_t first_len = len;
    assert_int_equal(build_message(NULL, &j, NOW_MS, 42, &body, &out, &len, &err), 0);
    assert_int_equal(len, first_len);
    assert_memory_equal(out, first, len);
    free(first);

    /* a campaign job without its campaign cannot be built */
    struct job cj;
    parse_job("{'campaign':'c1','to':'r@y.example'}", &cj);
    err = NULL;
    assert_int_equal(build_message(NULL, &cj, NOW_MS, 1, &body, &out, &len, &err), -1);
    assert_non_null(err);
    job_free(&cj);
    buf_fini(&body);
    job_free(&j);
}

/* ------------------------------------------------------------------ the cache */

enum fetch_mode { FETCH_LATER, FETCH_SYNC };

struct fetcher {
    enum fetch_mode mode;
    const char *json;        /* SYNC: the answer (NULL: unknown) */
    bool temp;               /* SYNC: answer with a temporary error */
    int calls;
    char last_id[200];
    build_fetch_done done;   /* LATER: kept until the test answers */
    void *done_arg;
};

struct readiness {
    int calls;
    bool loaded[8];
    struct build_waiter *lists[8];
    int counts[8];
};

static struct fetcher F;
static struct readiness RD;
static struct build_cache *CACHE;

static void fetch(void *arg, const char *id, build_fetch_done done, void *done_arg)
{
    struct fetcher *f = arg;
    assert_ptr_equal(f, &F);
    f->calls++;
    snprintf(f->last_id, sizeof f->last_id, "%s", id);
    if (f->mode == FETCH_SYNC) {
        char *s = f->json ? quotes(f->json) : NULL;
        done(done_arg, s, s ? strlen(s) : 0, f->temp);
        free(s);   /* the cache must not keep the caller's buffer */
        return;
    }
    assert_null(f->done);   /* one fetch at a time in these tests */
    f->done = done;
    f->done_arg = done_arg;
}

static void answer(const char *json, bool temp)
{
    assert_non_null(F.done);
    build_fetch_done done = F.done;
    F.done = NULL;
    char *s = json ? quotes(json) : NULL;
    done(F.done_arg, s, s ? strlen(s) : 0, temp);
    if (s)
        memset(s, 'X', strlen(s));   /* overwritten at once: a kept pointer would show */
    free(s);
}

static void ready(void *arg, struct build_waiter *list, bool loaded)
{
    struct readiness *r = arg;
    assert_ptr_equal(r, &RD);
    if (r->calls >= 8) {   /* only the first ones are looked at */
        r->calls++;
        return;
    }
    r->loaded[r->calls] = loaded;
    r->lists[r->calls] = list;
    int n = 0;
    for (struct build_waiter *w = list; w; w = w->next)
        n++;
    r->counts[r->calls] = n;
    r->calls++;
}

static int cache_setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    memset(&RD, 0, sizeof RD);
    CACHE = build_cache_create(fetch, &F, ready, &RD);
    assert_non_null(CACHE);
    return 0;
}

static int cache_teardown(void **state)
{
    (void)state;
    if (F.done)
        answer(NULL, true);   /* the owner always answers */
    build_cache_destroy(CACHE);
    CACHE = NULL;
    return 0;
}

#define CAMPAIGN                                                                                 \
    "{'id':'spring','from':'bounces@news.example','message':{"                                 \
    "'from':'{{ brand | News }} <news@news.example>',"                                          \
    "'subject':'Hello {{ first_name | there }}, your code {{code}}',"                           \
    "'text':'Hi {{ first_name | there }},\\r\\nyour token is {{token}}.\\r\\n',"                \
    "'html':'<p>Hi {{ first_name | there }}</p><a href=\\'https://x.example/?t={{token}}\\'>go</a>',"\
    "'headers':{'X-User':'{{uid}}','X-Campaign':'spring'}},"                                    \
    "'list_unsubscribe':'<https://news.example/u/{{token}}>, <mailto:u@news.example?subject={{token}}>',"\
    "'list_unsubscribe_post':true,'max_age_s':3600,'max_attempts':5}"

static void test_cache_later(void **state)
{
    (void)state;
    F.mode = FETCH_LATER;
    struct build_waiter w1, w2;
    struct build_ctx *ctx = NULL;
    const char *why = NULL;
    assert_int_equal(build_cache_get(CACHE, "spring", &w1, &ctx, &why), BUILD_CACHE_PENDING);
    assert_int_equal(F.calls, 1);
    assert_string_equal(F.last_id, "spring");
    /* a second job for the same campaign waits too, without a second fetch */
    assert_int_equal(build_cache_get(CACHE, "spring", &w2, &ctx, &why), BUILD_CACHE_PENDING);
    assert_int_equal(F.calls, 1);
    assert_int_equal(RD.calls, 0);
    answer(CAMPAIGN, false);
    assert_int_equal(RD.calls, 1);
    assert_true(RD.loaded[0]);
    assert_int_equal(RD.counts[0], 2);
    assert_ptr_equal(RD.lists[0], &w1);          /* in the order they asked */
    assert_ptr_equal(RD.lists[0]->next, &w2);
    /* now it is ready, for both, without fetching again */
    assert_int_equal(build_cache_get(CACHE, "spring", &w1, &ctx, &why), 0);
    assert_non_null(ctx);
    struct build_ctx *ctx2 = NULL;
    assert_int_equal(build_cache_get(CACHE, "spring", &w2, &ctx2, &why), 0);
    assert_ptr_equal(ctx, ctx2);
    assert_int_equal(F.calls, 1);
    assert_string_equal(build_campaign_from(ctx), "bounces@news.example");
    assert_true(build_campaign_max_age_ms(ctx) == 3600000);
    assert_int_equal(build_campaign_max_attempts(ctx), 5);
    build_cache_put(ctx);
    build_cache_put(ctx2);
    build_cache_put(NULL);   /* harmless */
}

static void test_cache_sync(void **state)
{
    (void)state;
    F.mode = FETCH_SYNC;
    F.json = CAMPAIGN;
    struct build_waiter w;
    struct build_ctx *ctx = NULL;
    const char *why = NULL;
    int rc = build_cache_get(CACHE, "spring", &w, &ctx, &why);
    /* a fetch that answers at once still goes through the ready callback */
    assert_int_equal(rc, BUILD_CACHE_PENDING);
    assert_int_equal(RD.calls, 1);
    assert_true(RD.loaded[0]);
    assert_ptr_equal(RD.lists[0], &w);
    assert_int_equal(build_cache_get(CACHE, "spring", &w, &ctx, &why), 0);
    assert_non_null(ctx);
    assert_int_equal(F.calls, 1);
    build_cache_put(ctx);
}

static void test_cache_unknown_invalid(void **state)
{
    (void)state;
    F.mode = FETCH_LATER;
    struct build_waiter w;
    struct build_ctx *ctx = NULL;
    const char *why = "junk";
    assert_int_equal(build_cache_get(CACHE, "gone", &w, &ctx, &why), BUILD_CACHE_PENDING);
    answer(NULL, false);                          /* no such campaign */
    assert_int_equal(RD.calls, 1);
    assert_true(RD.loaded[0]);                    /* loaded: the answer is final */
    assert_int_equal(build_cache_get(CACHE, "gone", &w, &ctx, &why), BUILD_CACHE_UNKNOWN);
    assert_int_equal(build_cache_get(CACHE, "gone", &w, &ctx, &why), BUILD_CACHE_UNKNOWN);
    assert_int_equal(F.calls, 1);                 /* remembered for a while */

    /* not JSON */
    assert_int_equal(build_cache_get(CACHE, "broken", &w, &ctx, &why), BUILD_CACHE_PENDING);
    answer("{'id':'broken',", false);
    why = NULL;
    assert_int_equal(build_cache_get(CACHE, "broken", &w, &ctx, &why), BUILD_CACHE_INVALID);
    assert_non_null(why);
    assert_non_null(strstr(why, "bad_json"));

    /* JSON, but not a valid campaign: the reason names the field */
    assert_int_equal(build_cache_get(CACHE, "badtmpl", &w, &ctx, &why), BUILD_CACHE_PENDING);
    answer("{'id':'badtmpl','from':'b@x.example','message':{'from':'a@x.example',"
           "'text':'Hi {{name'}}", false);
    why = NULL;
    assert_int_equal(build_cache_get(CACHE, "badtmpl", &w, &ctx, &why), BUILD_CACHE_INVALID);
    assert_non_null(why);
    assert_non_null(strstr(why, "message.text"));

    /* an id longer than a campaign id can be */
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    why = NULL;
    int calls = F.calls;
    assert_int_equal(build_cache_get(CACHE, longid, &w, &ctx, &why), BUILD_CACHE_INVALID);
    assert_non_null(why);
    assert_int_equal(F.calls, calls);
}

static void test_cache_temp_error(void **state)
{
    (void)state;
    F.mode = FETCH_LATER;
    struct build_waiter w1, w2, w3;
    struct build_ctx *ctx = NULL;
    const char *why = NULL;
    assert_int_equal(build_cache_get(CACHE, "spring", &w1, &ctx, &why), BUILD_CACHE_PENDING);
    assert_int_equal(build_cache_get(CACHE, "spring", &w2, &ctx, &why), BUILD_CACHE_PENDING);
    answer(NULL, true);
    assert_int_equal(RD.calls, 1);
    assert_false(RD.loaded[0]);                   /* try later */
    assert_int_equal(RD.counts[0], 2);
    /* nothing was remembered: the next get fetches again */
    assert_int_equal(build_cache_get(CACHE, "spring", &w3, &ctx, &why), BUILD_CACHE_PENDING);
    assert_int_equal(F.calls, 2);
    answer(CAMPAIGN, false);
    assert_int_equal(RD.calls, 2);
    assert_true(RD.loaded[1]);
    assert_ptr_equal(RD.lists[1], &w3);
    assert_int_equal(RD.counts[1], 1);
    assert_int_equal(build_cache_get(CACHE, "spring", &w3, &ctx, &why), 0);
    build_cache_put(ctx);

    /* synchronous temporary errors too */
    F.mode = FETCH_SYNC;
    F.temp = true;
    F.json = NULL;
    assert_int_equal(build_cache_get(CACHE, "other", &w1, &ctx, &why), BUILD_CACHE_PENDING);
    assert_int_equal(RD.calls, 3);
    assert_false(RD.loaded[2]);
    assert_int_equal(build_cache_get(CACHE, "other", &w1, &ctx, &why), BUILD_CACHE_PENDING);
    assert_int_equal(F.calls, 4);
}

/* A referenced campaign outlives a cache full of others (4096 entries), unreferenced ones
 * are evicted; under ASan a freed campaign in use would show here. */
static void test_cache_refs_survive_eviction(void **state)
{
    (void)state;
    F.mode = FETCH_SYNC;
    F.json = CAMPAIGN;
    struct build_waiter w;
    struct build_ctx *held = NULL;
    const char *why = NULL;
    assert_int_equal(build_cache_get(CACHE, "held", &w, &held, &why), BUILD_CACHE_PENDING);
    assert_int_equal(build_cache_get(CACHE, "held", &w, &held, &why), 0);
    for (int i = 0; i < 4200; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%d", i);
        struct build_ctx *x;
        assert_int_equal(build_cache_get(CACHE, id, &w, &x, &why), BUILD_CACHE_PENDING);
        assert_int_equal(build_cache_get(CACHE, id, &w, &x, &why), 0);
        build_cache_put(x);
    }
    struct job j;
    parse_job("{'campaign':'held','to':'r@y.example','merge':{'token':'t'}}", &j);
    struct buf body;
    buf_init(&body, 1 << 20);
    const uint8_t *out;
    size_t len;
    const char *err = NULL;
    assert_int_equal(build_message(held, &j, NOW_MS, 1, &body, &out, &len, &err), 0);
    assert_string_equal(build_campaign_from(held), "bounces@news.example");
    int calls = F.calls;
    struct build_ctx *again;
    assert_int_equal(build_cache_get(CACHE, "held", &w, &again, &why), 0);  /* still cached */
    assert_ptr_equal(again, held);
    assert_int_equal(F.calls, calls);
    build_cache_put(again);
    build_cache_put(held);
    buf_fini(&body);
    job_free(&j);
}

/* ------------------------------------------------------------------ merging */

static struct build_ctx *load_campaign(const char *id, const char *json)
{
    F.mode = FETCH_SYNC;
    F.json = json;
    struct build_waiter w;
    struct build_ctx *ctx = NULL;
    const char *why = NULL;
    int rc = build_cache_get(CACHE, id, &w, &ctx, &why);
    if (rc == BUILD_CACHE_PENDING)
        rc = build_cache_get(CACHE, id, &w, &ctx, &why);
    if (rc != 0)
        fail_msg("campaign %s: rc %d: %s", id, rc, why ? why : "");
    return ctx;
}

/* A part's body as text, decoded when quoted-printable. */
static void part_text(const struct tm_part *pt, char *out, size_t cap)
{
    char cte[64] = "";
    size_t he = tm_header_end(pt->p, pt->len);
    tm_header(pt->p, he + 2, "Content-Transfer-Encoding", cte, sizeof cte);
    size_t len;
    const uint8_t *b = tm_part_body(pt, &len);
    assert_true(len < cap);
    if (strcasecmp(cte, "quoted-printable") == 0) {
        len = tm_qp_decode(b, len, (uint8_t *)out);
    } else {
        assert_string_equal(cte, "7bit");
        memcpy(out, b, len);
    }
    out[len] = '\0';
}

static void test_merge(void **state)
{
    (void)state;
    struct build_ctx *ctx = load_campaign("spring", CAMPAIGN);
    struct job j;
    parse_job("{'campaign':'spring','to':'ann@y.example','merge':{'first_name':'<Ann & \\u0027Bo\\u0027 \\'B\\'>',"
              "'token':'t0k3n','uid':1201,'code':true}}", &j);
    struct buf body;
    buf_init(&body, 1 << 20);
    const uint8_t *out;
    size_t len;
    const char *err = NULL;
    if (build_message(ctx, &j, NOW_MS, 7, &body, &out, &len, &err) != 0)
        fail_msg("build: %s", err);
    tm_check_wire(out, len);
    assert_string_equal(header(out, len, "From"), "News <news@news.example>");   /* default */
    assert_string_equal(header(out, len, "To"), "ann@y.example");
    assert_string_equal(header(out, len, "Subject"), "Hello <Ann & 'Bo' \"B\">, your code true");
    assert_string_equal(header(out, len, "X-User"), "1201");
    assert_string_equal(header(out, len, "X-Campaign"), "spring");
    assert_string_equal(header(out, len, "List-Unsubscribe"),
                        "<https://news.example/u/t0k3n>, <mailto:u@news.example?subject=t0k3n>");
    assert_string_equal(header(out, len, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");

    /* text as is, html escaped: split the alternative parts */
    char ct[4200], b[128];
    snprintf(ct, sizeof ct, "%s", header(out, len, "Content-Type"));
    assert_non_null(strstr(ct, "multipart/alternative"));
    tm_boundary(ct, b, sizeof b);
    size_t he = tm_header_end(out, len);
    struct tm_part parts[4];
    assert_int_equal(tm_split(out + he + 2, len - he - 2, b, parts, 4), 2);
    char decoded[4096];
    part_text(&parts[0], decoded, sizeof decoded);
    assert_non_null(strstr(decoded, "Hi <Ann & 'Bo' \"B\">,\r\nyour token is t0k3n."));
    part_text(&parts[1], decoded, sizeof decoded);
    assert_non_null(strstr(decoded, "<p>Hi &lt;Ann &amp; &#39;Bo&#39; &quot;B&quot;&gt;</p>"));
    assert_non_null(strstr(decoded, "<a href=\"https://x.example/?t=t0k3n\">go</a>"));
    job_free(&j);

    /* fields missing: defaults, or nothing */
    parse_job("{'campaign':'spring','to':'bob@y.example','merge':{'brand':'Acme'}}", &j);
    assert_int_equal(build_message(ctx, &j, NOW_MS, 8, &body, &out, &len, &err), 0);
    assert_string_equal(header(out, len, "From"), "Acme <news@news.example>");
    assert_string_equal(header(out, len, "Subject"), "Hello there, your code");
    assert_string_equal(header(out, len, "List-Unsubscribe"),
                        "<https://news.example/u/>, <mailto:u@news.example?subject=>");
    job_free(&j);
    build_cache_put(ctx);
    buf_fini(&body);
}

static void test_merge_header_injection(void **state)
{
    (void)state;
    struct build_ctx *ctx = load_campaign("spring", CAMPAIGN);
    struct buf body;
    buf_init(&body, 1 << 20);
    static const char *const jobs[] = {
        /* subject */
        "{'campaign':'spring','to':'a@y.example','merge':{'first_name':'x\\r\\nBcc: victim@z.example'}}",
        /* a bare LF is a line break too */
        "{'campaign':'spring','to':'a@y.example','merge':{'code':'1\\nX-Evil: 1'}}",
        /* from */
        "{'campaign':'spring','to':'a@y.example','merge':{'brand':'Acme\\r\\nReply-To: e@z.example'}}",
        /* an extra header */
        "{'campaign':'spring','to':'a@y.example','merge':{'uid':'1\\r\\n\\r\\n<html>'}}",
        /* List-Unsubscribe */
        "{'campaign':'spring','to':'a@y.example','merge':{'token':'t\\rX-Evil: 1'}}",
    };
    for (size_t i = 0; i < sizeof jobs / sizeof *jobs; i++) {
        struct job j;
        parse_job(jobs[i], &j);
        const uint8_t *out = NULL;
        size_t len = 0;
        const char *err = NULL;
        int rc = build_message(ctx, &j, NOW_MS, 1, &body, &out, &len, &err);
        if (rc != -1)
            fail_msg("job %zu built despite a line break in a header value", i);
        assert_non_null(err);
        assert_non_null(strstr(err, "injection"));
        job_free(&j);
    }
    buf_fini(&body);
    build_cache_put(ctx);
}

static void test_merge_no_unsubscribe(void **state)
{
    (void)state;
    struct build_ctx *ctx = load_campaign("plain",
        "{'id':'plain','from':'','message':{'from':'a@x.example','text':'Hi {{name}}\\r\\nline 2 {{ x | - }}'}}");
    struct job j;
    parse_job("{'campaign':'plain','from':'own@x.example','to':'a@y.example','merge':{'name':'A\\r\\nB'}}", &j);
    struct buf body;
    buf_init(&body, 1 << 20);
    const uint8_t *out;
    size_t len;
    const char *err = NULL;
    if (build_message(ctx, &j, NOW_MS, 1, &body, &out, &len, &err) != 0)
        fail_msg("build: %s", err);
    tm_check_wire(out, len);
    assert_null(header(out, len, "List-Unsubscribe"));
    assert_null(header(out, len, "List-Unsubscribe-Post"));
    assert_null(header(out, len, "Subject"));
    assert_string_equal(build_campaign_from(ctx), "");
    size_t he = tm_header_end(out, len);
    assert_non_null(memmem(out + he, len - he, "Hi A\r\nB\r\nline 2 -", 17));  /* raw text */
    job_free(&j);
    buf_fini(&body);
    build_cache_put(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_parts),
        cmocka_unit_test_setup_teardown(test_cache_later, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_sync, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_unknown_invalid, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_temp_error, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_refs_survive_eviction, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_merge, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_merge_header_injection, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_merge_no_unsubscribe, cache_setup, cache_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
