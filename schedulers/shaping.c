/* schedulers/shaping.c — resolving shaping rules: which levels apply to a destination, the
 * field-by-field override, provenance, the MX-rollup site key and the explain listing.
 * Parsing the rules file is shaping_rules.c's; enforcing the limits is the caller's. */
#include "schedulers/shaping.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schedulers/shaping_priv.h"

static const char *const shaping__tls_names[] = {
    [SHAPING_TLS_DISABLED] = "disabled",
    [SHAPING_TLS_OPPORTUNISTIC] = "opportunistic",
    [SHAPING_TLS_REQUIRED] = "required",
    [SHAPING_TLS_VERIFY] = "verify",
};

const char *shaping_tls_to_text(enum shaping_tls t)
{
    return (unsigned)t < sizeof shaping__tls_names / sizeof *shaping__tls_names
               ? shaping__tls_names[t] : "?";
}

int shaping_tls_from_text(const char *s, enum shaping_tls *out)
{
    for (unsigned i = 0; i < sizeof shaping__tls_names / sizeof *shaping__tls_names; i++)
        if (strcmp(s, shaping__tls_names[i]) == 0) {
            *out = (enum shaping_tls)i;
            return 0;
        }
    return -1;
}

const struct shaping_field_info shaping_fields[SHAPING_F__COUNT] = {
#define X(id, name, type, member, min, max) \
    [SHAPING_F_##id] = {name, SHAPING_T_##type, offsetof(struct shaping_limits, member), \
                        sizeof(((struct shaping_limits *)0)->member), min, max},
    SHAPING_FIELDS(X)
#undef X
};

const char *shaping_field_name(enum shaping_field f)
{
    return (unsigned)f < SHAPING_F__COUNT ? shaping_fields[f].name : "?";
}

void shaping_limits_builtin(struct shaping_limits *out)
{
    /* The engine's own configuration defaults (docs/config.md): a rules file that says
     * nothing changes nothing. Rates are unlimited until a rule sets them. */
    *out = (struct shaping_limits){
        .max_connections = 10,
        .max_msgs_per_connection = 100,
        .max_rcpts_per_txn = 100,
        .retry_schedule_s = {60, 300, 900, 1800, 3600, 7200, 14400},
        .nretry = 7,
        .max_age_s = 259200,
        .tls = SHAPING_TLS_OPPORTUNISTIC,
        .timeouts = {
            .connect_ms = 30000, .greeting_ms = 300000, .ehlo_ms = 300000,
            .starttls_ms = 300000, .auth_ms = 300000, .mail_ms = 300000, .rcpt_ms = 300000,
            .data_ms = 120000, .data_block_ms = 180000, .end_ms = 600000, .rset_ms = 120000,
            .quit_ms = 30000, .idle_ms = 5000,
        },
    };
}

int shaping_name_norm(const char *name, size_t len, char *out, size_t cap)
{
    while (len && name[len - 1] == '.')
        len--;
    if (len >= cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[len] = '\0';
    return (int)len;
}

bool shaping_suffix_match(const char *name, const char *suffix)
{
    size_t nl = strlen(name), sl = strlen(suffix);
    while (nl && name[nl - 1] == '.')
        nl--;
    while (sl && suffix[sl - 1] == '.')
        sl--;
    if (sl == 0 || nl < sl || strncasecmp(name + nl - sl, suffix, sl) != 0)
        return false;
    return nl == sl || name[nl - sl - 1] == '.';
}

static int shaping__provider_index(const struct shaping_rules *r, const char *domain,
                                   const char *const *mx_hosts, unsigned nmx)
{
    for (unsigned i = 0; i < r->nproviders; i++) {
        const struct shaping_provider *p = &r->providers[i];
        for (unsigned j = 0; j < p->nmx; j++)
            for (unsigned k = 0; k < nmx; k++)
                if (mx_hosts[k] && shaping_suffix_match(mx_hosts[k], p->mx_suffixes[j]))
                    return (int)i;
        for (unsigned j = 0; domain && j < p->ndomain; j++)
            if (shaping_suffix_match(domain, p->domain_suffixes[j]))
                return (int)i;
    }
    return -1;
}

const char *shaping_provider_of(const struct shaping_rules *r, const char *domain,
                                const char *const *mx_hosts, unsigned nmx)
{
    if (!r)
        return NULL;
    int i = shaping__provider_index(r, domain, mx_hosts, nmx);
    return i < 0 ? NULL : r->providers[i].name;
}

static int shaping__domain_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct shaping_domain *)elem)->name);
}

static const struct shaping_level *shaping__domain(const struct shaping_domain *d, unsigned n,
                                                   const char *name)
{
    if (!name || !n)
        return NULL;
    const struct shaping_domain *hit = bsearch(name, d, n, sizeof *d, shaping__domain_cmp);
    return hit ? &hit->lvl : NULL;
}

static int shaping__source_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct shaping_source *)elem)->name);
}

static void shaping__apply(struct shaping_limits *out, struct shaping_provenance *prov,
                           const struct shaping_level *lvl)
{
    if (!lvl)
        return;
    for (unsigned f = 0; f < SHAPING_F__COUNT; f++) {
        if (!(lvl->set & (UINT32_C(1) << f)))
            continue;
        memcpy((char *)out + shaping_fields[f].off, (const char *)&lvl->lim + shaping_fields[f].off,
               shaping_fields[f].size);
        if (f == SHAPING_F_RETRY_SCHEDULE_S)
            out->nretry = lvl->lim.nretry;
        if (prov)
            prov->from[f] = lvl->label;
    }
}

int shaping_set_base(struct shaping_rules *r, const struct shaping_limits *base,
                     const char *label)
{
    char *copy = strdup(label ? label : "built-in");
    if (!copy)
        return -1;
    free(r->base_label);
    r->base_label = copy;
    r->base = *base;
    if (r->base.nretry > SHAPING_RETRY_MAX)
        r->base.nretry = SHAPING_RETRY_MAX;
    return 0;
}

void shaping_resolve(const struct shaping_rules *r, const char *domain,
                     const char *const *mx_hosts, unsigned nmx, const char *source,
                     struct shaping_limits *out, struct shaping_provenance *prov)
{
    const char *base_label = "built-in";
    if (r) {
        *out = r->base;
        if (r->base_label)
            base_label = r->base_label;
    } else {
        shaping_limits_builtin(out);
    }
    if (prov)
        for (unsigned f = 0; f < SHAPING_F__COUNT; f++)
            prov->from[f] = base_label;
    if (!r)
        return;

    char dom[256];
    const char *d = NULL;
    if (domain && shaping_name_norm(domain, strlen(domain), dom, sizeof dom) > 0)
        d = dom;
    int p = shaping__provider_index(r, d, mx_hosts, nmx);

    shaping__apply(out, prov, &r->defaults);
    if (p >= 0)
        shaping__apply(out, prov, &r->providers[p].lvl);
    shaping__apply(out, prov, shaping__domain(r->domains, r->ndomains, d));

    const struct shaping_source *s = NULL;
    if (source && r->nsources)
        s = bsearch(source, r->sources, r->nsources, sizeof *s, shaping__source_cmp);
    if (!s)
        return;
    shaping__apply(out, prov, &s->defaults);
    for (unsigned i = 0; p >= 0 && i < s->nproviders; i++)
        if (s->providers[i].provider == (unsigned)p)
            shaping__apply(out, prov, &s->providers[i].lvl);
    shaping__apply(out, prov, shaping__domain(s->domains, s->ndomains, d));
}

/* --- MX rollup ------------------------------------------------------------------------ */

static size_t shaping__host_len(const char *h)
{
    size_t n = strlen(h);
    while (n && h[n - 1] == '.')
        n--;
    return n;
}

/* Compares two host names as their canonical forms (lowercased, no trailing dots). */
static int shaping__host_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    for (size_t i = 0; i < al && i < bl; i++) {
        int ca = (unsigned char)a[i], cb = (unsigned char)b[i];
        ca = ca >= 'A' && ca <= 'Z' ? ca + 32 : ca;
        cb = cb >= 'A' && cb <= 'Z' ? cb + 32 : cb;
        if (ca != cb)
            return ca - cb;
    }
    return al < bl ? -1 : al > bl;
}

size_t shaping_site_key(const char *const *mx_hosts, unsigned n, char *out, size_t cap)
{
    /* Repeated selection of the next larger name: MX sets are small, and this needs no
     * allocation and no copy of the caller's array. */
    size_t len = 0;
    const char *last = NULL;
    size_t last_len = 0;
    if (cap)
        out[0] = '\0';
    for (;;) {
        const char *best = NULL;
        size_t best_len = 0;
        for (unsigned i = 0; i < n; i++) {
            if (!mx_hosts[i])
                continue;
            size_t hl = shaping__host_len(mx_hosts[i]);
            if (hl == 0)
                continue;
            if (last && shaping__host_cmp(mx_hosts[i], hl, last, last_len) <= 0)
                continue;
            if (!best || shaping__host_cmp(mx_hosts[i], hl, best, best_len) < 0) {
                best = mx_hosts[i];
                best_len = hl;
            }
        }
        if (!best)
            break;
        if (last && len + 1 < cap)
            out[len] = ',';
        len += last != NULL;
        for (size_t i = 0; i < best_len; i++, len++) {
            unsigned char c = (unsigned char)best[i];
            if (len + 1 < cap)
                out[len] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        last = best;
        last_len = best_len;
    }
    if (cap)
        out[len < cap ? len : cap - 1] = '\0';
    return len;
}

/* --- explain -------------------------------------------------------------------------- */

size_t shaping_value_to_text(const struct shaping_limits *l, enum shaping_field f, char *out,
                             size_t cap)
{
    if ((unsigned)f >= SHAPING_F__COUNT)
        return (size_t)snprintf(out, cap, "?");
    const void *v = (const char *)l + shaping_fields[f].off;
    int n = 0;
    switch (shaping_fields[f].type) {
    case SHAPING_T_UINT:
        n = snprintf(out, cap, "%u", *(const unsigned *)v);
        break;
    case SHAPING_T_RATE:
        n = *(const double *)v > 0 ? snprintf(out, cap, "%.15g", *(const double *)v)
                                   : snprintf(out, cap, "none");
        break;
    case SHAPING_T_TLS:
        n = snprintf(out, cap, "%s", shaping_tls_to_text(*(const enum shaping_tls *)v));
        break;
    case SHAPING_T_BOOL:
        n = snprintf(out, cap, "%s", *(const bool *)v ? "true" : "false");
        break;
    case SHAPING_T_LIST: {
        size_t len = 0;
        if (cap)
            out[0] = '\0';
        for (unsigned i = 0; i < l->nretry && i < SHAPING_RETRY_MAX; i++) {
            int k = snprintf(len < cap ? out + len : NULL, len < cap ? cap - len : 0,
                             i ? ",%u" : "%u", l->retry_schedule_s[i]);
            len += k > 0 ? (size_t)k : 0;
        }
        return len;
    }
    }
    return n < 0 ? 0 : (size_t)n;
}

void shaping_explain(const struct shaping_limits *l, const struct shaping_provenance *prov,
                     FILE *f)
{
    for (unsigned i = 0; i < SHAPING_F__COUNT; i++) {
        char v[SHAPING_RETRY_MAX * 12];
        shaping_value_to_text(l, (enum shaping_field)i, v, sizeof v);
        fprintf(f, "%-32s %-20s %s\n", shaping_fields[i].name, v,
                prov && prov->from[i] ? prov->from[i] : "");
    }
}

/* --- buckets -------------------------------------------------------------------------- */

/* A whole period's allowance as the bucket's size: N tokens, so burst N - 1. */
static void shaping__allowance(struct gcra_rate *r, double n, uint64_t period_ms)
{
    double b = n > 1 ? n - 1 : 0;
    unsigned burst = b >= 4e9 ? 4000000000u : (unsigned)b;
    if (b > (double)burst)                    /* a fractional allowance rounds up */
        burst++;
    gcra_rate_set(r, n, period_ms, burst);
}

void shaping_msg_rates(const struct shaping_limits *l, struct gcra_rate out[SHAPING_MSG_BUCKETS])
{
    gcra_rate_set(&out[0], l->max_msgs_per_second, 1000, l->burst);
    shaping__allowance(&out[1], l->max_msgs_per_minute, 60000);
    shaping__allowance(&out[2], l->max_msgs_per_hour, 3600000);
}

void shaping_conn_rate(const struct shaping_limits *l, struct gcra_rate *out)
{
    shaping__allowance(out, l->max_new_connections_per_minute, 60000);
}
