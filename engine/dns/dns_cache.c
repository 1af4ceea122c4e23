/* engine/dns/dns_cache.c — hash table + LRU list of packed resolution results.
 * Owns the entries' memory and their lifetimes; knows nothing of queries or the ring.
 * An entry is one block: header, key, then hosts packed as
 * [name_len u8][naddrs u8][pref u16][name][per address: family u8, 4 or 16 bytes]. */
#include "engine/dns/dns_cache.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct dns_cache__entry {
    struct dns_cache__entry *hnext;            /* hash chain */
    struct dns_cache__entry *prev, *next;      /* LRU list, most recent first */
    uint64_t expires_ms;
    uint32_t hash;
    uint32_t cap;                              /* bytes of data[] allocated */
    const char *error;                         /* static text from the result */
    uint8_t kind, key_len, status, nhosts;
    bool implicit_mx;
    unsigned char data[];                      /* key, then the packed hosts */
};

struct dns_cache {
    struct dns_cache_config cfg;
    struct dns_cache__entry **buckets;
    uint32_t mask;
    unsigned count;
    struct dns_cache__entry *head, *tail;      /* LRU ends */
};

/* Lowercases name without its trailing dot into key; returns the length, or -1 if too long. */
static int dns_cache__key(const char *name, char key[DNS_NAME_MAX])
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n >= DNS_NAME_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        key[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    return (int)n;
}

static uint32_t dns_cache__hash(enum dns_cache_kind kind, const char *key, size_t len)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    return h;
}

uint32_t dns_cache_lifetime_s(const struct dns_cache_config *cfg, enum dns_status status,
                              uint32_t ttl_s)
{
    uint32_t t;
    switch (status) {
    case DNS_OK:
        t = ttl_s < cfg->ttl_min_s ? cfg->ttl_min_s : ttl_s;
        return t > cfg->ttl_max_s ? cfg->ttl_max_s : t;
    case DNS_NXDOMAIN:
    case DNS_NULLMX:
    case DNS_NOHOSTS:
        if (ttl_s == DNS_CACHE_TTL_UNKNOWN)
            t = cfg->ttl_min_s;
        else
            t = ttl_s < cfg->ttl_min_s ? cfg->ttl_min_s : ttl_s;
        return t > cfg->negative_ttl_s ? cfg->negative_ttl_s : t;
    case DNS_TEMPFAIL:
        return cfg->tempfail_ttl_s;
    }
    return 0;
}

int dns_cache_create(struct dns_cache **out, const struct dns_cache_config *cfg)
{
    if (cfg->ttl_min_s > cfg->ttl_max_s)
        return -EINVAL;
    struct dns_cache *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    if (cfg->entries > 0) {
        uint32_t n = 16;
        while (n < cfg->entries && n < (1u << 30))
            n <<= 1;
        c->buckets = calloc(n, sizeof *c->buckets);
        if (!c->buckets) {
            free(c);
            return -ENOMEM;
        }
        c->mask = n - 1;
    }
    *out = c;
    return 0;
}

void dns_cache_destroy(struct dns_cache *c)
{
    if (!c)
        return;
    for (struct dns_cache__entry *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->buckets);
    free(c);
}

unsigned dns_cache_count(const struct dns_cache *c)
{
    return c->count;
}

static void dns_cache__lru_unlink(struct dns_cache *c, struct dns_cache__entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void dns_cache__lru_push(struct dns_cache *c, struct dns_cache__entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void dns_cache__hash_unlink(struct dns_cache *c, struct dns_cache__entry *e)
{
    struct dns_cache__entry **pp = &c->buckets[e->hash & c->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
}

static struct dns_cache__entry *dns_cache__find(struct dns_cache *c, enum dns_cache_kind kind,
                                                const char *key, size_t len, uint32_t hash)
{
    for (struct dns_cache__entry *e = c->buckets[hash & c->mask]; e; e = e->hnext)
        if (e->hash == hash && e->kind == kind && e->key_len == len &&
            memcmp(e->data, key, len) == 0)
            return e;
    return NULL;
}

static size_t dns_cache__addr_bytes(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return 1 + 4;
    if (ss->ss_family == AF_INET6)
        return 1 + 16;
    return 0; /* other families are not stored */
}

static size_t dns_cache__packed_bytes(const struct dns_result *res)
{
    size_t n = 0;
    for (unsigned i = 0; i < res->nhosts && i < DNS_MAX_HOSTS; i++) {
        const struct dns_host *h = &res->hosts[i];
        n += 4 + strnlen(h->name, DNS_NAME_MAX - 1);
        for (unsigned a = 0; a < h->naddrs && a < DNS_MAX_ADDRS; a++)
            n += dns_cache__addr_bytes(&h->addrs[a]);
    }
    return n;
}

static void dns_cache__pack(struct dns_cache__entry *e, const struct dns_result *res)
{
    unsigned char *p = e->data + e->key_len;
    e->status = (uint8_t)res->status;
    e->error = res->error;
    e->implicit_mx = res->implicit_mx;
    e->nhosts = (uint8_t)(res->nhosts < DNS_MAX_HOSTS ? res->nhosts : DNS_MAX_HOSTS);
    for (unsigned i = 0; i < e->nhosts; i++) {
        const struct dns_host *h = &res->hosts[i];
        size_t name_len = strnlen(h->name, DNS_NAME_MAX - 1);
        unsigned char *naddrs = p + 1;
        p[0] = (unsigned char)name_len;
        p[1] = 0;
        p[2] = (unsigned char)(h->pref >> 8);
        p[3] = (unsigned char)h->pref;
        memcpy(p + 4, h->name, name_len);
        p += 4 + name_len;
        for (unsigned a = 0; a < h->naddrs && a < DNS_MAX_ADDRS; a++) {
            const struct sockaddr_storage *ss = &h->addrs[a];
            if (ss->ss_family == AF_INET) {
                *p++ = 4;
                memcpy(p, &((const struct sockaddr_in *)ss)->sin_addr, 4);
                p += 4;
            } else if (ss->ss_family == AF_INET6) {
                *p++ = 6;
                memcpy(p, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
                p += 16;
            } else {
                continue;
            }
            (*naddrs)++;
        }
    }
}

static void dns_cache__unpack(const struct dns_cache__entry *e, struct dns_result *out)
{
    const unsigned char *p = e->data + e->key_len;
    out->status = (enum dns_status)e->status;
    out->error = e->error;
    out->implicit_mx = e->implicit_mx;
    out->nhosts = e->nhosts;
    for (unsigned i = 0; i < e->nhosts; i++) {
        struct dns_host *h = &out->hosts[i];
        size_t name_len = p[0];
        h->naddrs = p[1];
        h->pref = (unsigned)(p[2] << 8 | p[3]);
        memcpy(h->name, p + 4, name_len);
        h->name[name_len] = '\0';
        p += 4 + name_len;
        for (unsigned a = 0; a < h->naddrs; a++) {
            struct sockaddr_storage *ss = &h->addrs[a];
            memset(ss, 0, sizeof *ss);
            if (*p++ == 4) {
                struct sockaddr_in *sin = (struct sockaddr_in *)ss;
                sin->sin_family = AF_INET;
                memcpy(&sin->sin_addr, p, 4);
                p += 4;
            } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
                sin6->sin6_family = AF_INET6;
                memcpy(&sin6->sin6_addr, p, 16);
                p += 16;
            }
        }
    }
}

bool dns_cache_get(struct dns_cache *c, enum dns_cache_kind kind, const char *name,
                   uint64_t now_ms, struct dns_result *out, uint32_t *ttl_left_s)
{
    char key[DNS_NAME_MAX];
    int len = dns_cache__key(name, key);
    if (!c->buckets || len < 0)
        return false;
    struct dns_cache__entry *e =
        dns_cache__find(c, kind, key, (size_t)len, dns_cache__hash(kind, key, (size_t)len));
    if (!e || e->expires_ms <= now_ms)
        return false;
    dns_cache__unpack(e, out);
    *ttl_left_s = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
    dns_cache__lru_unlink(c, e);
    dns_cache__lru_push(c, e);
    return true;
}

int dns_cache_put(struct dns_cache *c, enum dns_cache_kind kind, const char *name,
                  const struct dns_result *res, uint32_t ttl_s, uint64_t now_ms)
{
    char key[DNS_NAME_MAX];
    int len = dns_cache__key(name, key);
    if (len < 0)
        return -EINVAL;
    uint32_t life_s = dns_cache_lifetime_s(&c->cfg, res->status, ttl_s);
    if (!c->buckets || life_s == 0)
        return 0;

    uint32_t hash = dns_cache__hash(kind, key, (size_t)len);
    size_t need = (size_t)len + dns_cache__packed_bytes(res);
    struct dns_cache__entry *e = dns_cache__find(c, kind, key, (size_t)len, hash);
    if (e && e->cap >= need) {
        dns_cache__lru_unlink(c, e);
        dns_cache__lru_push(c, e);
    } else {
        if (!e && c->count >= c->cfg.entries)
            e = c->tail; /* full: recycle the least recently used entry's block */
        if (e) {
            dns_cache__hash_unlink(c, e);
            dns_cache__lru_unlink(c, e);
            c->count--;
        }
        if (!e || e->cap < need) {
            struct dns_cache__entry *n = realloc(e, sizeof *n + need);
            if (!n) {
                free(e);
                return -ENOMEM;
            }
            e = n;
            e->cap = (uint32_t)need;
        }
        e->hash = hash;
        e->kind = (uint8_t)kind;
        e->key_len = (uint8_t)len;
        memcpy(e->data, key, (size_t)len);
        e->hnext = c->buckets[hash & c->mask];
        c->buckets[hash & c->mask] = e;
        dns_cache__lru_push(c, e);
        c->count++;
    }
    e->expires_ms = now_ms + (uint64_t)life_s * 1000;
    dns_cache__pack(e, res);
    return 0;
}
