/* schedulers/shaping.h — traffic shaping rules: the limits one (source, destination) pair
 * sends under, where each came from, and the MX-rollup site key. Pure: the caller reads the
 * rules file and passes its text; resolution reads nothing but its arguments. */
#ifndef SALVO_SCHEDULERS_SHAPING_H
#define SALVO_SCHEDULERS_SHAPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "schedulers/gcra.h"

enum shaping_tls {
    SHAPING_TLS_DISABLED,        /* never STARTTLS */
    SHAPING_TLS_OPPORTUNISTIC,   /* STARTTLS when offered, any certificate; plaintext if not */
    SHAPING_TLS_REQUIRED,        /* STARTTLS or defer; any certificate */
    SHAPING_TLS_VERIFY,          /* STARTTLS with a certificate that verifies for the MX name */
};
const char *shaping_tls_to_text(enum shaping_tls t);
int shaping_tls_from_text(const char *s, enum shaping_tls *out);   /* 0 or -1 */

/* Same names, order and meaning as the engine's smtp_timeouts (config "timeouts.*"). */
struct shaping_timeouts {
    unsigned connect_ms, greeting_ms, ehlo_ms, starttls_ms, auth_ms, mail_ms, rcpt_ms,
             data_ms, data_block_ms, end_ms, rset_ms, quit_ms, idle_ms;
};

#define SHAPING_RETRY_MAX 32     /* entries in a retry schedule */

/* The resolved limits. A rate of 0 means "no limit"; every other field always has a value. */
struct shaping_limits {
    unsigned max_connections;                 /* concurrent connections */
    double max_new_connections_per_minute;    /* connection opens, token bucket */
    double max_msgs_per_second;               /* paced: one every 1/N s, plus burst */
    double max_msgs_per_minute;               /* allowance of N refilling over a minute */
    double max_msgs_per_hour;                 /* allowance of N refilling over an hour */
    unsigned burst;                           /* messages beyond the per-second pace at once */
    unsigned max_msgs_per_connection;         /* transactions before QUIT */
    unsigned max_rcpts_per_txn;
    unsigned retry_schedule_s[SHAPING_RETRY_MAX];   /* delays before attempts 2, 3, ...; */
    unsigned nretry;                                /* the last one repeats */
    unsigned max_age_s;                       /* a message older than this expires */
    enum shaping_tls tls;
    struct shaping_timeouts timeouts;
    bool replica_local;                       /* keep these limits per replica, not cluster-wide */
};

/* Every field: X(ID, "json path", type, member, min, max). One list gives the field enum, the
 * names used in errors and in `shaping explain`, and the parser's type and range checks.
 * Types: UINT (integer), RATE (number > 0, or null for "no limit"), LIST (array of integers,
 * each in range), TLS (policy name), BOOL. */
#define SHAPING_FIELDS(X) \
    X(MAX_CONNECTIONS, "max_connections", UINT, max_connections, 1, 10000) \
    X(MAX_NEW_CONNECTIONS_PER_MINUTE, "max_new_connections_per_minute", RATE, \
      max_new_connections_per_minute, 0, 1000000) \
    X(MAX_MSGS_PER_SECOND, "max_msgs_per_second", RATE, max_msgs_per_second, 0, 1000000) \
    X(MAX_MSGS_PER_MINUTE, "max_msgs_per_minute", RATE, max_msgs_per_minute, 0, 60000000) \
    X(MAX_MSGS_PER_HOUR, "max_msgs_per_hour", RATE, max_msgs_per_hour, 0, 3600000000.0) \
    X(BURST, "burst", UINT, burst, 0, 1000000) \
    X(MAX_MSGS_PER_CONNECTION, "max_msgs_per_connection", UINT, max_msgs_per_connection, 1, 1000000) \
    X(MAX_RCPTS_PER_TXN, "max_rcpts_per_txn", UINT, max_rcpts_per_txn, 1, 1000) \
    X(RETRY_SCHEDULE_S, "retry_schedule_s", LIST, retry_schedule_s, 1, 31536000) \
    X(MAX_AGE_S, "max_age_s", UINT, max_age_s, 1, 31536000) \
    X(TLS, "tls", TLS, tls, 0, 0) \
    X(CONNECT_MS, "timeouts.connect_ms", UINT, timeouts.connect_ms, 1, 86400000) \
    X(GREETING_MS, "timeouts.greeting_ms", UINT, timeouts.greeting_ms, 1, 86400000) \
    X(EHLO_MS, "timeouts.ehlo_ms", UINT, timeouts.ehlo_ms, 1, 86400000) \
    X(STARTTLS_MS, "timeouts.starttls_ms", UINT, timeouts.starttls_ms, 1, 86400000) \
    X(AUTH_MS, "timeouts.auth_ms", UINT, timeouts.auth_ms, 1, 86400000) \
    X(MAIL_MS, "timeouts.mail_ms", UINT, timeouts.mail_ms, 1, 86400000) \
    X(RCPT_MS, "timeouts.rcpt_ms", UINT, timeouts.rcpt_ms, 1, 86400000) \
    X(DATA_MS, "timeouts.data_ms", UINT, timeouts.data_ms, 1, 86400000) \
    X(DATA_BLOCK_MS, "timeouts.data_block_ms", UINT, timeouts.data_block_ms, 1, 86400000) \
    X(END_MS, "timeouts.end_ms", UINT, timeouts.end_ms, 1, 86400000) \
    X(RSET_MS, "timeouts.rset_ms", UINT, timeouts.rset_ms, 1, 86400000) \
    X(QUIT_MS, "timeouts.quit_ms", UINT, timeouts.quit_ms, 1, 86400000) \
    X(IDLE_MS, "timeouts.idle_ms", UINT, timeouts.idle_ms, 1, 86400000) \
    X(REPLICA_LOCAL, "replica_local", BOOL, replica_local, 0, 0)

enum shaping_field {
#define X(id, name, type, member, min, max) SHAPING_F_##id,
    SHAPING_FIELDS(X)
#undef X
    SHAPING_F__COUNT
};
const char *shaping_field_name(enum shaping_field f);   /* "timeouts.connect_ms" */

/* For each field, the level that set it: "built-in", "defaults", "provider gmail",
 * "domain example.com", "source ip-a defaults", "source ip-a provider gmail",
 * "source ip-a domain example.com". The strings belong to the rules (or are static): valid
 * while the rules passed to shaping_resolve live. */
struct shaping_provenance {
    const char *from[SHAPING_F__COUNT];
};

struct shaping_rules;

/* The compiled-in limits, the level every rules file starts from ("built-in"). */
void shaping_limits_builtin(struct shaping_limits *out);

/* Parses a rules file's text (len bytes, no NUL needed). 0 and *out set, or -1 with a message
 * in err naming the field path ("providers[2].limits.max_msgs_per_second: expected a
 * number"). Unknown fields are errors. */
int shaping_parse(const char *json, size_t len, struct shaping_rules **out, char *err,
                  size_t errlen);
void shaping_free(struct shaping_rules *r);

/* The file's adaptive backoff rules ("backoff_rules", schedulers/backoff.h) and warm-up plans
 * ("warmup_plans", schedulers/warmup.h); NULL when the file has none (or r is NULL). They
 * belong to r. */
struct backoff_rules;
struct warmup_plans;
const struct backoff_rules *shaping_backoff(const struct shaping_rules *r);
const struct warmup_plans *shaping_warmup(const struct shaping_rules *r);

/* Replaces the built-in level with base, labelled label (e.g. "config" when the engine's own
 * configuration supplies the starting values). label is copied. 0, or -1 on no memory. */
int shaping_set_base(struct shaping_rules *r, const struct shaping_limits *base,
                     const char *label);

/* The effective limits for mail from source (NULL: none) to domain, whose MX host names are
 * mx_hosts[0..nmx). Levels, each overriding the one before field by field: base, file
 * defaults, provider, domain, then the source's defaults, provider and domain. r may be NULL
 * (built-in only); prov may be NULL. */
void shaping_resolve(const struct shaping_rules *r, const char *domain,
                     const char *const *mx_hosts, unsigned nmx, const char *source,
                     struct shaping_limits *out, struct shaping_provenance *prov);

/* The provider a destination belongs to: the first provider in the file with an mx_suffix
 * matching any MX host (case-insensitive, on a label boundary) or a domain_suffix matching
 * domain. NULL when none. The string belongs to r. */
const char *shaping_provider_of(const struct shaping_rules *r, const char *domain,
                                const char *const *mx_hosts, unsigned nmx);

/* Whether name is suffix or ends in "." suffix, ignoring case and trailing dots. */
bool shaping_suffix_match(const char *name, const char *suffix);

/* The MX-rollup key: the hosts lowercased, trailing dots removed, empty names dropped,
 * sorted, deduplicated, joined with ','. Domains with the same key share one queue and one
 * set of limits. Writes at most cap bytes including the NUL (out may be NULL if cap is 0)
 * and returns the full length, like snprintf: a result >= cap means truncated — do not use a
 * truncated key. With no MX records (implicit MX) pass the domain itself as the one host. */
size_t shaping_site_key(const char *const *mx_hosts, unsigned n, char *out, size_t cap);

/* A field's value as text ("5", "none", "60,300,900", "opportunistic", "true"). Returns the
 * length as snprintf does. */
size_t shaping_value_to_text(const struct shaping_limits *l, enum shaping_field f, char *out,
                             size_t cap);

/* Prints one line per field: name, value, and where it came from (prov may be NULL). */
void shaping_explain(const struct shaping_limits *l, const struct shaping_provenance *prov,
                     FILE *f);

/* The message buckets for l, in a fixed order (second, minute, hour); an unset rate gives a
 * "no limit" bucket. The per-second bucket allows l->burst extra at once; the minute and hour
 * buckets hold their whole allowance (N) and refill it over their period. */
#define SHAPING_MSG_BUCKETS 3
void shaping_msg_rates(const struct shaping_limits *l, struct gcra_rate out[SHAPING_MSG_BUCKETS]);

/* The connection-open bucket: N per minute, holding the whole minute's allowance. */
void shaping_conn_rate(const struct shaping_limits *l, struct gcra_rate *out);

#endif
