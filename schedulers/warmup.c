/* schedulers/warmup.c — IP warm-up plans: parses the "warmup_plans" object, answers the caps
 * for a step, turns dates and Unix times into day numbers, and decides the data-driven hold.
 * Owns no counters and reads no clock: the caller counts (in Redis) and passes time in. */
#include "schedulers/warmup.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/json_path.h"

#define WARMUP__STEPS_MAX 366             /* entries in a daily or hourly ramp: a year */
#define WARMUP__CAP_MAX 1000000000        /* messages per day or hour in one entry */
#define WARMUP__PLANS_MAX 64
#define WARMUP__PROVIDERS_MAX 32          /* providers with their own ramp, per plan */
#define WARMUP__MIN_MESSAGES_DEFAULT 100
#define WARMUP__PATH_MAX JPATH_MAX
#define WARMUP__DAY_S 86400
#define WARMUP__HOUR_S 3600

/* One ramp: caps by step (entry i is step i + 1). No hourly ramp is nhourly == 0. */
struct warmup__ramp {
    uint32_t *daily;
    uint32_t *hourly;
    unsigned ndaily;
    unsigned nhourly;
};

struct warmup__provider {
    char name[WARMUP_NAME_MAX];
    struct warmup__ramp ramp;
};

struct warmup_plan {
    char name[WARMUP_NAME_MAX];
    struct warmup__ramp ramp;
    struct warmup__provider *providers;   /* sorted by name */
    unsigned nproviders;
    unsigned steps;                       /* the longest ramp: every step after it is warm */
    bool hold;
    double bounce_rate;                   /* 0: not a reason to hold */
    double deferral_rate;
    uint64_t min_messages;
};

struct warmup_plans {
    struct warmup_plan *plans;            /* sorted by name */
    unsigned n;
};

struct warmup__ctx {
    char *err;
    size_t errlen;
};

/* --- error paths ---------------------------------------------------------------------- */

static int warmup__fail(struct warmup__ctx *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jpath_vfail(c->err, c->errlen, path, fmt, ap);
    va_end(ap);
    return -1;
}

/* Plan names are [A-Za-z0-9._-]; provider names also allow ':' so that every name the
 * shaping rules accept for a provider (short enough) can have a ramp. */
static bool warmup__name_ok(const char *s, bool provider)
{
    size_t n = strlen(s);
    if (n == 0 || n >= WARMUP_NAME_MAX)
        return false;
    return strspn(s, provider ? "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
                              : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}


/* --- parsing -------------------------------------------------------------------------- */

static int warmup__caps_array(struct warmup__ctx *c, json_t *arr, const char *path,
                              uint32_t **out, unsigned *n)
{
    if (!json_is_array(arr))
        return warmup__fail(c, path, "expected an array of 1 to %d integers",
                            WARMUP__STEPS_MAX);
    size_t cnt = json_array_size(arr);
    if (cnt == 0 || cnt > WARMUP__STEPS_MAX)
        return warmup__fail(c, path, "must have 1 to %d entries (one per step)",
                            WARMUP__STEPS_MAX);
    if (!(*out = calloc(cnt, sizeof **out)))
        return warmup__fail(c, "", "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_integer(e) || json_integer_value(e) < 1 ||
            json_integer_value(e) > WARMUP__CAP_MAX) {
            char p[WARMUP__PATH_MAX];
            jpath_index(p, path, i);
            return warmup__fail(c, p, "expected an integer 1..%d", WARMUP__CAP_MAX);
        }
        (*out)[i] = (uint32_t)json_integer_value(e);
    }
    *n = (unsigned)cnt;
    return 0;
}

/* "daily" (required) and "hourly" (optional) of obj, whose other fields were checked. */
static int warmup__ramp(struct warmup__ctx *c, json_t *obj, const char *path,
                        struct warmup__ramp *r)
{
    char p[WARMUP__PATH_MAX];
    jpath_key(p, path, "daily");
    json_t *v = json_object_get(obj, "daily");
    if (!v)
        return warmup__fail(c, p, "required");
    if (warmup__caps_array(c, v, p, &r->daily, &r->ndaily) != 0)
        return -1;
    jpath_key(p, path, "hourly");
    v = json_object_get(obj, "hourly");
    if (v && warmup__caps_array(c, v, p, &r->hourly, &r->nhourly) != 0)
        return -1;
    return 0;
}

static int warmup__rate(struct warmup__ctx *c, json_t *obj, const char *path, const char *key,
                        double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char p[WARMUP__PATH_MAX];
    jpath_key(p, path, key);
    double x = json_is_number(v) ? json_number_value(v) : 0;
    if (!(x > 0 && x <= 1))
        return warmup__fail(c, p, "expected a number greater than 0 and at most 1");
    *out = x;
    return 0;
}

static int warmup__hold(struct warmup__ctx *c, json_t *obj, const char *path,
                        struct warmup_plan *plan)
{
    static const char *const fields[] = {"bounce_rate", "deferral_rate", "min_messages", NULL};
    if (!json_is_object(obj))
        return warmup__fail(c, path, "expected an object");
    if (jpath_fields(c->err, c->errlen, obj, path, fields) != 0)
        return -1;
    if (warmup__rate(c, obj, path, "bounce_rate", &plan->bounce_rate) != 0 ||
        warmup__rate(c, obj, path, "deferral_rate", &plan->deferral_rate) != 0)
        return -1;
    json_t *v = json_object_get(obj, "min_messages");
    if (v) {
        char p[WARMUP__PATH_MAX];
        jpath_key(p, path, "min_messages");
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > WARMUP__CAP_MAX)
            return warmup__fail(c, p, "expected an integer 1..%d", WARMUP__CAP_MAX);
        plan->min_messages = (uint64_t)json_integer_value(v);
    }
    if (plan->bounce_rate == 0 && plan->deferral_rate == 0)
        return warmup__fail(c, path, "needs bounce_rate or deferral_rate (it would never hold)");
    plan->hold = true;
    return 0;
}

static int warmup__provider_cmp(const void *a, const void *b)
{
    return strcmp(((const struct warmup__provider *)a)->name,
                  ((const struct warmup__provider *)b)->name);
}

static int warmup__providers(struct warmup__ctx *c, json_t *obj, const char *path,
                             struct warmup_plan *plan)
{
    static const char *const fields[] = {"daily", "hourly", NULL};
    if (!json_is_object(obj))
        return warmup__fail(c, path, "expected an object of provider names");
    size_t cnt = json_object_size(obj) - (json_object_get(obj, "comment") ? 1 : 0);
    if (cnt > WARMUP__PROVIDERS_MAX)
        return warmup__fail(c, path, "at most %d providers", WARMUP__PROVIDERS_MAX);
    if (cnt && !(plan->providers = calloc(cnt, sizeof *plan->providers)))
        return warmup__fail(c, "", "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char p[WARMUP__PATH_MAX];
        jpath_key(p, path, key);
        if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return warmup__fail(c, p, "expected a string");
            continue;
        }
        if (!warmup__name_ok(key, true))
            return warmup__fail(c, p,
                                "expected a provider name of 1 to %d letters, digits, '.', "
                                "'_', ':' or '-'", WARMUP_NAME_MAX - 1);
        if (!json_is_object(v))
            return warmup__fail(c, p, "expected an object");
        if (jpath_fields(c->err, c->errlen, v, p, fields) != 0)
            return -1;
        struct warmup__provider *pv = &plan->providers[plan->nproviders++];
        memcpy(pv->name, key, strlen(key) + 1);
        if (warmup__ramp(c, v, p, &pv->ramp) != 0)
            return -1;
    }
    if (plan->nproviders > 1)
        qsort(plan->providers, plan->nproviders, sizeof *plan->providers, warmup__provider_cmp);
    return 0;
}

static unsigned warmup__max(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

static int warmup__plan(struct warmup__ctx *c, const char *name, json_t *obj,
                        struct warmup_plan *plan)
{
    static const char *const fields[] = {"daily", "hourly", "providers", "hold", NULL};
    char path[WARMUP__PATH_MAX];
    jpath_key(path, "warmup_plans", name);
    if (!warmup__name_ok(name, false))
        return warmup__fail(c, path, "expected a plan name of 1 to %d letters, digits, '.', "
                            "'_' or '-'", WARMUP_NAME_MAX - 1);
    memcpy(plan->name, name, strlen(name) + 1);
    plan->min_messages = WARMUP__MIN_MESSAGES_DEFAULT;
    if (!json_is_object(obj))
        return warmup__fail(c, path, "expected an object");
    if (jpath_fields(c->err, c->errlen, obj, path, fields) != 0)
        return -1;
    if (warmup__ramp(c, obj, path, &plan->ramp) != 0)
        return -1;

    char p[WARMUP__PATH_MAX];
    json_t *v = json_object_get(obj, "providers");
    jpath_key(p, path, "providers");
    if (v && warmup__providers(c, v, p, plan) != 0)
        return -1;
    v = json_object_get(obj, "hold");
    jpath_key(p, path, "hold");
    if (v && warmup__hold(c, v, p, plan) != 0)
        return -1;

    plan->steps = warmup__max(plan->ramp.ndaily, plan->ramp.nhourly);
    for (unsigned i = 0; i < plan->nproviders; i++) {
        const struct warmup__ramp *r = &plan->providers[i].ramp;
        plan->steps = warmup__max(plan->steps, warmup__max(r->ndaily, r->nhourly));
    }
    return 0;
}

static int warmup__plan_cmp(const void *a, const void *b)
{
    return strcmp(((const struct warmup_plan *)a)->name, ((const struct warmup_plan *)b)->name);
}

static int warmup__root(struct warmup__ctx *c, json_t *root, struct warmup_plans *p)
{
    if (!json_is_object(root))
        return warmup__fail(c, "warmup_plans", "expected an object of plan names");
    size_t cnt = json_object_size(root) - (json_object_get(root, "comment") ? 1 : 0);
    if (cnt > WARMUP__PLANS_MAX)
        return warmup__fail(c, "warmup_plans", "at most %d plans", WARMUP__PLANS_MAX);
    if (cnt && !(p->plans = calloc(cnt, sizeof *p->plans)))
        return warmup__fail(c, "", "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return warmup__fail(c, "warmup_plans.comment", "expected a string");
            continue;
        }
        if (warmup__plan(c, key, v, &p->plans[p->n++]) != 0)
            return -1;
    }
    if (p->n > 1)
        qsort(p->plans, p->n, sizeof *p->plans, warmup__plan_cmp);
    return 0;
}

int warmup_parse(const char *json, size_t len, struct warmup_plans **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    struct warmup__ctx c = {.err = err, .errlen = errlen};
    struct warmup_plans *p = calloc(1, sizeof *p);
    if (!p)
        return warmup__fail(&c, "", "out of memory");
    json_error_t je;
    /* DECODE_ANY: a scalar where the object belongs ("warmup_plans": 5, re-serialised by the
     * shaping file's parser) gets the message below, not jansson's "'[' or '{' expected". */
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        free(p);
        return warmup__fail(&c, "warmup_plans", "line %d column %d: %s", je.line, je.column,
                            je.text);
    }
    int rc = warmup__root(&c, root, p);
    json_decref(root);
    if (rc != 0) {
        warmup_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static void warmup__ramp_free(struct warmup__ramp *r)
{
    free(r->daily);
    free(r->hourly);
}

void warmup_free(struct warmup_plans *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n; i++) {
        struct warmup_plan *plan = &p->plans[i];
        warmup__ramp_free(&plan->ramp);
        for (unsigned j = 0; j < plan->nproviders; j++)
            warmup__ramp_free(&plan->providers[j].ramp);
        free(plan->providers);
    }
    free(p->plans);
    free(p);
}

/* --- lookups -------------------------------------------------------------------------- */

static int warmup__plan_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct warmup_plan *)elem)->name);
}

static int warmup__provider_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct warmup__provider *)elem)->name);
}

const struct warmup_plan *warmup_plan_find(const struct warmup_plans *p, const char *name)
{
    if (!p || !name || !p->n)
        return NULL;
    return bsearch(name, p->plans, p->n, sizeof *p->plans, warmup__plan_key_cmp);
}

unsigned warmup_plans_count(const struct warmup_plans *p) { return p ? p->n : 0; }

const struct warmup_plan *warmup_plans_at(const struct warmup_plans *p, unsigned i)
{
    return p && i < p->n ? &p->plans[i] : NULL;
}

const char *warmup_plan_name(const struct warmup_plan *plan)
{
    return plan->name;
}

unsigned warmup_plan_steps(const struct warmup_plan *plan)
{
    return plan->steps;
}

static const struct warmup__provider *warmup__provider_find(const struct warmup_plan *plan,
                                                            const char *provider)
{
    if (!provider || !plan->nproviders)
        return NULL;
    return bsearch(provider, plan->providers, plan->nproviders, sizeof *plan->providers,
                   warmup__provider_key_cmp);
}

bool warmup_plan_has_provider(const struct warmup_plan *plan, const char *provider)
{
    return warmup__provider_find(plan, provider) != NULL;
}

unsigned warmup_plan_nproviders(const struct warmup_plan *plan)
{
    return plan->nproviders;
}

const char *warmup_plan_provider(const struct warmup_plan *plan, unsigned i)
{
    return i < plan->nproviders ? plan->providers[i].name : NULL;
}

/* --- days ----------------------------------------------------------------------------- */

static bool warmup__leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

void warmup_date_format(int64_t day, char out[static 11])
{
    /* Howard Hinnant's civil_from_days */
    int64_t z = day + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999) {
        snprintf(out, 11, "%s", "0000-00-00");
        return;
    }
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, m % 100u, d % 100u);
}

/* Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's days_from_civil. */
static int64_t warmup__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                     /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static int warmup__digits(const char *s, unsigned n, unsigned *out)
{
    unsigned v = 0;
    for (unsigned i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int warmup_date_parse(const char *s, int64_t *out)
{
    static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, m, d;
    /* Each check stops at a NUL, so nothing past the string's end is read. */
    if (!s || warmup__digits(s, 4, &y) != 0 || s[4] != '-' ||
        warmup__digits(s + 5, 2, &m) != 0 || s[7] != '-' ||
        warmup__digits(s + 8, 2, &d) != 0 || s[10] != '\0')
        return -1;
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1)
        return -1;
    if (d > mdays[m - 1] + (unsigned)(m == 2 && warmup__leap(y)))
        return -1;
    *out = warmup__days_from_civil(y, m, d);
    return 0;
}

int64_t warmup_day_of(int64_t unix_s)
{
    int64_t q = unix_s / WARMUP__DAY_S;
    return unix_s % WARMUP__DAY_S < 0 ? q - 1 : q;
}

unsigned warmup_hour_of(int64_t unix_s)
{
    int64_t r = unix_s % WARMUP__DAY_S;
    if (r < 0)
        r += WARMUP__DAY_S;
    return (unsigned)(r / WARMUP__HOUR_S);
}

int64_t warmup_day_number(int64_t start_day, int64_t today)
{
    if (today < start_day)
        return 0;
    int64_t diff;
    if (__builtin_sub_overflow(today, start_day, &diff) || diff == INT64_MAX)
        return INT64_MAX;
    return diff + 1;
}

unsigned warmup_step(int64_t day_number, unsigned held_days)
{
    if (day_number <= 0)
        return 0;
    if (day_number - 1 <= (int64_t)held_days)
        return 1;
    int64_t step = day_number - (int64_t)held_days;
    return step > UINT_MAX ? UINT_MAX : (unsigned)step;
}

/* --- caps ----------------------------------------------------------------------------- */

static uint64_t warmup__cap(const uint32_t *caps, unsigned n, unsigned step)
{
    return step <= n ? caps[step - 1] : WARMUP_NO_CAP;
}

void warmup_caps(const struct warmup_plan *plan, const char *provider, unsigned step,
                 struct warmup_caps *out)
{
    if (step == 0) {
        out->day = out->hour = 0;
        return;
    }
    const struct warmup__ramp *r = &plan->ramp;
    if (provider) {
        const struct warmup__provider *pv = warmup__provider_find(plan, provider);
        if (!pv) {
            out->day = out->hour = WARMUP_NO_CAP;
            return;
        }
        r = &pv->ramp;
    }
    out->day = warmup__cap(r->daily, r->ndaily, step);
    out->hour = warmup__cap(r->hourly, r->nhourly, step);
}

bool warmup_is_warm(const struct warmup_plan *plan, unsigned step)
{
    return step > plan->steps;
}

/* --- hold ----------------------------------------------------------------------------- */

/* Decimals (1..3) that show the threshold percentage pct as written: 5% is "5.0", 0.25%
 * "0.25". */
static int warmup__decimals(double pct)
{
    double scale = 10;
    for (int d = 1; d < 3; d++, scale *= 10)
        if (fabs(pct * scale - round(pct * scale)) < 1e-6)
            return d;
    return 3;
}

static bool warmup__over(const char *what, uint64_t n, uint64_t sent, double limit, char *why,
                         size_t whylen)
{
    /* A correctly rounded quotient equals the threshold as parsed when the two are the same
     * decimal (10 of 200 against 0.05), so "strictly greater" holds at the threshold. */
    double rate = (double)n / (double)sent;
    if (!(limit > 0) || !(rate > limit))
        return false;
    if (why && whylen) {
        /* Enough decimals that a rate just over its threshold does not read as equal to it. */
        char r[32], l[32];
        for (int d = warmup__decimals(limit * 100);; d++) {
            snprintf(r, sizeof r, "%.*f", d, rate * 100);
            snprintf(l, sizeof l, "%.*f", d, limit * 100);
            if (strcmp(r, l) != 0 || d == 4)
                break;
        }
        snprintf(why, whylen, "%s rate %s%% over %s%% (%" PRIu64 " of %" PRIu64 ")", what, r, l,
                 n, sent);
    }
    return true;
}

bool warmup_should_hold(const struct warmup_plan *plan, uint64_t sent, uint64_t bounced,
                        uint64_t deferred, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!plan->hold || sent == 0 || sent < plan->min_messages)
        return false;
    return warmup__over("bounce", bounced, sent, plan->bounce_rate, why, whylen) ||
           warmup__over("deferral", deferred, sent, plan->deferral_rate, why, whylen);
}
