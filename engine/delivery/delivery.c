/* engine/delivery/delivery.c — destinations, their connection pools and the MX walk.
 * Every destination's work is driven by dest__pump(), always from a deferred callback, so
 * results reported inside one session callback never re-enter another session. */
#include "engine/delivery/delivery.h"
#include "engine/delivery/dlv_priv.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/smtp/smtp_data.h"
#include "engine/util/log.h"


static void dlv__txn_finish(struct dlv *d, struct dlv_txn *t, const struct smtp_conn_info *ci);
static void dest__hint(const struct dlv_dest *dest, struct dlv_rcpt *rc);
static void dest__on_wake(struct ring_timer *t);
static void dlv__site_put(struct dlv *d, struct dlv_site *x);

void dlv_config_defaults(struct dlv_config *c)
{
    memset(c, 0, sizeof *c);
    smtp_session_config_defaults(&c->session);
    c->tls_policy = TLS_POLICY_OPPORTUNISTIC;
    c->mx_port = 25;
    c->max_conns_per_dest = 10;
    c->max_msgs_per_conn = 100;
    c->max_rcpts_per_txn = 100;
    c->max_txns = 10000;
    c->tls_broken_ttl_s = 3600;
    c->max_queued_per_dest = 1000;
    c->dest_retry_s = 30;
}

const char *dlv_status_to_text(enum dlv_status s)
{
    static const char *const names[] = {"delivered", "deferred", "bounced"};
    return names[s];
}

/* ---------------------------------------------------------------- results */

static void dlv__on_done_batch(struct ring_defer *df)
{
    struct dlv *d = (struct dlv *)((char *)df - offsetof(struct dlv, done_defer));
    struct dlv_msg *m = d->done_head;
    d->done_head = d->done_tail = NULL;
    while (m) {
        struct dlv_msg *next = m->next_done;
        m->next_done = NULL;
        m->on_done(m);
        m = next;
    }
}

static void dlv__msg_rcpt_done(struct dlv *d, struct dlv_msg *m)
{
    if (--m->pending > 0)
        return;
    m->next_done = NULL;
    if (d->done_tail)
        d->done_tail->next_done = m;
    else
        d->done_head = m;
    d->done_tail = m;
    d->done_defer.fn = dlv__on_done_batch;
    ring_defer(d->ring, &d->done_defer);
}

static void dlv__finish_rcpt(struct dlv *d, struct dlv_rcpt *rc, const struct smtp_conn_info *ci)
{
    const struct smtp_outcome *o = &rc->r.outcome;
    if (ci)
        rc->conn = *ci;
    if (o->ok) {
        rc->status = DLV_DELIVERED;
        rc->verdict = (struct fail_verdict){0};
        d->stats.delivered++;
    } else {
        rc->verdict = fail_classify(o->phase, o->transport, o->code, o->enh_class, o->enh_subject,
                                    o->enh_detail);
        rc->status = rc->verdict.cls == FAIL_PERMANENT ? DLV_BOUNCED : DLV_DEFERRED;
        if (rc->status == DLV_BOUNCED)
            d->stats.bounced++;
        else
            d->stats.deferred++;
    }
    dlv__msg_rcpt_done(d, rc->msg);
}

static struct dlv_rcpt *dlv__rcpt_of(struct smtp_rcpt *r)
{
    return (struct dlv_rcpt *)((char *)r - offsetof(struct dlv_rcpt, r));
}

static void dlv__txn_release(struct dlv *d, struct dlv_txn *t)
{
    t->next = d->free_txns;
    d->free_txns = t;
}

/* Reports every recipient of t (outcomes already set) and returns t to the pool. */
static void dlv__txn_finish(struct dlv *d, struct dlv_txn *t, const struct smtp_conn_info *ci)
{
    d->stats.txns++;
    struct smtp_rcpt *r = t->t.rcpts;
    while (r) {
        struct smtp_rcpt *next = r->next;
        dest__hint(t->dest, dlv__rcpt_of(r));
        dlv__finish_rcpt(d, dlv__rcpt_of(r), ci);
        r = next;
    }
    dlv__txn_release(d, t);
}

/* Fails every queued transaction of dest with outcome o. */
static void dest__fail_queue(struct dlv_dest *dest, const struct smtp_outcome *o,
                             const struct smtp_conn_info *ci)
{
    struct dlv_txn *t = dest->q_head;
    dest->q_head = dest->q_tail = NULL;
    dest->queued = 0;
    while (t) {
        struct dlv_txn *next = t->next;
        for (struct smtp_rcpt *r = t->t.rcpts; r; r = r->next) {
            r->outcome = *o;
            r->state = SMTP_RCPT_DONE;
        }
        dlv__txn_finish(dest->d, t, ci);
        t = next;
    }
}

/* ---------------------------------------------------------------- destinations */

static unsigned dlv__hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct dlv_dest *dlv__dest_find(struct dlv *d, const char *domain, unsigned src)
{
    unsigned b = (dlv__hash(domain) + src * 2654435761u) % DLV_BUCKETS;
    for (struct dlv_dest *x = d->buckets[b]; x; x = x->hnext)
        if (x->src == src && strcmp(x->domain, domain) == 0)
            return x;
    return NULL;
}

static struct dlv_dest *dlv__dest(struct dlv *d, const char *domain, size_t len, unsigned src)
{
    char key[DNS_NAME_MAX];
    if (len >= sizeof key)
        return NULL;
    for (size_t i = 0; i < len; i++)
        key[i] = (char)tolower((unsigned char)domain[i]);
    key[len] = '\0';
    if (len && key[len - 1] == '.')
        key[--len] = '\0';
    struct dlv_dest *x = dlv__dest_find(d, key, src);
    if (x)
        return x;
    unsigned b = (dlv__hash(key) + src * 2654435761u) % DLV_BUCKETS;
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    memcpy(x->domain, key, len + 1);
    x->src = src;
    x->d = d;
    x->wake.on_fire = dest__on_wake;
    for (unsigned i = 0; i < d->cfg.nroutes; i++)
        if (strcasecmp(d->cfg.routes[i].domain, key) == 0)
            x->route = &d->cfg.routes[i];
    x->hnext = d->buckets[b];
    d->buckets[b] = x;
    d->ndests++;
    return x;
}

/* Frees destinations with nothing queued, no connection and no recent use, so memory follows
 * the set of domains being sent to now, not every domain ever seen. */
static void dlv__on_sweep(struct ring_timer *t)
{
    struct dlv *d = (struct dlv *)((char *)t - offsetof(struct dlv, sweep));
    uint64_t now = ring_now_ms(d->ring);
    for (unsigned b = 0; b < DLV_BUCKETS; b++) {
        struct dlv_dest **pp = &d->buckets[b];
        while (*pp) {
            struct dlv_dest *x = *pp;
            bool idle = x->queued == 0 && x->nconns == 0 && x->state != DEST_RESOLVING &&
                        !x->pump.queued && x->retry_after_ms <= now &&
                        x->throttled_until_ms <= now && !ring_timer_armed(&x->wake) &&
                        x->last_used_ms + DLV_DEST_IDLE_MS <= now;
            if (idle && x->site_waiting)
                idle = false; /* still linked from its site */
            if (idle) {
                *pp = x->hnext;
                dlv__site_put(d, x->site);
                free(x->hosts);
                free(x);
                d->ndests--;
                continue;
            }
            pp = &x->hnext;
        }
    }
    backoff_table_expire(d->holds, now);
    ring_timer_arm(d->ring, &d->sweep, DLV_SWEEP_MS);
}

static bool dlv__tls_broken(struct dlv *d, const char *addr)
{
    uint64_t now = ring_now_ms(d->ring);
    for (unsigned i = 0; i < DLV_TLS_BROKEN_SLOTS; i++)
        if (d->broken[i].until_ms > now && strcmp(d->broken[i].addr, addr) == 0)
            return true;
    return false;
}

static void dlv__mark_tls_broken(struct dlv *d, const char *addr)
{
    struct tls_broken *b = &d->broken[d->broken_next++ % DLV_TLS_BROKEN_SLOTS];
    snprintf(b->addr, sizeof b->addr, "%s", addr);
    b->until_ms = ring_now_ms(d->ring) + (uint64_t)d->cfg.tls_broken_ttl_s * 1000u;
}

/* ---------------------------------------------------------------- shaping */


static struct dlv_site *dlv__site_get(struct dlv *d, const char *key)
{
    unsigned b = dlv__hash(key) % DLV_BUCKETS;
    for (struct dlv_site *x = d->sites[b]; x; x = x->hnext)
        if (strcmp(x->key, key) == 0) {
            x->refs++;
            return x;
        }
    struct dlv_site *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    snprintf(x->key, sizeof x->key, "%s", key);
    x->refs = 1;
    x->hnext = d->sites[b];
    d->sites[b] = x;
    return x;
}

static void dlv__site_put(struct dlv *d, struct dlv_site *x)
{
    if (!x || --x->refs > 0)
        return;
    for (struct dlv_site **pp = &d->sites[dlv__hash(x->key) % DLV_BUCKETS]; *pp; pp = &(*pp)->hnext)
        if (*pp == x) {
            *pp = x->hnext;
            break;
        }
    free(x);
}

/* A connection slot of the site opened up: every destination that waited for one tries. */
static void dlv__site_wake(struct dlv_site *x)
{
    struct dlv_dest *w = x->waiters;
    x->waiters = NULL;
    while (w) {
        struct dlv_dest *n = w->site_wait_next;
        w->site_waiting = false;
        w->site_wait_next = NULL;
        dest__schedule(w);
        w = n;
    }
}

static void dlv__timeouts_from(struct smtp_timeouts *t, const struct shaping_timeouts *st, double scale)
{
    t->connect_ms = st->connect_ms;
    t->greeting_ms = st->greeting_ms;
    t->ehlo_ms = st->ehlo_ms;
    t->starttls_ms = st->starttls_ms;
    t->auth_ms = st->auth_ms;
    t->mail_ms = st->mail_ms;
    t->rcpt_ms = st->rcpt_ms;
    t->data_ms = st->data_ms;
    t->data_block_ms = st->data_block_ms;
    t->end_ms = st->end_ms;
    t->rset_ms = st->rset_ms;
    t->quit_ms = st->quit_ms;
    t->idle_ms = st->idle_ms;
    if (scale > 0 && scale != 1.0)
        smtp_timeouts_scale(t, scale);
}

/* Resolves the destination's limits (after DNS: MX host names select the provider) and
 * attaches it to the site whose counters it shares. */
static void dest__shape(struct dlv_dest *dest)
{
    struct dlv *d = dest->d;
    const char *mx[DNS_MAX_HOSTS];
    unsigned n = 0;
    if (dest->hosts)
        for (unsigned i = 0; i < dest->hosts->nhosts; i++)
            mx[n++] = dest->hosts->hosts[i].name;
    dest->scfg = d->cfg.session;
    if (dest->route && dest->route->auth_user[0]) {
        dest->scfg.auth_user = dest->route->auth_user;
        dest->scfg.auth_pass = dest->route->auth_pass;
    }
    const struct dlv_source *src = &d->sources[dest->src];
    if (src->ehlo[0])
        dest->scfg.ehlo_name = src->ehlo;
    const char *src_name = d->explicit_sources ? src->name : NULL;
    if (d->cfg.shaping) {
        shaping_resolve(d->cfg.shaping, dest->domain, mx, n, src_name, &dest->lim, NULL);
        dlv__timeouts_from(&dest->scfg.timeouts, &dest->lim.timeouts, d->cfg.timeout_scale);
        static const enum tls_policy map[] = {
            [SHAPING_TLS_DISABLED] = TLS_POLICY_DISABLED,
            [SHAPING_TLS_OPPORTUNISTIC] = TLS_POLICY_OPPORTUNISTIC,
            [SHAPING_TLS_REQUIRED] = TLS_POLICY_REQUIRED,
            [SHAPING_TLS_VERIFY] = TLS_POLICY_VERIFY,
        };
        dest->tls = map[dest->lim.tls];
    } else {
        shaping_limits_builtin(&dest->lim);
        dest->lim.max_connections = d->cfg.max_conns_per_dest;
        dest->lim.max_msgs_per_connection = d->cfg.max_msgs_per_conn;
        dest->lim.max_rcpts_per_txn = d->cfg.max_rcpts_per_txn;
        dest->lim.nretry = 0;
        dest->lim.max_age_s = 0;
        dest->lim.max_msgs_per_second = dest->lim.max_msgs_per_minute = 0;
        dest->lim.max_msgs_per_hour = dest->lim.max_new_connections_per_minute = 0;
        dest->tls = d->cfg.tls_policy;
    }
    shaping_msg_rates(&dest->lim, dest->msg_rates);
    shaping_conn_rate(&dest->lim, &dest->conn_rate);
    /* limits hold per (source, site): a site is the provider, else the MX host set */
    char key[700];
    int kl = snprintf(key, sizeof key, "%s|", src->name);
    const char *prov = d->cfg.shaping ? shaping_provider_of(d->cfg.shaping, dest->domain, mx, n) : NULL;
    dest->provider = prov;
    dest->hold_none = false;
    if (prov) {
        snprintf(key + kl, sizeof key - (size_t)kl, "provider:%s", prov);
    } else if (n == 0) {
        snprintf(key + kl, sizeof key - (size_t)kl, "domain:%s", dest->domain);
    } else {
        /* MX rollup: domains with the same MX host set share one set of counters */
        memcpy(key + kl, "mx:", 3);
        shaping_site_key(mx, n, key + kl + 3, sizeof key - (size_t)kl - 3);
    }
    if (!dest->site || strcmp(dest->site->key, key) != 0) {
        struct dlv_site *old = dest->site;
        if (old && dest->site_waiting) {
            for (struct dlv_dest **pp = &old->waiters; *pp; pp = &(*pp)->site_wait_next)
                if (*pp == dest) {
                    *pp = dest->site_wait_next;
                    break;
                }
            dest->site_waiting = false;
            dest->site_wait_next = NULL;
        }
        dest->site = dlv__site_get(d, key);
        dlv__site_put(d, old);
    }
    dest->shaped = true;
}

/* Concurrency feedback (schedulers/concurrency.h): connections the site takes now. */
static unsigned dest__max_conns(const struct dlv_dest *dest)
{
    unsigned max = dest->shaped ? dest->lim.max_connections : dest->d->cfg.max_conns_per_dest;
    return dest->site ? conc_allowed(&dest->site->window, max) : max;
}

static void site__feedback(struct dlv_site *x, unsigned max, bool ok)
{
    if (x)
        conc_feedback(&x->window, max, ok);
}

/* The destination's retry schedule and max age travel with each deferred recipient. */
static void dest__hint(const struct dlv_dest *dest, struct dlv_rcpt *rc)
{
    rc->source_name = dest->d->sources[dest->src].name;
    rc->warmup_note = dest->d->wu_note[dest->src][0] ? dest->d->wu_note[dest->src] : NULL;
    if (dest->site) {
        const char *bar = strchr(dest->site->key, '|');
        rc->site = bar ? bar + 1 : dest->site->key;
    }
    if (!dest->shaped || !dest->d->cfg.shaping)
        return;
    rc->nretry = dest->lim.nretry;
    memcpy(rc->retry_s, dest->lim.retry_schedule_s, sizeof rc->retry_s);
    rc->max_age_s = dest->lim.max_age_s;
}

static uint64_t dlv__now_us(const struct dlv *d) { return ring_now_ms(d->ring) * 1000u; }

static void dest__on_wake(struct ring_timer *t)
{
    struct dlv_dest *dest = (struct dlv_dest *)((char *)t - offsetof(struct dlv_dest, wake));
    dest__schedule(dest);
}

/* Everything queued bounces: a backoff rule's bounce action. */
static void dest__bounce_queue(struct dlv_dest *dest, const char *why)
{
    struct smtp_outcome o = {0};
    o.phase = FAIL_PHASE_LOCAL;
    o.transport = FAIL_T_LOCAL_PERM;
    snprintf(o.enhanced, sizeof o.enhanced, "5.7.1");
    o.enh_class = 5, o.enh_subject = 7, o.enh_detail = 1;
    snprintf(o.text, sizeof o.text, "%s", why);
    dest__fail_queue(dest, &o, NULL);
}

/* The message rate is exhausted for a while: queued work goes back to the retry set with the
 * time it may go, instead of holding memory (DESIGN §2). */
static void dest__throttle(struct dlv_dest *dest, uint64_t wait_ms, const char *why)
{
    struct dlv *d = dest->d;
    dest->throttled_until_ms = ring_now_ms(d->ring) + wait_ms;
    dest->throttle_gen = d->hold_gen; /* a throttle that came from a hold ends with it */
    snprintf(dest->throttle_why, sizeof dest->throttle_why, "%.299s", why);
    struct smtp_outcome o = {0};
    o.phase = FAIL_PHASE_LOCAL;
    o.transport = FAIL_T_LOCAL_TEMP;
    snprintf(o.text, sizeof o.text, "%s", why);
    struct dlv_txn *t = dest->q_head;
    dest->q_head = dest->q_tail = NULL;
    dest->queued = 0;
    while (t) {
        struct dlv_txn *next = t->next;
        for (struct smtp_rcpt *r = t->t.rcpts; r; r = r->next) {
            struct dlv_rcpt *rc = (struct dlv_rcpt *)((char *)r - offsetof(struct dlv_rcpt, r));
            r->outcome = o;
            r->state = SMTP_RCPT_DONE;
            rc->not_attempted = true;
            rc->retry_after_ms = (unsigned)wait_ms;
        }
        dlv__txn_finish(d, t, NULL);
        t = next;
    }
}

static void dest__on_resolved(void *arg, const struct dns_result *res)
{
    struct dlv_dest *dest = arg;
    if (res->status == DNS_OK) {
        if (!dest->hosts)
            dest->hosts = malloc(sizeof *dest->hosts);
        if (dest->hosts) {
            *dest->hosts = *res;
            dest->host_idx = dest->addr_idx = 0;
            dest->state = DEST_ACTIVE;
            dest__shape(dest);
            dest__schedule(dest);
            return;
        }
    }
    struct smtp_outcome o;
    memset(&o, 0, sizeof o);
    o.phase = FAIL_PHASE_DNS;
    switch (res->status) {
    case DNS_NULLMX:
        o.transport = FAIL_T_NULLMX;
        snprintf(o.enhanced, sizeof o.enhanced, "5.1.10");
        o.enh_class = 5, o.enh_subject = 1, o.enh_detail = 10;
        snprintf(o.text, sizeof o.text, "domain %s does not accept mail (null MX)", dest->domain);
        break;
    case DNS_NXDOMAIN:
    case DNS_NOHOSTS:
        o.transport = FAIL_T_DNS_PERM;
        snprintf(o.enhanced, sizeof o.enhanced, "5.1.2");
        o.enh_class = 5, o.enh_subject = 1, o.enh_detail = 2;
        snprintf(o.text, sizeof o.text, "%s: %s", dest->domain,
                 res->error ? res->error : dns_status_to_text(res->status));
        break;
    default:
        o.transport = FAIL_T_DNS_TEMP;
        snprintf(o.enhanced, sizeof o.enhanced, "4.4.3");
        o.enh_class = 4, o.enh_subject = 4, o.enh_detail = 3;
        snprintf(o.text, sizeof o.text, "DNS lookup for %s failed: %s", dest->domain,
                 res->error ? res->error : dns_status_to_text(res->status));
        break;
    }
    dest->state = DEST_IDLE;
    dest__fail_queue(dest, &o, NULL);
}

/* ---------------------------------------------------------------- connections */

static void conn__on_ready(struct smtp_session *s);
static void conn__on_txn_done(struct smtp_session *s, struct smtp_txn *txn);
static void conn__on_closed(struct smtp_session *s);

static const struct smtp_session_ops conn__ops = {
    .on_ready = conn__on_ready,
    .on_txn_done = conn__on_txn_done,
    .on_closed = conn__on_closed,
};

static void dest__advance(struct dlv_dest *dest)
{
    const struct dns_result *h = dest->hosts;
    if (++dest->addr_idx >= h->hosts[dest->host_idx].naddrs) {
        dest->addr_idx = 0;
        dest->host_idx++;
    }
}

static bool dest__exhausted(const struct dlv_dest *dest)
{
    return !dest->hosts || dest->host_idx >= dest->hosts->nhosts;
}

/* The MX list is used up: everything queued gets the last failure; start afresh later. */
static void dest__give_up(struct dlv_dest *dest)
{
    dest->host_idx = dest->addr_idx = 0;
    dest->state = DEST_IDLE; /* the next message re-resolves (the DNS cache answers) */
    struct fail_verdict v = fail_classify(dest->last_fail.phase, dest->last_fail.transport,
                                          dest->last_fail.code, dest->last_fail.enh_class,
                                          dest->last_fail.enh_subject, dest->last_fail.enh_detail);
    if (v.cls == FAIL_TEMPORARY && dest->d->cfg.dest_retry_s) {
        /* suspended briefly, doubling while it keeps failing (capped at 64x) */
        unsigned shift = dest->fail_streak < 6 ? dest->fail_streak : 6;
        dest->retry_after_ms = ring_now_ms(dest->d->ring) +
                               ((uint64_t)dest->d->cfg.dest_retry_s * 1000u << shift);
        dest->fail_streak++;
    }
    if (dest->nconns == 0 || dest->queued)
        dest__fail_queue(dest, &dest->last_fail, &dest->last_conn);
}

/* Opens one connection at the cursor; false when none could be started. */
static bool dest__connect(struct dlv_dest *dest)
{
    struct dlv *d = dest->d;
    while (!dest__exhausted(dest)) {
        const struct dns_host *h = &dest->hosts->hosts[dest->host_idx];
        struct sockaddr_storage sa = h->addrs[dest->addr_idx];
        socklen_t sl;
        uint16_t port = dest->route ? dest->route->port : d->cfg.mx_port;
        if (sa.ss_family == AF_INET) {
            ((struct sockaddr_in *)&sa)->sin_port = htons(port);
            sl = sizeof(struct sockaddr_in);
        } else {
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
            sl = sizeof(struct sockaddr_in6);
        }
        const struct dlv_source *src = &d->sources[dest->src];
        if (src->has_addr && src->addr.ss_family != sa.ss_family) {
            dest__advance(dest); /* cannot reach this family from the source address */
            continue;
        }
        struct dlv_conn *c = calloc(1, sizeof *c);
        if (!c)
            return false;
        c->dest = dest;
        c->host_idx = dest->host_idx;
        c->addr_idx = dest->addr_idx;
        smtp_session_init(&c->s, d->ring, dest->shaped ? &dest->scfg : &d->cfg.session, &conn__ops, c);
        char addr[64];
        ring_addr_to_text((struct sockaddr *)&sa, addr, sizeof addr);
        enum tls_policy pol = dest->shaped ? dest->tls : d->cfg.tls_policy;
        if (pol == TLS_POLICY_OPPORTUNISTIC && dlv__tls_broken(d, addr)) {
            pol = TLS_POLICY_DISABLED;
            c->plaintext_retry = true;
        }
        int rc = smtp_session_start(&c->s, h->name, (struct sockaddr *)&sa, sl,
                                    src->has_addr ? (struct sockaddr *)&src->addr : NULL,
                                    src->addr_len, pol);
        if (rc != 0) {
            smtp_session_fini(&c->s);
            free(c);
            memset(&dest->last_fail, 0, sizeof dest->last_fail);
            dest->last_fail.phase = FAIL_PHASE_CONNECT;
            dest->last_fail.transport = FAIL_T_UNREACHABLE;
            snprintf(dest->last_fail.text, sizeof dest->last_fail.text, "cannot connect to %s: %s",
                     addr, strerrordesc_np(-rc) ? strerrordesc_np(-rc) : "error");
            memset(&dest->last_conn, 0, sizeof dest->last_conn);
            snprintf(dest->last_conn.mx_host, sizeof dest->last_conn.mx_host, "%s", h->name);
            snprintf(dest->last_conn.mx_addr, sizeof dest->last_conn.mx_addr, "%s", addr);
            dest->last_conn.mx_port = port;
            d->stats.conn_failures++;
            dest__advance(dest);
            continue;
        }
        d->stats.conns_opened++;
        d->nconns++;
        c->site = dest->site;
        if (c->site) {
            c->site->refs++;
            c->site->nconns++;
        }
        c->next = dest->conns;
        dest->conns = c;
        dest->nconns++;
        dest->nconnecting++;
        return true;
    }
    return false;
}

static struct dlv_txn *dest__pop(struct dlv_dest *dest)
{
    struct dlv_txn *t = dest->q_head;
    if (t) {
        dest->q_head = t->next;
        if (!dest->q_head)
            dest->q_tail = NULL;
        dest->queued--;
        t->next = NULL;
    }
    return t;
}

static void dest__push_front(struct dlv_dest *dest, struct dlv_txn *t)
{
    t->next = dest->q_head;
    dest->q_head = t;
    if (!dest->q_tail)
        dest->q_tail = t;
    dest->queued++;
}

static void conn__give_work(struct dlv_conn *c)
{
    struct dlv_dest *dest = c->dest;
    struct dlv *d = dest->d;
    if (!smtp_session_ready(&c->s))
        return;
    unsigned max_msgs = dest->shaped ? dest->lim.max_msgs_per_connection : d->cfg.max_msgs_per_conn;
    if (c->msgs >= max_msgs || d->shutting_down || (c->leased && gate_conn_yield(d, c->site))) {
        smtp_session_quit(&c->s);
        return;
    }
    if (!dest->q_head)
        return;
    uint64_t wait_ms = 0;
    char why[SMTP_OUTCOME_TEXT_MAX];
    switch (gate_txn(dest, &wait_ms, why, sizeof why)) {
    case GATE_GO:
        break;
    case GATE_WAIT:
        if (!ring_timer_armed(&dest->wake))
            ring_timer_arm(d->ring, &dest->wake, wait_ms ? wait_ms : 1);
        return;
    case GATE_DEFER:
        dest__throttle(dest, wait_ms, why);
        return;
    case GATE_BOUNCE:
        dest__bounce_queue(dest, why);
        return;
    }
    struct dlv_txn *t = dest__pop(dest);
    if (!t) {
        gate_txn_untake(dest);
        return;
    }
    if (smtp_session_submit(&c->s, &t->t) != 0) {
        dest__push_front(dest, t);
        gate_txn_untake(dest); /* the tokens were not used */
    }
}

static void dest__pump_now(struct ring_defer *df)
{
    struct dlv_dest *dest = (struct dlv_dest *)((char *)df - offsetof(struct dlv_dest, pump));
    struct dlv *d = dest->d;
    if (dest->queued == 0 || d->shutting_down)
        return;
    if (dest->state == DEST_IDLE) {
        dest->state = DEST_RESOLVING;
        int rc = dest->route ? dns_resolve_host(d->dns, dest->route->host, dest__on_resolved, dest)
                             : dns_resolve_mx(d->dns, dest->domain, dest__on_resolved, dest);
        if (rc != 0) {
            dest->state = DEST_IDLE;
            struct smtp_outcome o = {0};
            o.phase = FAIL_PHASE_DNS;
            o.transport = FAIL_T_DNS_TEMP;
            snprintf(o.text, sizeof o.text, "cannot start DNS lookup for %s", dest->domain);
            dest__fail_queue(dest, &o, NULL);
        }
        return;
    }
    if (dest->state != DEST_ACTIVE)
        return;
    const struct backoff_hold *h = gate_hold(dest);
    if (h && h->action != BACKOFF_REDUCE_RATE) {
        /* suspended or bouncing: nothing starts; idle connections go */
        uint64_t wait_ms = 0;
        char why[SMTP_OUTCOME_TEXT_MAX];
        enum gate g = gate_txn(dest, &wait_ms, why, sizeof why);
        if (g == GATE_DEFER)
            dest__throttle(dest, wait_ms, why);
        else if (g == GATE_BOUNCE)
            dest__bounce_queue(dest, why);
        for (struct dlv_conn *c = dest->conns; c; c = c->next)
            if (smtp_session_ready(&c->s) && !c->s.txn)
                smtp_session_quit(&c->s);
        return;
    }
    for (struct dlv_conn *c = dest->conns; c && dest->queued; c = c->next)
        conn__give_work(c);
    unsigned max_conns = dest__max_conns(dest);
    /* ready connections with nothing to do (waiting for a rate token) count as capacity */
    unsigned idle = 0;
    for (struct dlv_conn *c = dest->conns; c; c = c->next)
        idle += smtp_session_ready(&c->s) && !c->s.txn;
    if (dest->site && dest->queued > dest->nconnecting + idle && dest->site->nconns >= max_conns &&
        dest->site->nconns > dest->nconns && !dest->site_waiting) {
        /* the site's connections are all taken (possibly by other domains of it) */
        dest->site_waiting = true;
        dest->site_wait_next = dest->site->waiters;
        dest->site->waiters = dest;
    }
    while (dest->queued > dest->nconnecting + idle &&
           (dest->site ? dest->site->nconns : dest->nconns) < max_conns) {
        if (dest->shaped && dest->site && dest->conn_rate.emission_us) {
            uint64_t ra_us = 0;
            if (!gcra_take(&dest->site->conn, &dest->conn_rate, dlv__now_us(d), 1, &ra_us)) {
                ring_timer_arm(d->ring, &dest->wake, ra_us / 1000 + 1);
                break;
            }
        }
        uint64_t lease_wait = 0;
        if (!gate_conn_take(dest, &lease_wait)) {
            if (dest->shaped && dest->site && dest->conn_rate.emission_us)
                gcra_refund(&dest->site->conn, &dest->conn_rate, dlv__now_us(d), 1);
            if (!ring_timer_armed(&dest->wake))
                ring_timer_arm(d->ring, &dest->wake, lease_wait ? lease_wait : 1);
            break;
        }
        bool leased = d->coord && dest->shaped && !dest->lim.replica_local && dest->site;
        if (!dest__connect(dest)) {
            if (leased)
                gate_conn_release(d, dest->site);
            break;
        }
        dest->conns->leased = leased;
    }
    if (dest->queued && dest->nconns == 0 && dest__exhausted(dest))
        dest__give_up(dest);
}

void dest__schedule(struct dlv_dest *dest)
{
    dest->pump.fn = dest__pump_now;
    ring_defer(dest->d->ring, &dest->pump);
}

static void conn__on_ready(struct smtp_session *s)
{
    struct dlv_conn *c = s->owner;
    if (!c->ready_once) {
        c->ready_once = true;
        c->dest->nconnecting--;
    }
    conn__give_work(c);
    /* nothing for it here while other domains of the site wait for a slot: give it up */
    if (smtp_session_ready(s) && !c->s.txn && c->site && !c->dest->q_head) {
        for (struct dlv_dest *w = c->site->waiters; w; w = w->site_wait_next)
            if (w != c->dest) {
                smtp_session_quit(s);
                break;
            }
    }
    dest__schedule(c->dest);
}

static void conn__on_txn_done(struct smtp_session *s, struct smtp_txn *txn)
{
    struct dlv_conn *c = s->owner;
    struct dlv_txn *t = (struct dlv_txn *)((char *)txn - offsetof(struct dlv_txn, t));
    c->msgs++;
    struct dlv_dest *dest = c->dest;
    bool delivered = false, pushback = false;
    const struct smtp_outcome *first_fail = NULL;
    for (struct smtp_rcpt *r = txn->rcpts; r; r = r->next) {
        delivered |= r->outcome.ok;
        pushback |= r->outcome.code == 421;
        if (!r->outcome.ok && r->outcome.code >= 400 && !first_fail)
            first_fail = &r->outcome;
    }
    if (first_fail)
        gate_observe(dest, first_fail);
    gate_txn_done(dest, txn);
    { /* throughput estimate from transactions really sent: how much queue it can use */
        uint64_t now = ring_now_ms(dest->d->ring);
        dest->win_count++;
        if (!dest->win_start_ms)
            dest->win_start_ms = now;
        if (now - dest->win_start_ms >= 1000) {
            double inst = dest->win_count * 1000.0 / (double)(now - dest->win_start_ms);
            dest->rate = dest->rate > 0 ? 0.7 * dest->rate + 0.3 * inst : inst;
            dest->win_start_ms = now;
            dest->win_count = 0;
        }
    }
    if (delivered || pushback) {
        unsigned max = dest->shaped ? dest->lim.max_connections : dest->d->cfg.max_conns_per_dest;
        site__feedback(c->site, max, !pushback);
        if (delivered)
            dest->fail_streak = 0;
    }
    dlv__txn_finish(dest->d, t, &txn->conn);
    if (c->msgs >= (dest->shaped ? dest->lim.max_msgs_per_connection : dest->d->cfg.max_msgs_per_conn))
        smtp_session_quit(s);
}

static void conn__on_closed(struct smtp_session *s)
{
    struct dlv_conn *c = s->owner;
    struct dlv_dest *dest = c->dest;
    struct dlv *d = dest->d;
    for (struct dlv_conn **pp = &dest->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    dest->nconns--;
    d->nconns--;
    if (c->leased)
        gate_conn_release(d, c->site);
    if (s->failed && !c->ready_once)
        gate_observe(dest, &s->failure);
    if (c->site) {
        c->site->nconns--;
        dlv__site_wake(c->site);
        dlv__site_put(d, c->site);
        c->site = NULL;
    }
    if (!c->ready_once) {
        dest->nconnecting--;
        d->stats.conn_failures++;
        if (s->failed) {
            dest->last_fail = s->failure;
        } else {
            memset(&dest->last_fail, 0, sizeof dest->last_fail);
            dest->last_fail.phase = FAIL_PHASE_GREETING;
            dest->last_fail.transport = FAIL_T_RESET;
            snprintf(dest->last_fail.text, sizeof dest->last_fail.text,
                     "connection closed before the session was ready");
        }
        dest->last_conn = s->info;
        /* a refused/timed-out connection or a 421 greeting: the site gets fewer connections */
        if (s->failed && (s->failure.code == 421 || s->failure.transport == FAIL_T_REFUSED ||
                          s->failure.transport == FAIL_T_TIMEOUT))
            site__feedback(c->site ? c->site : dest->site,
                           dest->shaped ? dest->lim.max_connections : d->cfg.max_conns_per_dest, false);
        bool at_cursor = dest->hosts && c->host_idx == dest->host_idx && c->addr_idx == dest->addr_idx;
        enum tls_policy pol = dest->shaped ? dest->tls : d->cfg.tls_policy;
        if (s->tls_failed && pol == TLS_POLICY_OPPORTUNISTIC && !c->plaintext_retry) {
            /* retry the same host in plaintext; remember its TLS is broken */
            dlv__mark_tls_broken(d, s->info.mx_addr);
            d->stats.tls_fallbacks++;
            log_debug("[c%lu] TLS failed with %s, retrying without TLS", s->id, s->info.mx_addr);
        } else if (at_cursor) {
            dest__advance(dest);
        }
        if (dest__exhausted(dest) && dest->nconnecting == 0)
            dest__give_up(dest);
    }
    smtp_session_fini(&c->s);
    free(c);
    dest__schedule(dest);
}

/* ---------------------------------------------------------------- public */

int dlv_create(struct dlv **out, struct ring *ring, struct dns *dns, const struct dlv_config *cfg)
{
    struct dlv *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->ring = ring;
    d->dns = dns;
    d->cfg = *cfg;
    if (!d->cfg.max_txns)
        d->cfg.max_txns = 10000;
    if (!d->cfg.max_rcpts_per_txn)
        d->cfg.max_rcpts_per_txn = 100;
    if (!d->cfg.max_conns_per_dest)
        d->cfg.max_conns_per_dest = 1;
    if (!d->cfg.max_msgs_per_conn)
        d->cfg.max_msgs_per_conn = 1;
    d->txns = calloc(d->cfg.max_txns, sizeof *d->txns);
    if (!d->txns) {
        free(d);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < d->cfg.max_txns; i++)
        dlv__txn_release(d, &d->txns[i]);
    if (cfg->nsources) {
        d->nsources = cfg->nsources < DLV_MAX_SOURCES ? cfg->nsources : DLV_MAX_SOURCES;
        memcpy(d->sources, cfg->sources, d->nsources * sizeof *d->sources);
        d->explicit_sources = true;
    } else { /* one implicit source: delivery.source_ip, or whatever the kernel picks */
        d->nsources = 1;
        snprintf(d->sources[0].name, sizeof d->sources[0].name, "default");
        d->sources[0].has_addr = cfg->has_source;
        d->sources[0].addr = cfg->source;
        d->sources[0].addr_len = cfg->source_len;
    }
    if (cfg->npools) {
        d->npools = cfg->npools < DLV_MAX_POOLS ? cfg->npools : DLV_MAX_POOLS;
        memcpy(d->pools, cfg->pools, d->npools * sizeof *d->pools);
        d->default_pool = cfg->default_pool < d->npools ? cfg->default_pool : 0;
    } else { /* one pool of every source, equal weights */
        d->npools = 1;
        snprintf(d->pools[0].name, sizeof d->pools[0].name, "default");
        d->pools[0].n = d->nsources < DLV_POOL_MAX ? d->nsources : DLV_POOL_MAX;
        for (unsigned i = 0; i < d->pools[0].n; i++) {
            d->pools[0].member[i] = i;
            d->pools[0].weight[i] = 1;
        }
    }
    if (gate_init(d) != 0) {
        gate_fini(d);
        free(d->txns);
        free(d);
        return -ENOMEM;
    }
    d->sweep.on_fire = dlv__on_sweep;
    ring_timer_arm(ring, &d->sweep, DLV_SWEEP_MS);
    *out = d;
    return 0;
}

void dlv_destroy(struct dlv *d)
{
    if (!d)
        return;
    ring_timer_cancel(d->ring, &d->sweep);
    ring_defer_cancel(d->ring, &d->done_defer);
    for (unsigned b = 0; b < DLV_BUCKETS; b++) {
        struct dlv_dest *x = d->buckets[b];
        while (x) {
            struct dlv_dest *n = x->hnext;
            ring_timer_cancel(d->ring, &x->wake);
            ring_defer_cancel(d->ring, &x->pump);
            free(x->hosts);
            free(x);
            x = n;
        }
        struct dlv_site *st = d->sites[b];
        while (st) {
            struct dlv_site *n = st->hnext;
            free(st);
            st = n;
        }
    }
    gate_fini(d);
    free(d->txns);
    free(d);
}

/* Smooth weighted round robin (as nginx does it): exact shares, evenly interleaved. */
static unsigned dlv__pick_source(struct dlv *d, unsigned pool, uint32_t skip)
{
    const struct dlv_pool *p = &d->pools[pool];
    if (p->n <= 1)
        return p->n ? p->member[0] : 0;
    int total = 0, best = -1;
    for (unsigned i = 0; i < p->n; i++) {
        if (skip & (1u << i))
            continue;
        d->wrr[pool][i] += (int)p->weight[i];
        total += (int)p->weight[i];
        if (best < 0 || d->wrr[pool][i] > d->wrr[pool][best])
            best = (int)i;
    }
    d->wrr[pool][best] -= total;
    return p->member[best];
}

static const char *dlv__domain_of(const char *addr, size_t *len)
{
    const char *at = strrchr(addr, '@');
    if (!at || at == addr || !at[1])
        return NULL;
    *len = strlen(at + 1);
    return at + 1;
}

/* No source of the message's pool may send now (warm-up budget spent, or suspended): the
 * message waits, unattempted, until the first of them may again. Never bounced, never over
 * a cap. */
static int dlv__all_out(struct dlv *d, struct dlv_msg *m, uint64_t until_ms)
{
    uint64_t now = ring_now_ms(d->ring);
    m->pending = m->nrcpts;
    for (unsigned i = 0; i < m->nrcpts; i++) {
        struct dlv_rcpt *rc = &m->rcpts[i];
        rc->msg = m;
        memset(&rc->r.outcome, 0, sizeof rc->r.outcome);
        memset(&rc->conn, 0, sizeof rc->conn);
        rc->r.outcome.phase = FAIL_PHASE_LOCAL;
        rc->r.outcome.transport = FAIL_T_LOCAL_TEMP;
        snprintf(rc->r.outcome.text, sizeof rc->r.outcome.text,
                 "no source of the pool may send to this domain now (warm-up caps or holds); "
                 "next try in %llu s",
                 (unsigned long long)((until_ms > now ? until_ms - now : 0) / 1000));
        rc->r.state = SMTP_RCPT_DONE;
        rc->not_attempted = true;
        rc->retry_after_ms = until_ms > now ? (unsigned)(until_ms - now) : 1000;
        rc->nretry = 0;
        rc->max_age_s = 0;
        rc->source_name = NULL;
        rc->warmup_note = NULL;
        dlv__finish_rcpt(d, rc, NULL);
    }
    return 0;
}

int dlv_submit(struct dlv *d, struct dlv_msg *m)
{
    if (m->nrcpts == 0)
        return -EINVAL;
    /* Worst case one transaction per recipient: check the pool before touching anything. */
    unsigned avail = 0;
    for (struct dlv_txn *t = d->free_txns; t && avail < m->nrcpts; t = t->next)
        avail++;
    if (avail < m->nrcpts)
        return -EAGAIN;

    unsigned pool = d->default_pool;
    if (m->pool && *m->pool) {
        unsigned p = 0;
        while (p < d->npools && strcmp(d->pools[p].name, m->pool) != 0)
            p++;
        if (p == d->npools)
            return -ENOENT;
        pool = p;
    }
    /* sources known to be out of warm-up budget, or suspended, for the (first) recipient's
     * domain sit out: the pool's others take the message */
    uint32_t skip = 0;
    uint64_t soonest = 0;
    size_t dl0;
    const char *dom0 = dlv__domain_of(m->rcpts[0].r.addr, &dl0);
    char norm[DNS_NAME_MAX];
    if (d->coord && dom0 && dl0 < sizeof norm) {
        for (size_t k = 0; k < dl0; k++)
            norm[k] = (char)tolower((unsigned char)dom0[k]);
        norm[dl0] = '\0';
        if (dl0 && norm[dl0 - 1] == '.')
            norm[dl0 - 1] = '\0';
        const struct dlv_pool *p = &d->pools[pool];
        for (unsigned k = 0; k < p->n; k++) {
            uint64_t until;
            /* with one source, its destination's own checks say why mail waits */
            if (gate_source_out(d, norm, p->member[k], p->n > 1, &until)) {
                skip |= 1u << k;
                if (!soonest || until < soonest)
                    soonest = until;
            }
        }
        if (p->n && skip == (1u << p->n) - 1)
            return dlv__all_out(d, m, soonest);
    }
    unsigned src = dlv__pick_source(d, pool, skip);

    struct smtp_msg_info info;
    smtp_msg_scan(m->body, m->body_len, &info);
    m->body_8bit = info.has_8bit;
    m->pending = m->nrcpts;
    for (unsigned i = 0; i < m->nrcpts; i++) {
        m->rcpts[i].msg = m;
        m->rcpts[i].not_attempted = false;
        m->rcpts[i].retry_after_ms = 0;
        m->rcpts[i].nretry = 0;
        m->rcpts[i].max_age_s = 0;
        m->rcpts[i].source_name = d->sources[src].name;
        m->rcpts[i].warmup_note = NULL;
        m->rcpts[i].site = NULL;
        m->rcpts[i].r.state = SMTP_RCPT_PENDING;
        m->rcpts[i].r.next = NULL;
        memset(&m->rcpts[i].conn, 0, sizeof m->rcpts[i].conn);
    }
    /* Group recipients by destination, at most max_rcpts_per_txn per transaction. */
    for (unsigned i = 0; i < m->nrcpts; i++) {
        struct dlv_rcpt *rc = &m->rcpts[i];
        if (rc->r.state != SMTP_RCPT_PENDING || rc->r.next)
            continue;
        size_t dl;
        const char *dom = dlv__domain_of(rc->r.addr, &dl);
        struct dlv_dest *dest = dom ? dlv__dest(d, dom, dl, src) : NULL;
        if (!dest) {
            memset(&rc->r.outcome, 0, sizeof rc->r.outcome);
            rc->r.outcome.phase = FAIL_PHASE_LOCAL;
            rc->r.outcome.transport = FAIL_T_LOCAL_PERM;
            snprintf(rc->r.outcome.enhanced, sizeof rc->r.outcome.enhanced, "5.1.3");
            rc->r.outcome.enh_class = 5, rc->r.outcome.enh_subject = 1, rc->r.outcome.enh_detail = 3;
            snprintf(rc->r.outcome.text, sizeof rc->r.outcome.text, "bad recipient address syntax");
            rc->r.state = SMTP_RCPT_DONE;
            dlv__finish_rcpt(d, rc, NULL);
            continue;
        }
        dest->last_used_ms = ring_now_ms(d->ring);
        const char *refuse = NULL;
        char why[SMTP_OUTCOME_TEXT_MAX];
        const struct backoff_hold *hold = dest->shaped ? gate_hold(dest) : NULL;
        uint64_t hold_wait = 0;
        if (dest->throttled_until_ms && dest->throttle_gen != d->hold_gen &&
            gate_hold(dest) == NULL)
            dest->throttled_until_ms = 0; /* the holds changed and none applies now */
        if (hold && hold->action != BACKOFF_REDUCE_RATE) {
            uint64_t wait_ms = 0;
            if (gate_txn(dest, &wait_ms, why, sizeof why) == GATE_BOUNCE) {
                for (unsigned j = i; j < m->nrcpts; j++) {
                    struct dlv_rcpt *o = &m->rcpts[j];
                    size_t ol;
                    const char *od;
                    if (o->r.state != SMTP_RCPT_PENDING || !(od = dlv__domain_of(o->r.addr, &ol)) ||
                        dlv__dest(d, od, ol, src) != dest)
                        continue;
                    memset(&o->r.outcome, 0, sizeof o->r.outcome);
                    o->r.outcome.phase = FAIL_PHASE_LOCAL;
                    o->r.outcome.transport = FAIL_T_LOCAL_PERM;
                    snprintf(o->r.outcome.enhanced, sizeof o->r.outcome.enhanced, "5.7.1");
                    o->r.outcome.enh_class = 5, o->r.outcome.enh_subject = 7, o->r.outcome.enh_detail = 1;
                    snprintf(o->r.outcome.text, sizeof o->r.outcome.text, "%s", why);
                    o->r.state = SMTP_RCPT_DONE;
                    dest__hint(dest, o);
                    dlv__finish_rcpt(d, o, NULL);
                }
                continue;
            }
            hold_wait = wait_ms;
            refuse = why;
        } else if (dest->retry_after_ms > ring_now_ms(d->ring)) {
            snprintf(why, sizeof why, "destination %.255s is backing off after: %.600s", dest->domain,
                     dest->last_fail.text);
            refuse = why;
        } else if (dest->throttled_until_ms > ring_now_ms(d->ring)) {
            snprintf(why, sizeof why, "%s", dest->throttle_why);
            refuse = why;
        } else if (dest->queued >= d->cfg.max_queued_per_dest &&
                   dest->queued >= (unsigned)(dest->rate * DLV_QUEUE_SECONDS)) {
            snprintf(why, sizeof why, "destination %s busy: %u transactions queued", dest->domain,
                     dest->queued);
            refuse = why;
        }
        if (refuse) {
            /* every recipient of this message for this destination waits, unattempted */
            for (unsigned j = i; j < m->nrcpts; j++) {
                struct dlv_rcpt *o = &m->rcpts[j];
                size_t ol;
                const char *od;
                if (o->r.state != SMTP_RCPT_PENDING || !(od = dlv__domain_of(o->r.addr, &ol)) ||
                    dlv__dest(d, od, ol, src) != dest)
                    continue;
                memset(&o->r.outcome, 0, sizeof o->r.outcome);
                o->r.outcome.phase = FAIL_PHASE_LOCAL;
                o->r.outcome.transport = FAIL_T_LOCAL_TEMP;
                snprintf(o->r.outcome.text, sizeof o->r.outcome.text, "%s", refuse);
                o->r.state = SMTP_RCPT_DONE;
                o->not_attempted = true;
                uint64_t until = dest->throttled_until_ms > dest->retry_after_ms ? dest->throttled_until_ms
                                                                                 : dest->retry_after_ms;
                uint64_t nowm = ring_now_ms(d->ring);
                if (hold_wait)
                    until = nowm + hold_wait;
                o->retry_after_ms = until > nowm ? (unsigned)(until - nowm) : 0;
                dest__hint(dest, o);
                dlv__finish_rcpt(d, o, dest->retry_after_ms ? &dest->last_conn : NULL);
            }
            continue;
        }
        struct dlv_txn *t = d->free_txns;
        d->free_txns = t->next;
        memset(t, 0, sizeof *t);
        t->msg = m;
        t->dest = dest;
        t->t.mail_from = m->from;
        t->t.body = m->body;
        t->t.body_len = m->body_len;
        t->t.body_8bit = m->body_8bit;
        t->t.rcpts = &rc->r;
        rc->r.state = SMTP_RCPT_ACCEPTED; /* marks "grouped" until the session resets it */
        struct smtp_rcpt *tail = &rc->r;
        unsigned n = 1;
        unsigned max_rcpts = dest->shaped ? dest->lim.max_rcpts_per_txn : d->cfg.max_rcpts_per_txn;
        for (unsigned j = i + 1; j < m->nrcpts && n < max_rcpts; j++) {
            struct dlv_rcpt *o = &m->rcpts[j];
            size_t ol;
            const char *od;
            if (o->r.state != SMTP_RCPT_PENDING || !(od = dlv__domain_of(o->r.addr, &ol)))
                continue;
            if (dlv__dest(d, od, ol, src) != dest)
                continue;
            o->r.state = SMTP_RCPT_ACCEPTED;
            tail->next = &o->r;
            tail = &o->r;
            n++;
        }
        if (dest->q_tail)
            dest->q_tail->next = t;
        else
            dest->q_head = t;
        dest->q_tail = t;
        dest->queued++;
        dest__schedule(dest);
    }
    return 0;
}

void dlv_shutdown(struct dlv *d)
{
    d->shutting_down = true;
    for (unsigned b = 0; b < DLV_BUCKETS; b++)
        for (struct dlv_dest *x = d->buckets[b]; x; x = x->hnext)
            for (struct dlv_conn *c = x->conns; c; c = c->next)
                if (smtp_session_ready(&c->s))
                    smtp_session_quit(&c->s);
}

unsigned dlv_open_conns(const struct dlv *d) { return d->nconns; }

void dlv_abort_all(struct dlv *d)
{
    d->shutting_down = true;
    for (unsigned b = 0; b < DLV_BUCKETS; b++)
        for (struct dlv_dest *x = d->buckets[b]; x; x = x->hnext)
            for (struct dlv_conn *c = x->conns; c; c = c->next)
                smtp_session_abort(&c->s, "shutting down");
}

void dlv_set_coord(struct dlv *d, struct coord *c)
{
    d->coord = c;
    d->holds_wait_until_ms = c ? ring_now_ms(d->ring) + DLV_HOLDS_FIRST_READ_MS : 0;
}

void dlv_yield_idle(struct dlv *d, const char *site_key)
{
    for (unsigned b = 0; b < DLV_BUCKETS; b++)
        for (struct dlv_dest *x = d->buckets[b]; x; x = x->hnext) {
            if (!x->site || x->q_head || strcmp(x->site->key, site_key) != 0)
                continue;
            for (struct dlv_conn *c = x->conns; c; c = c->next)
                if (c->leased && smtp_session_ready(&c->s) && !c->s.txn && gate_conn_yield(d, c->site))
                    smtp_session_quit(&c->s);
        }
}

void dlv_kick_all(struct dlv *d)
{
    for (unsigned b = 0; b < DLV_BUCKETS; b++)
        for (struct dlv_dest *x = d->buckets[b]; x; x = x->hnext)
            if (x->queued)
                dest__schedule(x);
}

void dlv_set_shaping(struct dlv *d, const struct shaping_rules *rules)
{
    if (shaping_backoff(rules) != shaping_backoff(d->cfg.shaping))
        backoff_tracker_reset(d->tracker); /* rule indexes changed */
    d->cfg.shaping = rules;
    for (unsigned b = 0; b < DLV_BUCKETS; b++)
        for (struct dlv_dest *x = d->buckets[b]; x; x = x->hnext)
            if (x->shaped)
                dest__shape(x);
}

void dlv_get_stats(const struct dlv *d, struct dlv_stats *out) { *out = d->stats; }
