/* schedulers/warmup.h — IP warm-up plans: how many messages a new egress source may send per
 * day (and optionally per hour), by its warm-up step, overall and per provider; and the rule
 * that holds a ramp when a provider's bounce or deferral rate says the source is going too
 * fast. Pure: dates and times are passed in; counters live with the caller (in Redis).
 *
 * Steps: step 1 is the first day of the plan. A source's step is the days since its start
 * date (the start date itself being day 1) minus the days its ramp was held. A step beyond
 * the plan's last entry means the source is warm: no caps. */
#ifndef SALVO_SCHEDULERS_WARMUP_H
#define SALVO_SCHEDULERS_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARMUP_NAME_MAX 64
#define WARMUP_NO_CAP UINT64_MAX

struct warmup_plans;
struct warmup_plan;

/* Parses the "warmup_plans" object of the shaping file: json is the object's text (len bytes,
 * no NUL needed). 0 and *out, or -1 with err naming the path
 * ("warmup_plans.new-ip.daily[3]: expected an integer 1..1000000000"). Unknown fields are
 * errors; "comment" strings are allowed. Format (see docs/shaping.md):
 *   {"standard": {
 *      "daily":  [50, 100, 500, 1000, 5000],        step 1, 2, ... daily caps (required, 1..366
 *                                                    entries, each 1..1e9)
 *      "hourly": [10, 20, 100, 200, 1000],           optional: hourly caps by step; shorter than
 *                                                    daily means no hourly cap after its end
 *      "providers": {"gmail": {"daily": [...], "hourly": [...]}},   optional, per provider
 *                                                    name; its own length (past its end: no
 *                                                    provider cap, the global one still holds)
 *      "hold": {"bounce_rate": 0.05, "deferral_rate": 0.3, "min_messages": 100}   optional
 *   }}
 * Plan names: 1..63 characters of [A-Za-z0-9._-]. */
int warmup_parse(const char *json, size_t len, struct warmup_plans **out, char *err,
                 size_t errlen);
void warmup_free(struct warmup_plans *p);
/* The plan named name, or NULL. Valid while p lives. */
const struct warmup_plan *warmup_plan_find(const struct warmup_plans *p, const char *name);
const char *warmup_plan_name(const struct warmup_plan *plan);
/* Every plan, in name order: count, and the i-th (NULL when i >= count). */
unsigned warmup_plans_count(const struct warmup_plans *p);
const struct warmup_plan *warmup_plans_at(const struct warmup_plans *p, unsigned i);
/* Number of daily steps in the plan (the step after the last one is warm). */
unsigned warmup_plan_steps(const struct warmup_plan *plan);
/* Whether the plan has a ramp of its own for provider (case-sensitive name). */
bool warmup_plan_has_provider(const struct warmup_plan *plan, const char *provider);
/* The provider names with their own ramps: count, and the i-th name (valid while p lives). */
unsigned warmup_plan_nproviders(const struct warmup_plan *plan);
const char *warmup_plan_provider(const struct warmup_plan *plan, unsigned i);

/* "YYYY-MM-DD" (a real calendar date, 1970..9999) to days since 1970-01-01 (UTC).
 * 0 and *out, or -1. */
int warmup_date_parse(const char *s, int64_t *out);
/* The date of a day (days since 1970-01-01) as "YYYY-MM-DD" (years 0..9999). */
void warmup_date_format(int64_t day, char out[static 11]);
/* Days since 1970-01-01 of a Unix time (UTC), and the hour of that day (0..23). */
int64_t warmup_day_of(int64_t unix_s);
unsigned warmup_hour_of(int64_t unix_s);

/* The source's day on date today (days since 1970-01-01): 1 on its start date, 2 the day
 * after, ...; 0 before the start date. */
int64_t warmup_day_number(int64_t start_day, int64_t today);
/* The step: day number minus held days, at least 1 (0 when day is 0: not started). */
unsigned warmup_step(int64_t day_number, unsigned held_days);

/* The caps for step: day and hour caps of the global ramp, or of provider's own ramp when
 * provider is not NULL (WARMUP_NO_CAP where that ramp has no such cap at that step, or for a
 * provider without a ramp of its own). step 0 (not started): both caps 0. */
struct warmup_caps {
    uint64_t day;
    uint64_t hour;
};
void warmup_caps(const struct warmup_plan *plan, const char *provider, unsigned step,
                 struct warmup_caps *out);
/* Whether a source at step is warm (past the global ramp and every provider ramp). */
bool warmup_is_warm(const struct warmup_plan *plan, unsigned step);

/* The data-driven hold: given one window's counts for a provider (messages sent, of them
 * bounced and deferred), whether the ramp must not advance. With no "hold" block, never.
 * Needs at least min_messages sent (default 100) before a rate counts. When it holds, why
 * (may be NULL) gets a short explanation: "bounce rate 12.0% over 5.0% (24 of 200)". */
bool warmup_should_hold(const struct warmup_plan *plan, uint64_t sent, uint64_t bounced,
                        uint64_t deferred, char *why, size_t whylen);

#endif
