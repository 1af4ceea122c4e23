/* engine/delivery/dlv_priv.h — the delivery layer's internals, shared by delivery.c
 * (destinations, connections, the MX walk) and dlv_gates.c (what may start now: holds,
 * cluster-wide limits, warm-up budgets). Not for other modules. */
#ifndef SALVO_ENGINE_DELIVERY_DLV_PRIV_H
#define SALVO_ENGINE_DELIVERY_DLV_PRIV_H

#include "engine/delivery/delivery.h"
#include "schedulers/concurrency.h"
#include "schedulers/gcra.h"

#define DLV_BUCKETS 4096
#define DLV_TLS_BROKEN_SLOTS 256

struct dlv_txn {
    struct smtp_txn t;
    struct dlv_msg *msg;
    struct dlv_dest *dest;
    struct dlv_txn *next;
};

enum dest_state { DEST_IDLE, DEST_RESOLVING, DEST_ACTIVE };

/* What destinations sharing limits share: a provider (by rule) or an MX host set (rollup). */
struct dlv_site {
    char key[720];
    struct dlv_site *hnext;
    unsigned refs;                   /* destinations pointing here */
    unsigned nconns;                 /* open connections, all its destinations together */
    struct gcra msg[SHAPING_MSG_BUCKETS];
    struct gcra conn;
    struct dlv_dest *waiters;        /* destinations blocked by its connection limit */
    struct conc_window window;       /* concurrency feedback: connections it takes now */
    struct gcra reduced;             /* a reduce_rate hold's bucket */
};

struct dlv_conn;

struct dlv_dest {
    char domain[DNS_NAME_MAX];
    unsigned src;                    /* egress source index: a queue is (source, domain) */
    struct dlv_dest *hnext;
    struct dlv *d;
    enum dest_state state;
    const struct dlv_route *route;
    struct dns_result *hosts;
    unsigned host_idx, addr_idx;     /* MX walk cursor */
    struct dlv_txn *q_head, *q_tail;
    unsigned queued;
    struct dlv_conn *conns;
    unsigned nconns, nconnecting;
    struct ring_defer pump;
    struct smtp_outcome last_fail;   /* most recent host failure, for the queue if all fail */
    uint64_t retry_after_ms;         /* whole-destination backoff (monotonic) */
    uint64_t last_used_ms;           /* for freeing destinations nobody sends to any more */
    bool shaped;                     /* lim/site resolved (after DNS) */
    struct shaping_limits lim;
    struct gcra_rate msg_rates[SHAPING_MSG_BUCKETS], conn_rate;
    struct smtp_session_config scfg; /* session settings with this destination's timeouts */
    enum tls_policy tls;
    struct dlv_site *site;
    uint64_t throttled_until_ms;     /* message rate exhausted for longer than we wait in memory */
    struct ring_timer wake;          /* short waits for a rate token */
    bool site_waiting;               /* on site->waiters */
    double rate;                     /* transactions finished per second (smoothed) */
    unsigned fail_streak;            /* whole-destination failures in a row (backoff doubles) */
    uint64_t win_start_ms;
    unsigned win_count;
    struct dlv_dest *site_wait_next;
    struct smtp_conn_info last_conn;
    const char *provider;            /* shaping provider matched (belongs to the rules), or NULL */
    unsigned hold_gen;               /* d->hold_gen when no hold was found for it */
    bool hold_none;
    uint64_t wu_exhausted_until_ms;  /* its source's warm-up budget is spent until then */
    char throttle_why[300];          /* why it is throttled (until throttled_until_ms) */
    unsigned throttle_gen;           /* d->hold_gen when it was throttled */
};

struct dlv_conn {
    struct smtp_session s;
    struct dlv_dest *dest;
    struct dlv_site *site;           /* the site this connection counts against */
    struct dlv_conn *next;
    unsigned host_idx, addr_idx;
    bool ready_once, plaintext_retry;
    bool leased;                     /* holds a cluster connection lease for its site */
    unsigned msgs;
};

struct tls_broken {
    char addr[64];
    uint64_t until_ms;
};

struct dlv {
    struct ring *ring;
    struct dns *dns;
    struct dlv_config cfg;
    struct dlv_dest *buckets[DLV_BUCKETS];
    struct dlv_txn *txns, *free_txns;
    unsigned nconns;
    bool shutting_down;
    struct tls_broken broken[DLV_TLS_BROKEN_SLOTS];
    unsigned broken_next;
    struct dlv_msg *done_head, *done_tail; /* messages whose on_done is due */
    struct ring_defer done_defer;
    struct ring_timer sweep;
    unsigned ndests;
    struct dlv_site *sites[DLV_BUCKETS];
    struct dlv_source sources[DLV_MAX_SOURCES];
    unsigned nsources;
    struct dlv_pool pools[DLV_MAX_POOLS];
    int wrr[DLV_MAX_POOLS][DLV_POOL_MAX]; /* smooth weighted round robin state */
    unsigned npools, default_pool;
    bool explicit_sources;
    struct dlv_stats stats;
    struct coord *coord;             /* NULL: limits per replica, no warm-up caps */
    struct backoff_table *holds;
    struct backoff_tracker *tracker;
    unsigned hold_gen;               /* bumped whenever the holds change */
    uint64_t holds_wait_until_ms;    /* nothing starts before the shared holds were read once
                                        (or this time passed) */
    struct dlv_wu_ctx { struct dlv *d; unsigned src; } wu[DLV_MAX_SOURCES];
    char wu_note[DLV_MAX_SOURCES][320];   /* "" or why the source's ramp is held */
};

/* ---- dlv_gates.c: what may start now ---- */

enum gate { GATE_GO, GATE_WAIT, GATE_DEFER, GATE_BOUNCE };
int gate_init(struct dlv *d);
void gate_fini(struct dlv *d);
/* The strongest hold on dest in force now (bounce > suspend > reduce_rate), or NULL. The
 * pointer is valid until the holds change. */
const struct backoff_hold *gate_hold(struct dlv_dest *dest);
/* Before one transaction starts on dest: holds, message rates (this replica's buckets, then
 * the cluster's), warm-up budget. GO: everything taken (gate_txn_untake if it does not start
 * after all). WAIT: ask again in *wait_ms. DEFER: the queue goes back to the retry set for
 * *wait_ms (why says why). BOUNCE: the queue bounces (why). */
enum gate gate_txn(struct dlv_dest *dest, uint64_t *wait_ms, char *why, size_t whylen);
void gate_txn_untake(struct dlv_dest *dest);
/* A cluster connection lease for one more connection of dest's site; true: go. */
bool gate_conn_take(struct dlv_dest *dest, uint64_t *wait_ms);
void gate_conn_release(struct dlv *d, const struct dlv_site *site);
/* Whether this (leased) connection should close so another replica gets its share. */
bool gate_conn_yield(struct dlv *d, const struct dlv_site *site);
/* A reply (or connection failure) from dest's servers: backoff rules may fire. */
void gate_observe(struct dlv_dest *dest, const struct smtp_outcome *o);
/* A transaction finished: warm-up outcome counts. */
void gate_txn_done(struct dlv_dest *dest, const struct smtp_txn *t);
/* Whether src may not send to domain now: out of warm-up budget (known from earlier sends),
 * or (holds) suspended there; *until_ms says until when to look elsewhere. */
bool gate_source_out(struct dlv *d, const char *domain, unsigned src, bool holds,
                     uint64_t *until_ms);
/* The destination (domain lowercased, no trailing dot; source index), or NULL. */
struct dlv_dest *dlv__dest_find(struct dlv *d, const char *domain, unsigned src);
/* Schedules every destination with queued work (the holds changed). */
void dlv_kick_all(struct dlv *d);
void dest__schedule(struct dlv_dest *dest);

#define DLV_SWEEP_MS 30000
#define DLV_HOLDS_FIRST_READ_MS 5000
/* A destination may queue what it sends in this many seconds, and at least
 * max_queued_per_dest transactions; more waits in the retry set (head-of-line protection). */
#define DLV_QUEUE_SECONDS 5
#define DLV_DEST_IDLE_MS 60000

#endif
