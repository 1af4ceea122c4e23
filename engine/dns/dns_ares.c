/* engine/dns/dns_ares.c — the resolver behind dns.h: c-ares queries (MX, then A/AAAA of each
 * exchanger) driven from the worker's ring, results cached by dns_cache and ordered by
 * mx_order. The only file that includes ares.h. Owns: the channel, its socket polls and
 * timer, the request pool. Does not own: record TTL parsing (dns_ttl), cache policy. */
#include "engine/dns/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "engine/dns/dns_cache.h"
#include "engine/dns/dns_ttl.h"
#include "engine/dns/mx_order.h"

/* c-ares keeps one UDP socket per server plus a TCP one when answers are truncated; a slot
 * that was stopped stays busy for a loop turn, hence the headroom. */
#define DNS_POLL_SLOTS 32
#define DNS_REAP_INTERVAL_MS 1
#define DNS_REAP_MAX_INTERVAL_MS 1000

#define DNS__CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Outcome of one address family's query for one host. */
enum dns__fam_state { DNS__FAM_PENDING, DNS__FAM_ADDRS, DNS__FAM_NODATA, DNS__FAM_NXDOMAIN,
                      DNS__FAM_TEMPFAIL, DNS__FAM_SKIPPED };

struct dns_req;

/* Address lookup of one host (an exchanger, the implicit MX, or dns_resolve_host's name). */
struct dns__hostq {
    struct dns_req *req;
    unsigned idx;                        /* into req->res.hosts */
    unsigned pending;                    /* c-ares queries still out */
    enum dns__fam_state fam[2];          /* [0] A, [1] AAAA */
    const char *tempfail_error;
    uint32_t ttl_s;                      /* smallest address TTL */
    uint32_t neg_ttl_s;                  /* smallest SOA-derived TTL, or UNKNOWN */
    enum dns_status status;              /* final */
    unsigned n4, n6;
    /* Kept apart until both answers are in, so the merge does not depend on their order. */
    struct in_addr v4[DNS_MAX_ADDRS];
    struct in6_addr v6[DNS_MAX_ADDRS];
};

/* One dns_resolve_* call. Pooled: a request is ~24 KiB, so it is recycled, not freed. */
struct dns_req {
    struct dns *d;
    struct dns_req *prev, *next;         /* active list (in flight), else done/free list */
    struct dns_req *followers;           /* identical lookups answered by this one */
    struct dns_req *next_follower;
    enum dns_cache_kind kind;
    char name[DNS_NAME_MAX];
    dns_cb cb;
    void *arg;
    unsigned hosts_pending;
    uint32_t mx_ttl_s;
    struct dns_result res;
    struct dns__hostq hq[DNS_MAX_HOSTS];
};

struct dns__poll {
    struct ring_poll p;
    struct dns__io *io;
    bool in_use;                         /* polling a socket c-ares has open */
};

/* Everything the ring may still hold a pointer to: it outlives the dns if the kernel or the
 * deferred-callback queue has not let go yet at dns_destroy (see dns__io_reap). */
struct dns__io {
    struct ring *ring;
    struct dns *d;                       /* NULL once destroyed */
    struct ring_defer deliver;
    struct ring_timer reap;
    uint64_t reap_interval_ms;
    struct dns__poll polls[DNS_POLL_SLOTS];
};

struct dns {
    struct ring *ring;
    struct dns_config cfg;
    ares_channel channel;
    struct dns__io *io;
    struct dns_cache *cache;
    struct ring_timer ares_timer;
    struct dns_req *active;              /* in flight, for coalescing */
    struct dns_req *done_head, *done_tail;
    struct dns_req *free_reqs;
    struct dns_stats stats;
    struct dns_result scratch;           /* one host's result on its way into or out of the cache */
    uint32_t rand_state;
    bool delivering, destroy_requested;
};

static void dns__free(struct dns *d);

/* ---------------------------------------------------------------- small pieces */

void dns_config_defaults(struct dns_config *cfg)
{
    *cfg = (struct dns_config){
        .servers = NULL, .timeout_ms = 2000, .tries = 2, .cache_entries = 10000,
        .ttl_min_s = 5, .ttl_max_s = 86400, .negative_ttl_s = 300, .tempfail_ttl_s = 5,
        .ipv6 = true,
    };
}

const char *dns_status_to_text(enum dns_status s)
{
    switch (s) {
    case DNS_OK: return "ok";
    case DNS_TEMPFAIL: return "tempfail";
    case DNS_NXDOMAIN: return "nxdomain";
    case DNS_NULLMX: return "nullmx";
    case DNS_NOHOSTS: return "nohosts";
    }
    return "unknown";
}

void dns_get_stats(const struct dns *d, struct dns_stats *out)
{
    *out = d->stats;
}

/* xorshift32: only spreads load over equal-preference MX hosts, so it need not be strong. */
static uint32_t dns__rand(void *arg)
{
    uint32_t *s = arg;
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static const char *dns__ares_error(int status)
{
    switch (status) {
    case ARES_ETIMEOUT: return "DNS query timed out";
    case ARES_ESERVFAIL: return "DNS server failure";
    case ARES_EREFUSED: return "DNS query refused";
    case ARES_ECONNREFUSED: return "DNS server unreachable";
    case ARES_EBADRESP: return "malformed DNS response";
    case ARES_ENOMEM: return "out of memory resolving";
    default: return "DNS lookup failed";
    }
}

/* "192.0.2.1", "::1", "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3). */
static bool dns__literal(const char *name, struct sockaddr_storage *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t n = strlen(name);
    if (n >= sizeof buf)
        return false;
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        name++;
        n -= 2;
        if (n >= 5 && strncasecmp(name, "IPv6:", 5) == 0) {
            name += 5;
            n -= 5;
        }
    }
    memcpy(buf, name, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

static uint32_t dns__min(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* ---------------------------------------------------------------- ring glue */

static void dns__arm_ares_timer(struct dns *d)
{
    struct timeval tv;
    if (!ares_timeout(d->channel, NULL, &tv)) {
        ring_timer_cancel(d->ring, &d->ares_timer);
        return;
    }
    /* Rounded up: firing early would only make c-ares find nothing due and re-arm. */
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    ring_timer_arm(d->ring, &d->ares_timer, ms);
}

static void dns__on_ares_timer(struct ring_timer *t)
{
    struct dns *d = DNS__CONTAINER(t, struct dns, ares_timer);
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns__arm_ares_timer(d);
}

static void dns__on_poll_ready(struct ring_poll *p, unsigned revents)
{
    struct dns__poll *slot = DNS__CONTAINER(p, struct dns__poll, p);
    struct dns *d = slot->io->d;
    if (!d || !slot->in_use)
        return;
    /* Errors and hang-ups are reported through a read, which is where c-ares looks. */
    ares_socket_t rfd = (revents & (POLLIN | POLLERR | POLLHUP)) ? p->fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (revents & POLLOUT) ? p->fd : ARES_SOCKET_BAD;
    ares_process_fd(d->channel, rfd, wfd);
    dns__arm_ares_timer(d);
}

/* c-ares tells us which sockets it wants watched. A slot whose events change is stopped and
 * a fresh one started, since a poll the kernel still holds cannot be modified in place. */
static void dns__on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns *d = data;
    struct dns__io *io = d->io;
    unsigned events = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
    struct dns__poll *cur = NULL;
    for (unsigned i = 0; i < DNS_POLL_SLOTS; i++)
        if (io->polls[i].in_use && io->polls[i].p.fd == fd)
            cur = &io->polls[i];
    if (cur && cur->p.events == events)
        return;
    if (cur) {
        ring_poll_stop(d->ring, &cur->p);
        cur->in_use = false;
    }
    if (!events)
        return;
    for (unsigned i = 0; i < DNS_POLL_SLOTS; i++) {
        struct dns__poll *slot = &io->polls[i];
        if (slot->in_use || ring_poll_busy(&slot->p))
            continue;
        slot->p.on_ready = dns__on_poll_ready;
        if (ring_poll_start(d->ring, &slot->p, fd, events) == 0)
            slot->in_use = true;
        return;
    }
    /* No slot: this socket's queries end by c-ares's timeout, reported as DNS_TEMPFAIL. */
}

static void dns__io_reap(struct ring_timer *t)
{
    struct dns__io *io = DNS__CONTAINER(t, struct dns__io, reap);
    bool busy = io->deliver.queued;
    for (unsigned i = 0; i < DNS_POLL_SLOTS && !busy; i++)
        busy = ring_poll_busy(&io->polls[i].p);
    if (!busy) {
        free(io);
        return;
    }
    /* Normally one or two turns; back off in case the kernel is slow to let go. */
    if (io->reap_interval_ms < DNS_REAP_MAX_INTERVAL_MS)
        io->reap_interval_ms *= 2;
    ring_timer_arm(io->ring, &io->reap, io->reap_interval_ms);
}

/* ---------------------------------------------------------------- requests */

static struct dns_req *dns__req_get(struct dns *d)
{
    struct dns_req *q = d->free_reqs;
    if (q)
        d->free_reqs = q->next;
    else if (!(q = malloc(sizeof *q)))
        return NULL;
    /* Only the header is cleared; res and hq are written before they are read. */
    memset(q, 0, offsetof(struct dns_req, res));
    q->d = d;
    q->res.status = DNS_OK;
    q->res.error = NULL;
    q->res.implicit_mx = false;
    q->res.nhosts = 0;
    return q;
}

static void dns__req_put(struct dns *d, struct dns_req *q)
{
    q->followers = NULL; /* they are returned to the pool on their own */
    q->next = d->free_reqs;
    d->free_reqs = q;
}

static void dns__active_add(struct dns *d, struct dns_req *q)
{
    q->prev = NULL;
    q->next = d->active;
    if (d->active)
        d->active->prev = q;
    d->active = q;
}

static void dns__active_remove(struct dns *d, struct dns_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        d->active = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static struct dns_req *dns__active_find(struct dns *d, enum dns_cache_kind kind, const char *name)
{
    for (struct dns_req *q = d->active; q; q = q->next)
        if (q->kind == kind && mx_order_same_name(q->name, name))
            return q;
    return NULL;
}

/* Queues q (with its followers) for its callback, which runs from the ring's deferred list. */
static void dns__complete(struct dns *d, struct dns_req *q)
{
    q->next = NULL;
    if (d->done_tail)
        d->done_tail->next = q;
    else
        d->done_head = q;
    d->done_tail = q;
    ring_defer(d->ring, &d->io->deliver);
}

static void dns__on_deliver(struct ring_defer *def)
{
    struct dns__io *io = DNS__CONTAINER(def, struct dns__io, deliver);
    struct dns *d = io->d;
    if (!d)
        return;
    /* Requests completed by these callbacks wait for the next deferred run. */
    struct dns_req *q = d->done_head;
    d->done_head = d->done_tail = NULL;
    d->delivering = true;
    while (q) {
        struct dns_req *next = q->next;
        if (!d->destroy_requested)
            q->cb(q->arg, &q->res);
        for (struct dns_req *f = q->followers, *fn; f; f = fn) {
            fn = f->next_follower;
            if (!d->destroy_requested)
                f->cb(f->arg, &q->res);
            dns__req_put(d, f);
        }
        dns__req_put(d, q);
        q = next;
    }
    d->delivering = false;
    if (d->destroy_requested)
        dns__free(d);
}

static void dns__fail(struct dns_req *q, enum dns_status st, const char *error)
{
    q->res.status = st;
    q->res.error = error;
    q->res.nhosts = 0;
}

/* ---------------------------------------------------------------- host lookups */

static void dns__req_host_done(struct dns_req *q);

/* Merges the families into the host's address list: IPv4 first, each family keeping at least
 * half the slots when the other has enough to fill them. */
static void dns__hostq_finish(struct dns__hostq *h)
{
    struct dns *d = h->req->d;
    struct dns_host *host = &h->req->res.hosts[h->idx];
    unsigned n6_want = h->n6 < DNS_MAX_ADDRS / 2 ? h->n6 : DNS_MAX_ADDRS / 2;
    unsigned n4 = h->n4 < DNS_MAX_ADDRS - n6_want ? h->n4 : DNS_MAX_ADDRS - n6_want;
    unsigned n6 = h->n6 < DNS_MAX_ADDRS - n4 ? h->n6 : DNS_MAX_ADDRS - n4;
    host->naddrs = 0;
    for (unsigned i = 0; i < n4; i++) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&host->addrs[host->naddrs++];
        memset(s4, 0, sizeof host->addrs[0]);
        s4->sin_family = AF_INET;
        s4->sin_addr = h->v4[i];
    }
    for (unsigned i = 0; i < n6; i++) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&host->addrs[host->naddrs++];
        memset(s6, 0, sizeof host->addrs[0]);
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = h->v6[i];
    }

    bool temp = h->fam[0] == DNS__FAM_TEMPFAIL || h->fam[1] == DNS__FAM_TEMPFAIL;
    bool nx = h->fam[0] == DNS__FAM_NXDOMAIN || h->fam[1] == DNS__FAM_NXDOMAIN;
    uint32_t cache_ttl;
    if (host->naddrs > 0) {
        h->status = DNS_OK;
        /* One family failing for now must not be remembered for a whole TTL. */
        if (temp)
            h->ttl_s = dns__min(h->ttl_s, d->cfg.tempfail_ttl_s);
        cache_ttl = h->ttl_s;
    } else if (temp) {
        h->status = DNS_TEMPFAIL;
        cache_ttl = 0;
    } else {
        h->status = nx ? DNS_NXDOMAIN : DNS_NOHOSTS;
        cache_ttl = h->neg_ttl_s;
    }

    /* Cached per host as well, so domains sharing exchangers share their lookups. */
    struct dns_result *one = &d->scratch;
    memset(one, 0, offsetof(struct dns_result, hosts));
    one->status = h->status;
    one->error = h->status == DNS_TEMPFAIL ? h->tempfail_error
                 : h->status == DNS_NXDOMAIN ? "host not found"
                 : h->status == DNS_NOHOSTS ? "host has no addresses" : NULL;
    if (h->status == DNS_OK) {
        one->nhosts = 1;
        memcpy(&one->hosts[0], host, sizeof *host);
        one->hosts[0].pref = 0;
    }
    dns_cache_put(d->cache, DNS_CACHE_HOST, host->name, one, cache_ttl, ring_now_ms(d->ring));
    dns__req_host_done(h->req);
}

/* Records one family's answer; the host is finished when both are in. */
static void dns__hostq_answer(struct dns__hostq *h, unsigned fam, int status,
                              const unsigned char *abuf, int alen)
{
    if (status == ARES_SUCCESS) {
        int n = DNS_MAX_ADDRS, rc;
        if (fam == 0) {
            struct ares_addrttl at[DNS_MAX_ADDRS];
            rc = ares_parse_a_reply(abuf, alen, NULL, at, &n);
            for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
                h->v4[h->n4++] = at[i].ipaddr;
                h->ttl_s = dns__min(h->ttl_s, at[i].ttl < 0 ? 0 : (uint32_t)at[i].ttl);
            }
        } else {
            struct ares_addr6ttl at[DNS_MAX_ADDRS];
            rc = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n);
            for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
                memcpy(&h->v6[h->n6++], &at[i].ip6addr, sizeof h->v6[0]);
                h->ttl_s = dns__min(h->ttl_s, at[i].ttl < 0 ? 0 : (uint32_t)at[i].ttl);
            }
        }
        if (rc == ARES_SUCCESS && n > 0)
            h->fam[fam] = DNS__FAM_ADDRS;
        else if (rc == ARES_SUCCESS || rc == ARES_ENODATA)
            status = ARES_ENODATA; /* e.g. only a CNAME: no address of this family */
        else
            status = rc;
    }
    if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
        h->fam[fam] = status == ARES_ENODATA ? DNS__FAM_NODATA : DNS__FAM_NXDOMAIN;
        struct dns_ttl_info ti;
        const char *err;
        if (abuf && alen > 0 && dns_ttl_parse(abuf, (size_t)alen, &ti, &err) == 0 && ti.has_soa)
            h->neg_ttl_s = h->neg_ttl_s == DNS_CACHE_TTL_UNKNOWN
                               ? ti.negative_ttl_s : dns__min(h->neg_ttl_s, ti.negative_ttl_s);
    } else if (h->fam[fam] != DNS__FAM_ADDRS) {
        h->fam[fam] = DNS__FAM_TEMPFAIL;
        h->tempfail_error = dns__ares_error(status);
    }
    if (--h->pending == 0)
        dns__hostq_finish(h);
}

static void dns__on_a(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        return; /* dns_destroy: nobody is told */
    dns__hostq_answer(arg, 0, status, abuf, alen);
}

static void dns__on_aaaa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        return;
    dns__hostq_answer(arg, 1, status, abuf, alen);
}

/* Starts the address lookup of req->res.hosts[idx]: from the cache, an IP literal, or DNS.
 * May finish synchronously (the caller counts on hosts_pending, not on the order). */
static void dns__hostq_start(struct dns_req *q, unsigned idx)
{
    struct dns *d = q->d;
    struct dns__hostq *h = &q->hq[idx];
    struct dns_host *host = &q->res.hosts[idx];
    memset(h, 0, offsetof(struct dns__hostq, v4)); /* the arrays fill up to n4/n6 */
    h->req = q;
    h->idx = idx;
    h->ttl_s = UINT32_MAX;
    h->neg_ttl_s = DNS_CACHE_TTL_UNKNOWN;
    host->naddrs = 0;

    if (dns__literal(host->name, &host->addrs[0])) {
        host->naddrs = 1;
        h->status = DNS_OK;
        h->ttl_s = d->cfg.ttl_max_s;
        dns__req_host_done(q);
        return;
    }
    struct dns_result *hit = &d->scratch;
    uint32_t left;
    if (dns_cache_get(d->cache, DNS_CACHE_HOST, host->name, ring_now_ms(d->ring), hit, &left)) {
        h->status = hit->status;
        if (hit->status == DNS_OK) {
            host->naddrs = hit->hosts[0].naddrs;
            memcpy(host->addrs, hit->hosts[0].addrs, sizeof host->addrs[0] * host->naddrs);
            h->ttl_s = left;
        } else {
            h->neg_ttl_s = left;
            h->tempfail_error = hit->error;
        }
        dns__req_host_done(q);
        return;
    }

    h->fam[1] = d->cfg.ipv6 ? DNS__FAM_PENDING : DNS__FAM_SKIPPED;
    h->pending = d->cfg.ipv6 ? 2 : 1;
    /* Both queries are counted before either is sent: c-ares may answer synchronously. */
    d->stats.queries++;
    ares_query(d->channel, host->name, ns_c_in, ns_t_a, dns__on_a, h);
    if (d->cfg.ipv6) {
        d->stats.queries++;
        ares_query(d->channel, host->name, ns_c_in, ns_t_aaaa, dns__on_aaaa, h);
    }
}

/* ---------------------------------------------------------------- finishing a request */

static void dns__req_finish(struct dns_req *q)
{
    struct dns *d = q->d;
    struct dns_result *res = &q->res;
    uint32_t ttl = q->kind == DNS_CACHE_MX ? q->mx_ttl_s : UINT32_MAX;
    uint32_t neg_ttl = DNS_CACHE_TTL_UNKNOWN;
    bool temp = false, nx = false;
    const char *temp_error = NULL;
    unsigned kept = 0;

    for (unsigned i = 0; i < res->nhosts; i++) {
        struct dns__hostq *h = &q->hq[i];
        if (h->status == DNS_OK && res->hosts[i].naddrs > 0) {
            ttl = dns__min(ttl, h->ttl_s);
            if (kept != i)
                memcpy(&res->hosts[kept], &res->hosts[i], sizeof res->hosts[0]);
            kept++;
            continue;
        }
        if (h->status == DNS_TEMPFAIL) {
            temp = true;
            temp_error = h->tempfail_error;
        } else {
            nx |= h->status == DNS_NXDOMAIN;
            if (h->neg_ttl_s != DNS_CACHE_TTL_UNKNOWN)
                neg_ttl = neg_ttl == DNS_CACHE_TTL_UNKNOWN ? h->neg_ttl_s
                                                           : dns__min(neg_ttl, h->neg_ttl_s);
        }
    }
    res->nhosts = kept;

    uint32_t cache_ttl;
    if (kept > 0) {
        res->status = DNS_OK;
        res->error = NULL;
        if (temp) /* some exchanger may come back soon: do not keep this subset long */
            ttl = dns__min(ttl, d->cfg.tempfail_ttl_s);
        cache_ttl = ttl;
    } else if (temp) {
        dns__fail(q, DNS_TEMPFAIL, q->kind == DNS_CACHE_MX && !res->implicit_mx
                                       ? "no mail exchanger could be resolved now"
                                       : (temp_error ? temp_error : "DNS lookup failed"));
        cache_ttl = 0;
    } else if (q->kind == DNS_CACHE_HOST && nx) {
        dns__fail(q, DNS_NXDOMAIN, "host not found");
        cache_ttl = neg_ttl;
    } else {
        dns__fail(q, DNS_NOHOSTS, q->kind == DNS_CACHE_HOST ? "host has no addresses"
                                  : res->implicit_mx        ? "no MX and no address records"
                                                            : "no mail exchanger has an address");
        cache_ttl = neg_ttl;
    }
    if (q->kind == DNS_CACHE_MX)
        dns_cache_put(d->cache, DNS_CACHE_MX, q->name, res, cache_ttl, ring_now_ms(d->ring));
    dns__active_remove(d, q);
    dns__complete(d, q);
}

static void dns__req_host_done(struct dns_req *q)
{
    if (--q->hosts_pending == 0)
        dns__req_finish(q);
}

/* Resolves every host in q->res.hosts; finishes q when the last one is in. */
static void dns__req_resolve_hosts(struct dns_req *q)
{
    unsigned n = q->res.nhosts;
    /* +1 so a host that finishes synchronously cannot finish q while others are unstarted. */
    q->hosts_pending = n + 1;
    for (unsigned i = 0; i < n; i++)
        dns__hostq_start(q, i);
    dns__req_host_done(q);
}

/* ---------------------------------------------------------------- MX */

static bool dns__is_root(const char *host)
{
    return host[0] == '\0' || (host[0] == '.' && host[1] == '\0');
}

/* Keeps the DNS_MAX_HOSTS lowest preferences when a domain publishes more MX records. */
static void dns__mx_add(struct dns_result *res, const char *host, unsigned pref)
{
    size_t len = strlen(host);
    if (len >= DNS_NAME_MAX || dns__is_root(host))
        return;
    struct dns_host *slot = NULL;
    if (res->nhosts < DNS_MAX_HOSTS) {
        slot = &res->hosts[res->nhosts++];
    } else {
        for (unsigned i = 0; i < DNS_MAX_HOSTS; i++)
            if (res->hosts[i].pref > pref && (!slot || res->hosts[i].pref > slot->pref))
                slot = &res->hosts[i];
        if (!slot)
            return;
    }
    memcpy(slot->name, host, len + 1);
    slot->pref = pref;
    slot->naddrs = 0;
}

static void dns__on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        return;
    struct dns_req *q = arg;
    struct dns *d = q->d;
    struct dns_ttl_info ti;
    const char *err;
    bool ti_ok = abuf && alen > 0 && dns_ttl_parse(abuf, (size_t)alen, &ti, &err) == 0;

    if (status == ARES_SUCCESS) {
        struct ares_mx_reply *mx = NULL;
        int rc = ares_parse_mx_reply(abuf, alen, &mx);
        if (rc == ARES_SUCCESS) {
            q->mx_ttl_s = ti_ok ? ti.answer_ttl_s : 0;
            if (mx && !mx->next && mx->priority == 0 && dns__is_root(mx->host)) {
                ares_free_data(mx);
                dns__fail(q, DNS_NULLMX, "domain accepts no mail (null MX)");
                dns_cache_put(d->cache, DNS_CACHE_MX, q->name, &q->res, q->mx_ttl_s,
                              ring_now_ms(d->ring));
                dns__active_remove(d, q);
                dns__complete(d, q);
                return;
            }
            for (struct ares_mx_reply *m = mx; m; m = m->next)
                dns__mx_add(&q->res, m->host, m->priority);
            ares_free_data(mx);
            q->res.nhosts = mx_order(q->res.hosts, q->res.nhosts, dns__rand, &d->rand_state);
            dns__req_resolve_hosts(q);
            return;
        }
        status = rc; /* ENODATA: the answer holds no MX (a CNAME alone, say) */
    }
    if (status == ARES_ENODATA) {
        /* RFC 5321 §5.1: no MX, so the domain itself is the exchanger. */
        q->res.implicit_mx = true;
        q->res.nhosts = 1;
        memcpy(q->res.hosts[0].name, q->name, strlen(q->name) + 1);
        q->res.hosts[0].pref = 0;
        q->mx_ttl_s = UINT32_MAX;
        dns__req_resolve_hosts(q);
        return;
    }
    uint32_t ttl = 0;
    if (status == ARES_ENOTFOUND || status == ARES_EBADNAME) {
        dns__fail(q, DNS_NXDOMAIN, status == ARES_ENOTFOUND ? "domain not found"
                                                            : "invalid domain name");
        ttl = ti_ok && ti.has_soa ? ti.negative_ttl_s : DNS_CACHE_TTL_UNKNOWN;
    } else {
        dns__fail(q, DNS_TEMPFAIL, dns__ares_error(status));
    }
    dns_cache_put(d->cache, DNS_CACHE_MX, q->name, &q->res, ttl, ring_now_ms(d->ring));
    dns__active_remove(d, q);
    dns__complete(d, q);
}

/* ---------------------------------------------------------------- public */

/* Normalises name into q->name (no trailing dot); false if it cannot be a DNS name. */
static bool dns__set_name(struct dns_req *q, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    memcpy(q->name, name, n);
    q->name[n] = '\0';
    return true;
}

static int dns__resolve(struct dns *d, enum dns_cache_kind kind, const char *name, dns_cb cb,
                        void *arg)
{
    struct dns_req *q = dns__req_get(d);
    if (!q)
        return -ENOMEM;
    q->kind = kind;
    q->cb = cb;
    q->arg = arg;

    if (!dns__set_name(q, name)) {
        dns__fail(q, kind == DNS_CACHE_MX ? DNS_NXDOMAIN : DNS_NOHOSTS, "invalid domain name");
        dns__complete(d, q);
        return 0;
    }
    struct sockaddr_storage lit;
    if (dns__literal(q->name, &lit)) {
        q->res.implicit_mx = kind == DNS_CACHE_MX;
        q->res.nhosts = 1;
        memcpy(q->res.hosts[0].name, q->name, strlen(q->name) + 1);
        q->res.hosts[0].pref = 0;
        q->res.hosts[0].naddrs = 1;
        q->res.hosts[0].addrs[0] = lit;
        dns__complete(d, q);
        return 0;
    }
    uint32_t left;
    if (dns_cache_get(d->cache, kind, q->name, ring_now_ms(d->ring), &q->res, &left)) {
        d->stats.cache_hits++;
        if (kind == DNS_CACHE_MX) /* a fresh shuffle per lookup spreads the load */
            mx_order(q->res.hosts, q->res.nhosts, dns__rand, &d->rand_state);
        dns__complete(d, q);
        return 0;
    }
    d->stats.cache_misses++;

    struct dns_req *leader = dns__active_find(d, kind, q->name);
    if (leader) {
        q->next_follower = leader->followers;
        leader->followers = q;
        return 0;
    }
    dns__active_add(d, q);
    if (kind == DNS_CACHE_MX) {
        d->stats.queries++;
        ares_query(d->channel, q->name, ns_c_in, ns_t_mx, dns__on_mx, q);
    } else {
        q->res.nhosts = 1;
        memcpy(q->res.hosts[0].name, q->name, strlen(q->name) + 1);
        q->res.hosts[0].pref = 0;
        dns__req_resolve_hosts(q);
    }
    dns__arm_ares_timer(d);
    return 0;
}

int dns_resolve_mx(struct dns *d, const char *domain, dns_cb cb, void *arg)
{
    return dns__resolve(d, DNS_CACHE_MX, domain, cb, arg);
}

int dns_resolve_host(struct dns *d, const char *name, dns_cb cb, void *arg)
{
    return dns__resolve(d, DNS_CACHE_HOST, name, cb, arg);
}

static pthread_once_t dns__lib_once = PTHREAD_ONCE_INIT;
static int dns__lib_status;

/* ares_library_init is not thread-safe and workers create their resolvers concurrently. */
static void dns__lib_init(void)
{
    dns__lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

int dns_create(struct dns **out, struct ring *ring, const struct dns_config *cfg,
               const char **err)
{
    pthread_once(&dns__lib_once, dns__lib_init);
    if (dns__lib_status != ARES_SUCCESS) {
        *err = "c-ares library initialisation failed";
        return -ENOMEM;
    }
    struct dns *d = calloc(1, sizeof *d);
    struct dns__io *io = calloc(1, sizeof *io);
    if (!d || !io) {
        free(d);
        free(io);
        *err = "out of memory";
        return -ENOMEM;
    }
    d->ring = ring;
    d->cfg = *cfg;
    if (!d->cfg.timeout_ms)
        d->cfg.timeout_ms = 2000;
    if (!d->cfg.tries)
        d->cfg.tries = 2;
    d->cfg.servers = NULL; /* not kept: the caller's string need not outlive this call */
    d->io = io;
    io->ring = ring;
    io->d = d;
    io->deliver.fn = dns__on_deliver;
    io->reap.on_fire = dns__io_reap;
    for (unsigned i = 0; i < DNS_POLL_SLOTS; i++)
        io->polls[i].io = io;
    d->ares_timer.on_fire = dns__on_ares_timer;
    if (getrandom(&d->rand_state, sizeof d->rand_state, GRND_NONBLOCK) != sizeof d->rand_state)
        d->rand_state = (uint32_t)time(NULL) ^ (uint32_t)getpid();
    if (!d->rand_state)
        d->rand_state = 0x9E3779B9u;

    struct dns_cache_config cc = {
        .entries = cfg->cache_entries, .ttl_min_s = cfg->ttl_min_s, .ttl_max_s = cfg->ttl_max_s,
        .negative_ttl_s = cfg->negative_ttl_s, .tempfail_ttl_s = cfg->tempfail_ttl_s,
    };
    int rc = dns_cache_create(&d->cache, &cc);
    if (rc < 0) {
        *err = rc == -EINVAL ? "dns ttl_min_s exceeds ttl_max_s" : "out of memory";
        goto fail;
    }

    struct ares_options opts;
    memset(&opts, 0, sizeof opts);
    /* EDNS avoids most TCP retries for large MX sets; no search list, no hosts file. */
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS;
    opts.timeout = (int)d->cfg.timeout_ms;
    opts.tries = (int)d->cfg.tries;
    opts.ndomains = 0;
    opts.domains = NULL;
    opts.lookups = (char *)"b";
    opts.sock_state_cb = dns__on_sock_state;
    opts.sock_state_cb_data = d;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS |
               ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
    int st = ares_init_options(&d->channel, &opts, mask);
    if (st != ARES_SUCCESS) {
        d->channel = NULL;
        *err = "c-ares channel initialisation failed";
        rc = st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
        goto fail;
    }
    if (cfg->servers && cfg->servers[0]) {
        st = ares_set_servers_ports_csv(d->channel, cfg->servers);
        if (st != ARES_SUCCESS) {
            *err = "invalid DNS server list";
            rc = st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    if (d->channel)
        ares_destroy(d->channel);
    dns_cache_destroy(d->cache);
    free(io);
    free(d);
    return rc;
}

static void dns__free_list(struct dns_req *q)
{
    while (q) {
        struct dns_req *next = q->next;
        for (struct dns_req *f = q->followers, *fn; f; f = fn) {
            fn = f->next_follower;
            free(f);
        }
        free(q);
        q = next;
    }
}

static void dns__free(struct dns *d)
{
    /* Pending queries end here with ARES_EDESTRUCTION, which the callbacks ignore; closing
     * the sockets comes back through dns__on_sock_state, which stops their polls. */
    ares_destroy(d->channel);
    ring_timer_cancel(d->ring, &d->ares_timer);
    dns__free_list(d->active);
    dns__free_list(d->done_head);
    dns__free_list(d->free_reqs);
    dns_cache_destroy(d->cache);

    struct dns__io *io = d->io;
    io->d = NULL;
    bool busy = io->deliver.queued;
    for (unsigned i = 0; i < DNS_POLL_SLOTS; i++) {
        if (io->polls[i].in_use)
            ring_poll_stop(d->ring, &io->polls[i].p);
        io->polls[i].in_use = false;
        busy |= ring_poll_busy(&io->polls[i].p);
    }
    if (busy) {
        io->reap_interval_ms = DNS_REAP_INTERVAL_MS;
        ring_timer_arm(d->ring, &io->reap, io->reap_interval_ms);
    } else {
        free(io);
    }
    free(d);
}

void dns_destroy(struct dns *d)
{
    if (!d)
        return;
    if (d->delivering) {
        /* Called from one of our callbacks: finish once the delivery loop unwinds. */
        d->destroy_requested = true;
        return;
    }
    dns__free(d);
}
