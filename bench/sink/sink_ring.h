/* bench/sink/sink_ring.h — the benchmark sink's event loop: one thread, one io_uring,
 * multishot accept on every listen address, multishot receive into a provided-buffer ring,
 * one batched send per connection per loop turn. Owns sockets and the connection pool;
 * does not own what the bytes mean (sink_smtp.c) or how counts are reported (sink_stats.c). */
#ifndef SALVO_BENCH_SINK_SINK_RING_H
#define SALVO_BENCH_SINK_SINK_RING_H

#include <stdint.h>
#include <sys/socket.h>

#include "bench/sink/sink_smtp.h"
#include "bench/sink/sink_stats.h"

struct sink_ring_limits {
    uint32_t max_conns;             /* connection pool size; more are accepted and closed */
    uint32_t ring_entries;          /* submission queue; the completion queue is 8x */
    uint32_t recv_buffers;          /* provided receive buffers (power of two, <= 32768) */
    uint32_t recv_buffer_bytes;     /* size of each */
    uint32_t listen_backlog;
};

struct sink_ring_config {
    struct sink_ring_limits lim;
    uint32_t report_interval_ms;    /* 0 = no periodic report */
    uint64_t max_messages;          /* stop after this many accepted messages; 0 = never */
    const char *stats_file;         /* also rewritten at every report when set */
};

struct sink_listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char name[64];                  /* "127.0.1.1:2525" */
};

/* Binds every address, then serves until SIGINT/SIGTERM or max_messages. Returns 0, or
 * -errno with *err set to static text naming the step that failed. */
int sink_ring_run(const struct sink_ring_config *cfg, const struct sink_listen_addr *addrs,
                  uint32_t naddrs, struct sink_smtp_server *srv, struct sink_stats *st,
                  const char **err);

#endif
