/* schedulers/shaping_rules.c — parses a shaping rules file (JSON text, read by the caller)
 * into struct shaping_rules, and frees it (its backoff_rules and warmup_plans parts go to
 * backoff.c and warmup.c, which parse their own JSON the same way). Strict:
 * unknown fields, wrong types and out-of-range values are errors that name the field path. */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/json_path.h"
#include "schedulers/shaping.h"
#include "schedulers/shaping_priv.h"

_Static_assert(SHAPING_F__COUNT <= 32, "struct shaping_level.set holds one bit per field");

#define RULES_NAME_MAX 64         /* provider and source names */
#define RULES_PATH_MAX JPATH_MAX

struct rules__ctx {
    struct shaping_rules *r;
    char *err;
    size_t errlen;
};

static int rules__fail(struct rules__ctx *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jpath_vfail(c->err, c->errlen, path, fmt, ap);
    va_end(ap);
    return -1;
}

static char *rules__strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static bool rules__name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RULES_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* A domain name or suffix, normalised: leading dots dropped (when allowed), lowercased,
 * trailing dots dropped. NULL if it is not a plausible host name. */
static char *rules__domain(const char *s, bool strip_leading)
{
    while (strip_leading && *s == '.')
        s++;
    char buf[256];
    size_t len = strlen(s);
    if (shaping_name_norm(s, len, buf, sizeof buf) <= 0)
        return NULL;
    size_t n = strlen(buf);
    if (buf[0] == '.' || strspn(buf, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != n ||
        strstr(buf, ".."))
        return NULL;
    return strdup(buf);
}

/* --- limits --------------------------------------------------------------------------- */

static int rules__field(const char *key, bool in_timeouts)
{
    for (unsigned f = 0; f < SHAPING_F__COUNT; f++) {
        const char *name = shaping_fields[f].name;
        if (in_timeouts) {
            if (strncmp(name, "timeouts.", 9) == 0 && strcmp(name + 9, key) == 0)
                return (int)f;
        } else if (!strchr(name, '.') && strcmp(name, key) == 0) {
            return (int)f;
        }
    }
    return -1;
}

static int rules__value(struct rules__ctx *c, json_t *v, unsigned f, const char *path,
                        struct shaping_level *lvl)
{
    const struct shaping_field_info *fi = &shaping_fields[f];
    void *dst = (char *)&lvl->lim + fi->off;
    switch (fi->type) {
    case SHAPING_T_UINT: {
        if (!json_is_integer(v))
            return rules__fail(c, path, "expected an integer");
        json_int_t x = json_integer_value(v);
        if ((double)x < fi->min || (double)x > fi->max)
            return rules__fail(c, path, "must be between %.0f and %.0f", fi->min, fi->max);
        *(unsigned *)dst = (unsigned)x;
        break;
    }
    case SHAPING_T_RATE: {
        double x = 0;
        if (!json_is_null(v)) {
            if (!json_is_number(v))
                return rules__fail(c, path, "expected a number, or null for no limit");
            x = json_number_value(v);
            if (!(x > 0))
                return rules__fail(c, path, "must be greater than 0 (null means no limit)");
            if (x > fi->max)
                return rules__fail(c, path, "must be at most %.0f", fi->max);
        }
        *(double *)dst = x;
        break;
    }
    case SHAPING_T_LIST: {
        if (!json_is_array(v))
            return rules__fail(c, path, "expected an array of integers");
        size_t n = json_array_size(v);
        if (n == 0 || n > SHAPING_RETRY_MAX)
            return rules__fail(c, path, "must have 1 to %d entries", SHAPING_RETRY_MAX);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            char p[RULES_PATH_MAX];
            jpath_index(p, path, i);
            if (!json_is_integer(e))
                return rules__fail(c, p, "expected an integer");
            json_int_t x = json_integer_value(e);
            if ((double)x < fi->min || (double)x > fi->max)
                return rules__fail(c, p, "must be between %.0f and %.0f", fi->min, fi->max);
            lvl->lim.retry_schedule_s[i] = (unsigned)x;
        }
        lvl->lim.nretry = (unsigned)n;
        break;
    }
    case SHAPING_T_TLS:
        if (!json_is_string(v) ||
            shaping_tls_from_text(json_string_value(v), (enum shaping_tls *)dst) != 0)
            return rules__fail(c, path,
                               "expected one of disabled, opportunistic, required, verify");
        break;
    case SHAPING_T_BOOL:
        if (!json_is_boolean(v))
            return rules__fail(c, path, "expected true or false");
        *(bool *)dst = json_is_true(v);
        break;
    }
    lvl->set |= UINT32_C(1) << f;
    return 0;
}

static int rules__limits(struct rules__ctx *c, json_t *obj, const char *path,
                         struct shaping_level *lvl)
{
    if (!json_is_object(obj))
        return rules__fail(c, path, "expected an object of limits");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char p[RULES_PATH_MAX];
        jpath_key(p, path, key);
        if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return rules__fail(c, p, "expected a string");
            continue;
        }
        if (strcmp(key, "timeouts") == 0) {
            if (!json_is_object(v))
                return rules__fail(c, p, "expected an object");
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                char p2[RULES_PATH_MAX];
                jpath_key(p2, p, k2);
                int f = rules__field(k2, true);
                if (f < 0)
                    return rules__fail(c, p2, "unknown field");
                if (rules__value(c, v2, (unsigned)f, p2, lvl) != 0)
                    return -1;
            }
            continue;
        }
        int f = rules__field(key, false);
        if (f < 0)
            return rules__fail(c, p, "unknown field");
        if (rules__value(c, v, (unsigned)f, p, lvl) != 0)
            return -1;
    }
    return 0;
}

static int rules__level(struct rules__ctx *c, json_t *obj, const char *path,
                        struct shaping_level *lvl, char *label)
{
    lvl->label = label;
    if (!label)
        return rules__fail(c, "", "out of memory");
    return rules__limits(c, obj, path, lvl);
}

/* --- providers ------------------------------------------------------------------------ */

static int rules__suffixes(struct rules__ctx *c, json_t *arr, const char *path, char ***out,
                           unsigned *n)
{
    if (!json_is_array(arr))
        return rules__fail(c, path, "expected an array of domain names");
    size_t cnt = json_array_size(arr);
    if (cnt == 0)
        return 0;
    *out = calloc(cnt, sizeof **out);
    if (!*out)
        return rules__fail(c, "", "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        char p[RULES_PATH_MAX];
        jpath_index(p, path, i);
        if (!json_is_string(e))
            return rules__fail(c, p, "expected a string");
        char *s = rules__domain(json_string_value(e), true);
        if (!s)
            return rules__fail(c, p, "not a domain name");
        (*out)[(*n)++] = s;
    }
    return 0;
}

static int rules__provider(struct rules__ctx *c, json_t *obj, size_t i,
                           struct shaping_provider *pv)
{
    char path[RULES_PATH_MAX];
    jpath_index(path, "providers", i);
    if (!json_is_object(obj))
        return rules__fail(c, path, "expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char p[RULES_PATH_MAX];
        jpath_key(p, path, key);
        if (strcmp(key, "name") != 0 && strcmp(key, "mx_suffixes") != 0 &&
            strcmp(key, "domain_suffixes") != 0 && strcmp(key, "limits") != 0 &&
            strcmp(key, "comment") != 0)
            return rules__fail(c, p, "unknown field");
        if (strcmp(key, "comment") == 0 && !json_is_string(v))
            return rules__fail(c, p, "expected a string");
    }

    char p[RULES_PATH_MAX];
    jpath_key(p, path, "name");
    json_t *name = json_object_get(obj, "name");
    if (!name)
        return rules__fail(c, p, "required");
    if (!json_is_string(name) || !rules__name_ok(json_string_value(name)))
        return rules__fail(c, p, "expected a name of 1 to %d letters, digits, '.', '_', ':' or '-'",
                           RULES_NAME_MAX);
    for (size_t j = 0; j < i; j++)
        if (strcmp(c->r->providers[j].name, json_string_value(name)) == 0)
            return rules__fail(c, p, "\"%s\" is already the name of providers[%zu]",
                               json_string_value(name), j);
    if (!(pv->name = strdup(json_string_value(name))))
        return rules__fail(c, "", "out of memory");

    json_t *mx = json_object_get(obj, "mx_suffixes");
    jpath_key(p, path, "mx_suffixes");
    if (mx && rules__suffixes(c, mx, p, &pv->mx_suffixes, &pv->nmx) != 0)
        return -1;
    json_t *dom = json_object_get(obj, "domain_suffixes");
    jpath_key(p, path, "domain_suffixes");
    if (dom && rules__suffixes(c, dom, p, &pv->domain_suffixes, &pv->ndomain) != 0)
        return -1;
    if (pv->nmx + pv->ndomain == 0)
        return rules__fail(c, path, "needs mx_suffixes or domain_suffixes (it would match nothing)");

    char *label = rules__strf("provider %s", pv->name);
    json_t *lim = json_object_get(obj, "limits");
    jpath_key(p, path, "limits");
    if (!lim) {
        pv->lvl.label = label;
        return label ? 0 : rules__fail(c, "", "out of memory");
    }
    return rules__level(c, lim, p, &pv->lvl, label);
}

/* --- domains -------------------------------------------------------------------------- */

static int rules__domain_cmp(const void *a, const void *b)
{
    return strcmp(((const struct shaping_domain *)a)->name,
                  ((const struct shaping_domain *)b)->name);
}

/* A "domains" object: name -> limits. label_prefix is "" or "source NAME ". */
static int rules__domains(struct rules__ctx *c, json_t *obj, const char *path,
                          const char *label_prefix, struct shaping_domain **out, unsigned *n)
{
    if (!json_is_object(obj))
        return rules__fail(c, path, "expected an object of domain names");
    size_t cnt = json_object_size(obj);
    if (cnt == 0)
        return 0;
    if (!(*out = calloc(cnt, sizeof **out)))
        return rules__fail(c, "", "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char p[RULES_PATH_MAX];
        jpath_key(p, path, key);
        struct shaping_domain *d = &(*out)[(*n)++];
        if (!(d->name = rules__domain(key, false)))
            return rules__fail(c, p, "not a domain name");
        if (rules__level(c, v, p, &d->lvl, rules__strf("%sdomain %s", label_prefix, d->name)) != 0)
            return -1;
    }
    qsort(*out, *n, sizeof **out, rules__domain_cmp);
    for (unsigned i = 1; i < *n; i++)
        if (strcmp((*out)[i - 1].name, (*out)[i].name) == 0) {
            char p[RULES_PATH_MAX];
            jpath_key(p, path, (*out)[i].name);
            return rules__fail(c, p, "listed twice (domain names ignore case and trailing dots)");
        }
    return 0;
}

/* --- sources -------------------------------------------------------------------------- */

static int rules__source(struct rules__ctx *c, const char *name, json_t *obj,
                         struct shaping_source *s)
{
    char path[RULES_PATH_MAX];
    jpath_key(path, "sources", name);
    if (!rules__name_ok(name))
        return rules__fail(c, path, "expected a name of 1 to %d letters, digits, '.', '_', ':' or '-'",
                           RULES_NAME_MAX);
    if (!(s->name = strdup(name)))
        return rules__fail(c, "", "out of memory");
    if (!json_is_object(obj))
        return rules__fail(c, path, "expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char p[RULES_PATH_MAX];
        jpath_key(p, path, key);
        if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return rules__fail(c, p, "expected a string");
        } else if (strcmp(key, "defaults") != 0 && strcmp(key, "providers") != 0 &&
                   strcmp(key, "domains") != 0) {
            return rules__fail(c, p, "unknown field");
        }
    }

    char p[RULES_PATH_MAX];
    json_t *def = json_object_get(obj, "defaults");
    char *label = rules__strf("source %s defaults", s->name);
    jpath_key(p, path, "defaults");
    if (def) {
        if (rules__level(c, def, p, &s->defaults, label) != 0)
            return -1;
    } else if (!(s->defaults.label = label)) {
        return rules__fail(c, "", "out of memory");
    }

    json_t *prov = json_object_get(obj, "providers");
    jpath_key(p, path, "providers");
    if (prov) {
        if (!json_is_object(prov))
            return rules__fail(c, p, "expected an object of provider names");
        size_t cnt = json_object_size(prov);
        if (cnt && !(s->providers = calloc(cnt, sizeof *s->providers)))
            return rules__fail(c, "", "out of memory");
        json_object_foreach(prov, key, v) {
            char p2[RULES_PATH_MAX];
            jpath_key(p2, p, key);
            unsigned idx = 0;
            while (idx < c->r->nproviders && strcmp(c->r->providers[idx].name, key) != 0)
                idx++;
            if (idx == c->r->nproviders)
                return rules__fail(c, p2, "no such provider (declare it in \"providers\")");
            struct shaping_source_provider *sp = &s->providers[s->nproviders++];
            sp->provider = idx;
            if (rules__level(c, v, p2, &sp->lvl,
                             rules__strf("source %s provider %s", s->name, key)) != 0)
                return -1;
        }
    }

    json_t *dom = json_object_get(obj, "domains");
    jpath_key(p, path, "domains");
    if (dom) {
        char *prefix = rules__strf("source %s ", s->name);
        if (!prefix)
            return rules__fail(c, "", "out of memory");
        int rc = rules__domains(c, dom, p, prefix, &s->domains, &s->ndomains);
        free(prefix);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int rules__source_cmp(const void *a, const void *b)
{
    return strcmp(((const struct shaping_source *)a)->name,
                  ((const struct shaping_source *)b)->name);
}

/* --- the file ------------------------------------------------------------------------- */

static int rules__root(struct rules__ctx *c, json_t *root)
{
    struct shaping_rules *r = c->r;
    if (!json_is_object(root))
        return rules__fail(c, "", "expected an object at the top level");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        char p[RULES_PATH_MAX];
        jpath_key(p, "", key);
        if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return rules__fail(c, p, "expected a string");
        } else if (strcmp(key, "backoff_rules") == 0 || strcmp(key, "warmup_plans") == 0) {
            /* parsed by their own modules, from their own text */
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            char e2[RULES_PATH_MAX + 256] = "";
            int rc = !text ? -1
                     : key[0] == 'b' ? backoff_parse(text, strlen(text), &r->backoff, e2, sizeof e2)
                                     : warmup_parse(text, strlen(text), &r->warmup, e2, sizeof e2);
            free(text);
            if (rc != 0)
                return rules__fail(c, "", "%s", e2[0] ? e2 : "out of memory");
        } else if (strcmp(key, "defaults") != 0 && strcmp(key, "providers") != 0 &&
                   strcmp(key, "domains") != 0 && strcmp(key, "sources") != 0) {
            return rules__fail(c, p, "unknown field");
        }
    }

    if (!(r->defaults.label = strdup("defaults")))
        return rules__fail(c, "", "out of memory");
    if ((v = json_object_get(root, "defaults")) && rules__limits(c, v, "defaults", &r->defaults) != 0)
        return -1;

    if ((v = json_object_get(root, "providers"))) {
        if (!json_is_array(v))
            return rules__fail(c, "providers", "expected an array of providers");
        size_t cnt = json_array_size(v);
        if (cnt && !(r->providers = calloc(cnt, sizeof *r->providers)))
            return rules__fail(c, "", "out of memory");
        for (size_t i = 0; i < cnt; i++) {
            r->nproviders++;
            if (rules__provider(c, json_array_get(v, i), i, &r->providers[i]) != 0)
                return -1;
        }
    }

    if ((v = json_object_get(root, "domains")) &&
        rules__domains(c, v, "domains", "", &r->domains, &r->ndomains) != 0)
        return -1;

    /* a backoff rule's scope must name providers of this file (a typo would match nothing) */
    for (unsigned i = 0; i < backoff_count(r->backoff); i++) {
        struct backoff_rule_info ri;
        backoff_rule_get(r->backoff, i, &ri);
        for (unsigned j = 0; j < ri.nproviders; j++) {
            unsigned k = 0;
            while (k < r->nproviders && strcmp(r->providers[k].name, ri.providers[j]) != 0)
                k++;
            if (k == r->nproviders) {
                char p[RULES_PATH_MAX];
                snprintf(p, sizeof p, "backoff_rules[%u].providers[%u]", i, j);
                return rules__fail(c, p, "no such provider in \"providers\": %.60s", ri.providers[j]);
            }
        }
    }
    /* a provider ramp must name a provider of this file (a typo would silently mean no ramp) */
    for (unsigned i = 0; i < warmup_plans_count(r->warmup); i++) {
        const struct warmup_plan *pl = warmup_plans_at(r->warmup, i);
        for (unsigned j = 0; j < warmup_plan_nproviders(pl); j++) {
            const char *pn = warmup_plan_provider(pl, j);
            unsigned k = 0;
            while (k < r->nproviders && strcmp(r->providers[k].name, pn) != 0)
                k++;
            if (k == r->nproviders) {
                char p[RULES_PATH_MAX];
                snprintf(p, sizeof p, "warmup_plans.%.60s.providers.%.60s", warmup_plan_name(pl), pn);
                return rules__fail(c, p, "no such provider in \"providers\"");
            }
        }
    }

    if ((v = json_object_get(root, "sources"))) {
        if (!json_is_object(v))
            return rules__fail(c, "sources", "expected an object of source names");
        size_t cnt = json_object_size(v);
        if (cnt && !(r->sources = calloc(cnt, sizeof *r->sources)))
            return rules__fail(c, "", "out of memory");
        json_t *sv;
        json_object_foreach(v, key, sv) {
            if (rules__source(c, key, sv, &r->sources[r->nsources++]) != 0)
                return -1;
        }
        if (r->nsources > 1)
            qsort(r->sources, r->nsources, sizeof *r->sources, rules__source_cmp);
    }
    return 0;
}

int shaping_parse(const char *json, size_t len, struct shaping_rules **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct shaping_rules *r = calloc(1, sizeof *r);
    struct rules__ctx c = {.r = r, .err = err, .errlen = errlen};
    if (!r)
        return rules__fail(&c, "", "out of memory");
    shaping_limits_builtin(&r->base);

    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        shaping_free(r);
        if (err && errlen)
            snprintf(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    int rc = rules__root(&c, root);
    json_decref(root);
    if (rc != 0) {
        shaping_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static void rules__free_domains(struct shaping_domain *d, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        free(d[i].name);
        free(d[i].lvl.label);
    }
    free(d);
}

void shaping_free(struct shaping_rules *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->nproviders; i++) {
        struct shaping_provider *p = &r->providers[i];
        free(p->name);
        for (unsigned j = 0; j < p->nmx; j++)
            free(p->mx_suffixes[j]);
        free(p->mx_suffixes);
        for (unsigned j = 0; j < p->ndomain; j++)
            free(p->domain_suffixes[j]);
        free(p->domain_suffixes);
        free(p->lvl.label);
    }
    free(r->providers);
    rules__free_domains(r->domains, r->ndomains);
    for (unsigned i = 0; i < r->nsources; i++) {
        struct shaping_source *s = &r->sources[i];
        free(s->name);
        free(s->defaults.label);
        for (unsigned j = 0; j < s->nproviders; j++)
            free(s->providers[j].lvl.label);
        free(s->providers);
        rules__free_domains(s->domains, s->ndomains);
    }
    free(r->sources);
    backoff_free(r->backoff);
    warmup_free(r->warmup);
    free(r->defaults.label);
    free(r->base_label);
    free(r);
}

const struct backoff_rules *shaping_backoff(const struct shaping_rules *r) { return r ? r->backoff : NULL; }

const struct warmup_plans *shaping_warmup(const struct shaping_rules *r) { return r ? r->warmup : NULL; }
