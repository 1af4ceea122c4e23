/* tests/unit/schedulers/test_backoff.c — adaptive backoff: parse errors that name the field,
 * first-match precedence, scope by provider and by domain suffix, the subject text, triggers
 * over a fake clock (immediate, N within a window, the reset after firing, the tumbling window
 * of large counts), the tracker's LRU bound, the table of holds, and the shipped rules against
 * real provider replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "schedulers/backoff.h"

#define S 1000ull /* ms */

/* The rules the shipped etc/shaping.json carries as "backoff_rules". */
static const char shipped_rules[] =
    "[\n"
    "  {\n"
    "    \"name\": \"yahoo-tss04\",\n"
    "    \"comment\": \"Yahoo and AOL defer mail from this IP for unexpected volume or user "
    "complaints ([TSS04]). Each further attempt from the IP during the deferral counts "
    "against it, so stop this source sending to Yahoo for an hour; the other sources carry "
    "on.\",\n"
    "    \"match\": \"^421 .*\\\\[TSS04\\\\]\",\n"
    "    \"providers\": [\"yahoo\"],\n"
    "    \"action\": \"suspend_source\",\n"
    "    \"duration_s\": 3600\n"
    "  },\n"
    "  {\n"
    "    \"name\": \"gmail-ip-rate-limited\",\n"
    "    \"comment\": \"Gmail 4.7.28: an unusual rate of unsolicited mail from this IP, "
    "which is now rate limited. The limit is on the sending IP: pause this source to Gmail "
    "for 30 minutes, because retrying at once only makes it last longer.\",\n"
    "    \"match\": \"^421 4\\\\.7\\\\.28 \",\n"
    "    \"providers\": [\"gmail\"],\n"
    "    \"action\": \"suspend_source\",\n"
    "    \"duration_s\": 1800\n"
    "  },\n"
    "  {\n"
    "    \"name\": \"gmail-unusual-rate\",\n"
    "    \"comment\": \"Gmail's other wording for the same limit, under the generic 4.7.0 "
    "('Our system has detected an unusual rate of unsolicited mail'). The reaction is the "
    "same as gmail-ip-rate-limited. It has its own name so a hold shows which reply "
    "arrived.\",\n"
    "    \"match\": \"^421 4\\\\.7\\\\.0 .*unusual rate\",\n"
    "    \"providers\": [\"gmail\"],\n"
    "    \"action\": \"suspend_source\",\n"
    "    \"duration_s\": 1800\n"
    "  },\n"
    "  {\n"
    "    \"name\": \"microsoft-ip-reputation\",\n"
    "    \"comment\": \"Microsoft 4.7.650: this IP is temporarily rate limited because of "
    "its reputation. Pause this source to Microsoft for an hour; sources with their own "
    "reputation carry on.\",\n"
    "    \"match\": \"^451 4\\\\.7\\\\.650 \",\n"
    "    \"providers\": [\"microsoft\"],\n"
    "    \"action\": \"suspend_source\",\n"
    "    \"duration_s\": 3600\n"
    "  },\n"
    "  {\n"
    "    \"name\": \"microsoft-server-busy\",\n"
    "    \"comment\": \"Microsoft 4.7.500 'Server busy. Please try again later': Microsoft "
    "is throttling our volume to the destination. One reply can be noise. After 5 within 5 "
    "minutes, limit the destination to 2 messages a second for 15 minutes.\",\n"
    "    \"match\": \"^451 4\\\\.7\\\\.500 \",\n"
    "    \"providers\": [\"microsoft\"],\n"
    "    \"action\": \"reduce_rate\",\n"
    "    \"rate_per_s\": 2,\n"
    "    \"duration_s\": 900,\n"
    "    \"trigger\": {\"count\": 5, \"within_s\": 300}\n"
    "  },\n"
    "  {\n"
    "    \"name\": \"microsoft-s3150-blocklist\",\n"
    "    \"comment\": \"Microsoft (S3150): the IP is on Microsoft's block list, and the 550 "
    "already fails that recipient. Nothing from this source gets through until it is "
    "delisted (request it at https://sender.office.com). Stop this source for 6 hours "
    "instead of bouncing mail that another source could deliver.\",\n"
    "    \"match\": \"^550 5\\\\.7\\\\.1 .*\\\\(S3150\\\\)\",\n"
    "    \"providers\": [\"microsoft\"],\n"
    "    \"action\": \"suspend_source\",\n"
    "    \"duration_s\": 21600\n"
    "  },\n"
    "  {\n"
    "    \"name\": \"too-many-connections\",\n"
    "    \"comment\": \"Any server: 'too many connections' (from our IP). The engine already "
    "halves a site's connections on each 421. If this reply keeps coming (5 within 2 "
    "minutes), pause this source to the destination for 5 minutes so its open sessions can "
    "drain.\",\n"
    "    \"match\": \"^4[0-9]{2} .*too many (concurrent )?(smtp )?connections\",\n"
    "    \"action\": \"suspend_source\",\n"
    "    \"duration_s\": 300,\n"
    "    \"trigger\": {\"count\": 5, \"within_s\": 120}\n"
    "  }\n"
    "]\n";

/* JSON written with ' for " (none of these tests needs a quote in a value). */
static char *q(const char *s)
{
    char *j = strdup(s);
    assert_non_null(j);
    for (char *p = j; *p; p++)
        if (*p == '\'')
            *p = '"';
    return j;
}

static struct backoff_rules *parse_ok(const char *json)
{
    struct backoff_rules *r = NULL;
    char err[512] = "";
    if (backoff_parse(json, strlen(json), &r, err, sizeof err) != 0)
        fail_msg("parse failed: %s\n%s", err, json);
    assert_non_null(r);
    return r;
}

static struct backoff_rules *parse_q(const char *s)
{
    char *j = q(s);
    struct backoff_rules *r = parse_ok(j);
    free(j);
    return r;
}

/* want is the whole message, or its beginning when it ends in '*' (for text from jansson or
 * regerror, which varies between versions). */
static void expect_error_json(const char *json, const char *want)
{
    struct backoff_rules *r = (struct backoff_rules *)1;
    char err[512] = "";
    if (backoff_parse(json, strlen(json), &r, err, sizeof err) == 0)
        fail_msg("parsed, wanted error \"%s\":\n%s", want, json);
    assert_null(r);
    size_t wl = strlen(want);
    bool prefix = wl && want[wl - 1] == '*';
    if (prefix ? strncmp(err, want, wl - 1) != 0 : strcmp(err, want) != 0)
        fail_msg("error \"%s\", wanted \"%s\"\n%s", err, want, json);
}

static void expect_error(const char *s, const char *want)
{
    char *j = q(s);
    expect_error_json(j, want);
    free(j);
}

/* One rule: base fields plus extra (",'k':v..." or ""), in an array after a valid rule so the
 * index in the path is checked too. */
static void expect_rule_error(const char *fields, const char *want)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "[{'name':'ok','match':'x','action':'bounce','duration_s':1},{%s}]",
             fields);
    expect_error(buf, want);
}

#define BASE "'name':'r','match':'^421 ','action':'suspend','duration_s':60"

static void test_action_text(void **state)
{
    (void)state;
    static const char *const names[] = {"suspend", "suspend_source", "reduce_rate", "bounce"};
    for (int a = BACKOFF_SUSPEND; a <= BACKOFF_BOUNCE; a++) {
        enum backoff_action back = BACKOFF_BOUNCE + 1;
        assert_string_equal(backoff_action_to_text((enum backoff_action)a), names[a]);
        assert_int_equal(backoff_action_from_text(names[a], &back), 0);
        assert_int_equal(back, a);
    }
    enum backoff_action x = BACKOFF_SUSPEND;
    assert_int_equal(backoff_action_from_text("Suspend", &x), -1);
    assert_int_equal(backoff_action_from_text("", &x), -1);
    assert_int_equal(backoff_action_from_text(NULL, &x), -1);
    assert_int_equal(x, BACKOFF_SUSPEND);
    assert_string_equal(backoff_action_to_text((enum backoff_action)99), "unknown");
}

static void test_parse_ok(void **state)
{
    (void)state;
    /* The example in backoff.h. */
    struct backoff_rules *r = parse_ok(
        "[{\"name\": \"gmail-rate\", \"match\": \"^421 4\\\\.7\\\\.28 \", \"providers\": [\"gmail\"],\n"
        "  \"domains\": [\"example.com\"], \"action\": \"reduce_rate\", \"duration_s\": 900,\n"
        "  \"rate_per_s\": 1.5, \"trigger\": {\"count\": 5, \"within_s\": 60}},\n"
        " {\"name\": \"A.b_c-9\", \"comment\": \"x\", \"match\": \"x\", \"action\": \"bounce\",\n"
        "  \"duration_s\": 604800, \"trigger\": {\"count\": 1, \"within_s\": 30, \"comment\": \"\"}}]");
    assert_int_equal(backoff_count(r), 2);
    struct backoff_rule_info in;
    backoff_rule_get(r, 0, &in);
    assert_string_equal(in.name, "gmail-rate");
    assert_string_equal(in.pattern, "^421 4\\.7\\.28 ");
    assert_int_equal(in.action, BACKOFF_REDUCE_RATE);
    assert_int_equal(in.duration_s, 900);
    assert_true(in.rate_per_s == 1.5);
    assert_int_equal(in.trigger_count, 5);
    assert_int_equal(in.trigger_window_s, 60);
    backoff_rule_get(r, 1, &in);
    assert_string_equal(in.name, "A.b_c-9");
    assert_int_equal(in.action, BACKOFF_BOUNCE);
    assert_int_equal(in.duration_s, 604800);
    assert_true(in.rate_per_s == 0);
    assert_int_equal(in.trigger_count, 1);               /* within_s means nothing for 1 */
    assert_int_equal(in.trigger_window_s, 0);
    backoff_rule_get(r, 2, &in);                         /* out of range: empty, not a crash */
    assert_string_equal(in.name, "");
    backoff_free(r);

    r = parse_ok("[]");
    assert_int_equal(backoff_count(r), 0);
    backoff_free(r);
    assert_int_equal(backoff_count(NULL), 0);
    backoff_free(NULL);

    /* A name of 63 characters, limits at both ends, and no NUL needed after the text. */
    char name[64];
    memset(name, 'n', 63);
    name[63] = '\0';
    char buf[512];
    snprintf(buf, sizeof buf,
             "[{'name':'%s','match':'a','action':'reduce_rate','duration_s':1,"
             "'rate_per_s':1000000,'trigger':{'count':100000,'within_s':86400}},"
             "{'name':'b','match':'a','action':'reduce_rate','duration_s':1,'rate_per_s':0.001}]"
             "garbage",
             name);
    char *j = q(buf);
    char err[256] = "";
    assert_int_equal(backoff_parse(j, strlen(j) - strlen("garbage"), &r, err, sizeof err), 0);
    free(j);
    backoff_rule_get(r, 0, &in);
    assert_string_equal(in.name, name);
    assert_true(in.rate_per_s == 1000000);
    assert_int_equal(in.trigger_count, 100000);
    assert_int_equal(in.trigger_window_s, 86400);
    backoff_rule_get(r, 1, &in);
    assert_true(in.rate_per_s == 0.001);
    backoff_free(r);

    /* Up to 1000 rules. */
    size_t cap = 1001 * 80 + 16, len = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    many[len++] = '[';
    for (int i = 0; i < 1001; i++)
        len += (size_t)snprintf(many + len, cap - len,
                                "%s{\"name\":\"r%d\",\"match\":\"x\",\"action\":\"bounce\","
                                "\"duration_s\":1}",
                                i ? "," : "", i);
    many[len++] = ']';
    many[len] = '\0';
    expect_error_json(many, "backoff_rules: at most 1000 rules");
    char *last = strrchr(many, '{');
    strcpy(last - 1, "]");
    r = parse_ok(many);
    assert_int_equal(backoff_count(r), 1000);
    backoff_free(r);
    free(many);
}

static void test_parse_errors(void **state)
{
    (void)state;
    /* The text and the array. */
    expect_error("{}", "backoff_rules: expected an array of rules");
    expect_error("", "backoff_rules: line 1 column *");
    expect_error("[{'name':'a'}", "backoff_rules: line 1 column *");
    expect_error("[{'name':'a','name':'b'}]", "backoff_rules: line 1 column *");
    expect_error("[5]", "backoff_rules[0]: expected an object");
    expect_rule_error(BASE ",'pattern':'x'", "backoff_rules[1].pattern: unknown field");
    expect_rule_error(BASE ",'a\\nb':1", "backoff_rules[1].a?b: unknown field");
    expect_rule_error(BASE ",'comment':5", "backoff_rules[1].comment: expected a string");

    /* name */
    static const char *const bad_name =
        "backoff_rules[1].name: expected a name of 1 to 63 letters, digits, '.', '_' or '-'";
    expect_rule_error("'match':'x','action':'bounce','duration_s':1", "backoff_rules[1].name: required");
    expect_rule_error("'name':'','match':'x','action':'bounce','duration_s':1", bad_name);
    expect_rule_error("'name':'a b','match':'x','action':'bounce','duration_s':1", bad_name);
    expect_rule_error("'name':'a:b','match':'x','action':'bounce','duration_s':1", bad_name);
    expect_rule_error("'name':7,'match':'x','action':'bounce','duration_s':1", bad_name);
    expect_rule_error("'name':'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn',"
                      "'match':'x','action':'bounce','duration_s':1", bad_name);
    expect_rule_error("'name':'ok','match':'x','action':'bounce','duration_s':1",
                      "backoff_rules[1].name: \"ok\" is already the name of backoff_rules[0]");

    /* match */
    expect_rule_error("'name':'r','action':'bounce','duration_s':1",
                      "backoff_rules[1].match: required");
    expect_rule_error("'name':'r','match':'','action':'bounce','duration_s':1",
                      "backoff_rules[1].match: expected a non-empty string (a regular expression)");
    expect_rule_error("'name':'r','match':['x'],'action':'bounce','duration_s':1",
                      "backoff_rules[1].match: expected a non-empty string (a regular expression)");
    expect_rule_error("'name':'r','match':'^421 (4\\\\.7','action':'bounce','duration_s':1",
                      "backoff_rules[1].match: invalid regular expression: *");
    expect_rule_error("'name':'r','match':'[a-','action':'bounce','duration_s':1",
                      "backoff_rules[1].match: invalid regular expression: *");
    /* Shapes glibc's regcomp takes seconds to minutes over are refused before it sees
     * them: large once repetitions are expanded, loops over what can match "", many
     * optional atoms, many zero-width assertions. */
    static const struct {
        const char *pattern, *why;
    } slow[] = {
        {"((a{99}){99}){99}", "too large once its repetitions are expanded (more than 2000 atoms)"},
        {"(a{99}){21}", "too large once its repetitions are expanded (more than 2000 atoms)"},
        {"x{2001}", "too large once its repetitions are expanded (more than 2000 atoms)"},
        {"x{2000,}", "too large once its repetitions are expanded (more than 2000 atoms)"},
        {"x{,2001}", "too large once its repetitions are expanded (more than 2000 atoms)"},
        {"S315++++++++++++++++++++0", "too many optional parts (more than 100 atoms under ?, * "
                                      "or {0,n}, repetitions expanded)"},
        {"(.?.?.?.?.?.?.?.?.?.?x){11}", "too many optional parts (more than 100 atoms under ?, "
                                        "* or {0,n}, repetitions expanded)"},
        {"x{0,101}", "too many optional parts (more than 100 atoms under ?, * or {0,n}, "
                     "repetitions expanded)"},
        {"x{5,106}", "too many optional parts (more than 100 atoms under ?, * or {0,n}, "
                     "repetitions expanded)"},
        {"^4+*++++++9", "repeats something that can match the empty string (as \"(a*)+\" does); "
                        "repeat only the part that cannot"},
        {"(a*)*", "repeats something that can match the empty string (as \"(a*)+\" does); "
                  "repeat only the part that cannot"},
        {"((4*){1,9})*", "repeats something that can match the empty string (as \"(a*)+\" does); "
                         "repeat only the part that cannot"},
        {"(x|y?){2}", "repeats something that can match the empty string (as \"(a*)+\" does); "
                      "repeat only the part that cannot"},
        {"(^|a)+", "repeats something that can match the empty string (as \"(a*)+\" does); "
                   "repeat only the part that cannot"},
        {"(a|)+", "repeats something that can match the empty string (as \"(a*)+\" does); "
                  "repeat only the part that cannot"},
        {"a{0}+", "repeats something that can match the empty string (as \"(a*)+\" does); "
                  "repeat only the part that cannot"},
        {"\\\\b\\\\b\\\\b\\\\b\\\\b\\\\b\\\\b\\\\b\\\\b9", "too many anchors (^, $, \\b, \\B, \\<, \\>: "
                                                  "at most 8, repetitions expanded)"},
        {"(x\\\\b){9}", "too many anchors (^, $, \\b, \\B, \\<, \\>: at most 8, repetitions "
                        "expanded)"},
        {"^(^|$)(^|$)(^|$)(^|$)", "too many anchors (^, $, \\b, \\B, \\<, \\>: at most 8, "
                                  "repetitions expanded)"},
        {"(.+)(.+)\\\\2\\\\1", "has a back-reference (\\1 to \\9): not supported, as matching one "
                             "can take minutes"},
        {"(((((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))))",
         "groups nested too deep (at most 32)"},
    };
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        char buf[512], want[512];
        snprintf(buf, sizeof buf, "'name':'r','match':'%s','action':'bounce','duration_s':1",
                 slow[i].pattern);
        snprintf(want, sizeof want, "backoff_rules[1].match: %s", slow[i].why);
        expect_rule_error(buf, want);
    }
    /* Braces in a bracket expression or escaped are no repetition; repetitions side by side
     * add up, they do not multiply. */
    struct backoff_rules *r = parse_q(
        "[{'name':'r','match':'[{]999}[[:alpha:]{]{2}\\\\{99999} x{2} ^4[0-9]{2} ','action':'bounce',"
        "  'duration_s':1},"
        " {'name':'s','match':'[0-9]+\\\\.[0-9]+\\\\.[0-9]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ "
        "[a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ [a-z]+ x{900} y{900}',"
        "  'action':'bounce','duration_s':1},"
        " {'name':'t','match':'(a{99}){17}|(b{10}){8}|(.?.?.?.?.?.?.?.?.?.?x){9}|x{0,10}',"
        "  'action':'bounce','duration_s':1},"
        " {'name':'u','match':'^(a+b?)*(x|y+)+ .*(c?d){2}?[$^]\\\\$ \\\\bz\\\\b(\\\\<w\\\\>){2}$',"
        "  'action':'bounce','duration_s':1},"
        " {'name':'v','match':'((((((((((((((((((((((((((((((((x))))))))))))))))))))))))))))))))',"
        "  'action':'bounce','duration_s':1}]");
    backoff_free(r);
    char longpat[1200];
    int n = snprintf(longpat, sizeof longpat, "[{'name':'r','match':'");
    memset(longpat + n, 'a', 1025);
    snprintf(longpat + n + 1025, sizeof longpat - (size_t)n - 1025,
             "','action':'bounce','duration_s':1}]");
    expect_error(longpat, "backoff_rules[0].match: at most 1024 bytes");

    /* providers, domains */
    expect_rule_error(BASE ",'providers':'gmail'",
                      "backoff_rules[1].providers: expected an array of provider names");
    expect_rule_error(BASE ",'providers':[]",
                      "backoff_rules[1].providers: expected at least one of the provider names "
                      "(leave it out for all)");
    expect_rule_error(BASE ",'providers':['gmail','']",
                      "backoff_rules[1].providers[1]: expected a non-empty string");
    expect_rule_error(BASE ",'providers':['gmail',3]",
                      "backoff_rules[1].providers[1]: expected a non-empty string");
    expect_rule_error(BASE ",'domains':{}",
                      "backoff_rules[1].domains: expected an array of domain names");
    expect_rule_error(BASE ",'domains':[]",
                      "backoff_rules[1].domains: expected at least one of the domain names "
                      "(leave it out for all)");
    expect_rule_error(BASE ",'domains':[null]",
                      "backoff_rules[1].domains[0]: expected a non-empty string");
    expect_rule_error(BASE ",'domains':['a.com','a..com']",
                      "backoff_rules[1].domains[1]: not a domain name");
    expect_rule_error(BASE ",'domains':['...']", "backoff_rules[1].domains[0]: not a domain name");
    expect_rule_error(BASE ",'domains':['exa mple.com']",
                      "backoff_rules[1].domains[0]: not a domain name");

    /* action */
    static const char *const bad_action =
        "backoff_rules[1].action: expected one of suspend, suspend_source, reduce_rate, bounce";
    expect_rule_error("'name':'r','match':'x','duration_s':1", "backoff_rules[1].action: required");
    expect_rule_error("'name':'r','match':'x','action':'pause','duration_s':1", bad_action);
    expect_rule_error("'name':'r','match':'x','action':'SUSPEND','duration_s':1", bad_action);
    expect_rule_error("'name':'r','match':'x','action':1,'duration_s':1", bad_action);
    /* The path example in the brief: the third rule. */
    expect_error("[{'name':'a','match':'x','action':'bounce','duration_s':1},"
                 "{'name':'b','match':'x','action':'bounce','duration_s':1},"
                 "{'name':'c','match':'x','action':'block','duration_s':1}]",
                 "backoff_rules[2].action: expected one of suspend, suspend_source, reduce_rate, "
                 "bounce");

    /* duration_s */
    expect_rule_error("'name':'r','match':'x','action':'bounce'",
                      "backoff_rules[1].duration_s: required");
    expect_rule_error("'name':'r','match':'x','action':'bounce','duration_s':0",
                      "backoff_rules[1].duration_s: must be between 1 and 604800");
    expect_rule_error("'name':'r','match':'x','action':'bounce','duration_s':604801",
                      "backoff_rules[1].duration_s: must be between 1 and 604800");
    expect_rule_error("'name':'r','match':'x','action':'bounce','duration_s':-5",
                      "backoff_rules[1].duration_s: must be between 1 and 604800");
    expect_rule_error("'name':'r','match':'x','action':'bounce','duration_s':99999999999999999",
                      "backoff_rules[1].duration_s: must be between 1 and 604800");
    expect_rule_error("'name':'r','match':'x','action':'bounce','duration_s':1.5",
                      "backoff_rules[1].duration_s: expected an integer");
    expect_rule_error("'name':'r','match':'x','action':'bounce','duration_s':'60'",
                      "backoff_rules[1].duration_s: expected an integer");

    /* rate_per_s */
    expect_rule_error(BASE ",'rate_per_s':1",
                      "backoff_rules[1].rate_per_s: only allowed with action reduce_rate");
    expect_rule_error("'name':'r','match':'x','action':'reduce_rate','duration_s':1",
                      "backoff_rules[1].rate_per_s: required with action reduce_rate");
    static const char *const bad_rate =
        "backoff_rules[1].rate_per_s: must be greater than 0 and at most 1000000";
    expect_rule_error("'name':'r','match':'x','action':'reduce_rate','duration_s':1,'rate_per_s':0",
                      bad_rate);
    expect_rule_error("'name':'r','match':'x','action':'reduce_rate','duration_s':1,"
                      "'rate_per_s':-0.5", bad_rate);
    expect_rule_error("'name':'r','match':'x','action':'reduce_rate','duration_s':1,"
                      "'rate_per_s':1000000.5", bad_rate);
    expect_rule_error("'name':'r','match':'x','action':'reduce_rate','duration_s':1,"
                      "'rate_per_s':'2'", "backoff_rules[1].rate_per_s: expected a number");
    expect_rule_error("'name':'r','match':'x','action':'reduce_rate','duration_s':1,"
                      "'rate_per_s':null", "backoff_rules[1].rate_per_s: expected a number");

    /* trigger */
    expect_rule_error(BASE ",'trigger':5",
                      "backoff_rules[1].trigger: expected an object {\"count\": N, \"within_s\": S}");
    expect_rule_error(BASE ",'trigger':{}", "backoff_rules[1].trigger.count: required");
    expect_rule_error(BASE ",'trigger':{'within_s':60}", "backoff_rules[1].trigger.count: required");
    expect_rule_error(BASE ",'trigger':{'count':0}",
                      "backoff_rules[1].trigger.count: must be between 1 and 100000");
    expect_rule_error(BASE ",'trigger':{'count':100001,'within_s':5}",
                      "backoff_rules[1].trigger.count: must be between 1 and 100000");
    expect_rule_error(BASE ",'trigger':{'count':2.0,'within_s':5}",
                      "backoff_rules[1].trigger.count: expected an integer");
    expect_rule_error(BASE ",'trigger':{'count':2}", "backoff_rules[1].trigger.within_s: required");
    expect_rule_error(BASE ",'trigger':{'count':2,'within_s':0}",
                      "backoff_rules[1].trigger.within_s: must be between 1 and 86400");
    expect_rule_error(BASE ",'trigger':{'count':2,'within_s':86401}",
                      "backoff_rules[1].trigger.within_s: must be between 1 and 86400");
    expect_rule_error(BASE ",'trigger':{'count':1,'within_s':0}",
                      "backoff_rules[1].trigger.within_s: must be between 1 and 86400");
    expect_rule_error(BASE ",'trigger':{'count':2,'within_s':5,'every':1}",
                      "backoff_rules[1].trigger.every: unknown field");
    expect_rule_error(BASE ",'trigger':{'count':2,'within_s':5,'comment':[]}",
                      "backoff_rules[1].trigger.comment: expected a string");

    /* A short err buffer is cut, still terminated; a NULL one is allowed. */
    char *j = q("[{'name':'r'}]");
    char small[8];
    r = (struct backoff_rules *)1;
    assert_int_equal(backoff_parse(j, strlen(j), &r, small, sizeof small), -1);
    assert_null(r);
    assert_string_equal(small, "backoff");
    assert_int_equal(backoff_parse(j, strlen(j), &r, NULL, 0), -1);
    free(j);
}

static int observe(const struct backoff_rules *r, struct backoff_tracker *t, const char *provider,
                   const char *domain, const char *subject, int *matched)
{
    return backoff_observe(r, t, provider, domain, "k", subject, 0, matched);
}

static void test_precedence(void **state)
{
    (void)state;
    struct backoff_rules *r = parse_q(
        "[{'name':'gmail-28','match':'^421 4\\\\.7\\\\.28 ','providers':['gmail'],"
        "  'action':'suspend_source','duration_s':60},"
        " {'name':'any-421','match':'^421 ','action':'suspend','duration_s':60},"
        " {'name':'any-28','match':'4\\\\.7\\\\.28','action':'bounce','duration_s':60},"
        " {'name':'text','match':'unusual RATE','action':'bounce','duration_s':60}]");
    int m = 99;
    /* The first rule in file order that is in scope and matches. */
    assert_int_equal(observe(r, NULL, "gmail", "gmail.com", "421 4.7.28 slow down", &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(observe(r, NULL, "yahoo", "yahoo.com", "421 4.7.28 slow down", &m), 1);
    assert_int_equal(m, 1);
    assert_int_equal(observe(r, NULL, NULL, "x.org", "451 4.7.28 slow down", &m), 2);
    assert_int_equal(m, 2);
    /* Case-insensitive, anywhere in the text unless anchored. */
    assert_int_equal(observe(r, NULL, NULL, NULL, "450 an Unusual Rate of mail", &m), 3);
    assert_int_equal(observe(r, NULL, NULL, NULL, "250 2.0.0 OK", &m), -1);
    assert_int_equal(m, -1);
    assert_int_equal(observe(r, NULL, NULL, NULL, "", NULL), -1);
    assert_int_equal(observe(r, NULL, NULL, NULL, NULL, &m), -1);
    assert_int_equal(m, -1);
    assert_int_equal(observe(NULL, NULL, NULL, NULL, "421 x", &m), -1);
    assert_int_equal(m, -1);
    backoff_free(r);
}

static void test_scope_provider(void **state)
{
    (void)state;
    struct backoff_rules *r = parse_q(
        "[{'name':'ms','match':'x','providers':['microsoft','yahoo'],'action':'bounce',"
        "  'duration_s':1}]");
    int m;
    assert_int_equal(observe(r, NULL, "microsoft", NULL, "x", &m), 0);
    assert_int_equal(observe(r, NULL, "yahoo", "anything.example", "x", &m), 0);
    /* Provider names are compared exactly. */
    assert_int_equal(observe(r, NULL, "Microsoft", NULL, "x", &m), -1);
    assert_int_equal(observe(r, NULL, "microsoft2", NULL, "x", &m), -1);
    assert_int_equal(observe(r, NULL, "micro", NULL, "x", &m), -1);
    assert_int_equal(observe(r, NULL, "", NULL, "x", &m), -1);
    assert_int_equal(observe(r, NULL, NULL, "outlook.com", "x", &m), -1);
    assert_int_equal(m, -1);
    backoff_free(r);
}

static void test_scope_domain(void **state)
{
    (void)state;
    struct backoff_rules *r = parse_q(
        "[{'name':'d','match':'x','domains':['Example.COM.','.other.org'],'action':'bounce',"
        "  'duration_s':1},"
        " {'name':'both','match':'y','providers':['p'],'domains':['example.com'],"
        "  'action':'bounce','duration_s':1}]");
    int m;
    /* Lowercased, trailing (and leading) dots dropped; a suffix on a label boundary. */
    assert_int_equal(observe(r, NULL, NULL, "example.com", "x", &m), 0);
    assert_int_equal(observe(r, NULL, NULL, "a.example.com", "x", &m), 0);
    assert_int_equal(observe(r, NULL, NULL, "A.B.EXAMPLE.COM.", "x", &m), 0);
    assert_int_equal(observe(r, NULL, "gmail", "other.org", "x", &m), 0);
    assert_int_equal(observe(r, NULL, NULL, "badexample.com", "x", &m), -1);
    assert_int_equal(observe(r, NULL, NULL, "example.com.au", "x", &m), -1);
    assert_int_equal(observe(r, NULL, NULL, "com", "x", &m), -1);
    assert_int_equal(observe(r, NULL, NULL, "", "x", &m), -1);
    assert_int_equal(observe(r, NULL, NULL, NULL, "x", &m), -1);
    /* Providers and domains together: both must hold. */
    assert_int_equal(observe(r, NULL, "p", "mx.example.com", "y", &m), 1);
    assert_int_equal(observe(r, NULL, "q", "mx.example.com", "y", &m), -1);
    assert_int_equal(observe(r, NULL, "p", "example.net", "y", &m), -1);
    assert_int_equal(observe(r, NULL, "p", NULL, "y", &m), -1);
    backoff_free(r);
}

static void test_subject(void **state)
{
    (void)state;
    char b[128];
    assert_int_equal(backoff_subject(b, sizeof b, 421, "4.7.28", "Try later"), 20);
    assert_string_equal(b, "421 4.7.28 Try later");
    assert_int_equal(backoff_subject(b, sizeof b, 421, NULL, "Try later"), 13);
    assert_string_equal(b, "421 Try later");
    assert_int_equal(backoff_subject(b, sizeof b, 421, "", "Try later"), 13);
    assert_string_equal(b, "421 Try later");
    /* No reply at all; codes that are not three digits are no reply either. */
    backoff_subject(b, sizeof b, 0, NULL, "connection refused");
    assert_string_equal(b, "000 connection refused");
    backoff_subject(b, sizeof b, 7, NULL, "x");
    assert_string_equal(b, "007 x");
    backoff_subject(b, sizeof b, -1, NULL, "x");
    assert_string_equal(b, "000 x");
    backoff_subject(b, sizeof b, 1000, NULL, "x");
    assert_string_equal(b, "000 x");
    backoff_subject(b, sizeof b, 550, "5.7.1", NULL);
    assert_string_equal(b, "550 5.7.1 ");
    /* A multi-line reply joined with CRLF reads as one line. */
    backoff_subject(b, sizeof b, 421, "4.7.0", "line one\r\nline two\nthree\r");
    assert_string_equal(b, "421 4.7.0 line one  line two three ");

    /* Cut short like snprintf: the full length back, always terminated. */
    memset(b, 'Z', sizeof b);
    assert_int_equal(backoff_subject(b, 8, 421, "4.7.28", "Try later"), 20);
    assert_string_equal(b, "421 4.7");
    assert_int_equal(b[8], 'Z');
    assert_int_equal(backoff_subject(b, 1, 421, "4.7.28", "x"), 12);
    assert_string_equal(b, "");
    assert_int_equal(backoff_subject(b, 3, 421, NULL, "x"), 5);
    assert_string_equal(b, "42");
    assert_int_equal(backoff_subject(NULL, 0, 421, "4.7.28", "x"), 12);
    assert_int_equal(backoff_subject(b, 12, 421, "4.7.28", "x"), 12);
    assert_string_equal(b, "421 4.7.28 ");
    assert_int_equal(backoff_subject(b, 13, 421, "4.7.28", "x"), 12);
    assert_string_equal(b, "421 4.7.28 x");
}

static void test_trigger_immediate(void **state)
{
    (void)state;
    struct backoff_rules *r = parse_q(
        "[{'name':'now','match':'^421 ','action':'suspend','duration_s':60},"
        " {'name':'one','match':'^451 ','action':'suspend','duration_s':60,'trigger':{'count':1}}]");
    struct backoff_tracker *t = NULL;
    assert_int_equal(backoff_tracker_create(&t, 4), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "421 a", (uint64_t)i, NULL), 0);
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "451 a", (uint64_t)i, NULL), 1);
    }
    assert_int_equal(backoff_observe(r, NULL, NULL, NULL, NULL, "421 a", 0, NULL), 0);
    backoff_tracker_free(t);
    backoff_free(r);
}

static void test_trigger_window(void **state)
{
    (void)state;
    struct backoff_rules *r = parse_q(
        "[{'name':'three','match':'^421 ','action':'suspend','duration_s':60,"
        "  'trigger':{'count':3,'within_s':60}},"
        " {'name':'other','match':'^451 ','action':'suspend','duration_s':60,"
        "  'trigger':{'count':2,'within_s':10}}]");
    struct backoff_tracker *t = NULL;
    assert_int_equal(backoff_tracker_create(&t, 100), 0);
    uint64_t now = 1700000000000ull;
    int m = 99;

    /* Matches spread beyond the window never fire: one every 30 s is two per minute. */
    for (int i = 0; i < 20; i++) {
        now += 30 * S;
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", now, &m), -1);
        assert_int_equal(m, 0);
    }
    /* Three inside the window fire, at the third (now - 30 s, now, now + 20 s). */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", now += 20 * S, &m), 0);
    assert_int_equal(m, 0);

    /* Firing starts the count again: the two matches just before do not carry over. */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", now += 1, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", now += 1, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", now += 1, NULL), 0);

    /* The window is within_s long: a match exactly 60 s after the first is outside it. */
    uint64_t t0 = now + 1000 * S;
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0 + 30 * S, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0 + 60 * S, NULL), -1);
    /* ... but it is the third within 60 s of the second. */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0 + 61 * S, NULL), 0);
    t0 += 1000 * S;
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0 + 30 * S, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "dest", "421 x", t0 + 60 * S - 1, NULL), 0);

    /* Counts are per key and per rule. */
    now = t0 + 1000 * S;
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "b", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "451 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "b", "451 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "451 x", now + 9 * S, NULL), 1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "421 x", now, NULL), 0);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "b", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "b", "421 x", now, NULL), 0);
    /* A NULL key is the empty key. */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, NULL, "451 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "", "451 x", now, NULL), 1);

    /* A clock that steps back counts the earlier match as recent, never as a wrap. */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "c", "451 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "c", "451 x", now - 500 * S, NULL), 1);

    /* Reset forgets every count. */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "d", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "d", "421 x", now, NULL), -1);
    backoff_tracker_reset(t);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "d", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "d", "421 x", now, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "d", "421 x", now, NULL), 0);

    /* With no tracker a counted rule is matched but never fires. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(backoff_observe(r, NULL, NULL, NULL, "d", "421 x", now, &m), -1);
        assert_int_equal(m, 0);
    }
    backoff_tracker_free(t);
    backoff_free(r);
}

static void test_trigger_large_count(void **state)
{
    (void)state;
    /* Beyond the ring, a tumbling window: count matches within within_s of the first. */
    struct backoff_rules *r = parse_q(
        "[{'name':'many','match':'x','action':'suspend','duration_s':60,"
        "  'trigger':{'count':100,'within_s':10}},"
        " {'name':'ring','match':'y','action':'suspend','duration_s':60,"
        "  'trigger':{'count':64,'within_s':10}}]");
    struct backoff_tracker *t = NULL;
    assert_int_equal(backoff_tracker_create(&t, 10), 0);
    uint64_t now = 5000 * S;
    for (int i = 1; i < 100; i++)
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "x", now + (uint64_t)i * 50, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "x", now + 9999, NULL), 0);
    /* Spread: 99 in one window, then the window runs out and the count starts again. */
    now += 100 * S;
    for (int i = 0; i < 99; i++)
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "x", now + (uint64_t)i, NULL), -1);
    for (int i = 0; i < 99; i++)
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "x", now + 10 * S + (uint64_t)i, NULL),
                         -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "x", now + 10 * S + 99, NULL), 0);

    /* 64 is still an exact sliding window. */
    now += 100 * S;
    for (int i = 0; i < 63; i++)
        assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "y", now + (uint64_t)i * 100, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "y", now + 10 * S, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "k", "y", now + 10 * S + 1, NULL), 1);
    backoff_tracker_free(t);
    backoff_free(r);
}

static void test_tracker_lru(void **state)
{
    (void)state;
    struct backoff_tracker *t = NULL;
    assert_int_equal(backoff_tracker_create(&t, 0), -22);       /* -EINVAL */
    assert_null(t);
    struct backoff_rules *r = parse_q(
        "[{'name':'two','match':'x','action':'suspend','duration_s':60,"
        "  'trigger':{'count':2,'within_s':3600}}]");
    assert_int_equal(backoff_tracker_create(&t, 2), 0);

    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "x", 1, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "b", "x", 2, NULL), -1);
    /* A third key forgets the least recently used, a. */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "c", "x", 3, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "x", 4, NULL), -1);   /* b goes */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "c", "x", 5, NULL), 0);    /* c kept */
    /* Using a key makes it the most recent: a (used just now) stays, d pushes out ... */
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "d", "x", 6, NULL), -1);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "a", "x", 7, NULL), 0);
    assert_int_equal(backoff_observe(r, t, NULL, NULL, "b", "x", 8, NULL), -1);

    /* Many keys, long and short, in a small tracker: memory stays bounded (ASan would see a
     * leak or overflow), and the last two are still counted. */
    char key[1100];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "key-%d-", i);
        size_t len = (size_t)n + (size_t)(i * 7 % 1000);
        memset(key + n, 'k', len - (size_t)n);
        key[len] = '\0';
        assert_int_equal(backoff_observe(r, t, NULL, NULL, key, "x", 10, NULL), -1);
    }
    assert_int_equal(backoff_observe(r, t, NULL, NULL, key, "x", 11, NULL), 0);
    backoff_tracker_free(t);
    backoff_tracker_free(NULL);
    backoff_tracker_reset(NULL);
    backoff_free(r);
}

static void test_tracker_rules_change(void **state)
{
    (void)state;
    /* The caller should reset the tracker when the rules change; when it does not, a count
     * kept under the old rules starts again rather than being misread. */
    struct backoff_rules *a = parse_q(
        "[{'name':'r','match':'x','action':'suspend','duration_s':60,"
        "  'trigger':{'count':3,'within_s':60}}]");
    struct backoff_rules *b = parse_q(
        "[{'name':'r','match':'x','action':'suspend','duration_s':60,"
        "  'trigger':{'count':2,'within_s':60}}]");
    struct backoff_rules *c = parse_q(
        "[{'name':'r','match':'x','action':'suspend','duration_s':60,"
        "  'trigger':{'count':80,'within_s':60}}]");
    struct backoff_tracker *t = NULL;
    assert_int_equal(backoff_tracker_create(&t, 8), 0);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 1, NULL), -1);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 2, NULL), -1);
    assert_int_equal(backoff_observe(b, t, NULL, NULL, "k", "x", 3, NULL), -1);   /* shrinks */
    assert_int_equal(backoff_observe(b, t, NULL, NULL, "k", "x", 4, NULL), 0);
    assert_int_equal(backoff_observe(b, t, NULL, NULL, "k", "x", 5, NULL), -1);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 6, NULL), -1);   /* grows */
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 7, NULL), -1);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 8, NULL), 0);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 9, NULL), -1);
    for (unsigned i = 1; i < 80; i++)                                             /* tumbling */
        assert_int_equal(backoff_observe(c, t, NULL, NULL, "k", "x", 10 + i, NULL), -1);
    assert_int_equal(backoff_observe(c, t, NULL, NULL, "k", "x", 100, NULL), 0);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 101, NULL), -1);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 102, NULL), -1);
    assert_int_equal(backoff_observe(a, t, NULL, NULL, "k", "x", 103, NULL), 0);
    backoff_tracker_free(t);
    backoff_free(a);
    backoff_free(b);
    backoff_free(c);
}

struct seen {
    unsigned n;
    char keys[8][32];
};

static void on_hold(const struct backoff_hold *h, void *arg)
{
    struct seen *s = arg;
    assert_true(s->n < 8 && strlen(h->key) < sizeof s->keys[0]);
    memcpy(s->keys[s->n++], h->key, strlen(h->key) + 1);
}

static bool seen_has(const struct seen *s, const char *key)
{
    for (unsigned i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0)
            return true;
    return false;
}

static struct backoff_hold hold(const char *key, enum backoff_action a, uint64_t until_ms)
{
    struct backoff_hold h;
    memset(&h, 0, sizeof h);
    snprintf(h.key, sizeof h.key, "%s", key);
    h.action = a;
    h.until_ms = until_ms;
    snprintf(h.rule, sizeof h.rule, "manual");
    snprintf(h.reason, sizeof h.reason, "421 4.7.28 slow down");
    return h;
}

static void test_table(void **state)
{
    (void)state;
    struct backoff_table *t = NULL;
    assert_int_equal(backoff_table_create(&t, 0), -22);
    assert_null(t);
    assert_int_equal(backoff_table_create(&t, 3), 0);

    struct backoff_hold h = hold("dest:provider:gmail", BACKOFF_SUSPEND, 100 * S);
    assert_int_equal(backoff_table_put(t, &h), 0);
    const struct backoff_hold *g = backoff_table_get(t, "dest:provider:gmail", 10 * S);
    assert_non_null(g);
    assert_int_equal(g->action, BACKOFF_SUSPEND);
    assert_int_equal(g->until_ms, 100 * S);
    assert_string_equal(g->rule, "manual");
    assert_string_equal(g->reason, "421 4.7.28 slow down");
    assert_null(backoff_table_get(t, "dest:provider:yahoo", 10 * S));
    assert_null(backoff_table_get(t, "DEST:provider:gmail", 10 * S));   /* keys are exact */
    assert_null(backoff_table_get(t, NULL, 10 * S));
    /* In force while until_ms > now. */
    assert_non_null(backoff_table_get(t, "dest:provider:gmail", 100 * S - 1));
    assert_null(backoff_table_get(t, "dest:provider:gmail", 100 * S));

    /* One hold per key: a newer put replaces it (even a shorter one), in place. */
    h = hold("dest:provider:gmail", BACKOFF_REDUCE_RATE, 50 * S);
    h.rate_per_s = 2.5;
    snprintf(h.rule, sizeof h.rule, "gmail-rate");
    assert_int_equal(backoff_table_put(t, &h), 0);
    const struct backoff_hold *g2 = backoff_table_get(t, "dest:provider:gmail", 10 * S);
    assert_ptr_equal(g2, g);
    assert_int_equal(g2->action, BACKOFF_REDUCE_RATE);
    assert_true(g2->rate_per_s == 2.5);
    assert_int_equal(g2->until_ms, 50 * S);
    assert_string_equal(g2->rule, "gmail-rate");
    /* Putting back what get returned is fine. */
    assert_int_equal(backoff_table_put(t, g2), 0);
    assert_int_equal(g2->until_ms, 50 * S);

    /* Bounded: a fourth key fails, a replacement does not. */
    h = hold("dest:ip-a|mx:mx1.example.com", BACKOFF_SUSPEND_SOURCE, 20 * S);
    assert_int_equal(backoff_table_put(t, &h), 0);
    h = hold("dest:domain:example.org", BACKOFF_BOUNCE, 200 * S);
    assert_int_equal(backoff_table_put(t, &h), 0);
    h = hold("dest:domain:full.example", BACKOFF_BOUNCE, 200 * S);
    assert_int_equal(backoff_table_put(t, &h), -1);
    assert_null(backoff_table_get(t, "dest:domain:full.example", 0));
    h = hold("dest:domain:example.org", BACKOFF_SUSPEND, 300 * S);
    assert_int_equal(backoff_table_put(t, &h), 0);

    /* A key that fills the array has no room for its NUL: refused. Unterminated rule and
     * reason are cut to fit. */
    memset(h.key, 'k', sizeof h.key);
    assert_int_equal(backoff_table_put(t, &h), -1);
    char longkey[sizeof h.key + 1];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_null(backoff_table_get(t, longkey, 0));
    backoff_table_remove(t, longkey);

    /* each: the holds in force at now. */
    struct seen s = {0};
    backoff_table_each(t, 30 * S, on_hold, &s);
    assert_int_equal(s.n, 2);
    assert_true(seen_has(&s, "dest:provider:gmail"));
    assert_true(seen_has(&s, "dest:domain:example.org"));
    memset(&s, 0, sizeof s);
    backoff_table_each(t, 0, on_hold, &s);
    assert_int_equal(s.n, 3);

    /* expire drops holds that ended at or before now, and makes room. */
    assert_int_equal(backoff_table_expire(t, 10 * S), 0);
    assert_int_equal(backoff_table_expire(t, 50 * S), 2);
    assert_int_equal(backoff_table_expire(t, 50 * S), 0);
    memset(&s, 0, sizeof s);
    backoff_table_each(t, 0, on_hold, &s);
    assert_int_equal(s.n, 1);
    assert_true(seen_has(&s, "dest:domain:example.org"));
    h = hold("dest:domain:full.example", BACKOFF_BOUNCE, 200 * S);
    memset(h.rule, 'r', sizeof h.rule);
    memset(h.reason, 'x', sizeof h.reason);
    assert_int_equal(backoff_table_put(t, &h), 0);
    g = backoff_table_get(t, "dest:domain:full.example", 0);
    assert_non_null(g);
    assert_int_equal(strlen(g->rule), sizeof g->rule - 1);
    assert_int_equal(strlen(g->reason), sizeof g->reason - 1);

    /* remove */
    backoff_table_remove(t, "dest:domain:example.org");
    backoff_table_remove(t, "dest:domain:example.org");
    backoff_table_remove(t, "nothing");
    assert_null(backoff_table_get(t, "dest:domain:example.org", 0));
    memset(&s, 0, sizeof s);
    backoff_table_each(t, 0, on_hold, &s);
    assert_int_equal(s.n, 1);
    backoff_table_free(t);
    backoff_table_free(NULL);
}

static void on_hold_remove(const struct backoff_hold *h, void *arg)
{
    backoff_table_remove(arg, h->key);
}

static void test_table_many(void **state)
{
    (void)state;
    /* Hundreds of keys through one table, with expiry, removal and each removing as it goes:
     * what is in force is exactly what the model says. */
    enum { N = 500 };
    struct backoff_table *t = NULL;
    assert_int_equal(backoff_table_create(&t, N), 0);
    char key[64];
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "dest:domain:d%u.example", i);
        struct backoff_hold h = hold(key, BACKOFF_SUSPEND, (uint64_t)(i + 1) * S);
        assert_int_equal(backoff_table_put(t, &h), 0);
    }
    struct backoff_hold extra = hold("one-too-many", BACKOFF_SUSPEND, 1);
    assert_int_equal(backoff_table_put(t, &extra), -1);
    for (unsigned i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "dest:domain:d%u.example", i);
        backoff_table_remove(t, key);
    }
    assert_int_equal(backoff_table_expire(t, 100 * S), 50);       /* odd i below 100 */
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "dest:domain:d%u.example", i);
        bool in = i % 2 == 1 && i >= 100;
        assert_true((backoff_table_get(t, key, 100 * S) != NULL) == in);
    }
    backoff_table_each(t, 0, on_hold_remove, t);
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "dest:domain:d%u.example", i);
        assert_null(backoff_table_get(t, key, 0));
    }
    backoff_table_free(t);
}

struct reply {
    const char *provider, *domain;
    int code;
    const char *enhanced, *text;
    const char *rule;                   /* the rule meant to match, or NULL */
};

static void test_shipped_rules(void **state)
{
    (void)state;
    struct backoff_rules *r = parse_ok(shipped_rules);
    /* Replies as providers send them (multi-line ones joined with CRLF). */
    static const struct reply replies[] = {
        {"yahoo", "yahoo.com", 421, "4.7.0",
         "[TSS04] Messages from 127.0.2.1 temporarily deferred due to unexpected volume or user "
         "complaints - 4.16.55; see https://postmaster.yahooinc.com/error-codes",
         "yahoo-tss04"},
        {"yahoo", "aol.com", 421, NULL,
         "[TSS04] Messages from 127.0.2.1 temporarily deferred due to user complaints",
         "yahoo-tss04"},
        {"gmail", "gmail.com", 421, "4.7.28",
         "[127.0.2.1      15] Our system has detected an unusual rate of\r\n"
         "unsolicited mail originating from your IP address. To protect our\r\n"
         "users from spam, mail sent from your IP address has been temporarily\r\n"
         "rate limited. For more information, go to\r\n"
         "https://support.google.com/mail/?p=UnsolicitedRateLimitError to\r\n"
         "review our Bulk Email Senders Guidelines. a1-20020a05600c000000b0041 - gsmtp",
         "gmail-ip-rate-limited"},
        {"gmail", "example.com", 421, "4.7.0",
         "[127.0.2.1      15] Our system has detected an unusual rate of\r\n"
         "unsolicited mail originating from your IP address. a1si1234567wrb.12 - gsmtp",
         "gmail-unusual-rate"},
        {"microsoft", "outlook.com", 451, "4.7.650",
         "The mail server [127.0.2.1] has been temporarily rate limited due to IP reputation. "
         "For e-mail delivery information, see https://postmaster.live.com (S775) "
         "[Name=Protocol Filter Agent][AGT=PFA][MxId=11BA4C1D2B3A4E5F] "
         "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]",
         "microsoft-ip-reputation"},
        {"microsoft", "hotmail.com", 550, "5.7.1",
         "Unfortunately, messages from [127.0.2.1] weren't sent. Please contact your Internet "
         "service provider since part of their network is on our block list (S3150). You can "
         "also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
         "[AM0PR01MB1234.eurprd01.prod.exchangelabs.com]",
         "microsoft-s3150-blocklist"},
        {"microsoft", "contoso.example", 451, "4.7.500",
         "Server busy. Please try again later from [127.0.2.1]. (S77714) "
         "[DB3EUR04FT015.eop-eur04.prod.protection.outlook.com]",
         "microsoft-server-busy"},
        {NULL, "example.org", 421, "4.7.0", "Too many connections", "too-many-connections"},
        {"apple", "icloud.com", 421, NULL, "too many concurrent SMTP connections; please try later",
         "too-many-connections"},
        {"gmail", "gmail.com", 421, "4.7.0",
         "Too many concurrent SMTP connections from this IP address; please try again later.",
         "too-many-connections"},
        /* Out of scope, or nothing a rule is for. */
        {"yahoo", "yahoo.com", 421, "4.7.28", "Our system has detected an unusual rate", NULL},
        {NULL, "example.org", 421, "4.7.0", "[TSS04] Messages from 127.0.2.1 deferred", NULL},
        {"gmail", "gmail.com", 550, "5.7.1",
         "Unfortunately, messages from [127.0.2.1] weren't sent (S3150).", NULL},
        {"gmail", "gmail.com", 421, "4.7.0", "Try again later, closing connection.", NULL},
        {"microsoft", "outlook.com", 250, "2.6.0", "Queued mail for delivery", NULL},
        {NULL, NULL, 0, NULL, "connection refused", NULL},
        {NULL, "example.org", 550, "5.7.1", "Too many connections", NULL},
    };
    struct backoff_tracker *t = NULL;
    assert_int_equal(backoff_tracker_create(&t, 64), 0);
    for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
        const struct reply *p = &replies[i];
        char subject[1024];
        assert_true(backoff_subject(subject, sizeof subject, p->code, p->enhanced, p->text) <
                    sizeof subject);
        int m = 99;
        int fired = backoff_observe(r, t, p->provider, p->domain, "k", subject, 1000 * S, &m);
        struct backoff_rule_info in;
        backoff_rule_get(r, (unsigned)(m < 0 ? 999 : m), &in);
        if (!p->rule) {
            if (m != -1)
                fail_msg("reply %zu matched %s, wanted none:\n%s", i, in.name, subject);
            assert_int_equal(fired, -1);
            continue;
        }
        if (m < 0 || strcmp(in.name, p->rule) != 0)
            fail_msg("reply %zu matched %s, wanted %s:\n%s", i, m < 0 ? "nothing" : in.name,
                     p->rule, subject);
        assert_int_equal(fired, in.trigger_count == 1 ? m : -1);
    }

    /* Every rule is sensible: a name, a scope where one is meant, an action and a duration;
     * the counted ones fire on the count-th reply inside their window. */
    assert_int_equal(backoff_count(r), 7);
    for (unsigned i = 0; i < backoff_count(r); i++) {
        struct backoff_rule_info in;
        backoff_rule_get(r, i, &in);
        assert_true(in.duration_s >= 300 && in.duration_s <= 86400);
        assert_true(in.action != BACKOFF_BOUNCE);    /* a reply never bounces a destination */
        if (in.trigger_count == 1)
            continue;
        backoff_tracker_reset(t);
        const struct reply *p = NULL;
        for (size_t k = 0; k < sizeof replies / sizeof *replies && !p; k++)
            if (replies[k].rule && strcmp(replies[k].rule, in.name) == 0)
                p = &replies[k];
        assert_non_null(p);
        char subject[1024];
        backoff_subject(subject, sizeof subject, p->code, p->enhanced, p->text);
        uint64_t now = 2000 * S;
        for (unsigned k = 1; k < in.trigger_count; k++)
            assert_int_equal(backoff_observe(r, t, p->provider, p->domain, "k", subject,
                                             now + k * S, NULL), -1);
        assert_int_equal(backoff_observe(r, t, p->provider, p->domain, "k", subject,
                                         now + in.trigger_count * S, NULL), (int)i);
    }
    backoff_tracker_free(t);
    backoff_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_text),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_scope_provider),
        cmocka_unit_test(test_scope_domain),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_trigger_immediate),
        cmocka_unit_test(test_trigger_window),
        cmocka_unit_test(test_trigger_large_count),
        cmocka_unit_test(test_tracker_lru),
        cmocka_unit_test(test_tracker_rules_change),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_many),
        cmocka_unit_test(test_shipped_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
