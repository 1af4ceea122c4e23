/* engine/dns/dns.h — destination resolution for delivery: MX lookup (RFC 5321 §5.1), then
 * A/AAAA of each exchanger; implicit MX; null MX (RFC 7505); a cache honouring TTLs,
 * negative answers included. c-ares driven from the worker's ring (dns_ares.c is the only
 * file that includes ares.h). Owns: the resolver channel and the cache. */
#ifndef SALVO_ENGINE_DNS_DNS_H
#define SALVO_ENGINE_DNS_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/ring/ring.h"

#define DNS_MAX_HOSTS 16
#define DNS_MAX_ADDRS 8
#define DNS_NAME_MAX 256

struct dns_config {
    const char *servers;     /* "127.0.0.1:5353,[::1]:53" or NULL/"" for the system's */
    unsigned timeout_ms;     /* per try (default 2000) */
    unsigned tries;          /* default 2 */
    unsigned cache_entries;  /* max cached names (default 10000) */
    unsigned ttl_min_s;      /* clamp positive TTLs (default 5) */
    unsigned ttl_max_s;      /* default 86400 */
    unsigned negative_ttl_s; /* cap for cached negative answers (default 300) */
    unsigned tempfail_ttl_s; /* how long a SERVFAIL/timeout is remembered (default 5) */
    bool ipv6;               /* also look up AAAA (default true) */
};
void dns_config_defaults(struct dns_config *cfg);

enum dns_status {
    DNS_OK,          /* hosts[] holds at least one host with at least one address */
    DNS_TEMPFAIL,    /* try later: timeout, SERVFAIL, no exchanger resolved right now */
    DNS_NXDOMAIN,    /* permanent: the domain does not exist (5.1.2) */
    DNS_NULLMX,      /* permanent: the domain accepts no mail (5.1.10) */
    DNS_NOHOSTS,     /* permanent: no MX and no address records (5.1.2) */
};
const char *dns_status_to_text(enum dns_status s);

struct dns_host {
    char name[DNS_NAME_MAX];
    unsigned pref;
    unsigned naddrs;
    struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* port 0; the caller sets it */
};

struct dns_result {
    enum dns_status status;
    const char *error;       /* static text for non-OK statuses */
    bool implicit_mx;        /* no MX records: the domain's own addresses are used */
    unsigned nhosts;
    struct dns_host hosts[DNS_MAX_HOSTS]; /* by preference, equal preferences shuffled */
};

struct dns;
typedef void (*dns_cb)(void *arg, const struct dns_result *res);

int dns_create(struct dns **out, struct ring *ring, const struct dns_config *cfg,
               const char **err);
/* Cancels every lookup without calling its callback; may be called from a callback. The
 * ring lets go of the resolver's socket polls a turn or two later: run it until
 * ring_pending() is 0 before ring_destroy, or a small block is leaked. */
void dns_destroy(struct dns *d);
/* Resolves a mail domain. The callback always runs from the ring (never inside this call),
 * exactly once, unless dns_destroy comes first. res is valid only during the callback.
 * Returns 0 or -ENOMEM. */
int dns_resolve_mx(struct dns *d, const char *domain, dns_cb cb, void *arg);
/* Resolves one host name (or IP literal) to addresses, e.g. a static route's smarthost. */
int dns_resolve_host(struct dns *d, const char *name, dns_cb cb, void *arg);

/* queries: DNS queries sent (MX, A, AAAA); cache_hits/misses: per dns_resolve_* call (IP
 * literals and invalid names count as neither). */
struct dns_stats { uint64_t queries, cache_hits, cache_misses; };
void dns_get_stats(const struct dns *d, struct dns_stats *out);

#endif
