/* tests/fuzz/fuzz_warmup.c — warmup_parse over arbitrary bytes. Plans that parse must be
 * found by every name the object has, and give, for steps 0..400 and every provider (with a
 * ramp or not), caps in range that are all lifted exactly when the step is warm; text that
 * does not parse must say why and return nothing. The same bytes, read as a date, must parse
 * only if they are the very text of a calendar date, and as a time, fall in their day. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/warmup.h"

#define FUZZ__STEPS 400
#define FUZZ__CAP_MAX 1000000000u

static void fuzz__caps(const struct warmup_plan *plan, const char *provider, bool has_ramp)
{
    unsigned steps = warmup_plan_steps(plan);
    for (unsigned s = 0; s <= FUZZ__STEPS; s++) {
        struct warmup_caps c;
        warmup_caps(plan, provider, s, &c);
        if (warmup_is_warm(plan, s) != (s > steps))
            abort();
        if (s == 0) {
            if (c.day != 0 || c.hour != 0)
                abort();
            continue;
        }
        if ((c.day != WARMUP_NO_CAP && (c.day < 1 || c.day > FUZZ__CAP_MAX)) ||
            (c.hour != WARMUP_NO_CAP && (c.hour < 1 || c.hour > FUZZ__CAP_MAX)))
            abort();
        if ((s > steps || !has_ramp) && (c.day != WARMUP_NO_CAP || c.hour != WARMUP_NO_CAP))
            abort();
        if (has_ramp && s == 1 && c.day == WARMUP_NO_CAP)     /* "daily" has an entry */
            abort();
    }
}

static void fuzz__hold(const struct warmup_plan *plan, const uint8_t *data, size_t size)
{
    static const uint64_t sents[] = {0, 1, 99, 100, 200, 1000, 1000000000, UINT64_MAX};
    for (unsigned i = 0; i < sizeof sents / sizeof *sents; i++) {
        uint64_t sent = sents[i];
        uint64_t b = size > 0 ? sent / 255 * data[0] + (data[0] & 1) : 0;
        uint64_t d = size > 1 ? sent / 255 * data[1] : 0;
        char why[96];
        if (warmup_should_hold(plan, sent, b, d, why, sizeof why)) {
            if (sent == 0 || (b == 0 && d == 0) ||
                (strncmp(why, "bounce rate ", 12) != 0 && strncmp(why, "deferral rate ", 14) != 0))
                abort();
            if (!warmup_should_hold(plan, sent, b, d, NULL, 0))
                abort();
        } else if (why[0]) {
            abort();
        }
    }
}

static void fuzz__plan(const struct warmup_plan *plan, const uint8_t *data, size_t size)
{
    unsigned steps = warmup_plan_steps(plan);
    if (steps < 1 || steps > 366)
        abort();
    unsigned n = warmup_plan_nproviders(plan);
    if (n > 32 || warmup_plan_provider(plan, n))
        abort();
    fuzz__caps(plan, NULL, true);
    fuzz__caps(plan, "no such provider", false);
    for (unsigned i = 0; i < n; i++) {
        const char *pv = warmup_plan_provider(plan, i);
        if (!pv || !pv[0] || strlen(pv) >= WARMUP_NAME_MAX || !warmup_plan_has_provider(plan, pv))
            abort();
        if (i && strcmp(warmup_plan_provider(plan, i - 1), pv) >= 0)
            abort();
        fuzz__caps(plan, pv, true);
    }
    fuzz__hold(plan, data, size);
}

/* Howard Hinnant's civil_from_days, to print back a parsed date. */
static void fuzz__civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void fuzz__dates(const uint8_t *data, size_t size)
{
    if (size <= 32) {
        char s[33];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t day = -1;
        if (warmup_date_parse(s, &day) == 0) {
            int64_t y;
            unsigned m, d;
            fuzz__civil(day, &y, &m, &d);
            char back[64];
            snprintf(back, sizeof back, "%04lld-%02u-%02u", (long long)y, m, d);
            if (day < 0 || y < 1970 || y > 9999 || strcmp(back, s) != 0)
                abort();
        } else if (day != -1) {
            abort();
        }
    }
    if (size >= 8) {
        int64_t t;
        memcpy(&t, data, sizeof t);
        int64_t day = warmup_day_of(t);
        unsigned hour = warmup_hour_of(t);
        __int128 off = (__int128)t - (__int128)day * 86400;
        if (off < 0 || off >= 86400 || hour != (unsigned)(off / 3600))
            abort();
        int64_t start = day - (int64_t)(data[0] % 64) + 32;
        int64_t dn = warmup_day_number(start, day);
        if ((day < start) != (dn == 0) || (dn && dn != day - start + 1))
            abort();
        unsigned held = data[1] % 64;
        unsigned step = warmup_step(dn, held);
        if (dn == 0 ? step != 0 : (step < 1 || (dn > held && step != dn - held)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct warmup_plans *p = (struct warmup_plans *)1;
    char err[256] = "";
    if (warmup_parse(text, size, &p, err, sizeof err) != 0) {
        if (p || !err[0])
            abort();
    } else {
        /* The oracle for names: jansson's own view of the object's keys. */
        json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root))
            abort();
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            const struct warmup_plan *plan = warmup_plan_find(p, key);
            if (strcmp(key, "comment") == 0) {
                if (plan)
                    abort();
                continue;
            }
            if (!plan || strcmp(warmup_plan_name(plan), key) != 0)
                abort();
            fuzz__plan(plan, data, size);
        }
        json_decref(root);
        if (warmup_plan_find(p, "") || warmup_plan_find(p, "no such plan"))
            abort();
        warmup_free(p);
    }
    fuzz__dates(data, size);
    free(text);
    return 0;
}
