/* engine/delivery/dlv_gates.c — what may start now, beyond a destination's own queue and
 * connections: backoff holds (suspend, reduce_rate, bounce), message rates (this replica's
 * buckets, then the cluster's through engine/coord), cluster connection leases, and warm-up
 * budgets of the egress source. Also feeds the backoff rules with replies and the warm-up
 * ramp with outcomes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/coord/coord.h"
#include "engine/delivery/dlv_priv.h"
#include "engine/util/log.h"
#include "schedulers/warmup.h"

#define GATE_RATE_WAIT_MAX_MS 2000   /* longer waits for a rate token go back to the retry set */
#define GATE_MAX_HOLDS 100000
#define GATE_HOLD_RECHECK_MS 300000  /* mail waiting out a hold is looked at again this often */
#define GATE_TRACKER_KEYS 10000
#define GATE_STATS_TTL_S (3 * 86400)

int gate_init(struct dlv *d)
{
    for (unsigned i = 0; i < DLV_MAX_SOURCES; i++)
        d->wu[i] = (struct dlv_wu_ctx){d, i};
    if (backoff_table_create(&d->holds, GATE_MAX_HOLDS) != 0 ||
        backoff_tracker_create(&d->tracker, GATE_TRACKER_KEYS) != 0)
        return -1;
    return 0;
}

void gate_fini(struct dlv *d)
{
    backoff_table_free(d->holds);
    backoff_tracker_free(d->tracker);
    d->holds = NULL;
    d->tracker = NULL;
}

static const char *gate__site_part(const struct dlv_site *x)
{
    const char *bar = strchr(x->key, '|');
    return bar ? bar + 1 : x->key;
}

/* ---------------------------------------------------------------- holds */

static int gate__strength(enum backoff_action a)
{
    switch (a) {
    case BACKOFF_BOUNCE: return 3;
    case BACKOFF_SUSPEND:
    case BACKOFF_SUSPEND_SOURCE: return 2;
    default: return 1;
    }
}

const struct backoff_hold *gate_hold(struct dlv_dest *dest)
{
    struct dlv *d = dest->d;
    if (!d->holds || !dest->site || (dest->hold_none && dest->hold_gen == d->hold_gen))
        return NULL;
    uint64_t now = ring_now_ms(d->ring);
    char key[4][800];
    snprintf(key[0], sizeof key[0], "dest:%s", gate__site_part(dest->site));
    snprintf(key[1], sizeof key[1], "dest:%s", dest->site->key);
    snprintf(key[2], sizeof key[2], "domain:%s", dest->domain);
    snprintf(key[3], sizeof key[3], "source:%s", d->sources[dest->src].name);
    const struct backoff_hold *best = NULL;
    for (unsigned i = 0; i < 4; i++) {
        const struct backoff_hold *h = backoff_table_get(d->holds, key[i], now);
        if (h && (!best || gate__strength(h->action) > gate__strength(best->action)))
            best = h;
    }
    dest->hold_none = !best;
    dest->hold_gen = d->hold_gen;
    return best;
}

void gate_observe(struct dlv_dest *dest, const struct smtp_outcome *o)
{
    struct dlv *d = dest->d;
    const struct backoff_rules *rules = shaping_backoff(d->cfg.shaping);
    if (!backoff_count(rules) || !dest->site || o->ok)
        return;
    char subj[600];
    backoff_subject(subj, sizeof subj, o->code, o->enhanced, o->text);
    uint64_t now = ring_now_ms(d->ring);
    int idx = backoff_observe(rules, d->tracker, dest->provider, dest->domain, dest->site->key, subj,
                              now, NULL);
    if (idx < 0)
        return;
    struct backoff_rule_info ri;
    backoff_rule_get(rules, (unsigned)idx, &ri);
    struct backoff_hold h;
    memset(&h, 0, sizeof h);
    snprintf(h.key, sizeof h.key, "dest:%.714s",
             ri.action == BACKOFF_SUSPEND_SOURCE ? dest->site->key : gate__site_part(dest->site));
    h.action = ri.action;
    h.until_ms = now + (uint64_t)ri.duration_s * 1000u;
    h.rate_per_s = ri.rate_per_s;
    snprintf(h.rule, sizeof h.rule, "%s", ri.name);
    snprintf(h.reason, sizeof h.reason, "%.511s", subj);
    if (backoff_table_put(d->holds, &h) != 0) {
        log_error("backoff: rule %s fired for %s but the hold table is full", ri.name, h.key);
        return;
    }
    d->stats.holds_triggered++;
    log_warn("backoff: rule %s: %s %s for %us after: %.300s", ri.name, backoff_action_to_text(ri.action),
             h.key, ri.duration_s, subj);
    if (d->coord)
        coord_publish_hold(d->coord, &h);
    dlv_holds_changed(d);
}

struct backoff_table *dlv_holds(struct dlv *d) { return d->holds; }

void dlv_holds_changed(struct dlv *d)
{
    d->holds_wait_until_ms = 0;
    d->hold_gen++;
    dlv_kick_all(d);
}

/* ---------------------------------------------------------------- warm-up */

static const struct warmup_plan *gate__plan(const struct dlv *d, unsigned src)
{
    const char *name = d->sources[src].warmup_plan;
    if (!name[0] || !d->coord)
        return NULL;
    return warmup_plan_find(shaping_warmup(d->cfg.shaping), name);
}

static bool gate__decide(void *arg, const struct coord_warmup_day_stats *s, unsigned n, char *why,
                         size_t whylen)
{
    const struct dlv_wu_ctx *ctx = arg;
    const struct warmup_plan *plan = gate__plan(ctx->d, ctx->src);
    if (!plan)
        return false;
    for (unsigned i = 0; i < n; i++) {
        char w[200];
        if (warmup_should_hold(plan, s[i].sent, s[i].bounced, s[i].deferred, w, sizeof w)) {
            snprintf(why, whylen, "at %s: %s", s[i].provider, w);
            return true;
        }
    }
    return false;
}

struct gate_wu {
    struct coord_budget b[COORD_BUDGET_MAX];
    unsigned n;
    int64_t window_end_wall_ms;
    int64_t day;
    unsigned step;
};

/* The budgets a transaction from dest's source takes today. -1: the ramp state is not known
 * yet (ask again soon); 0: *out filled (n == 0: no caps). */
static int gate__wu_budgets(struct dlv_dest *dest, struct gate_wu *out)
{
    struct dlv *d = dest->d;
    out->n = 0;
    const struct warmup_plan *plan = gate__plan(d, dest->src);
    if (!plan)
        return 0;
    const struct dlv_source *src = &d->sources[dest->src];
    int64_t now_s = (int64_t)time(NULL);
    int64_t today = warmup_day_of(now_s);
    unsigned hour = warmup_hour_of(now_s);
    int64_t dayno = warmup_day_number(src->warmup_start_day, today);
    unsigned held = 0;
    const char *hwhy = "";
    if (dayno > 0) {
        char stats[200];
        snprintf(stats, sizeof stats, "wu:%s:stats:", src->name);
        if (coord_warmup_state(d->coord, src->name, today, stats, gate__decide, &d->wu[dest->src],
                               &held, &hwhy) == 0)
            return -1;
    }
    unsigned step = warmup_step(dayno, held);
    out->day = dayno;
    out->step = step;
    char note[sizeof d->wu_note[0]] = "";
    if (hwhy[0])
        snprintf(note, sizeof note, "warm-up ramp of %s held at step %u (day %" PRId64 "): %.200s",
                 src->name, step, dayno, hwhy);
    memcpy(d->wu_note[dest->src], note, sizeof note);
    if (step && warmup_is_warm(plan, step))
        return 0;
    bool hourly = false;
    for (int pass = 0; pass < 2; pass++) {
        const char *prov = pass ? dest->provider : NULL;
        if (pass && (!prov || !warmup_plan_has_provider(plan, prov)))
            break;
        struct warmup_caps caps;
        warmup_caps(plan, prov, step, &caps);
        if (caps.day != WARMUP_NO_CAP) {
            struct coord_budget *b = &out->b[out->n++];
            snprintf(b->key, sizeof b->key, "wu:%s:used:%s:d%" PRId64, src->name, prov ? prov : "*", today);
            b->cap = caps.day;
        }
        if (caps.hour != WARMUP_NO_CAP) {
            struct coord_budget *b = &out->b[out->n++];
            snprintf(b->key, sizeof b->key, "wu:%s:used:%s:h%" PRId64 "-%02u", src->name,
                     prov ? prov : "*", today, hour);
            b->cap = caps.hour;
            hourly = true;
        }
    }
    int64_t period = hourly ? 3600 : 86400;
    out->window_end_wall_ms = ((now_s / period) + 1) * period * 1000;
    return 0;
}

static enum gate gate__warmup(struct dlv_dest *dest, uint64_t *wait_ms, char *why, size_t whylen)
{
    struct dlv *d = dest->d;
    struct gate_wu wu;
    if (gate__wu_budgets(dest, &wu) != 0) {
        *wait_ms = 5;
        return GATE_WAIT;
    }
    if (!wu.n)
        return GATE_GO;
    enum coord_budget_result r = coord_budget_take(d->coord, wu.b, wu.n, wu.window_end_wall_ms,
                                                   dest->queued + 1, wait_ms);
    if (r == COORD_GO)
        return GATE_GO;
    if (r == COORD_WAIT)
        return GATE_WAIT;
    dest->wu_exhausted_until_ms = ring_now_ms(d->ring) + *wait_ms;
    snprintf(why, whylen,
             "source %s reached its warm-up cap (plan %s, day %" PRId64 ", step %u%s%s); next window in %" PRIu64 " s",
             d->sources[dest->src].name, d->sources[dest->src].warmup_plan, wu.day, wu.step,
             dest->provider ? ", provider " : "", dest->provider ? dest->provider : "", *wait_ms / 1000);
    /* back to the retry set briefly: on its way out again it goes from another source of its
     * pool, or waits for the window if they are all out (dlv_submit) */
    *wait_ms = 1000;
    return GATE_DEFER;
}

bool gate_source_out(struct dlv *d, const char *domain, unsigned src, bool holds,
                     uint64_t *until_ms)
{
    uint64_t now = ring_now_ms(d->ring);
    /* known from an earlier transaction of this (domain, source) */
    struct dlv_dest *x = dlv__dest_find(d, domain, src);
    if (!x)
        return false;
    if (x->wu_exhausted_until_ms > now && gate__plan(d, src)) {
        *until_ms = x->wu_exhausted_until_ms;
        return true;
    }
    const struct backoff_hold *h = holds && x->shaped ? gate_hold(x) : NULL;
    if (h && (h->action == BACKOFF_SUSPEND || h->action == BACKOFF_SUSPEND_SOURCE)) {
        *until_ms = h->until_ms < now + GATE_HOLD_RECHECK_MS ? h->until_ms : now + GATE_HOLD_RECHECK_MS;
        return true;
    }
    return false;
}

void gate_txn_done(struct dlv_dest *dest, const struct smtp_txn *t)
{
    struct dlv *d = dest->d;
    if (!gate__plan(d, dest->src))
        return;
    long long sent = 0, bounced = 0, deferred = 0;
    for (const struct smtp_rcpt *r = t->rcpts; r; r = r->next) {
        sent++;
        if (!r->outcome.ok && r->outcome.code >= 500)
            bounced++;
        else if (!r->outcome.ok && r->outcome.code >= 400)
            deferred++;
    }
    char key[200], f[128];
    const char *prov = dest->provider ? dest->provider : "other";
    snprintf(key, sizeof key, "wu:%s:stats:%" PRId64, d->sources[dest->src].name,
             warmup_day_of((int64_t)time(NULL)));
    snprintf(f, sizeof f, "%s:sent", prov);
    coord_count(d->coord, key, f, sent, GATE_STATS_TTL_S);
    if (bounced) {
        snprintf(f, sizeof f, "%s:bounced", prov);
        coord_count(d->coord, key, f, bounced, GATE_STATS_TTL_S);
    }
    if (deferred) {
        snprintf(f, sizeof f, "%s:deferred", prov);
        coord_count(d->coord, key, f, deferred, GATE_STATS_TTL_S);
    }
}

/* ---------------------------------------------------------------- the gate */

static bool gate__cluster(const struct dlv_dest *dest)
{
    return dest->d->coord && dest->shaped && !dest->lim.replica_local;
}

static void gate__refund_local(struct dlv_dest *dest, uint64_t now_us)
{
    for (unsigned i = 0; i < SHAPING_MSG_BUCKETS; i++)
        gcra_refund(&dest->site->msg[i], &dest->msg_rates[i], now_us, 1);
}

enum gate gate_txn(struct dlv_dest *dest, uint64_t *wait_ms, char *why, size_t whylen)
{
    struct dlv *d = dest->d;
    if (!dest->shaped || !dest->site)
        return GATE_GO;
    uint64_t now_ms = ring_now_ms(d->ring), now_us = now_ms * 1000u;
    if (d->holds_wait_until_ms > now_ms) {
        *wait_ms = 20;
        return GATE_WAIT;
    }
    const struct backoff_hold *h = gate_hold(dest);
    struct gcra_rate reduced = {0};
    if (h) {
        switch (h->action) {
        case BACKOFF_BOUNCE:
            snprintf(why, whylen, "bounced by %s%s: %.400s",
                     strcmp(h->rule, "manual") == 0 ? "hand" : "backoff rule ",
                     strcmp(h->rule, "manual") == 0 ? "" : h->rule, h->reason);
            return GATE_BOUNCE;
        case BACKOFF_SUSPEND:
        case BACKOFF_SUSPEND_SOURCE:
            *wait_ms = h->until_ms - now_ms;
            snprintf(why, whylen, "%s suspended for %" PRIu64 " s by %s%s: %.400s", h->key,
                     *wait_ms / 1000, strcmp(h->rule, "manual") == 0 ? "hand" : "backoff rule ",
                     strcmp(h->rule, "manual") == 0 ? "" : h->rule, h->reason);
            /* waiting mail looks again at least this often, so a resume reaches it */
            if (*wait_ms > GATE_HOLD_RECHECK_MS)
                *wait_ms = GATE_HOLD_RECHECK_MS;
            return GATE_DEFER;
        case BACKOFF_REDUCE_RATE:
            gcra_rate_set(&reduced, h->rate_per_s, 1000, 0);
            break;
        }
    }
    uint64_t ra_us = 0;
    if (reduced.emission_us && !gcra_take(&dest->site->reduced, &reduced, now_us, 1, &ra_us)) {
        *wait_ms = ra_us / 1000 + 1;
        if (*wait_ms <= GATE_RATE_WAIT_MAX_MS)
            return GATE_WAIT;
        snprintf(why, whylen, "destination %.255s rate reduced to %.3g/s by backoff rule %s; next slot in %" PRIu64 " ms",
                 dest->domain, h->rate_per_s, h->rule, *wait_ms);
        return GATE_DEFER;
    }
    if (!gcra_take_all(dest->site->msg, dest->msg_rates, SHAPING_MSG_BUCKETS, now_us, 1, &ra_us)) {
        if (reduced.emission_us)
            gcra_refund(&dest->site->reduced, &reduced, now_us, 1);
        *wait_ms = ra_us / 1000 + 1;
        if (*wait_ms <= GATE_RATE_WAIT_MAX_MS)
            return GATE_WAIT;
        snprintf(why, whylen, "destination %.255s throttled by its message rate limit; next slot in %" PRIu64 " ms",
                 dest->domain, *wait_ms);
        return GATE_DEFER;
    }
    if (gate__cluster(dest)) {
        bool ok = coord_rate_take(d->coord, dest->site->key, dest->msg_rates, SHAPING_MSG_BUCKETS, wait_ms);
        if (ok && reduced.emission_us) {
            char k[800];
            snprintf(k, sizeof k, "%s|reduced", dest->site->key);
            ok = coord_rate_take(d->coord, k, &reduced, 1, wait_ms);
        }
        if (!ok) {
            gate__refund_local(dest, now_us);
            if (reduced.emission_us)
                gcra_refund(&dest->site->reduced, &reduced, now_us, 1);
            if (*wait_ms <= GATE_RATE_WAIT_MAX_MS)
                return GATE_WAIT;
            snprintf(why, whylen, "destination %.255s throttled by its cluster-wide message rate limit; next slot in %" PRIu64 " ms",
                     dest->domain, *wait_ms);
            return GATE_DEFER;
        }
    }
    enum gate g = gate__warmup(dest, wait_ms, why, whylen);
    if (g != GATE_GO) {
        gate__refund_local(dest, now_us);
        if (reduced.emission_us)
            gcra_refund(&dest->site->reduced, &reduced, now_us, 1);
    }
    return g;
}

void gate_txn_untake(struct dlv_dest *dest)
{
    struct dlv *d = dest->d;
    if (!dest->shaped || !dest->site)
        return;
    gate__refund_local(dest, ring_now_ms(d->ring) * 1000u);
    struct gate_wu wu;
    if (gate__wu_budgets(dest, &wu) == 0 && wu.n)
        coord_budget_return(d->coord, wu.b, wu.n);
}

/* ---------------------------------------------------------------- connections */

bool gate_conn_take(struct dlv_dest *dest, uint64_t *wait_ms)
{
    if (!gate__cluster(dest) || !dest->site)
        return true;
    return coord_conn_acquire(dest->d->coord, dest->site->key, dest->lim.max_connections, wait_ms);
}

bool gate_conn_yield(struct dlv *d, const struct dlv_site *site)
{
    return d->coord && site && coord_conn_yield(d->coord, site->key);
}

void gate_conn_release(struct dlv *d, const struct dlv_site *site)
{
    if (d->coord && site)
        coord_conn_release(d->coord, site->key);
}
