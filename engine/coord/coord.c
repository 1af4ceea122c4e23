/* engine/coord/coord.c — cluster-wide shaping state in Redis (contract in coord.h). Every
 * question is answered from a local entry: a lease of rate tokens, the connection leases held,
 * a warm-up budget lease, a ramp state. An entry has at most one request in flight; answers
 * refill it, and a 250 ms tick renews, returns and forgets what is no longer used. */
#include "engine/coord/coord.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/coord/coord_scripts.h"
#include "engine/redis/rds.h"
#include "engine/util/log.h"

#define COORD_BUCKETS 1024
#define COORD_TICK_MS 250
#define COORD_POLL_AGAIN_MS 2         /* a request is in flight: ask again this soon */
#define COORD_CONN_DENIED_MS 200      /* the cluster is at its connection limit: ask again */
#define COORD_LEASE_LIFE_MS 1000      /* leased rate tokens not used by then are dropped */
#define COORD_SPARE_LINGER_MS 1000    /* an unused connection lease is returned after this */
#define COORD_BUDGET_IDLE_MS 2000     /* an unused budget lease is given back after this */
#define COORD_EXHAUSTED_RECHECK_MS 30000
#define COORD_IDLE_FREE_MS 60000
#define COORD_COUNT_FLUSH_MS 1000
#define COORD_BYPASS_MS 1000          /* after a Redis error, local limits alone this long */
#define COORD_FAIR_MS 1000            /* how often a holder of several leases checks for waiters */

enum ent_kind { ENT_RATE = 'r', ENT_CONN = 'c', ENT_BUDGET = 'b', ENT_WU = 'w', ENT_COUNT = 'n' };

struct ent {
    struct ent *hnext;
    struct coord *c;
    char kind;
    bool inflight;
    uint64_t last_use_ms;
    uint64_t denied_until_ms;
    uint64_t bypass_until_ms;
    /* rate */
    unsigned balance;
    uint64_t lease_expires_ms;
    /* conn */
    uint64_t *ids;
    unsigned nheld, used, bypass_used, cap_ids, limit;
    uint64_t spare_since_ms, renewed_ms, fair_checked_ms;
    unsigned yield, give_back;       /* connections to close, leases to return at once */
    unsigned fair_cap;               /* others wait: hold no more than this ... */
    uint64_t fair_cap_until_ms;      /* ... until then (renewed while they wait) */
    bool fair_inflight;
    /* budget */
    struct coord_budget b[COORD_BUDGET_MAX];
    unsigned nb;
    int64_t window_end_wall_ms;
    bool exhausted;
    /* warm-up state */
    int64_t day;                  /* the day the state below is for (-1: none) */
    unsigned held;
    char why[256];
    coord_hold_fn decide;
    void *decide_arg;
    char stats_prefix[300];
    int64_t want_day;
    /* count */
    char field[64];
    long long add;
    unsigned ttl_s;
    char key[];                   /* kind byte, then the caller's key */
};

struct coord {
    struct ring *ring;
    struct rds *r;
    struct coord_config cfg;
    char prefix[200];             /* "<prefix>:{p0}:" */
    char wu_prefix[220];
    char holds_hash[220], holds_zset[230];
    struct ent *buckets[COORD_BUCKETS];
    struct ring_timer tick;
    uint64_t next_flush_ms, next_poll_ms, seq;
    bool polling, warned_down, polled_once;
    struct coord_stats stats;
};

void coord_config_defaults(struct coord_config *c)
{
    memset(c, 0, sizeof *c);
    c->prefix = "salvo";
    c->instance = "salvo";
    c->conn_lease_ttl_ms = 15000;
    c->rate_lease_ms = 100;
    c->holds_poll_ms = 1000;
}

static int64_t coord__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned coord__hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct ent *coord__find(struct coord *c, char kind, const char *key, bool create)
{
    size_t kl = strlen(key);
    unsigned h = (coord__hash(key) * 31u + (unsigned)kind) % COORD_BUCKETS;
    for (struct ent *e = c->buckets[h]; e; e = e->hnext)
        if (e->kind == kind && strcmp(e->key + 1, key) == 0)
            return e;
    if (!create)
        return NULL;
    struct ent *e = calloc(1, sizeof *e + kl + 2);
    if (!e)
        return NULL;
    e->c = c;
    e->kind = kind;
    e->day = -1;
    e->key[0] = kind;
    memcpy(e->key + 1, key, kl + 1);
    e->hnext = c->buckets[h];
    c->buckets[h] = e;
    return e;
}

static void coord__free_ent(struct ent *e)
{
    free(e->ids);
    free(e);
}

static uint64_t coord__now(const struct coord *c) { return ring_now_ms(c->ring); }

static bool coord__is_error(const struct rds_reply *reply)
{
    return !reply || rds_reply_type(reply) == RDS_ERROR;
}

static void coord__log_error(struct coord *c, const char *what, const struct rds_reply *reply)
{
    (void)c;
    if (reply && rds_reply_type(reply) == RDS_ERROR)
        log_error("coord: %s: %s", what, rds_reply_str(reply, NULL));
}

static long long coord__int(const struct rds_reply *r)
{
    if (!r)
        return 0;
    if (rds_reply_type(r) == RDS_INTEGER)
        return rds_reply_int(r);
    if (rds_reply_type(r) == RDS_STRING) {
        const char *s = rds_reply_str(r, NULL);
        return s ? strtoll(s, NULL, 10) : 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- rate tokens */

static void coord__on_rate(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct ent *e = arg;
    struct coord *c = e->c;
    uint64_t now = coord__now(c);
    e->inflight = false;
    if (coord__is_error(reply) || rds_reply_type(reply) != RDS_ARRAY || rds_reply_len(reply) != 2) {
        coord__log_error(c, "rate lease", reply);
        e->bypass_until_ms = now + COORD_BYPASS_MS;
        return;
    }
    long long granted = coord__int(rds_reply_elem(reply, 0));
    long long wait_us = coord__int(rds_reply_elem(reply, 1));
    if (granted > 0) {
        e->balance = (unsigned)granted;
        e->lease_expires_ms = now + COORD_LEASE_LIFE_MS;
    } else {
        c->stats.denied++;
        e->denied_until_ms = now + (uint64_t)(wait_us > 0 ? wait_us : 0) / 1000 + 1;
    }
}

bool coord_rate_take(struct coord *c, const char *key, const struct gcra_rate *rates,
                     unsigned nrates, uint64_t *wait_ms)
{
    unsigned limited = 0;
    for (unsigned i = 0; i < nrates; i++)
        limited += rates[i].emission_us != 0;
    if (!limited || !rds_is_up(c->r))
        return true; /* no limit; or Redis down: each replica's own buckets still hold */
    struct ent *e = coord__find(c, ENT_RATE, key, true);
    if (!e)
        return true;
    uint64_t now = coord__now(c);
    e->last_use_ms = now;
    if (e->bypass_until_ms > now)
        return true;
    if (e->balance && now < e->lease_expires_ms) {
        e->balance--;
        return true;
    }
    e->balance = 0;
    if (e->inflight) {
        *wait_ms = COORD_POLL_AGAIN_MS;
        return false;
    }
    if (e->denied_until_ms > now) {
        *wait_ms = e->denied_until_ms - now;
        return false;
    }
    /* lease about rate_lease_ms worth of the slowest bucket */
    double per_s = 0;
    unsigned nb = 0;
    char keys[8][900], nums[1 + 2 * 8][24];
    const char *av[3 + 8 + 1 + 2 * 8];
    for (unsigned i = 0; i < nrates && nb < 8; i++) {
        if (!rates[i].emission_us)
            continue;
        double r = 1e6 / (double)rates[i].emission_us;
        if (per_s == 0 || r < per_s)
            per_s = r;
        snprintf(keys[nb], sizeof keys[nb], "%srate:%s:%u", c->prefix, key, i);
        snprintf(nums[1 + 2 * nb], sizeof nums[0], "%" PRIu64, rates[i].emission_us);
        snprintf(nums[2 + 2 * nb], sizeof nums[0], "%" PRIu64, rates[i].burst);
        nb++;
    }
    if (!nb)
        return true;
    double want = per_s * c->cfg.rate_lease_ms / 1000.0;
    unsigned w = want < 1 ? 1 : want > 64 ? 64 : (unsigned)want;
    snprintf(nums[0], sizeof nums[0], "%u", w);
    char nk[8];
    snprintf(nk, sizeof nk, "%u", nb);
    int n = 0;
    av[n++] = "EVAL";
    av[n++] = coord_lua_rate;
    av[n++] = nk;
    for (unsigned i = 0; i < nb; i++)
        av[n++] = keys[i];
    av[n++] = nums[0];
    for (unsigned i = 0; i < nb; i++) {
        av[n++] = nums[1 + 2 * i];
        av[n++] = nums[2 + 2 * i];
    }
    if (rds_commandv(c->r, coord__on_rate, e, n, av) != 0)
        return true;
    e->inflight = true;
    c->stats.rate_requests++;
    *wait_ms = COORD_POLL_AGAIN_MS;
    return false;
}

/* ---------------------------------------------------------------- connection leases */

static void coord__member(const struct coord *c, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%" PRIu64, c->cfg.instance, id);
}

static void coord__conn_key(const struct coord *c, const struct ent *e, char *out, size_t cap)
{
    snprintf(out, cap, "%sconns:%s", c->prefix, e->key + 1);
}

struct conn_req {
    struct ent *e;
    uint64_t id;
};

static void coord__on_conn(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct ent *e = arg;
    struct coord *c = e->c;
    uint64_t now = coord__now(c);
    e->inflight = false;
    if (coord__is_error(reply)) {
        coord__log_error(c, "connection lease", reply);
        e->bypass_until_ms = now + COORD_BYPASS_MS;
        return;
    }
    if (rds_reply_int(reply) != 1) {
        c->stats.denied++;
        e->denied_until_ms = now + COORD_CONN_DENIED_MS;
        return;
    }
    /* the id asked for is the next one: it was reserved when the request went out */
    e->nheld++;
    if (e->nheld > e->used)
        e->spare_since_ms = now;
}

bool coord_conn_acquire(struct coord *c, const char *key, unsigned limit, uint64_t *wait_ms)
{
    struct ent *e = coord__find(c, ENT_CONN, key, true);
    if (!e)
        return true;
    uint64_t now = coord__now(c);
    e->last_use_ms = now;
    if (!rds_is_up(c->r) || e->bypass_until_ms > now) {
        e->bypass_used++;
        return true;
    }
    if (e->used < e->nheld) {
        e->used++;
        return true;
    }
    if (e->fair_cap && e->nheld >= e->fair_cap && now < e->fair_cap_until_ms) {
        /* others wait for this key: a connection given back is not taken again */
        *wait_ms = COORD_CONN_DENIED_MS;
        return false;
    }
    if (e->inflight) {
        *wait_ms = COORD_POLL_AGAIN_MS;
        return false;
    }
    if (e->denied_until_ms > now) {
        *wait_ms = e->denied_until_ms - now;
        return false;
    }
    if (e->nheld >= e->cap_ids) {
        unsigned nc = e->cap_ids ? e->cap_ids * 2 : 4;
        uint64_t *ids = realloc(e->ids, nc * sizeof *ids);
        if (!ids) {
            *wait_ms = COORD_CONN_DENIED_MS;
            return false;
        }
        e->ids = ids;
        e->cap_ids = nc;
    }
    e->ids[e->nheld] = ++c->seq;
    char zkey[900], wkey[910], member[160], lim[16], ttl[16];
    coord__conn_key(c, e, zkey, sizeof zkey);
    snprintf(wkey, sizeof wkey, "%s:want", zkey);
    coord__member(c, e->ids[e->nheld], member, sizeof member);
    snprintf(lim, sizeof lim, "%u", limit);
    e->limit = limit;
    snprintf(ttl, sizeof ttl, "%u", c->cfg.conn_lease_ttl_ms);
    const char *av[] = {"EVAL", coord_lua_conn_take, "2", zkey, wkey, lim, member, ttl,
                        c->cfg.instance};
    if (rds_commandv(c->r, coord__on_conn, e, 9, av) != 0) {
        e->bypass_used++;
        return true;
    }
    e->inflight = true;
    c->stats.conn_requests++;
    *wait_ms = COORD_POLL_AGAIN_MS;
    return false;
}

/* Gives the last k held leases back to Redis. */
static void coord__conn_return(struct coord *c, struct ent *e, unsigned k)
{
    char zkey[900];
    coord__conn_key(c, e, zkey, sizeof zkey);
    while (k-- && e->nheld) {
        char member[160];
        coord__member(c, e->ids[--e->nheld], member, sizeof member);
        const char *av[] = {"ZREM", zkey, member};
        rds_commandv(c->r, NULL, NULL, 3, av);
    }
}

void coord_conn_release(struct coord *c, const char *key)
{
    struct ent *e = coord__find(c, ENT_CONN, key, false);
    if (!e)
        return;
    uint64_t now = coord__now(c);
    e->last_use_ms = now;
    if (e->bypass_used) {
        e->bypass_used--;
        return;
    }
    if (e->used) {
        e->used--;
        if (e->give_back && e->nheld > e->used) {
            /* closed to make room for another replica: its lease goes back now */
            e->give_back--;
            if (rds_is_up(c->r))
                coord__conn_return(c, e, 1);
        }
        if (e->nheld > e->used && e->spare_since_ms == 0)
            e->spare_since_ms = now;
    }
}

bool coord_conn_yield(struct coord *c, const char *key)
{
    struct ent *e = coord__find(c, ENT_CONN, key, false);
    if (!e || !e->yield)
        return false;
    e->yield--;
    e->give_back++;
    return true;
}

static void coord__on_fair(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct ent *e = arg;
    e->fair_inflight = false;
    if (coord__is_error(reply) || rds_reply_type(reply) != RDS_ARRAY || rds_reply_len(reply) != 2)
        return;
    long long fair = coord__int(rds_reply_elem(reply, 0));
    e->fair_cap = fair > 0 ? (unsigned)fair : 0;
    e->fair_cap_until_ms = coord__now(e->c) + 2 * COORD_FAIR_MS;
    /* others wait with none: give back what is beyond a fair share (keeping at least one) */
    if (fair > 0 && e->nheld > (unsigned)fair && e->nheld > 1) {
        unsigned over = e->nheld - (unsigned)(fair < 1 ? 1 : fair);
        e->yield = over > e->give_back ? over - e->give_back : 0;
        if (e->yield && e->c->cfg.on_yield)
            e->c->cfg.on_yield(e->c->cfg.arg, e->key + 1); /* idle ones go now */
    } else {
        e->yield = 0;
    }
}

static void coord__conn_fair(struct coord *c, struct ent *e)
{
    char zkey[900], wkey[910], lim[16];
    coord__conn_key(c, e, zkey, sizeof zkey);
    snprintf(wkey, sizeof wkey, "%s:want", zkey);
    snprintf(lim, sizeof lim, "%u", e->limit);
    const char *av[] = {"EVAL", coord_lua_conn_fair, "2", zkey, wkey, c->cfg.instance, lim};
    if (rds_commandv(c->r, coord__on_fair, e, 7, av) == 0)
        e->fair_inflight = true;
}

static void coord__conn_renew(struct coord *c, struct ent *e)
{
    if (!e->nheld)
        return;
    char zkey[900], ttl[16];
    coord__conn_key(c, e, zkey, sizeof zkey);
    snprintf(ttl, sizeof ttl, "%u", c->cfg.conn_lease_ttl_ms);
    unsigned n = e->nheld < 256 ? e->nheld : 256;
    const char **av = malloc((5 + n) * sizeof *av);
    char (*members)[160] = malloc(n * sizeof *members);
    if (av && members) {
        int k = 0;
        av[k++] = "EVAL";
        av[k++] = coord_lua_conn_renew;
        av[k++] = "1";
        av[k++] = zkey;
        av[k++] = ttl;
        for (unsigned i = 0; i < n; i++) {
            coord__member(c, e->ids[i], members[i], sizeof members[i]);
            av[k++] = members[i];
        }
        rds_commandv(c->r, NULL, NULL, k, av);
    }
    free(av);
    free(members);
}

/* ---------------------------------------------------------------- warm-up budgets */

static size_t coord__budget_id(const struct coord_budget *b, unsigned n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s=%" PRIu64, i ? "\n" : "", b[i].key, b[i].cap);
        if (w < 0 || (size_t)w >= cap - len)
            return cap;
        len += (size_t)w;
    }
    return len;
}

static void coord__on_budget(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct ent *e = arg;
    struct coord *c = e->c;
    uint64_t now = coord__now(c);
    e->inflight = false;
    if (coord__is_error(reply)) {
        coord__log_error(c, "warm-up budget", reply);
        e->denied_until_ms = now + 500;
        return;
    }
    long long granted = rds_reply_int(reply);
    if (granted > 0) {
        e->balance += (unsigned)granted;
        e->exhausted = false;
    } else {
        c->stats.denied++;
        e->exhausted = true;
        e->denied_until_ms = now + COORD_EXHAUSTED_RECHECK_MS;
    }
}

static uint64_t coord__to_window_end(const struct ent *e)
{
    int64_t left = e->window_end_wall_ms - coord__wall_ms();
    return left > 0 ? (uint64_t)left : 0;
}

enum coord_budget_result coord_budget_take(struct coord *c, const struct coord_budget *b,
                                           unsigned n, int64_t window_end_wall_ms,
                                           unsigned want, uint64_t *wait_ms)
{
    char id[COORD_BUDGET_MAX * 340];
    if (n == 0)
        return COORD_GO;
    if (n > COORD_BUDGET_MAX || coord__budget_id(b, n, id, sizeof id) >= sizeof id) {
        *wait_ms = 60000;
        return COORD_EXHAUSTED;
    }
    struct ent *e = coord__find(c, ENT_BUDGET, id, true);
    if (!e) {
        *wait_ms = 1000;
        return COORD_WAIT;
    }
    uint64_t now = coord__now(c);
    e->last_use_ms = now;
    if (!e->nb) {
        memcpy(e->b, b, n * sizeof *b);
        e->nb = n;
        e->window_end_wall_ms = window_end_wall_ms;
    }
    if (e->balance) {
        e->balance--;
        return COORD_GO;
    }
    if (e->exhausted && e->denied_until_ms > now) {
        *wait_ms = coord__to_window_end(e);
        return COORD_EXHAUSTED;
    }
    if (e->inflight) {
        *wait_ms = COORD_POLL_AGAIN_MS;
        return COORD_WAIT;
    }
    if (e->denied_until_ms > now || !rds_is_up(c->r)) {
        /* never exceed a cap: without Redis nothing is sent from a warming source */
        *wait_ms = 500;
        return COORD_WAIT;
    }
    char keys[COORD_BUDGET_MAX][600], caps[COORD_BUDGET_MAX][24], w[16], ttl[24];
    const char *av[5 + 2 * COORD_BUDGET_MAX];
    int k = 0;
    char nk[8];
    snprintf(nk, sizeof nk, "%u", n);
    av[k++] = "EVAL";
    av[k++] = coord_lua_budget;
    av[k++] = nk;
    for (unsigned i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%s", c->prefix, b[i].key);
        av[k++] = keys[i];
    }
    snprintf(w, sizeof w, "%u", want < 1 ? 1 : want > 32 ? 32 : want);
    av[k++] = w;
    /* counts stay readable two days after their window (status, ramp holds) */
    snprintf(ttl, sizeof ttl, "%" PRIu64, coord__to_window_end(e) / 1000 + 172800);
    av[k++] = ttl;
    for (unsigned i = 0; i < n; i++) {
        snprintf(caps[i], sizeof caps[i], "%" PRIu64, b[i].cap);
        av[k++] = caps[i];
    }
    if (rds_commandv(c->r, coord__on_budget, e, k, av) != 0) {
        *wait_ms = 500;
        return COORD_WAIT;
    }
    e->inflight = true;
    c->stats.budget_requests++;
    *wait_ms = COORD_POLL_AGAIN_MS;
    return COORD_WAIT;
}

void coord_budget_return(struct coord *c, const struct coord_budget *b, unsigned n)
{
    char id[COORD_BUDGET_MAX * 340];
    if (n == 0 || n > COORD_BUDGET_MAX || coord__budget_id(b, n, id, sizeof id) >= sizeof id)
        return;
    struct ent *e = coord__find(c, ENT_BUDGET, id, false);
    if (e)
        e->balance++;
}

bool coord_budget_exhausted(struct coord *c, const struct coord_budget *b, unsigned n)
{
    char id[COORD_BUDGET_MAX * 340];
    if (n == 0 || n > COORD_BUDGET_MAX || coord__budget_id(b, n, id, sizeof id) >= sizeof id)
        return false;
    struct ent *e = coord__find(c, ENT_BUDGET, id, false);
    return e && e->exhausted && e->denied_until_ms > coord__now(c) && e->balance == 0;
}

static void coord__budget_refund(struct coord *c, struct ent *e)
{
    if (!e->balance)
        return;
    char keys[COORD_BUDGET_MAX][600], nbuf[16], nk[8];
    const char *av[4 + COORD_BUDGET_MAX];
    int k = 0;
    snprintf(nk, sizeof nk, "%u", e->nb);
    av[k++] = "EVAL";
    av[k++] = coord_lua_budget_refund;
    av[k++] = nk;
    for (unsigned i = 0; i < e->nb; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%s", c->prefix, e->b[i].key);
        av[k++] = keys[i];
    }
    snprintf(nbuf, sizeof nbuf, "%u", e->balance);
    av[k++] = nbuf;
    rds_commandv(c->r, NULL, NULL, k, av);
    e->balance = 0;
}

/* ---------------------------------------------------------------- counts */

void coord_count(struct coord *c, const char *key, const char *field, long long by, unsigned ttl_s)
{
    char id[700];
    if (snprintf(id, sizeof id, "%s\n%s", key, field) >= (int)sizeof id)
        return;
    struct ent *e = coord__find(c, ENT_COUNT, id, true);
    if (!e)
        return;
    snprintf(e->field, sizeof e->field, "%s", field);
    e->add += by;
    e->ttl_s = ttl_s;
    e->last_use_ms = coord__now(c);
}

static void coord__flush_count(struct coord *c, struct ent *e)
{
    if (!e->add || !rds_is_up(c->r))
        return;
    char key[800], by[24], ttl[16];
    const char *nl = strchr(e->key + 1, '\n');
    if (!nl)
        return;
    snprintf(key, sizeof key, "%s%.*s", c->prefix, (int)(nl - (e->key + 1)), e->key + 1);
    snprintf(by, sizeof by, "%lld", e->add);
    snprintf(ttl, sizeof ttl, "%u", e->ttl_s);
    const char *a1[] = {"HINCRBY", key, e->field, by};
    const char *a2[] = {"EXPIRE", key, ttl};
    if (rds_commandv(c->r, NULL, NULL, 4, a1) == 0) {
        rds_commandv(c->r, NULL, NULL, 3, a2);
        e->add = 0;
    }
}

/* ---------------------------------------------------------------- warm-up state */

static void coord__on_roll(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct ent *e = arg;
    e->inflight = false;
    if (coord__is_error(reply) || rds_reply_type(reply) != RDS_ARRAY || rds_reply_len(reply) < 2) {
        coord__log_error(e->c, "warm-up roll", reply);
        return;
    }
    e->held = (unsigned)coord__int(rds_reply_elem(reply, 0));
    size_t wl = 0;
    const char *why = rds_reply_str(rds_reply_elem(reply, 1), &wl);
    snprintf(e->why, sizeof e->why, "%.*s", why ? (int)wl : 0, why ? why : "");
    e->day = e->want_day;
    if (e->why[0])
        log_warn("warm-up: source %s ramp held (%u day(s) in all): %s", e->key + 1, e->held, e->why);
}

static void coord__on_wu_state(struct rds *r, const struct rds_reply *reply, void *arg)
{
    struct ent *e = arg;
    struct coord *c = e->c;
    e->inflight = false;
    if (coord__is_error(reply) || rds_reply_type(reply) != RDS_ARRAY || rds_reply_len(reply) != 4) {
        coord__log_error(c, "warm-up state", reply);
        return;
    }
    long long ld = coord__int(rds_reply_elem(reply, 0));
    if (ld >= e->want_day) { /* already rolled today (by us or another replica) */
        e->held = (unsigned)coord__int(rds_reply_elem(reply, 1));
        size_t wl = 0;
        const char *why = rds_reply_str(rds_reply_elem(reply, 2), &wl);
        snprintf(e->why, sizeof e->why, "%.*s", why ? (int)wl : 0, why ? why : "");
        e->day = e->want_day;
        return;
    }
    /* the last day seen has ended: does its outcome hold the ramp? */
    struct coord_warmup_day_stats st[32];
    unsigned ns = 0;
    const struct rds_reply *h = rds_reply_elem(reply, 3);
    for (size_t i = 0; h && i + 1 < rds_reply_len(h); i += 2) {
        size_t fl = 0;
        const char *f = rds_reply_str(rds_reply_elem(h, i), &fl);
        const char *colon = f ? memchr(f, ':', fl) : NULL;
        if (!colon || (size_t)(colon - f) >= sizeof st[0].provider)
            continue;
        unsigned j = 0;
        while (j < ns && (strlen(st[j].provider) != (size_t)(colon - f) ||
                          memcmp(st[j].provider, f, (size_t)(colon - f)) != 0))
            j++;
        if (j == ns) {
            if (ns == 32)
                continue;
            memset(&st[ns], 0, sizeof st[ns]);
            memcpy(st[ns].provider, f, (size_t)(colon - f));
            ns++;
        }
        uint64_t v = (uint64_t)coord__int(rds_reply_elem(h, i + 1));
        size_t nl = fl - (size_t)(colon + 1 - f);
        if (nl == 4 && memcmp(colon + 1, "sent", 4) == 0)
            st[j].sent = v;
        else if (nl == 7 && memcmp(colon + 1, "bounced", 7) == 0)
            st[j].bounced = v;
        else if (nl == 8 && memcmp(colon + 1, "deferred", 8) == 0)
            st[j].deferred = v;
    }
    char why[256] = "";
    bool hold = ld >= 0 && ns && e->decide && e->decide(e->decide_arg, st, ns, why, sizeof why);
    char today[24], last[24], statekey[600];
    snprintf(today, sizeof today, "%" PRId64, e->want_day);
    snprintf(last, sizeof last, "%lld", ld);
    snprintf(statekey, sizeof statekey, "%s%s:state", c->wu_prefix, e->key + 1);
    const char *av[] = {"EVAL", coord_lua_wu_roll, "1", statekey, today, last, hold ? "1" : "0", why};
    if (rds_commandv(r, coord__on_roll, e, 8, av) == 0)
        e->inflight = true;
}

int coord_warmup_state(struct coord *c, const char *source, int64_t today, const char *stats_prefix,
                       coord_hold_fn decide, void *arg, unsigned *held, const char **why)
{
    struct ent *e = coord__find(c, ENT_WU, source, true);
    if (!e)
        return 0;
    e->last_use_ms = coord__now(c);
    if (e->day == today) {
        *held = e->held;
        *why = e->why;
        return 1;
    }
    if (e->inflight || !rds_is_up(c->r))
        return 0;
    e->want_day = today;
    e->decide = decide;
    e->decide_arg = arg;
    snprintf(e->stats_prefix, sizeof e->stats_prefix, "%s%s", c->prefix, stats_prefix);
    char statekey[600];
    snprintf(statekey, sizeof statekey, "%s%s:state", c->wu_prefix, source);
    const char *av[] = {"EVAL", coord_lua_wu_state, "1", statekey, e->stats_prefix};
    if (rds_commandv(c->r, coord__on_wu_state, e, 5, av) == 0)
        e->inflight = true;
    return 0;
}

/* ---------------------------------------------------------------- holds */

void coord_publish_hold(struct coord *c, const struct backoff_hold *h)
{
    int64_t until_wall = coord__wall_ms() + (int64_t)(h->until_ms - coord__now(c));
    json_t *o = json_pack("{s:s, s:s, s:I, s:f, s:s, s:s, s:s}", "key", h->key, "action",
                          backoff_action_to_text(h->action), "until_ms", (json_int_t)until_wall,
                          "rate_per_s", h->rate_per_s, "rule", h->rule, "reason", h->reason,
                          "set_by", c->cfg.instance);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!js)
        return;
    char until[24];
    snprintf(until, sizeof until, "%" PRId64, until_wall);
    const char *av[] = {"EVAL", coord_lua_hold_put, "2", c->holds_hash, c->holds_zset, h->key, until, js};
    rds_commandv(c->r, NULL, NULL, 8, av);
    free(js);
}

static void coord__on_holds(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct coord *c = arg;
    c->polling = false;
    if (coord__is_error(reply) || rds_reply_type(reply) != RDS_ARRAY) {
        coord__log_error(c, "holds", reply);
        return;
    }
    if (!c->cfg.holds)
        return;
    int64_t wall = coord__wall_ms();
    uint64_t now = coord__now(c);
    unsigned changed = 0;
    for (size_t i = 0; i < rds_reply_len(reply); i++) {
        size_t len = 0;
        const char *s = rds_reply_str(rds_reply_elem(reply, i), &len);
        if (!s)
            continue;
        json_t *o = json_loadb(s, len, 0, NULL);
        const char *key = NULL, *action = NULL, *rule = "", *reason = "";
        json_int_t until = 0;
        double rate = 0;
        struct backoff_hold h;
        memset(&h, 0, sizeof h);
        if (o && json_unpack(o, "{s:s, s:s, s:I, s?F, s?s, s?s}", "key", &key, "action", &action,
                             "until_ms", &until, "rate_per_s", &rate, "rule", &rule, "reason",
                             &reason) == 0 &&
            strlen(key) < sizeof h.key && backoff_action_from_text(action, &h.action) == 0) {
            snprintf(h.key, sizeof h.key, "%s", key);
            int64_t left = (int64_t)until - wall;
            h.until_ms = left > 0 ? now + (uint64_t)left : now;
            h.rate_per_s = rate;
            snprintf(h.rule, sizeof h.rule, "%s", rule);
            snprintf(h.reason, sizeof h.reason, "%s", reason);
            const struct backoff_hold *cur = backoff_table_get(c->cfg.holds, h.key, now);
            bool same = cur ? (cur->action == h.action && cur->rate_per_s == h.rate_per_s &&
                               (cur->until_ms > h.until_ms ? cur->until_ms - h.until_ms
                                                           : h.until_ms - cur->until_ms) < 1000)
                            : h.until_ms <= now;
            if (!same) {
                if (h.until_ms <= now)
                    backoff_table_remove(c->cfg.holds, h.key);
                else
                    backoff_table_put(c->cfg.holds, &h);
                changed++;
            }
        } else {
            log_warn("coord: ignoring a malformed hold in Redis: %.200s", s);
        }
        json_decref(o);
    }
    if ((changed || !c->polled_once) && c->cfg.on_holds)
        c->cfg.on_holds(c->cfg.arg);
    c->polled_once = true;
}

static void coord__poll_holds(struct coord *c)
{
    if (c->polling || !rds_is_up(c->r))
        return;
    char now[24];
    snprintf(now, sizeof now, "%" PRId64, coord__wall_ms());
    const char *av[] = {"EVAL", coord_lua_holds_get, "2", c->holds_hash, c->holds_zset, now};
    if (rds_commandv(c->r, coord__on_holds, c, 6, av) == 0)
        c->polling = true;
}

/* ---------------------------------------------------------------- housekeeping */

static void coord__on_tick(struct ring_timer *t)
{
    struct coord *c = (struct coord *)((char *)t - offsetof(struct coord, tick));
    uint64_t now = coord__now(c);
    bool up = rds_is_up(c->r);
    bool flush = now >= c->next_flush_ms;
    if (flush)
        c->next_flush_ms = now + COORD_COUNT_FLUSH_MS;
    for (unsigned b = 0; b < COORD_BUCKETS; b++) {
        struct ent **pp = &c->buckets[b];
        while (*pp) {
            struct ent *e = *pp;
            bool idle = !e->inflight && e->last_use_ms + COORD_IDLE_FREE_MS <= now;
            switch (e->kind) {
            case ENT_CONN:
                if (up && e->nheld > e->used && e->spare_since_ms &&
                    e->spare_since_ms + COORD_SPARE_LINGER_MS <= now) {
                    coord__conn_return(c, e, e->nheld - e->used);
                    e->spare_since_ms = 0;
                }
                if (up && (e->nheld >= 2 || e->fair_cap) && !e->fair_inflight &&
                    e->fair_checked_ms + COORD_FAIR_MS <= now) {
                    coord__conn_fair(c, e);
                    e->fair_checked_ms = now;
                }
                if (up && e->nheld && e->renewed_ms + c->cfg.conn_lease_ttl_ms / 3 <= now) {
                    coord__conn_renew(c, e);
                    e->renewed_ms = now;
                }
                idle = idle && e->nheld == 0 && e->used == 0 && e->bypass_used == 0;
                break;
            case ENT_BUDGET:
                if (up && e->balance && e->last_use_ms + COORD_BUDGET_IDLE_MS <= now)
                    coord__budget_refund(c, e);
                idle = idle && e->balance == 0;
                break;
            case ENT_COUNT:
                if (flush)
                    coord__flush_count(c, e);
                idle = !e->add && e->last_use_ms + COORD_COUNT_FLUSH_MS * 5 <= now;
                break;
            default:
                break;
            }
            if (idle) {
                *pp = e->hnext;
                coord__free_ent(e);
                continue;
            }
            pp = &e->hnext;
        }
    }
    if (now >= c->next_poll_ms) {
        c->next_poll_ms = now + c->cfg.holds_poll_ms;
        coord__poll_holds(c);
    }
    ring_timer_arm(c->ring, &c->tick, COORD_TICK_MS);
}

static void coord__on_up(struct rds *r, void *arg)
{
    (void)r;
    struct coord *c = arg;
    c->warned_down = false;
    /* leases held before a reconnect may have expired meanwhile: take them again as needed */
    for (unsigned b = 0; b < COORD_BUCKETS; b++)
        for (struct ent *e = c->buckets[b]; e; e = e->hnext)
            e->inflight = false;
    c->polling = false;
    c->next_poll_ms = coord__now(c) + c->cfg.holds_poll_ms;
    coord__poll_holds(c); /* before any mail goes: holds set while we were away apply */
}

static void coord__on_down(struct rds *r, void *arg, const char *why)
{
    (void)r;
    struct coord *c = arg;
    if (!c->warned_down)
        log_warn("coord: Redis unavailable (%s): rate and connection limits are per replica, "
                 "warming sources wait", why ? why : "down");
    c->warned_down = true;
}

int coord_create(struct coord **out, struct ring *ring, const struct coord_config *cfg, const char **why)
{
    struct coord *c = calloc(1, sizeof *c);
    if (!c) {
        *why = "out of memory";
        return -ENOMEM;
    }
    c->ring = ring;
    c->cfg = *cfg;
    if (!c->cfg.conn_lease_ttl_ms)
        c->cfg.conn_lease_ttl_ms = 15000;
    if (!c->cfg.rate_lease_ms)
        c->cfg.rate_lease_ms = 100;
    if (!c->cfg.holds_poll_ms)
        c->cfg.holds_poll_ms = 1000;
    snprintf(c->prefix, sizeof c->prefix, "%s:{p0}:", cfg->prefix);
    snprintf(c->wu_prefix, sizeof c->wu_prefix, "%swu:", c->prefix);
    snprintf(c->holds_hash, sizeof c->holds_hash, "%sholds", c->prefix);
    snprintf(c->holds_zset, sizeof c->holds_zset, "%sholds:until", c->prefix);
    struct rds_config rc = {.url = cfg->redis_url, .on_up = coord__on_up, .on_down = coord__on_down,
                            .arg = c, .name = "coord"};
    if (rds_create(&c->r, ring, &rc, why) != 0) {
        free(c);
        return -EINVAL;
    }
    c->tick.on_fire = coord__on_tick;
    ring_timer_arm(ring, &c->tick, COORD_TICK_MS);
    *out = c;
    return 0;
}

bool coord_up(const struct coord *c) { return rds_is_up(c->r); }

void coord_release_all(struct coord *c)
{
    if (!rds_is_up(c->r))
        return;
    for (unsigned b = 0; b < COORD_BUCKETS; b++)
        for (struct ent *e = c->buckets[b]; e; e = e->hnext) {
            if (e->kind == ENT_CONN)
                coord__conn_return(c, e, e->nheld);
            else if (e->kind == ENT_BUDGET)
                coord__budget_refund(c, e);
            else if (e->kind == ENT_COUNT)
                coord__flush_count(c, e);
        }
}

void coord_destroy(struct coord *c)
{
    if (!c)
        return;
    coord_release_all(c);
    /* let the releases go out */
    for (int i = 0; i < 50 && rds_is_up(c->r) && rds_pending(c->r) > 0; i++)
        ring_run_once(c->ring, 10);
    ring_timer_cancel(c->ring, &c->tick);
    rds_destroy(c->r);
    for (unsigned b = 0; b < COORD_BUCKETS; b++) {
        struct ent *e = c->buckets[b];
        while (e) {
            struct ent *n = e->hnext;
            coord__free_ent(e);
            e = n;
        }
    }
    free(c);
}

const char *coord_key_prefix(const struct coord *c) { return c->wu_prefix; }

void coord_get_stats(const struct coord *c, struct coord_stats *out) { *out = c->stats; }
