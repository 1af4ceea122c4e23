/* engine/coord/warmup_state.c — warm-up state as JSON (see warmup_state.h). The key names
 * match those engine/delivery/dlv_gates.c takes budgets from. */
#include "engine/coord/warmup_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "schedulers/warmup.h"

static json_t *ws__get(warmup_state_redis_fn redis, void *arg, const char *key)
{
    const char *av[] = {"GET", key};
    return redis(arg, 2, av);
}

static json_int_t ws__int(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return (json_int_t)strtoll(json_string_value(v), NULL, 10);
    return 0;
}

/* cap, used, remaining of one counter; cap WARMUP_NO_CAP gives nulls */
static int ws__counter(json_t *o, const char *what, uint64_t cap, const char *key,
                       warmup_state_redis_fn redis, void *arg)
{
    char f[32];
    if (cap == WARMUP_NO_CAP) {
        snprintf(f, sizeof f, "%s_cap", what);
        json_object_set_new(o, f, json_null());
        return 0;
    }
    json_t *v = ws__get(redis, arg, key);
    if (!v)
        return -1;
    json_int_t used = ws__int(v);
    json_decref(v);
    snprintf(f, sizeof f, "%s_cap", what);
    json_object_set_new(o, f, json_integer((json_int_t)cap));
    snprintf(f, sizeof f, "%s_used", what);
    json_object_set_new(o, f, json_integer(used));
    snprintf(f, sizeof f, "%s_remaining", what);
    json_object_set_new(o, f, json_integer(used >= (json_int_t)cap ? 0 : (json_int_t)cap - used));
    return 0;
}

static int ws__ramp(json_t *ramps, const char *base, const struct warmup_plan *plan,
                    const char *provider, unsigned step, int64_t today, unsigned hour,
                    warmup_state_redis_fn redis, void *arg)
{
    struct warmup_caps caps;
    warmup_caps(plan, provider, step, &caps);
    json_t *o = json_object();
    json_object_set_new(o, "provider", provider ? json_string(provider) : json_null());
    char key[600];
    snprintf(key, sizeof key, "%s:used:%s:d%" PRId64, base, provider ? provider : "*", today);
    int rc = ws__counter(o, "day", caps.day, key, redis, arg);
    snprintf(key, sizeof key, "%s:used:%s:h%" PRId64 "-%02u", base, provider ? provider : "*", today, hour);
    if (rc == 0)
        rc = ws__counter(o, "hour", caps.hour, key, redis, arg);
    json_array_append_new(ramps, o);
    return rc;
}

static json_t *ws__source(const struct dlv_source *s, const struct warmup_plan *plan,
                          const char *prefix, int64_t now_s, warmup_state_redis_fn redis, void *arg)
{
    int64_t today = warmup_day_of(now_s);
    unsigned hour = warmup_hour_of(now_s);
    char base[300];
    snprintf(base, sizeof base, "%s:{p0}:wu:%s", prefix, s->name);
    char key[400];
    snprintf(key, sizeof key, "%s:state", base);
    const char *av[] = {"HMGET", key, "last_day", "held", "reason"};
    json_t *st = redis(arg, 5, av);
    if (!st)
        return NULL;
    unsigned held = (unsigned)ws__int(json_array_get(st, 1));
    const char *reason = json_string_value(json_array_get(st, 2));
    int64_t dayno = warmup_day_number(s->warmup_start_day, today);
    unsigned step = warmup_step(dayno, held);
    char start[11];
    warmup_date_format(s->warmup_start_day, start);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "source", s->name, "plan",
                          warmup_plan_name(plan), "start", start, "day", (json_int_t)dayno,
                          "held_days", (json_int_t)held, "step", (json_int_t)step, "warm",
                          step && warmup_is_warm(plan, step));
    json_object_set_new(o, "hold_reason", reason && *reason ? json_string(reason) : json_null());
    json_decref(st);
    json_t *ramps = json_array();
    json_object_set_new(o, "ramps", ramps);
    if (ws__ramp(ramps, base, plan, NULL, step, today, hour, redis, arg) != 0) {
        json_decref(o);
        return NULL;
    }
    for (unsigned i = 0; i < warmup_plan_nproviders(plan); i++)
        if (ws__ramp(ramps, base, plan, warmup_plan_provider(plan, i), step, today, hour, redis, arg) != 0) {
            json_decref(o);
            return NULL;
        }
    /* today's outcomes by provider, which decide whether tomorrow advances */
    snprintf(key, sizeof key, "%s:stats:%" PRId64, base, today);
    const char *hv[] = {"HGETALL", key};
    json_t *h = redis(arg, 2, hv);
    json_t *today_o = json_object();
    for (size_t i = 0; h && i + 1 < json_array_size(h); i += 2) {
        const char *f = json_string_value(json_array_get(h, i));
        const char *colon = f ? strrchr(f, ':') : NULL;
        if (!colon)
            continue;
        char prov[128];
        snprintf(prov, sizeof prov, "%.*s", (int)(colon - f), f);
        json_t *p = json_object_get(today_o, prov);
        if (!p) {
            p = json_object();
            json_object_set_new(today_o, prov, p);
        }
        json_object_set_new(p, colon + 1, json_integer(ws__int(json_array_get(h, i + 1))));
    }
    json_decref(h);
    json_object_set_new(o, "today", today_o);
    return o;
}

json_t *warmup_state_json(const struct dlv_source *srcs, unsigned n, const struct shaping_rules *rules,
                          const char *prefix, int64_t now_s, warmup_state_redis_fn redis, void *arg)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++) {
        const struct warmup_plan *plan =
            srcs[i].warmup_plan[0] ? warmup_plan_find(shaping_warmup(rules), srcs[i].warmup_plan) : NULL;
        if (!plan)
            continue;
        json_t *o = ws__source(&srcs[i], plan, prefix, now_s, redis, arg);
        if (!o) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "sources", arr);
}
