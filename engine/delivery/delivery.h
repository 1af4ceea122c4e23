/* engine/delivery/delivery.h — one worker's delivery of messages to destinations: groups
 * recipients by domain, resolves each destination (static route or MX), keeps a pool of
 * SMTP sessions per destination, walks the MX list on host failures, retries a failed
 * opportunistic TLS handshake in plaintext (remembering that host's broken TLS), and
 * reports one final outcome per recipient for this attempt.
 * Owns: destinations, connections, the transaction pool. Does not own: retry timing, intake
 * or events (callers decide what a deferral means). */
#ifndef SALVO_ENGINE_DELIVERY_DELIVERY_H
#define SALVO_ENGINE_DELIVERY_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/dns/dns.h"
#include "engine/ring/ring.h"
#include "engine/smtp/smtp_session.h"
#include "schedulers/backoff.h"
#include "schedulers/failure_policy.h"
#include "schedulers/shaping.h"

struct dlv_route {
    char domain[DNS_NAME_MAX];   /* lowercase */
    char host[DNS_NAME_MAX];     /* name or IP literal */
    uint16_t port;
    char auth_user[256];         /* SMTP AUTH (PLAIN or LOGIN), only ever sent over TLS; "" = none */
    char auth_pass[256];
};

#define DLV_MAX_SOURCES 64
#define DLV_MAX_POOLS 32
#define DLV_POOL_MAX 16

/* An egress source: the local address connections are made from, and the name it greets with. */
struct dlv_source {
    char name[64];
    bool has_addr;
    struct sockaddr_storage addr;   /* port 0 */
    socklen_t addr_len;
    char ehlo[256];                 /* "" = the configured ehlo_name */
    char warmup_plan[64];           /* "" = warm: no warm-up caps */
    int64_t warmup_start_day;       /* days since 1970-01-01 (UTC) of warm-up day 1 */
};

/* A weighted set of sources; a message names its pool (or gets the default one). */
struct dlv_pool {
    char name[64];
    unsigned n;
    unsigned member[DLV_POOL_MAX];  /* indexes into the sources */
    unsigned weight[DLV_POOL_MAX];
};

struct dlv_config {
    struct smtp_session_config session;
    enum tls_policy tls_policy;      /* default opportunistic */
    uint16_t mx_port;                /* default 25 */
    bool has_source;
    struct sockaddr_storage source;  /* bind before connect (port 0) */
    socklen_t source_len;
    unsigned max_conns_per_dest;     /* default 10 */
    unsigned max_msgs_per_conn;      /* default 100 */
    unsigned max_rcpts_per_txn;      /* default 100 */
    unsigned max_txns;               /* transactions in memory at once (default 10000) */
    unsigned tls_broken_ttl_s;       /* plaintext for a host whose handshake failed (3600) */
    unsigned max_queued_per_dest;    /* transactions waiting at one destination; more are
                                        refused as "busy" (not attempted) (default 1000) */
    unsigned dest_retry_s;           /* after a whole-destination temporary failure, new work
                                        is deferred without connecting this long (default 30) */
    const struct dlv_route *routes;
    unsigned nroutes;
    /* Traffic shaping (schedulers/shaping.h): per-destination limits with the configuration
     * above as their base level. NULL: the configuration alone, no rate limits. */
    const struct shaping_rules *shaping;
    double timeout_scale;            /* applied to timeouts that come from shaping rules */
    /* Egress sources and pools. No sources: one implicit source from has_source/source. */
    const struct dlv_source *sources;
    unsigned nsources;
    const struct dlv_pool *pools;
    unsigned npools;
    unsigned default_pool;
};
void dlv_config_defaults(struct dlv_config *c);

enum dlv_status { DLV_DELIVERED, DLV_DEFERRED, DLV_BOUNCED };
const char *dlv_status_to_text(enum dlv_status s);

struct dlv_msg;

struct dlv_rcpt {
    struct smtp_rcpt r;              /* r.addr set by the caller; r.outcome out */
    struct smtp_conn_info conn;      /* out: where the attempt went */
    struct fail_verdict verdict;     /* out: meaningful unless delivered */
    enum dlv_status status;          /* out */
    bool not_attempted;              /* out: deferred by scheduling (destination busy,
                                        throttled or backing off), no attempt was made */
    unsigned retry_after_ms;         /* out, not_attempted: when it may go (0 = unknown) */
    unsigned nretry;                 /* out: the destination's retry schedule, when known */
    unsigned retry_s[SHAPING_RETRY_MAX];
    unsigned max_age_s;              /* out: the destination's max age (0 = unknown) */
    const char *source_name;         /* out: the egress source used (NULL before a choice) */
    const char *warmup_note;         /* out: the source's warm-up ramp is held, and why (or NULL) */
    const char *site;                /* out: the shaping site ("provider:gmail", "mx:a.example,..."),
                                        valid until on_done returns; NULL before DNS */
    struct dlv_msg *msg;             /* internal */
};

struct dlv_msg {
    const char *from;
    struct dlv_rcpt *rcpts;
    unsigned nrcpts;
    const uint8_t *body;
    size_t body_len;
    void (*on_done)(struct dlv_msg *m); /* every recipient has a status; m is the caller's again */
    void *user;
    const char *pool;                /* egress pool, NULL = the default pool */
    /* internal */
    unsigned pending;
    bool body_8bit;
    struct dlv_msg *next_done;
};

struct dlv;

int dlv_create(struct dlv **out, struct ring *ring, struct dns *dns, const struct dlv_config *cfg);
void dlv_destroy(struct dlv *d);
/* Starts delivering m (the caller keeps m and everything it points to alive until on_done,
 * which always runs from the ring, never inside this call). Returns 0, or -EAGAIN when the
 * transaction pool is full (try again after some on_done), -EINVAL for no recipients,
 * -ENOENT for a pool that is not configured. */
int dlv_submit(struct dlv *d, struct dlv_msg *m);
/* Sends QUIT on every idle connection and stops keeping connections open. */
void dlv_shutdown(struct dlv *d);
/* Closes every connection now; running transactions end as temporary failures. */
void dlv_abort_all(struct dlv *d);
/* Open SMTP connections. */
unsigned dlv_open_conns(const struct dlv *d);
/* Cluster-wide limits, warm-up budgets and shared holds (engine/coord): NULL (the default)
 * keeps every limit per replica and warm-up caps off. The caller keeps c alive until the next
 * call or dlv_destroy. */
struct coord;
void dlv_set_coord(struct dlv *d, struct coord *c);
/* The holds (suspensions, reduced rates, bounces) in force: backoff rules put theirs here, and
 * the coordinator those of other replicas; call dlv_holds_changed after changing it. */
struct backoff_table *dlv_holds(struct dlv *d);
/* Closes idle connections of site key while the coordinator asks for connections back. */
void dlv_yield_idle(struct dlv *d, const char *site_key);
void dlv_holds_changed(struct dlv *d);
/* New shaping rules (SIGHUP): limits of every known destination are resolved again; open
 * connections stay. The caller keeps rules alive until the next call or dlv_destroy. */
void dlv_set_shaping(struct dlv *d, const struct shaping_rules *rules);

struct dlv_stats {
    uint64_t conns_opened, conn_failures, tls_fallbacks, txns;
    uint64_t delivered, deferred, bounced;
    uint64_t holds_triggered;        /* backoff rules that fired */
};
void dlv_get_stats(const struct dlv *d, struct dlv_stats *out);

#endif
