/* tests/unit/schedulers/test_warmup.c — warm-up plans: parse errors that name the path, caps
 * by step (global, provider ramp, provider without one, past the end), civil dates against a
 * day-by-day calendar walk, day and hour of Unix times (negative too), steps with held days,
 * and the hold decision at its thresholds with its explanation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "schedulers/warmup.h"

static struct warmup_plans *parse_ok(const char *json)
{
    struct warmup_plans *p = NULL;
    char err[512] = "";
    if (warmup_parse(json, strlen(json), &p, err, sizeof err) != 0)
        fail_msg("parse failed: %s\n%s", err, json);
    assert_non_null(p);
    return p;
}

/* want is the whole message, or its beginning when it ends in '*' (for jansson's own text). */
static void expect_error(const char *json, const char *want)
{
    struct warmup_plans *p = (struct warmup_plans *)1;
    char err[512] = "";
    if (warmup_parse(json, strlen(json), &p, err, sizeof err) == 0)
        fail_msg("parsed, wanted error \"%s\":\n%s", want, json);
    assert_null(p);
    size_t wl = strlen(want);
    bool prefix = wl && want[wl - 1] == '*';
    if (prefix ? strncmp(err, want, wl - 1) != 0 : strcmp(err, want) != 0)
        fail_msg("error \"%s\", wanted \"%s\"\n%s", err, want, json);
}

/* "[first, first+1, ...]" with n entries, into buf. */
static const char *ramp_json(char *buf, size_t len, unsigned n, unsigned first)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (unsigned i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%u", i ? "," : "", first + i);
    snprintf(buf + o, len - o, "]");
    return buf;
}

/* The example shipped in etc/shaping.json (docs/shaping.md): 30 days from 50 a day, a
 * gentler Gmail ramp, hourly caps for the first two weeks, and the hold. */
static const char *const standard_json =
    "{\n"
    "  \"comment\": \"Warm-up plans for new egress IPs. Step 1 is the start date.\",\n"
    "  \"standard\": {\n"
    "    \"comment\": \"30 days: doubling for the first week, then about 15-20% a day.\",\n"
    "    \"daily\":  [50, 100, 200, 400, 750, 1500, 2500, 4000, 6000, 8500,\n"
    "                11000, 14000, 17500, 21000, 25000, 30000, 36000, 43000, 50000, 60000,\n"
    "                70000, 80000, 95000, 110000, 125000, 145000, 165000, 190000, 220000, 250000],\n"
    "    \"hourly\": [10, 20, 40, 75, 125, 250, 400, 600, 900, 1200, 1500, 2000, 2500, 3000],\n"
    "    \"providers\": {\n"
    "      \"gmail\": {\n"
    "        \"comment\": \"Gmail judges new IPs on volume consistency: a slower ramp.\",\n"
    "        \"daily\":  [20, 40, 80, 150, 250, 400, 600, 900, 1300, 1800,\n"
    "                    2500, 3300, 4300, 5500, 7000, 9000, 11000, 13500, 16500, 20000,\n"
    "                    24000, 28000, 33000, 38000, 44000, 50000, 57000, 64000, 72000, 80000],\n"
    "        \"hourly\": [5, 10, 15, 25, 40, 60, 90, 130, 180, 250, 330, 430, 550, 700]\n"
    "      }\n"
    "    },\n"
    "    \"hold\": {\"bounce_rate\": 0.05, \"deferral_rate\": 0.3, \"min_messages\": 200,\n"
    "             \"comment\": \"do not advance a day whose bounces or deferrals say too fast\"}\n"
    "  }\n"
    "}\n";

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("[]", "warmup_plans: expected an object of plan names");
    expect_error("7", "warmup_plans: expected an object of plan names");
    expect_error("null", "warmup_plans: expected an object of plan names");
    expect_error("\"standard\"", "warmup_plans: expected an object of plan names");
    expect_error("{\"p\": {\"daily\": [1]}", "warmup_plans: line 1 column *");
    expect_error("", "warmup_plans: line *");
    expect_error("{\"p\": {\"daily\": [1]}, \"p\": {\"daily\": [2]}}",
                 "warmup_plans: line 1 column *");                    /* duplicate key */
    expect_error("{\"p\": {\"daily\": [1], \"daily\": [2]}}", "warmup_plans: line 1 column *");
    expect_error("{\"comment\": 5}", "warmup_plans.comment: expected a string");

    /* plan names */
    const char *name_err = ": expected a plan name of 1 to 63 letters, digits, '.', '_' or '-'";
    char want[512], json[512];
    expect_error("{\"a b\": {\"daily\": [1]}}",
                 strcat(strcpy(want, "warmup_plans.a b"), name_err));
    expect_error("{\"\": {\"daily\": [1]}}", strcat(strcpy(want, "warmup_plans."), name_err));
    expect_error("{\"ip:1\": {\"daily\": [1]}}",
                 strcat(strcpy(want, "warmup_plans.ip:1"), name_err));
    expect_error("{\"caf\\u00e9\": {\"daily\": [1]}}",
                 strcat(strcpy(want, "warmup_plans.caf??"), name_err));
    expect_error("{\"a\\nb\": {\"daily\": [1]}}",           /* control bytes do not reach it */
                 strcat(strcpy(want, "warmup_plans.a?b"), name_err));
    char n64[65];
    memset(n64, 'x', 64);
    n64[64] = '\0';
    snprintf(json, sizeof json, "{\"%s\": {\"daily\": [1]}}", n64);
    snprintf(want, sizeof want, "warmup_plans.%s%s", n64, name_err);
    expect_error(json, want);
    n64[63] = '\0';                                           /* 63 is fine */
    snprintf(json, sizeof json, "{\"%s\": {\"daily\": [1]}}", n64);
    struct warmup_plans *p = parse_ok(json);
    assert_non_null(warmup_plan_find(p, n64));
    warmup_free(p);

    /* plans */
    expect_error("{\"p\": []}", "warmup_plans.p: expected an object");
    expect_error("{\"p\": {}}", "warmup_plans.p.daily: required");
    expect_error("{\"p\": {\"hourly\": [1]}}", "warmup_plans.p.daily: required");
    expect_error("{\"p\": {\"daily\": [1], \"dayly\": [1]}}", "warmup_plans.p.dayly: unknown field");
    expect_error("{\"p\": {\"daily\": [1], \"start\": \"2026-01-01\"}}",
                 "warmup_plans.p.start: unknown field");
    expect_error("{\"p\": {\"daily\": [1], \"comment\": [\"x\"]}}",
                 "warmup_plans.p.comment: expected a string");

    /* ramps */
    expect_error("{\"p\": {\"daily\": 50}}",
                 "warmup_plans.p.daily: expected an array of 1 to 366 integers");
    expect_error("{\"p\": {\"daily\": {\"1\": 50}}}",
                 "warmup_plans.p.daily: expected an array of 1 to 366 integers");
    expect_error("{\"p\": {\"daily\": []}}",
                 "warmup_plans.p.daily: must have 1 to 366 entries (one per step)");
    expect_error("{\"new-ip\": {\"daily\": [50, 100, 200, 0]}}",
                 "warmup_plans.new-ip.daily[3]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [-1]}}",
                 "warmup_plans.p.daily[0]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1, 1000000001]}}",
                 "warmup_plans.p.daily[1]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1, 2.5]}}",
                 "warmup_plans.p.daily[1]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1, 100.0]}}",
                 "warmup_plans.p.daily[1]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1, \"100\"]}}",
                 "warmup_plans.p.daily[1]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [null]}}",
                 "warmup_plans.p.daily[0]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [99999999999999999]}}",
                 "warmup_plans.p.daily[0]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1], \"hourly\": []}}",
                 "warmup_plans.p.hourly: must have 1 to 366 entries (one per step)");
    expect_error("{\"p\": {\"daily\": [1], \"hourly\": null}}",
                 "warmup_plans.p.hourly: expected an array of 1 to 366 integers");
    expect_error("{\"p\": {\"daily\": [1], \"hourly\": [5, 0]}}",
                 "warmup_plans.p.hourly[1]: expected an integer 1..1000000000");
    static char big[8192], js[9000];
    snprintf(js, sizeof js, "{\"p\": {\"daily\": %s}}", ramp_json(big, sizeof big, 367, 1));
    expect_error(js, "warmup_plans.p.daily: must have 1 to 366 entries (one per step)");
    snprintf(js, sizeof js, "{\"p\": {\"daily\": [1], \"hourly\": %s}}",
             ramp_json(big, sizeof big, 367, 1));
    expect_error(js, "warmup_plans.p.hourly: must have 1 to 366 entries (one per step)");

    /* providers */
    expect_error("{\"p\": {\"daily\": [1], \"providers\": []}}",
                 "warmup_plans.p.providers: expected an object of provider names");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"gmail\": [1]}}}",
                 "warmup_plans.p.providers.gmail: expected an object");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"gmail\": {}}}}",
                 "warmup_plans.p.providers.gmail.daily: required");
    expect_error("{\"new-ip\": {\"daily\": [1], \"providers\": {\"gmail\":"
                 " {\"daily\": [10, 20, 30, 1e3]}}}}",
                 "warmup_plans.new-ip.providers.gmail.daily[3]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"gmail\":"
                 " {\"daily\": [1], \"hourly\": [1, -5]}}}}",
                 "warmup_plans.p.providers.gmail.hourly[1]: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"gmail\":"
                 " {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.1}}}}}",
                 "warmup_plans.p.providers.gmail.hold: unknown field");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"gmail\":"
                 " {\"daily\": [1], \"comment\": 1}}}}",
                 "warmup_plans.p.providers.gmail.comment: expected a string");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"comment\": false}}}",
                 "warmup_plans.p.providers.comment: expected a string");
    expect_error("{\"p\": {\"daily\": [1], \"providers\": {\"g mail\": {\"daily\": [1]}}}}",
                 "warmup_plans.p.providers.g mail: expected a provider name of 1 to 63 letters,"
                 " digits, '.', '_', ':' or '-'");
    size_t o = (size_t)snprintf(js, sizeof js, "{\"p\": {\"daily\": [1], \"providers\": {");
    for (int i = 0; i < 33; i++)
        o += (size_t)snprintf(js + o, sizeof js - o, "%s\"pv%d\": {\"daily\": [1]}", i ? "," : "", i);
    snprintf(js + o, sizeof js - o, "}}}");
    expect_error(js, "warmup_plans.p.providers: at most 32 providers");

    /* hold */
    expect_error("{\"p\": {\"daily\": [1], \"hold\": 0.05}}", "warmup_plans.p.hold: expected an object");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {}}}",
                 "warmup_plans.p.hold: needs bounce_rate or deferral_rate (it would never hold)");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"min_messages\": 50}}}",
                 "warmup_plans.p.hold: needs bounce_rate or deferral_rate (it would never hold)");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0}}}",
                 "warmup_plans.p.hold.bounce_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.0}}}",
                 "warmup_plans.p.hold.bounce_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": -0.1}}}",
                 "warmup_plans.p.hold.bounce_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 1.01}}}",
                 "warmup_plans.p.hold.bounce_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 5}}}",
                 "warmup_plans.p.hold.bounce_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": \"5%\"}}}",
                 "warmup_plans.p.hold.bounce_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"deferral_rate\": null}}}",
                 "warmup_plans.p.hold.deferral_rate: expected a number greater than 0 and at most 1");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"deferral_rate\": 0.3, \"min_messages\": 0}}}",
                 "warmup_plans.p.hold.min_messages: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"deferral_rate\": 0.3, \"min_messages\": 10.5}}}",
                 "warmup_plans.p.hold.min_messages: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"deferral_rate\": 0.3,"
                 " \"min_messages\": 1000000001}}}",
                 "warmup_plans.p.hold.min_messages: expected an integer 1..1000000000");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.1, \"complaint_rate\": 0.1}}}",
                 "warmup_plans.p.hold.complaint_rate: unknown field");
    expect_error("{\"p\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.1, \"comment\": {}}}}",
                 "warmup_plans.p.hold.comment: expected a string");

    /* at most 64 plans ("comment" is not a plan) */
    o = (size_t)snprintf(js, sizeof js, "{\"comment\": \"c\"");
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(js + o, sizeof js - o, ", \"p%d\": {\"daily\": [1]}", i);
    snprintf(js + o, sizeof js - o, "}");
    p = parse_ok(js);
    assert_non_null(warmup_plan_find(p, "p0"));
    assert_non_null(warmup_plan_find(p, "p63"));
    assert_null(warmup_plan_find(p, "comment"));
    warmup_free(p);
    snprintf(js + o, sizeof js - o, ", \"p64\": {\"daily\": [1]}}");
    expect_error(js, "warmup_plans: at most 64 plans");

    /* A long key is cut short in the path, not overrun. */
    static char longkey[2048];
    memset(longkey, 'k', sizeof longkey - 1);
    snprintf(js, sizeof js, "{\"p\": {\"daily\": [1], \"%s\": 1}}", longkey);
    p = (struct warmup_plans *)1;
    char err[64];
    assert_int_equal(warmup_parse(js, strlen(js), &p, err, sizeof err), -1);
    assert_null(p);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(warmup_parse(js, strlen(js), &p, NULL, 0), -1);   /* no room for a reason */
    assert_int_equal(warmup_parse(js, strlen(js), &p, err, 0), -1);
    assert_null(p);
}

static void test_parse_ok(void **state)
{
    (void)state;
    struct warmup_plans *p = parse_ok("{}");
    assert_null(warmup_plan_find(p, "standard"));
    warmup_free(p);
    warmup_free(NULL);
    assert_null(warmup_plan_find(NULL, "standard"));

    /* Only the given length is read: the text need not end in NUL. */
    const char *text = "{\"p\": {\"daily\": [1]}}garbage";
    struct warmup_plans *q = NULL;
    char err[256] = "";
    assert_int_equal(warmup_parse(text, strlen(text) - 7, &q, err, sizeof err), 0);
    assert_non_null(warmup_plan_find(q, "p"));
    warmup_free(q);

    /* comment everywhere, limits at their edges, names of every allowed kind */
    static char daily[8192], hourly[8192], js[20000];
    snprintf(js, sizeof js,
             "{\"comment\": \"c\","
             " \"Z.9_-\": {\"comment\": \"c\", \"daily\": %s, \"hourly\": %s,"
             "   \"providers\": {\"comment\": \"c\","
             "     \"z\": {\"comment\": \"c\", \"daily\": [1000000000]},"
             "     \"a:b\": {\"daily\": [7], \"hourly\": [3]},"
             "     \"Gmail\": {\"daily\": [1, 2]}},"
             "   \"hold\": {\"comment\": \"c\", \"bounce_rate\": 1}},"
             " \"b\": {\"daily\": [5], \"providers\": {}, \"hold\": {\"deferral_rate\": 1e-9}}}",
             ramp_json(daily, sizeof daily, 366, 1), ramp_json(hourly, sizeof hourly, 366, 999999635));
    p = parse_ok(js);
    const struct warmup_plan *a = warmup_plan_find(p, "Z.9_-");
    assert_non_null(a);
    assert_string_equal(warmup_plan_name(a), "Z.9_-");
    assert_int_equal(warmup_plan_steps(a), 366);
    assert_null(warmup_plan_find(p, "z.9_-"));                  /* names are case-sensitive */
    assert_null(warmup_plan_find(p, "Z.9_"));
    assert_int_equal(warmup_plan_nproviders(a), 3);
    assert_string_equal(warmup_plan_provider(a, 0), "Gmail");   /* sorted */
    assert_string_equal(warmup_plan_provider(a, 1), "a:b");
    assert_string_equal(warmup_plan_provider(a, 2), "z");
    assert_null(warmup_plan_provider(a, 3));
    assert_true(warmup_plan_has_provider(a, "Gmail"));
    assert_false(warmup_plan_has_provider(a, "gmail"));
    assert_false(warmup_plan_has_provider(a, "comment"));
    assert_false(warmup_plan_has_provider(a, NULL));
    struct warmup_caps c;
    warmup_caps(a, NULL, 366, &c);
    assert_int_equal(c.day, 366);
    assert_int_equal(c.hour, 1000000000);
    warmup_caps(a, "z", 1, &c);
    assert_int_equal(c.day, 1000000000);
    assert_true(c.hour == WARMUP_NO_CAP);
    const struct warmup_plan *b = warmup_plan_find(p, "b");
    assert_non_null(b);
    assert_int_equal(warmup_plan_nproviders(b), 0);
    assert_null(warmup_plan_provider(b, 0));
    assert_false(warmup_plan_has_provider(b, "Gmail"));
    assert_int_equal(warmup_plan_steps(b), 1);
    warmup_free(p);
}

static void test_caps(void **state)
{
    (void)state;
    struct warmup_plans *p = parse_ok(
        "{\"p\": {\"daily\": [50, 100, 200, 400, 800], \"hourly\": [10, 20, 40],"
        "  \"providers\": {"
        "    \"gmail\": {\"daily\": [20, 40, 80], \"hourly\": [5, 10]},"
        "    \"yahoo\": {\"daily\": [30, 60, 90, 120, 150, 180, 210]}}}}");
    const struct warmup_plan *plan = warmup_plan_find(p, "p");
    assert_non_null(plan);
    struct warmup_caps c;
    static const uint64_t day[] = {50, 100, 200, 400, 800}, hour[] = {10, 20, 40};
    for (unsigned s = 1; s <= 5; s++) {
        warmup_caps(plan, NULL, s, &c);
        assert_int_equal(c.day, day[s - 1]);
        if (s <= 3)
            assert_int_equal(c.hour, hour[s - 1]);
        else
            assert_true(c.hour == WARMUP_NO_CAP);                /* hourly shorter than daily */
    }
    warmup_caps(plan, NULL, 6, &c);                               /* past the global ramp */
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);

    /* A provider's own ramp, with its own length. */
    warmup_caps(plan, "gmail", 1, &c);
    assert_int_equal(c.day, 20);
    assert_int_equal(c.hour, 5);
    warmup_caps(plan, "gmail", 3, &c);
    assert_int_equal(c.day, 80);
    assert_true(c.hour == WARMUP_NO_CAP);
    warmup_caps(plan, "gmail", 4, &c);                            /* the global cap still holds */
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);
    warmup_caps(plan, NULL, 4, &c);
    assert_int_equal(c.day, 400);
    warmup_caps(plan, "yahoo", 7, &c);                            /* longer than the global */
    assert_int_equal(c.day, 210);
    assert_true(c.hour == WARMUP_NO_CAP);
    warmup_caps(plan, "yahoo", 8, &c);
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);

    /* A provider without a ramp of its own: no provider cap (the global one applies). */
    warmup_caps(plan, "microsoft", 1, &c);
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);
    warmup_caps(plan, "Gmail", 1, &c);                            /* case-sensitive */
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);
    warmup_caps(plan, "", 1, &c);
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);

    /* Step 0: not started, nothing may be sent, whoever asks. */
    const char *who[] = {NULL, "gmail", "yahoo", "microsoft"};
    for (unsigned i = 0; i < 4; i++) {
        c.day = c.hour = 7;
        warmup_caps(plan, who[i], 0, &c);
        assert_int_equal(c.day, 0);
        assert_int_equal(c.hour, 0);
    }
    warmup_caps(plan, NULL, UINT32_MAX, &c);
    assert_true(c.day == WARMUP_NO_CAP && c.hour == WARMUP_NO_CAP);

    /* Warm only past every ramp: the global (5), gmail (3), yahoo (7). */
    assert_int_equal(warmup_plan_steps(plan), 7);
    assert_false(warmup_is_warm(plan, 0));
    for (unsigned s = 1; s <= 7; s++)
        assert_false(warmup_is_warm(plan, s));
    assert_true(warmup_is_warm(plan, 8));
    assert_true(warmup_is_warm(plan, UINT32_MAX));
    warmup_free(p);

    /* Hourly ramps count too, even when longer than their daily ramp. */
    p = parse_ok("{\"a\": {\"daily\": [5, 6], \"hourly\": [1, 2, 3, 4]},"
                 " \"b\": {\"daily\": [5], \"providers\": {\"x\": {\"daily\": [1], \"hourly\": [1, 1, 1]}}},"
                 " \"c\": {\"daily\": [5, 5, 5]}}");
    plan = warmup_plan_find(p, "a");
    warmup_caps(plan, NULL, 3, &c);
    assert_true(c.day == WARMUP_NO_CAP);
    assert_int_equal(c.hour, 3);
    assert_int_equal(warmup_plan_steps(plan), 4);
    assert_false(warmup_is_warm(plan, 4));
    assert_true(warmup_is_warm(plan, 5));
    plan = warmup_plan_find(p, "b");
    assert_int_equal(warmup_plan_steps(plan), 3);
    assert_false(warmup_is_warm(plan, 3));
    assert_true(warmup_is_warm(plan, 4));
    plan = warmup_plan_find(p, "c");
    assert_int_equal(warmup_plan_steps(plan), 3);
    assert_false(warmup_is_warm(plan, 3));
    assert_true(warmup_is_warm(plan, 4));
    warmup_free(p);
}

static void test_standard_example(void **state)
{
    (void)state;
    struct warmup_plans *p = parse_ok(standard_json);
    const struct warmup_plan *plan = warmup_plan_find(p, "standard");
    assert_non_null(plan);
    assert_int_equal(warmup_plan_steps(plan), 30);
    assert_int_equal(warmup_plan_nproviders(plan), 1);
    assert_string_equal(warmup_plan_provider(plan, 0), "gmail");
    struct warmup_caps g, m;
    uint64_t prev = 0;
    for (unsigned s = 1; s <= 30; s++) {
        warmup_caps(plan, NULL, s, &g);
        warmup_caps(plan, "gmail", s, &m);
        assert_true(g.day > prev && g.day <= 2 * (prev ? prev : 50));   /* rising, at most x2 */
        assert_true(m.day < g.day);                                     /* Gmail is gentler */
        assert_true(s <= 14 ? g.hour < g.day && m.hour < m.day
                            : g.hour == WARMUP_NO_CAP && m.hour == WARMUP_NO_CAP);
        prev = g.day;
    }
    warmup_caps(plan, NULL, 1, &g);
    assert_int_equal(g.day, 50);
    warmup_caps(plan, NULL, 30, &g);
    assert_int_equal(g.day, 250000);
    assert_false(warmup_is_warm(plan, 30));
    assert_true(warmup_is_warm(plan, 31));
    char why[128];
    assert_false(warmup_should_hold(plan, 199, 199, 0, why, sizeof why));
    assert_true(warmup_should_hold(plan, 200, 11, 0, why, sizeof why));
    assert_string_equal(why, "bounce rate 5.5% over 5.0% (11 of 200)");
    warmup_free(p);
}

static void test_date_format(void **state)
{
    (void)state;
    char out[11];
    /* every day from 1970 to 2100 prints as a date that parses back to it */
    for (int64_t d = 0; d < 47482; d++) {
        warmup_date_format(d, out);
        int64_t back = -1;
        if (warmup_date_parse(out, &back) != 0 || back != d)
            fail_msg("day %lld -> %s -> %lld", (long long)d, out, (long long)back);
    }
    warmup_date_format(0, out);
    assert_string_equal(out, "1970-01-01");
    warmup_date_format(20414, out);
    assert_string_equal(out, "2025-11-22");
}

static void test_date_parse(void **state)
{
    (void)state;
    int64_t d = -42;
    assert_int_equal(warmup_date_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(warmup_date_parse("1970-01-02", &d), 0);
    assert_int_equal(d, 1);
    assert_int_equal(warmup_date_parse("2000-03-01", &d), 0);
    assert_int_equal(d, 11017);
    assert_int_equal(warmup_date_parse("2023-11-14", &d), 0);
    assert_int_equal(d, 19675);                                  /* 1700000000 / 86400 */
    assert_int_equal(warmup_date_parse("2028-02-29", &d), 0);    /* leap day */
    assert_int_equal(d, 21243);
    assert_int_equal(warmup_date_parse("2000-02-29", &d), 0);    /* a leap century */
    assert_int_equal(warmup_date_parse("9999-12-31", &d), 0);
    assert_int_equal(d, 2932896);

    static const char *const bad[] = {
        "2027-02-29", "2100-02-29", "2026-13-01", "2026-00-10", "2026-01-00", "2026-01-32",
        "2026-04-31", "2026-06-31", "2026-09-31", "2026-11-31", "1969-12-31", "0000-01-01",
        "10000-01-01", "2026-1-01", "2026-01-1", "26-01-01", "2026/01/01", "2026.01.01",
        " 2026-01-01", "2026-01-01 ", "2026-01-01\n", "2026-01-01T00:00:00Z", "+026-01-01",
        "2026-+1-01", "2026-01-0a", "2026-0x-01", "20260101", "2026-01-", "2026", "", "-",
        "2026--1-01", "２０２６-01-01",
    };
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = -42;
        if (warmup_date_parse(bad[i], &d) != -1)
            fail_msg("\"%s\" parsed as %lld", bad[i], (long long)d);
        assert_int_equal(d, -42);                               /* untouched on failure */
    }
    assert_int_equal(warmup_date_parse(NULL, &d), -1);
    /* A string that ends early is not read past its end (ASan would see it). */
    char *shortstr = malloc(5);
    memcpy(shortstr, "2026", 5);
    assert_int_equal(warmup_date_parse(shortstr, &d), -1);
    free(shortstr);

    /* Every day from 1970 to 2400 in order, against a calendar walk. */
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t n = 0;
    for (int y = 1970; y < 2400; y++) {
        bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        for (int m = 1; m <= 12; m++) {
            int last = mdays[m - 1] + (m == 2 && leap);
            for (int day = 1; day <= last + 1; day++) {
                char s[40];
                snprintf(s, sizeof s, "%04d-%02d-%02d", y, m, day);
                if (day > last) {
                    assert_int_equal(warmup_date_parse(s, &d), -1);
                    continue;
                }
                if (warmup_date_parse(s, &d) != 0 || d != n)
                    fail_msg("%s: got %lld, wanted %lld", s, (long long)d, (long long)n);
                assert_int_equal(warmup_day_of(n * 86400 + 43200), n);
                n++;
            }
        }
    }
}

static void test_day_hour(void **state)
{
    (void)state;
    static const struct {
        int64_t t, day;
        unsigned hour;
    } cases[] = {
        {0, 0, 0},
        {1, 0, 0},
        {3599, 0, 0},
        {3600, 0, 1},
        {86399, 0, 23},
        {86400, 1, 0},
        {86401, 1, 0},
        {-1, -1, 23},
        {-3600, -1, 23},
        {-3601, -1, 22},
        {-86399, -1, 0},
        {-86400, -1, 0},
        {-86401, -2, 23},
        {1700000000, 19675, 22},
        {1835395199, 21242, 23},                                  /* 2028-02-28 23:59:59 */
        {1835395200, 21243, 0},                                   /* 2028-02-29 00:00:00 */
        {INT64_MAX, INT64_MAX / 86400, (unsigned)(INT64_MAX % 86400 / 3600)},
        {INT64_MIN, INT64_MIN / 86400 - 1, (unsigned)((INT64_MIN % 86400 + 86400) / 3600)},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (warmup_day_of(cases[i].t) != cases[i].day || warmup_hour_of(cases[i].t) != cases[i].hour)
            fail_msg("t=%lld: day %lld hour %u, wanted %lld %u", (long long)cases[i].t,
                     (long long)warmup_day_of(cases[i].t), warmup_hour_of(cases[i].t),
                     (long long)cases[i].day, cases[i].hour);
    }
    /* Every second of two days either side of the epoch: day*86400 <= t < (day+1)*86400. */
    for (int64_t t = -2 * 86400; t < 2 * 86400; t++) {
        int64_t day = warmup_day_of(t);
        unsigned hour = warmup_hour_of(t);
        assert_true(day * 86400 <= t && t < (day + 1) * 86400);
        assert_int_equal(hour, (unsigned)((t - day * 86400) / 3600));
    }
}

static void test_day_number_and_step(void **state)
{
    (void)state;
    int64_t start;
    assert_int_equal(warmup_date_parse("2026-03-01", &start), 0);
    int64_t feb28 = start - 1;
    assert_int_equal(warmup_day_number(start, feb28), 0);         /* before the start */
    assert_int_equal(warmup_day_number(start, start - 1000), 0);
    assert_int_equal(warmup_day_number(start, start), 1);         /* on it */
    assert_int_equal(warmup_day_number(start, start + 1), 2);
    assert_int_equal(warmup_day_number(start, start + 29), 30);
    /* From a Unix time: 2026-03-01 00:00 UTC is day 1, the second before it day 0. */
    int64_t t = start * 86400;
    assert_int_equal(warmup_day_number(start, warmup_day_of(t)), 1);
    assert_int_equal(warmup_day_number(start, warmup_day_of(t - 1)), 0);
    assert_int_equal(warmup_day_number(start, warmup_day_of(t + 86399)), 1);
    assert_int_equal(warmup_day_number(start, warmup_day_of(t + 86400)), 2);
    /* Extremes saturate instead of wrapping. */
    assert_int_equal(warmup_day_number(INT64_MIN, INT64_MAX), INT64_MAX);
    assert_int_equal(warmup_day_number(0, INT64_MAX), INT64_MAX);
    assert_int_equal(warmup_day_number(1, INT64_MAX), INT64_MAX);
    assert_int_equal(warmup_day_number(INT64_MAX, INT64_MIN), 0);

    assert_int_equal(warmup_step(0, 0), 0);                       /* not started */
    assert_int_equal(warmup_step(0, 5), 0);
    assert_int_equal(warmup_step(-3, 0), 0);
    assert_int_equal(warmup_step(1, 0), 1);
    assert_int_equal(warmup_step(2, 0), 2);
    assert_int_equal(warmup_step(30, 0), 30);
    assert_int_equal(warmup_step(5, 2), 3);
    assert_int_equal(warmup_step(5, 3), 2);
    assert_int_equal(warmup_step(5, 4), 1);                       /* never below 1 */
    assert_int_equal(warmup_step(5, 5), 1);
    assert_int_equal(warmup_step(5, 100), 1);
    assert_int_equal(warmup_step(1, UINT32_MAX), 1);
    assert_int_equal(warmup_step(INT64_MAX, 0), UINT32_MAX);
    assert_int_equal(warmup_step((int64_t)UINT32_MAX + 10, 10), UINT32_MAX);
    assert_int_equal(warmup_step((int64_t)UINT32_MAX + 10, 11), UINT32_MAX - 1);
}

static void test_hold(void **state)
{
    (void)state;
    struct warmup_plans *p = parse_ok(
        "{\"both\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.05, \"deferral_rate\": 0.3,"
        "                                    \"min_messages\": 200}},"
        " \"bounce\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.05}},"
        " \"deferral\": {\"daily\": [1], \"hold\": {\"deferral_rate\": 0.3}},"
        " \"fine\": {\"daily\": [1], \"hold\": {\"bounce_rate\": 0.0025, \"min_messages\": 1}},"
        " \"none\": {\"daily\": [1]}}");
    const struct warmup_plan *both = warmup_plan_find(p, "both");
    const struct warmup_plan *bounce = warmup_plan_find(p, "bounce");
    const struct warmup_plan *deferral = warmup_plan_find(p, "deferral");
    const struct warmup_plan *fine = warmup_plan_find(p, "fine");
    const struct warmup_plan *none = warmup_plan_find(p, "none");
    char why[128];

    /* No hold block: never, however bad. */
    strcpy(why, "stale");
    assert_false(warmup_should_hold(none, 1000, 1000, 1000, why, sizeof why));
    assert_string_equal(why, "");

    /* Too few messages for a rate to count: min_messages given, and the default 100. */
    assert_false(warmup_should_hold(both, 199, 199, 199, why, sizeof why));
    assert_string_equal(why, "");
    assert_true(warmup_should_hold(both, 200, 200, 0, why, sizeof why));
    assert_false(warmup_should_hold(bounce, 99, 99, 0, why, sizeof why));
    assert_true(warmup_should_hold(bounce, 100, 6, 0, why, sizeof why));
    assert_false(warmup_should_hold(bounce, 0, 0, 0, why, sizeof why));

    /* At the threshold is fine; strictly over holds. */
    assert_false(warmup_should_hold(both, 200, 10, 60, why, sizeof why));
    assert_string_equal(why, "");
    assert_true(warmup_should_hold(both, 200, 11, 0, why, sizeof why));
    assert_string_equal(why, "bounce rate 5.5% over 5.0% (11 of 200)");
    assert_true(warmup_should_hold(both, 200, 24, 0, why, sizeof why));
    assert_string_equal(why, "bounce rate 12.0% over 5.0% (24 of 200)");
    assert_true(warmup_should_hold(both, 200, 0, 61, why, sizeof why));
    assert_string_equal(why, "deferral rate 30.5% over 30.0% (61 of 200)");
    assert_true(warmup_should_hold(both, 200, 10, 80, why, sizeof why));
    assert_string_equal(why, "deferral rate 40.0% over 30.0% (80 of 200)");
    /* Thresholds that are exact decimals stay exact at other scales. */
    assert_false(warmup_should_hold(both, 1000, 50, 300, why, sizeof why));
    assert_true(warmup_should_hold(both, 1000, 51, 0, why, sizeof why));
    assert_false(warmup_should_hold(both, 10000000, 500000, 3000000, why, sizeof why));
    assert_true(warmup_should_hold(both, 10000000, 500001, 0, why, sizeof why));
    assert_true(warmup_should_hold(both, 10000000, 0, 3000001, why, sizeof why));
    assert_false(warmup_should_hold(deferral, 1000, 0, 300, why, sizeof why));
    for (uint64_t sent = 100; sent <= 5000; sent += 100) {
        assert_false(warmup_should_hold(deferral, sent, 0, sent * 3 / 10, why, sizeof why));
        assert_true(warmup_should_hold(deferral, sent, 0, sent * 3 / 10 + 1, why, sizeof why));
    }

    /* Bounces are checked first when both are over. */
    assert_true(warmup_should_hold(both, 200, 24, 80, why, sizeof why));
    assert_string_equal(why, "bounce rate 12.0% over 5.0% (24 of 200)");
    /* A rate that is not set is no reason. */
    assert_false(warmup_should_hold(bounce, 200, 0, 200, why, sizeof why));
    assert_false(warmup_should_hold(deferral, 200, 200, 0, why, sizeof why));
    assert_true(warmup_should_hold(deferral, 200, 200, 80, why, sizeof why));
    assert_string_equal(why, "deferral rate 40.0% over 30.0% (80 of 200)");

    /* Just over the threshold never reads as equal to it. */
    assert_true(warmup_should_hold(both, 8000, 403, 0, why, sizeof why));
    assert_string_equal(why, "bounce rate 5.04% over 5.00% (403 of 8000)");
    assert_true(warmup_should_hold(both, 1000000000, 50000001, 0, why, sizeof why));
    assert_string_equal(why, "bounce rate 5.0000% over 5.0000% (50000001 of 1000000000)");
    /* A threshold finer than a tenth of a percent is shown as written. */
    assert_false(warmup_should_hold(fine, 10000, 25, 0, why, sizeof why));
    assert_true(warmup_should_hold(fine, 10000, 26, 0, why, sizeof why));
    assert_string_equal(why, "bounce rate 0.26% over 0.25% (26 of 10000)");

    /* why may be NULL or short; the answer is the same. */
    assert_true(warmup_should_hold(both, 200, 24, 0, NULL, 0));
    assert_true(warmup_should_hold(both, 200, 24, 0, NULL, 50));
    char tiny[8];
    assert_true(warmup_should_hold(both, 200, 24, 0, tiny, sizeof tiny));
    assert_string_equal(tiny, "bounce ");
    why[0] = 'x';
    assert_true(warmup_should_hold(both, 200, 24, 0, why, 0));
    assert_int_equal(why[0], 'x');
    warmup_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_standard_example),
        cmocka_unit_test(test_date_parse),
        cmocka_unit_test(test_date_format),
        cmocka_unit_test(test_day_hour),
        cmocka_unit_test(test_day_number_and_step),
        cmocka_unit_test(test_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
