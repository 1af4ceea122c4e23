/* schedulers/shaping_priv.h — the parsed rules, shared by the parser (shaping_rules.c, which
 * builds and frees them) and the resolver (shaping.c, which reads them). Not for other
 * modules: they see struct shaping_rules as opaque. */
#ifndef SALVO_SCHEDULERS_SHAPING_PRIV_H
#define SALVO_SCHEDULERS_SHAPING_PRIV_H

#include <stdint.h>

#include "schedulers/backoff.h"
#include "schedulers/shaping.h"
#include "schedulers/warmup.h"

/* One level of the precedence chain: the fields it sets (a bit per enum shaping_field, so an
 * unset field is distinguishable from one set to 0) and their values. */
struct shaping_level {
    uint32_t set;
    struct shaping_limits lim;
    char *label;                     /* "provider gmail", for provenance */
};

struct shaping_provider {
    char *name;
    char **mx_suffixes;              /* lowercased, no leading or trailing dots */
    unsigned nmx;
    char **domain_suffixes;
    unsigned ndomain;
    struct shaping_level lvl;
};

struct shaping_domain {
    char *name;                      /* lowercased, no trailing dot; arrays sorted by name */
    struct shaping_level lvl;
};

struct shaping_source_provider {
    unsigned provider;               /* index into rules->providers */
    struct shaping_level lvl;
};

struct shaping_source {
    char *name;                      /* sources sorted by name (byte order) */
    struct shaping_level defaults;
    struct shaping_source_provider *providers;
    unsigned nproviders;
    struct shaping_domain *domains;
    unsigned ndomains;
};

struct shaping_rules {
    struct shaping_limits base;      /* built-in, or what shaping_set_base supplied */
    char *base_label;                /* NULL: "built-in" */
    struct shaping_level defaults;
    struct shaping_provider *providers;   /* file order: the first match wins */
    unsigned nproviders;
    struct shaping_domain *domains;
    unsigned ndomains;
    struct shaping_source *sources;
    unsigned nsources;
    struct backoff_rules *backoff;   /* "backoff_rules", or NULL */
    struct warmup_plans *warmup;     /* "warmup_plans", or NULL */
};

/* What the parser and the resolver need to know about each field, from SHAPING_FIELDS. */
enum shaping_ftype { SHAPING_T_UINT, SHAPING_T_RATE, SHAPING_T_LIST, SHAPING_T_TLS, SHAPING_T_BOOL };
struct shaping_field_info {
    const char *name;                /* "timeouts.connect_ms" */
    enum shaping_ftype type;
    size_t off, size;                /* the member in struct shaping_limits */
    double min, max;                 /* UINT, RATE (exclusive min), LIST entries */
};
extern const struct shaping_field_info shaping_fields[SHAPING_F__COUNT];

/* Lowercases and strips trailing dots from name[0..len) into out (cap bytes); returns the
 * length, or -1 when it does not fit. */
int shaping_name_norm(const char *name, size_t len, char *out, size_t cap);

#endif
