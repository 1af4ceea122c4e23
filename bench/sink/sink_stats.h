/* bench/sink/sink_stats.h — what the benchmark sink counts: totals, per listen address,
 * per client source IP and per (listen address, source IP) pair; the periodic report line
 * and the final JSON summary. Owns no sockets; indexes are resolved once per connection so
 * counting a message is three additions. */
#ifndef SALVO_BENCH_SINK_SINK_STATS_H
#define SALVO_BENCH_SINK_SINK_STATS_H

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "bench/sink/sink_smtp.h"

#define SINK_STATS_MAX_LISTEN 1024
#define SINK_STATS_MAX_SOURCES 4096 /* distinct client IPs; more are counted as "other" */
#define SINK_STATS_MAX_PAIRS 16384  /* distinct (listen, source); more are counted as "other" */

struct sink_counts {
    uint64_t connections;
    uint64_t messages;
    uint64_t recipients;
    uint64_t rcpt_rejected;
    uint64_t message_bytes;
};

struct sink_stats_source {
    uint8_t addr[16];               /* IPv6, or IPv4-mapped */
    char name[INET6_ADDRSTRLEN];
    struct sink_counts c;
};

struct sink_stats_pair {
    uint32_t listen;
    uint32_t source;
    struct sink_counts c;
};

struct sink_stats {
    struct sink_counts total;
    uint64_t conns_open;
    uint64_t conns_peak;
    uint64_t conns_refused;         /* accepted then closed at once: connection pool full */
    uint64_t accept_errors;
    uint64_t recv_errors;           /* resets and other receive failures */
    uint64_t send_errors;
    uint64_t recv_nobufs;           /* provided-buffer ring ran dry; the receive was re-armed */
    uint64_t recv_bytes;
    uint64_t loop_turns;            /* io_uring_enter waits */
    uint64_t cqes;
    uint64_t recvs;                 /* receive completions carrying data */
    uint64_t sends;

    uint32_t nlisten;
    char listen_name[SINK_STATS_MAX_LISTEN][64];
    struct sink_counts listen[SINK_STATS_MAX_LISTEN];

    uint32_t nsources;              /* index 0 is "other" */
    struct sink_stats_source *sources;
    uint32_t *source_slots;         /* open addressing: source index + 1, 0 = empty */

    uint32_t npairs;                /* index 0 is "other" */
    struct sink_stats_pair *pairs;
    uint32_t *pair_slots;

    /* for the periodic report and the summary; set when the loop starts serving */
    double start_s;
    double start_cpu_s;
    double last_report_s;
    uint64_t last_report_messages;
    double last_report_cpu_s;
};

/* 0 or -ENOMEM. */
int sink_stats_init(struct sink_stats *st);
void sink_stats_fini(struct sink_stats *st);

/* Registers a listen address for reporting; returns its index. */
uint32_t sink_stats_add_listen(struct sink_stats *st, const char *name);
/* Index of the client address (found or added; 0 = "other" when the table is full). */
uint32_t sink_stats_source_index(struct sink_stats *st, const struct sockaddr_storage *ss);
/* Index of the (listen, source) pair (found or added; 0 = "other" when full). */
uint32_t sink_stats_pair_index(struct sink_stats *st, uint32_t listen, uint32_t source);

/* Counts a new connection on all three keys. */
void sink_stats_count_connection(struct sink_stats *st, uint32_t listen, uint32_t source,
                                 uint32_t pair);

static inline void sink_counts_add(struct sink_counts *c, const struct sink_smtp_tally *t)
{
    c->messages += t->messages;
    c->recipients += t->recipients;
    c->rcpt_rejected += t->rcpt_rejected;
    c->message_bytes += t->message_bytes;
}

/* Adds what one read accepted to the totals and the connection's three keys. */
static inline void sink_stats_count_tally(struct sink_stats *st, uint32_t listen,
                                          uint32_t source, uint32_t pair,
                                          const struct sink_smtp_tally *t)
{
    sink_counts_add(&st->total, t);
    sink_counts_add(&st->listen[listen], t);
    sink_counts_add(&st->sources[source].c, t);
    sink_counts_add(&st->pairs[pair].c, t);
}

/* Monotonic seconds, and this process's user+system CPU seconds. */
double sink_stats_now_s(void);
double sink_stats_cpu_s(void);

/* One human-readable progress line (rate since the previous report). */
void sink_stats_report_line(struct sink_stats *st, FILE *f);

/* Writes the JSON summary to path (atomically: temp file + rename), or stdout when path is
 * NULL. Returns 0 or -errno. */
int sink_stats_write_json(const struct sink_stats *st, const struct sink_smtp_server *srv,
                          const char *path);

#endif
