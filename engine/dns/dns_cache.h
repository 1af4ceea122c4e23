/* engine/dns/dns_cache.h — bounded cache of resolution results keyed by (kind, name), with
 * lifetimes from DNS TTLs: positive clamped, negative per RFC 2308, failures briefly.
 * Pure: time is passed in; allocates only when a name is first stored. LRU eviction. */
#ifndef SALVO_ENGINE_DNS_DNS_CACHE_H
#define SALVO_ENGINE_DNS_DNS_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/dns/dns.h"

/* A negative answer without an SOA: RFC 2308 says not to cache it; ttl_min_s is used so a
 * burst of lookups still collapses into one query. */
#define DNS_CACHE_TTL_UNKNOWN UINT32_MAX

enum dns_cache_kind {
    DNS_CACHE_MX,            /* a mail domain: the full dns_resolve_mx result */
    DNS_CACHE_HOST,          /* one host name: its addresses */
};

struct dns_cache_config {
    unsigned entries;        /* max names (0 disables the cache) */
    unsigned ttl_min_s;
    unsigned ttl_max_s;
    unsigned negative_ttl_s;
    unsigned tempfail_ttl_s;
};

struct dns_cache;

/* Returns 0, -EINVAL (ttl_min_s > ttl_max_s) or -ENOMEM. */
int dns_cache_create(struct dns_cache **out, const struct dns_cache_config *cfg);
void dns_cache_destroy(struct dns_cache *c);

/* On an unexpired entry copies it into *out, sets *ttl_left_s (rounded up), marks it
 * recently used and returns true. Expired entries stay until reused or evicted. */
bool dns_cache_get(struct dns_cache *c, enum dns_cache_kind kind, const char *name,
                   uint64_t now_ms, struct dns_result *out, uint32_t *ttl_left_s);

/* Stores res under name (case and a trailing dot ignored). ttl_s is what DNS said: the
 * smallest answer TTL for DNS_OK and DNS_NULLMX, the SOA-derived TTL (or
 * DNS_CACHE_TTL_UNKNOWN) for DNS_NXDOMAIN and DNS_NOHOSTS; ignored for DNS_TEMPFAIL.
 * Returns 0, -EINVAL (name too long) or -ENOMEM (the name is then not cached). */
int dns_cache_put(struct dns_cache *c, enum dns_cache_kind kind, const char *name,
                  const struct dns_result *res, uint32_t ttl_s, uint64_t now_ms);

/* Seconds an entry of this status and DNS TTL lives; 0 means it is not stored. */
uint32_t dns_cache_lifetime_s(const struct dns_cache_config *cfg, enum dns_status status,
                              uint32_t ttl_s);

/* Names currently held, expired ones included. */
unsigned dns_cache_count(const struct dns_cache *c);

#endif
