/* schedulers/backoff.c — adaptive backoff: parses the "backoff_rules" array (jansson), matches
 * reply subjects against it (POSIX regex), counts triggers per (rule, key) and keeps the table
 * of holds in force. Owns no clock, no I/O and no policy on what a hold means to delivery:
 * the engine passes the time in, applies the holds and shares them between replicas.
 *
 * Trigger counting, per (rule, key): a rule with "count" up to BACKOFF__RING_MAX keeps the
 * times of its last count matches and fires when the oldest of them is less than within_s
 * before now — an exact sliding window. A larger count keeps a match count and the time its
 * window opened instead: the window opens at a match, runs within_s, and the next match after
 * it opens a new one (a tumbling window; a burst straddling two windows may need up to twice
 * count matches to fire). A match exactly within_s after another is outside its window, as a
 * hold ends at (not after) its until_ms. Counts with a trigger of 1 are not kept at all.
 *
 * Patterns are checked before regcomp sees them (backoff__re_check): glibc's regcomp takes
 * minutes and gigabytes over some short patterns, and a rules file must not hang a reload. */
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/backoff.h"
#include "schedulers/json_path.h"
#include "schedulers/shaping.h"

#define BACKOFF__RULES_MAX 1000
#define BACKOFF__PATTERN_MAX_BYTES 1024
#define BACKOFF__EXPANDED_MAX 2000      /* a pattern's atoms, its repetitions expanded */
#define BACKOFF__SKIPPABLE_MAX 100      /* its atoms a match may skip, likewise */
#define BACKOFF__ANCHORS_MAX 8          /* its zero-width assertions, likewise */
#define BACKOFF__GROUPS_MAX 32          /* its parentheses, nested */
#define BACKOFF__STR(x) BACKOFF__STR_(x)
#define BACKOFF__STR_(x) #x
#define BACKOFF__DURATION_MAX_S 604800
#define BACKOFF__COUNT_MAX 100000
#define BACKOFF__WINDOW_MAX_S 86400
#define BACKOFF__RATE_MAX 1000000.0
#define BACKOFF__DOMAIN_MAX_BYTES 253
#define BACKOFF__RING_MAX 64            /* match times kept per (rule, key) */
#define BACKOFF__SLOTS_MAX (1u << 20)   /* max_keys and max_holds */
#define BACKOFF__PATH_MAX JPATH_MAX

struct backoff__rule {
    char name[BACKOFF_NAME_MAX];
    char *pattern;
    regex_t re;
    bool compiled;
    enum backoff_action action;
    unsigned duration_s;
    double rate_per_s;
    unsigned trigger_count;
    unsigned trigger_window_s;
    char **providers;
    unsigned nproviders;
    char **domains;                     /* lowercased, no leading or trailing dots */
    unsigned ndomains;
};

struct backoff_rules {
    struct backoff__rule *rule;
    unsigned n;
};

static const char *const backoff__action_names[] = {
    [BACKOFF_SUSPEND] = "suspend",
    [BACKOFF_SUSPEND_SOURCE] = "suspend_source",
    [BACKOFF_REDUCE_RATE] = "reduce_rate",
    [BACKOFF_BOUNCE] = "bounce",
};
#define BACKOFF__NACTIONS (sizeof backoff__action_names / sizeof *backoff__action_names)

const char *backoff_action_to_text(enum backoff_action a)
{
    return (unsigned)a < BACKOFF__NACTIONS ? backoff__action_names[a] : "unknown";
}

int backoff_action_from_text(const char *s, enum backoff_action *out)
{
    for (unsigned i = 0; s && i < BACKOFF__NACTIONS; i++)
        if (strcmp(s, backoff__action_names[i]) == 0) {
            *out = (enum backoff_action)i;
            return 0;
        }
    return -1;
}

/* 64-bit FNV-1a, then a final mix so the low bits (the bucket) depend on every byte. */
static uint64_t backoff__hash(const char *s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static size_t backoff__buckets(unsigned max)
{
    size_t n = 16;
    while (n < max)
        n <<= 1;
    return n;
}

/* --- parsing -------------------------------------------------------------------------- */

struct backoff__ctx {
    struct backoff_rules *r;
    char *err;
    size_t errlen;
};

static int backoff__fail(struct backoff__ctx *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jpath_vfail(c->err, c->errlen, path, fmt, ap);
    va_end(ap);
    return -1;
}

static bool backoff__name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < BACKOFF_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}


/* obj.key as an integer in min..max; absent leaves *out alone (or fails when required). */
static int backoff__uint(struct backoff__ctx *c, json_t *obj, const char *path, const char *key,
                         unsigned min, unsigned max, bool required, unsigned *out)
{
    char p[BACKOFF__PATH_MAX];
    jpath_key(p, path, key);
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? backoff__fail(c, p, "required") : 0;
    if (!json_is_integer(v))
        return backoff__fail(c, p, "expected an integer");
    json_int_t x = json_integer_value(v);
    if (x < (json_int_t)min || x > (json_int_t)max)
        return backoff__fail(c, p, "must be between %u and %u", min, max);
    *out = (unsigned)x;
    return 0;
}

/* Skips a bracket expression (p just after its '['): ']' first, after an optional '^', is a
 * member, and "[:alpha:]", "[.x.]", "[=x=]" end at their own closer. */
static const char *backoff__bracket(const char *p)
{
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p && *p != ']') {
        if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            char close = p[1];
            for (p += 2; *p && !(p[0] == close && p[1] == ']'); p++)
                ;
            p += *p ? 2 : 0;
        } else {
            p++;
        }
    }
    return *p ? p + 1 : p;
}

/* The repetition at *pp ("*", "?", "+", "{m}", "{m,}", "{m,n}"), *pp moved past it: how many
 * copies of its operand glibc's regcomp makes (0 and *pp unmoved when there is none), how
 * many of them may be skipped, and whether all may. */
static uint64_t backoff__repeat(const char **pp, uint64_t *skippable, bool *optional)
{
    const char *p = *pp;
    *skippable = 1;
    *optional = *p != '+';
    if (*p == '*' || *p == '?' || *p == '+') {
        *pp = p + 1;
        return *p == '+' ? 2 : 1;       /* a+ is a a* */
    }
    if (*p != '{' || !(p[1] == ',' || (p[1] >= '0' && p[1] <= '9')))
        return 0;
    uint64_t m = 0, n;
    for (p++; *p >= '0' && *p <= '9'; p++)
        m = m < 100000 ? m * 10 + (uint64_t)(*p - '0') : m;
    n = m;
    if (*p == ',') {
        bool open = p[1] < '0' || p[1] > '9';
        for (n = 0, p++; *p >= '0' && *p <= '9'; p++)
            n = n < 100000 ? n * 10 + (uint64_t)(*p - '0') : n;
        if (open)
            n = m + 1;                  /* a{m,} is m copies and a* */
    }
    *pp = *p == '}' ? p + 1 : p;
    *optional = m == 0;
    if (n == 0)
        return 1;
    *skippable = n > m ? n - m : 0;
    return n;
}

/* One group (or the whole pattern) as backoff__re_check reads it. Counts are expanded
 * (a repeated operand counts once per copy), for all alternatives so far and for the last
 * atom. */
struct backoff__re_level {
    uint64_t size, last_size;           /* atoms */
    uint64_t skip, last_skip;           /* atoms a match may skip (under ?, *, {0,n} ...) */
    uint64_t anchors, last_anchors;     /* zero-width assertions */
    bool has_last;                      /* there is an operand for a repetition */
    bool prev_empty;                    /* the alternative before its last atom can match "" */
    bool last_empty;                    /* the last atom can match "" */
    bool alt_empty;                     /* a finished alternative can match "" */
};

static void backoff__re_atom(struct backoff__re_level *l, uint64_t size, uint64_t skip,
                             uint64_t anchors, bool empty)
{
    l->prev_empty = l->prev_empty && l->last_empty;
    l->last_empty = empty;
    l->last_size = size;
    l->last_skip = skip;
    l->last_anchors = anchors;
    l->size += size;
    l->skip += skip;
    l->anchors += anchors;
    l->has_last = true;
}

/* glibc's regex is exponential, or worse, in shapes a fuzzer finds at once, so a pattern is
 * read here first and refused (NULL if fine, else why) when:
 *  - its repetitions expanded make it large: regcomp copies a repeated operand once per
 *    count, so "((a{99}){99}){99}" is a million nodes and every '+' doubles what it repeats;
 *  - a loop repeats something that can match the empty string: regcomp takes 17 s over
 *    "^4*+*+*+*+9" and minutes over "((4*){1,9})*" (such a loop is never needed: repeat the
 *    non-empty part);
 *  - many atoms may be skipped: regexec's cost grows with the positions active at once, and
 *    "(.?.?.? ... x){2}" with 480 of them takes 4 s per reply;
 *  - it has many zero-width assertions: regcomp takes 9 s over 80 "\b" in a row;
 *  - it has a back-reference (a glibc extension to ERE): regexec takes minutes over
 *    "(.+)(.+)\2\1Q" and a 1,000-byte reply.
 * Real rules are far inside every limit; within them the worst patterns found take a few ms
 * on a 1,000-byte reply. */
static const char *backoff__re_check(const char *p)
{
    struct backoff__re_level lv[BACKOFF__GROUPS_MAX + 1];
    unsigned d = 0;
    lv[0] = (struct backoff__re_level){.prev_empty = true, .last_empty = true};
    while (*p) {
        struct backoff__re_level *l = &lv[d];
        const char *q = p;
        uint64_t skippable;
        bool optional;
        uint64_t k = backoff__repeat(&q, &skippable, &optional);
        if (k && l->has_last) {
            if (*p != '?' && l->last_empty)
                return "repeats something that can match the empty string (as \"(a*)+\" "
                       "does); repeat only the part that cannot";
            uint64_t skip = l->last_skip * k + l->last_size * skippable;
            l->size += l->last_size * (k - 1);
            l->last_size *= k;
            l->skip += skip - l->last_skip;
            l->last_skip = skip;
            l->anchors += l->last_anchors * (k - 1);
            l->last_anchors *= k;
            l->last_empty = l->last_empty || optional;
            p = q;
        } else if (*p == '(') {
            if (d == BACKOFF__GROUPS_MAX)
                return "groups nested too deep (at most " BACKOFF__STR(BACKOFF__GROUPS_MAX) ")";
            lv[++d] = (struct backoff__re_level){.prev_empty = true, .last_empty = true};
            p++;
            continue;
        } else if (*p == ')' && d > 0) {
            bool empty = l->alt_empty || (l->prev_empty && l->last_empty);
            d--;
            backoff__re_atom(&lv[d], l->size + 1, l->skip, l->anchors, empty);
            p++;
        } else if (*p == '|') {
            l->alt_empty = l->alt_empty || (l->prev_empty && l->last_empty);
            l->prev_empty = l->last_empty = true;
            l->has_last = false;
            p++;
        } else if (*p == '\\' && p[1] >= '1' && p[1] <= '9') {
            return "has a back-reference (\\1 to \\9): not supported, as matching one can take "
                   "minutes";
        } else if (*p == '^' || *p == '$' || (*p == '\\' && p[1] && strchr("bB<>`'", p[1]))) {
            backoff__re_atom(l, 1, 0, 1, true);
            p += *p == '\\' ? 2 : 1;
        } else {
            /* A character, an escaped one, a bracket expression, or a repetition with
             * nothing before it (glibc refuses it or takes it as a character). */
            if (*p == '[')
                p = backoff__bracket(p + 1);
            else
                p += *p == '\\' && p[1] ? 2 : 1;
            backoff__re_atom(l, 1, 0, 0, false);
        }
        if (lv[d].size > BACKOFF__EXPANDED_MAX)
            return "too large once its repetitions are expanded (more than "
                   BACKOFF__STR(BACKOFF__EXPANDED_MAX) " atoms)";
        if (lv[d].skip > BACKOFF__SKIPPABLE_MAX)
            return "too many optional parts (more than " BACKOFF__STR(BACKOFF__SKIPPABLE_MAX)
                   " atoms under ?, * or {0,n}, repetitions expanded)";
        if (lv[d].anchors > BACKOFF__ANCHORS_MAX)
            return "too many anchors (^, $, \\b, \\B, \\<, \\>: at most "
                   BACKOFF__STR(BACKOFF__ANCHORS_MAX) ", repetitions expanded)";
    }
    return NULL;
}

static int backoff__match(struct backoff__ctx *c, json_t *obj, const char *path,
                          struct backoff__rule *ru)
{
    char p[BACKOFF__PATH_MAX];
    jpath_key(p, path, "match");
    json_t *v = json_object_get(obj, "match");
    if (!v)
        return backoff__fail(c, p, "required");
    if (!json_is_string(v) || json_string_length(v) == 0)
        return backoff__fail(c, p, "expected a non-empty string (a regular expression)");
    if (json_string_length(v) > BACKOFF__PATTERN_MAX_BYTES)
        return backoff__fail(c, p, "at most %d bytes", BACKOFF__PATTERN_MAX_BYTES);
    const char *pat = json_string_value(v);
    const char *why = backoff__re_check(pat);
    if (why)
        return backoff__fail(c, p, "%s", why);
    if (!(ru->pattern = strdup(pat)))
        return backoff__fail(c, "", "out of memory");
    int rc = regcomp(&ru->re, pat, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    if (rc != 0) {
        char msg[160];
        regerror(rc, &ru->re, msg, sizeof msg);
        return backoff__fail(c, p, "invalid regular expression: %s", msg);
    }
    ru->compiled = true;
    return 0;
}

/* A domain suffix, normalised like shaping's: leading and trailing dots dropped, lowercased.
 * NULL if it is not a plausible host name. */
static char *backoff__domain(const char *s)
{
    while (*s == '.')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == '.')
        n--;
    if (n == 0 || n > BACKOFF__DOMAIN_MAX_BYTES)
        return NULL;
    char buf[BACKOFF__DOMAIN_MAX_BYTES + 1];
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    buf[n] = '\0';
    if (strspn(buf, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != n || strstr(buf, ".."))
        return NULL;
    return strdup(buf);
}

/* "providers" or "domains": absent, or a non-empty array of non-empty strings. An empty array
 * is refused rather than read as "every destination", which is what leaving it out means. */
static int backoff__list(struct backoff__ctx *c, json_t *obj, const char *path, const char *key,
                         bool domains, char ***out, unsigned *n)
{
    json_t *arr = json_object_get(obj, key);
    if (!arr)
        return 0;
    char p[BACKOFF__PATH_MAX];
    jpath_key(p, path, key);
    const char *what = domains ? "domain names" : "provider names";
    if (!json_is_array(arr))
        return backoff__fail(c, p, "expected an array of %s", what);
    size_t cnt = json_array_size(arr);
    if (cnt == 0)
        return backoff__fail(c, p, "expected at least one of the %s (leave it out for all)",
                             what);
    if (!(*out = calloc(cnt, sizeof **out)))
        return backoff__fail(c, "", "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        char pi[BACKOFF__PATH_MAX];
        jpath_index(pi, p, i);
        if (!json_is_string(e) || json_string_length(e) == 0)
            return backoff__fail(c, pi, "expected a non-empty string");
        char *s = domains ? backoff__domain(json_string_value(e))
                          : strdup(json_string_value(e));
        if (!s)
            return domains ? backoff__fail(c, pi, "not a domain name")
                           : backoff__fail(c, "", "out of memory");
        (*out)[(*n)++] = s;
    }
    return 0;
}

static int backoff__trigger(struct backoff__ctx *c, json_t *obj, const char *path,
                            struct backoff__rule *ru)
{
    ru->trigger_count = 1;
    ru->trigger_window_s = 0;
    json_t *v = json_object_get(obj, "trigger");
    if (!v)
        return 0;
    char p[BACKOFF__PATH_MAX];
    jpath_key(p, path, "trigger");
    if (!json_is_object(v))
        return backoff__fail(c, p, "expected an object {\"count\": N, \"within_s\": S}");
    static const char *const known[] = {"count", "within_s", NULL};
    if (jpath_fields(c->err, c->errlen, v, p, known) != 0 ||
        backoff__uint(c, v, p, "count", 1, BACKOFF__COUNT_MAX, true, &ru->trigger_count) != 0)
        return -1;
    /* within_s means nothing for count 1 (it fires at once), but a valid one is accepted so
     * that setting count to 1 for a while needs no other edit. */
    unsigned within = 0;
    if (backoff__uint(c, v, p, "within_s", 1, BACKOFF__WINDOW_MAX_S, ru->trigger_count > 1,
                      &within) != 0)
        return -1;
    ru->trigger_window_s = ru->trigger_count > 1 ? within : 0;
    return 0;
}

static int backoff__rule(struct backoff__ctx *c, json_t *obj, size_t i)
{
    struct backoff__rule *ru = &c->r->rule[i];
    char path[BACKOFF__PATH_MAX], p[BACKOFF__PATH_MAX];
    jpath_index(path, "backoff_rules", i);
    if (!json_is_object(obj))
        return backoff__fail(c, path, "expected an object");
    static const char *const known[] = {"name", "match", "providers", "domains", "action",
                                        "duration_s", "rate_per_s", "trigger", NULL};
    if (jpath_fields(c->err, c->errlen, obj, path, known) != 0)
        return -1;

    jpath_key(p, path, "name");
    json_t *name = json_object_get(obj, "name");
    if (!name)
        return backoff__fail(c, p, "required");
    if (!json_is_string(name) || !backoff__name_ok(json_string_value(name)))
        return backoff__fail(c, p, "expected a name of 1 to %d letters, digits, '.', '_' or '-'",
                             BACKOFF_NAME_MAX - 1);
    for (size_t j = 0; j < i; j++)
        if (strcmp(c->r->rule[j].name, json_string_value(name)) == 0)
            return backoff__fail(c, p, "\"%s\" is already the name of backoff_rules[%zu]",
                                 json_string_value(name), j);
    strcpy(ru->name, json_string_value(name));

    if (backoff__match(c, obj, path, ru) != 0 ||
        backoff__list(c, obj, path, "providers", false, &ru->providers, &ru->nproviders) != 0 ||
        backoff__list(c, obj, path, "domains", true, &ru->domains, &ru->ndomains) != 0)
        return -1;

    jpath_key(p, path, "action");
    json_t *act = json_object_get(obj, "action");
    if (!act)
        return backoff__fail(c, p, "required");
    if (!json_is_string(act) || backoff_action_from_text(json_string_value(act), &ru->action) != 0)
        return backoff__fail(c, p, "expected one of suspend, suspend_source, reduce_rate, bounce");

    if (backoff__uint(c, obj, path, "duration_s", 1, BACKOFF__DURATION_MAX_S, true,
                      &ru->duration_s) != 0)
        return -1;

    jpath_key(p, path, "rate_per_s");
    json_t *rate = json_object_get(obj, "rate_per_s");
    if (ru->action != BACKOFF_REDUCE_RATE) {
        if (rate)
            return backoff__fail(c, p, "only allowed with action reduce_rate");
    } else if (!rate) {
        return backoff__fail(c, p, "required with action reduce_rate");
    } else {
        if (!json_is_number(rate))
            return backoff__fail(c, p, "expected a number");
        double x = json_number_value(rate);
        if (!(x > 0) || x > BACKOFF__RATE_MAX)
            return backoff__fail(c, p, "must be greater than 0 and at most %.0f",
                                 BACKOFF__RATE_MAX);
        ru->rate_per_s = x;
    }

    return backoff__trigger(c, obj, path, ru);
}

int backoff_parse(const char *json, size_t len, struct backoff_rules **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct backoff_rules *r = calloc(1, sizeof *r);
    struct backoff__ctx c = {.r = r, .err = err, .errlen = errlen};
    if (!r)
        return backoff__fail(&c, "", "out of memory");

    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        backoff_free(r);
        if (err && errlen)
            snprintf(err, errlen, "backoff_rules: line %d column %d: %s", je.line, je.column,
                     je.text);
        return -1;
    }
    int rc = 0;
    size_t cnt = json_array_size(root);
    if (!json_is_array(root))
        rc = backoff__fail(&c, "backoff_rules", "expected an array of rules");
    else if (cnt > BACKOFF__RULES_MAX)
        rc = backoff__fail(&c, "backoff_rules", "at most %d rules", BACKOFF__RULES_MAX);
    else if (cnt && !(r->rule = calloc(cnt, sizeof *r->rule)))
        rc = backoff__fail(&c, "", "out of memory");
    for (size_t i = 0; rc == 0 && i < cnt; i++) {
        r->n++;
        rc = backoff__rule(&c, json_array_get(root, i), i);
    }
    json_decref(root);
    if (rc != 0) {
        backoff_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void backoff_free(struct backoff_rules *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->n; i++) {
        struct backoff__rule *ru = &r->rule[i];
        if (ru->compiled)
            regfree(&ru->re);
        free(ru->pattern);
        for (unsigned j = 0; j < ru->nproviders; j++)
            free(ru->providers[j]);
        free(ru->providers);
        for (unsigned j = 0; j < ru->ndomains; j++)
            free(ru->domains[j]);
        free(ru->domains);
    }
    free(r->rule);
    free(r);
}

unsigned backoff_count(const struct backoff_rules *r)
{
    return r ? r->n : 0;
}

void backoff_rule_get(const struct backoff_rules *r, unsigned i, struct backoff_rule_info *out)
{
    if (!r || i >= r->n) {
        *out = (struct backoff_rule_info){.name = "", .pattern = ""};
        return;
    }
    const struct backoff__rule *ru = &r->rule[i];
    *out = (struct backoff_rule_info){
        .name = ru->name,
        .pattern = ru->pattern,
        .action = ru->action,
        .duration_s = ru->duration_s,
        .rate_per_s = ru->rate_per_s,
        .trigger_count = ru->trigger_count,
        .trigger_window_s = ru->trigger_window_s,
        .providers = (const char *const *)ru->providers,
        .nproviders = ru->nproviders,
    };
}

/* --- subjects ------------------------------------------------------------------------- */

static void backoff__put(char *out, size_t cap, size_t *n, const char *s)
{
    for (; *s; s++, (*n)++)
        if (*n + 1 < cap)
            out[*n] = *s == '\r' || *s == '\n' ? ' ' : *s;
}

size_t backoff_subject(char *out, size_t cap, int code, const char *enhanced, const char *text)
{
    /* A code that is not three digits is no reply code: "000", as for no reply at all. */
    char head[5];
    snprintf(head, sizeof head, "%03d ", code >= 0 && code <= 999 ? code : 0);
    size_t n = 0;
    backoff__put(out, cap, &n, head);
    if (enhanced && *enhanced) {
        backoff__put(out, cap, &n, enhanced);
        backoff__put(out, cap, &n, " ");
    }
    if (text)
        backoff__put(out, cap, &n, text);
    if (cap)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* --- trigger counting ----------------------------------------------------------------- */

/* One allocation: this, then ring times, then the key. */
struct backoff__count {
    struct backoff__count *hnext;       /* hash chain */
    struct backoff__count *newer, *older;  /* LRU list */
    uint64_t hash;
    size_t bytes;                       /* allocated, for reuse */
    char *key;
    unsigned rule;
    unsigned ring;                      /* times kept (trigger_count), or 0: tumbling window */
    unsigned n;                         /* matches kept / counted */
    unsigned head;                      /* the oldest kept time */
    uint64_t start_ms;                  /* tumbling window: when it opened */
    uint64_t t_ms[];
};

struct backoff_tracker {
    struct backoff__count **bucket;
    size_t nbucket;
    struct backoff__count *newest, *oldest;
    unsigned n, max;
};

int backoff_tracker_create(struct backoff_tracker **out, unsigned max_keys)
{
    *out = NULL;
    if (max_keys == 0 || max_keys > BACKOFF__SLOTS_MAX)
        return -EINVAL;
    struct backoff_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->max = max_keys;
    t->nbucket = backoff__buckets(max_keys);
    if (!(t->bucket = calloc(t->nbucket, sizeof *t->bucket))) {
        free(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

void backoff_tracker_reset(struct backoff_tracker *t)
{
    if (!t)
        return;
    for (struct backoff__count *e = t->newest, *next; e; e = next) {
        next = e->older;
        free(e);
    }
    memset(t->bucket, 0, t->nbucket * sizeof *t->bucket);
    t->newest = t->oldest = NULL;
    t->n = 0;
}

void backoff_tracker_free(struct backoff_tracker *t)
{
    if (!t)
        return;
    backoff_tracker_reset(t);
    free(t->bucket);
    free(t);
}

static void backoff__lru_unlink(struct backoff_tracker *t, struct backoff__count *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void backoff__lru_front(struct backoff_tracker *t, struct backoff__count *e)
{
    e->newer = NULL;
    e->older = t->newest;
    if (t->newest)
        t->newest->newer = e;
    else
        t->oldest = e;
    t->newest = e;
}

/* Takes e out of the hash and the LRU list (the caller frees or reuses it). */
static void backoff__count_unlink(struct backoff_tracker *t, struct backoff__count *e)
{
    struct backoff__count **pp = &t->bucket[e->hash & (t->nbucket - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    backoff__lru_unlink(t, e);
    t->n--;
}

/* The count for (rule, key) keeping ring times, created if it is not there (the least
 * recently used one forgotten when full); NULL on no memory. It becomes the most recent. */
static struct backoff__count *backoff__count_get(struct backoff_tracker *t, unsigned rule,
                                                 unsigned ring, const char *key)
{
    uint64_t h = backoff__hash(key, (uint64_t)rule + 1);
    struct backoff__count **head = &t->bucket[h & (t->nbucket - 1)];
    for (struct backoff__count *e = *head; e; e = e->hnext)
        if (e->hash == h && e->rule == rule && strcmp(e->key, key) == 0) {
            backoff__lru_unlink(t, e);
            backoff__lru_front(t, e);
            if (e->ring == ring)
                return e;
            /* Kept under rules with another count (the caller did not reset). */
            e->n = e->head = 0;
            e->start_ms = 0;
            if (ring <= e->ring) {
                e->ring = ring;
                return e;
            }
            backoff__count_unlink(t, e);
            free(e);
            break;
        }

    size_t keylen = strlen(key);
    size_t need = sizeof(struct backoff__count) + ring * sizeof(uint64_t) + keylen + 1;
    struct backoff__count *e = NULL;
    if (t->n >= t->max) {
        e = t->oldest;
        backoff__count_unlink(t, e);
        if (e->bytes < need) {
            free(e);
            e = NULL;
        }
    }
    size_t bytes = e ? e->bytes : need;
    if (!e && !(e = malloc(need)))
        return NULL;
    memset(e, 0, sizeof *e);
    e->bytes = bytes;
    e->key = (char *)&e->t_ms[ring];
    memcpy(e->key, key, keylen + 1);
    e->hash = h;
    e->rule = rule;
    e->ring = ring;
    e->hnext = *head;
    *head = e;
    backoff__lru_front(t, e);
    t->n++;
    return e;
}

/* Counts a match at now_ms; true when the rule's trigger fires. */
static bool backoff__count_hit(struct backoff__count *e, const struct backoff__rule *ru,
                               uint64_t now_ms)
{
    uint64_t window_ms = (uint64_t)ru->trigger_window_s * 1000;
    unsigned ring = e->ring;
    if (ring == 0) {
        if (e->n == 0 || now_ms < e->start_ms || now_ms - e->start_ms >= window_ms) {
            e->start_ms = now_ms;
            e->n = 0;
        }
        return ++e->n >= ru->trigger_count;
    }
    if (e->n < ring) {
        e->t_ms[(e->head + e->n++) % ring] = now_ms;
    } else {
        e->t_ms[e->head] = now_ms;
        e->head = (e->head + 1) % ring;
    }
    if (e->n < ring)
        return false;
    uint64_t first = e->t_ms[e->head];
    /* A clock that stepped back makes the older match count as recent. */
    return now_ms <= first || now_ms - first < window_ms;
}

static bool backoff__in_scope(const struct backoff__rule *ru, const char *provider,
                              const char *domain)
{
    if (ru->nproviders) {
        unsigned i = 0;
        while (provider && i < ru->nproviders && strcmp(ru->providers[i], provider) != 0)
            i++;
        if (!provider || i == ru->nproviders)
            return false;
    }
    if (ru->ndomains) {
        unsigned i = 0;
        while (domain && i < ru->ndomains && !shaping_suffix_match(domain, ru->domains[i]))
            i++;
        if (!domain || i == ru->ndomains)
            return false;
    }
    return true;
}

int backoff_observe(const struct backoff_rules *r, struct backoff_tracker *t, const char *provider,
                    const char *domain, const char *key, const char *subject, uint64_t now_ms,
                    int *matched)
{
    if (matched)
        *matched = -1;
    if (!r || !subject)
        return -1;
    if (!key)
        key = "";
    for (unsigned i = 0; i < r->n; i++) {
        const struct backoff__rule *ru = &r->rule[i];
        if (!backoff__in_scope(ru, provider, domain) || regexec(&ru->re, subject, 0, NULL, 0) != 0)
            continue;
        if (matched)
            *matched = (int)i;
        if (ru->trigger_count <= 1)
            return (int)i;
        /* Without a tracker (or memory for the count) nothing can be counted. */
        unsigned ring = ru->trigger_count <= BACKOFF__RING_MAX ? ru->trigger_count : 0;
        struct backoff__count *e = t ? backoff__count_get(t, i, ring, key) : NULL;
        if (!e || !backoff__count_hit(e, ru, now_ms))
            return -1;
        backoff__count_unlink(t, e);
        free(e);
        return (int)i;
    }
    return -1;
}

/* --- holds in force ------------------------------------------------------------------- */

struct backoff__slot {
    struct backoff__slot *hnext;        /* hash chain */
    struct backoff__slot *prev, *next;  /* every hold, for expire and each */
    uint64_t hash;
    struct backoff_hold h;
};

struct backoff_table {
    struct backoff__slot **bucket;
    size_t nbucket;
    struct backoff__slot *all;
    unsigned n, max;
};

int backoff_table_create(struct backoff_table **out, unsigned max_holds)
{
    *out = NULL;
    if (max_holds == 0 || max_holds > BACKOFF__SLOTS_MAX)
        return -EINVAL;
    struct backoff_table *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->max = max_holds;
    t->nbucket = backoff__buckets(max_holds);
    if (!(t->bucket = calloc(t->nbucket, sizeof *t->bucket))) {
        free(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

void backoff_table_free(struct backoff_table *t)
{
    if (!t)
        return;
    for (struct backoff__slot *s = t->all, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    free(t->bucket);
    free(t);
}

static struct backoff__slot *backoff__slot_find(const struct backoff_table *t, const char *key)
{
    if (!key || strlen(key) >= sizeof ((struct backoff_hold *)0)->key)
        return NULL;
    uint64_t h = backoff__hash(key, 0);
    for (struct backoff__slot *s = t->bucket[h & (t->nbucket - 1)]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->h.key, key) == 0)
            return s;
    return NULL;
}

static void backoff__slot_drop(struct backoff_table *t, struct backoff__slot *s)
{
    struct backoff__slot **pp = &t->bucket[s->hash & (t->nbucket - 1)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    if (s->prev)
        s->prev->next = s->next;
    else
        t->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    t->n--;
    free(s);
}

int backoff_table_put(struct backoff_table *t, const struct backoff_hold *h)
{
    if (!memchr(h->key, '\0', sizeof h->key))
        return -1;
    struct backoff__slot *s = backoff__slot_find(t, h->key);
    if (!s) {
        if (t->n >= t->max || !(s = calloc(1, sizeof *s)))
            return -1;
        s->hash = backoff__hash(h->key, 0);
        struct backoff__slot **head = &t->bucket[s->hash & (t->nbucket - 1)];
        s->hnext = *head;
        *head = s;
        s->next = t->all;
        if (t->all)
            t->all->prev = s;
        t->all = s;
        t->n++;
    }
    /* h may be the hold get returned for this very key. */
    memmove(&s->h, h, sizeof *h);
    s->h.rule[sizeof s->h.rule - 1] = '\0';
    s->h.reason[sizeof s->h.reason - 1] = '\0';
    return 0;
}

const struct backoff_hold *backoff_table_get(const struct backoff_table *t, const char *key,
                                             uint64_t now_ms)
{
    const struct backoff__slot *s = backoff__slot_find(t, key);
    return s && s->h.until_ms > now_ms ? &s->h : NULL;
}

void backoff_table_remove(struct backoff_table *t, const char *key)
{
    struct backoff__slot *s = backoff__slot_find(t, key);
    if (s)
        backoff__slot_drop(t, s);
}

unsigned backoff_table_expire(struct backoff_table *t, uint64_t now_ms)
{
    unsigned n = 0;
    for (struct backoff__slot *s = t->all, *next; s; s = next) {
        next = s->next;
        if (s->h.until_ms <= now_ms) {
            backoff__slot_drop(t, s);
            n++;
        }
    }
    return n;
}

/* fn may remove the hold it is given (the next one is already known), nothing else. */
void backoff_table_each(const struct backoff_table *t, uint64_t now_ms,
                        void (*fn)(const struct backoff_hold *h, void *arg), void *arg)
{
    for (const struct backoff__slot *s = t->all, *next; s; s = next) {
        next = s->next;
        if (s->h.until_ms > now_ms)
            fn(&s->h, arg);
    }
}
