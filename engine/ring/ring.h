/* engine/ring/ring.h — the one io_uring wrapper: a per-thread event loop with sockets,
 * fd polling, timers and deferred callbacks. Protocol code never sees an SQE or a CQE.
 * Owns: the io_uring, the provided-buffer ring for receives, the timer heap.
 * Does not own: what the bytes mean (smtp/, tls/), name resolution (dns/). */
#ifndef SALVO_ENGINE_RING_RING_H
#define SALVO_ENGINE_RING_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ring;

struct ring_config {
    unsigned entries;       /* SQ size; CQ is twice that */
    unsigned recv_buffers;  /* provided buffers shared by all sockets (power of two) */
    unsigned recv_buf_bytes;/* size of each provided buffer */
};

/* Internal per-operation tag; embedded in owners so submitting I/O allocates nothing. */
struct ring_op {
    uint8_t kind;
    void *owner;
};

/* ---- timers (binary heap, millisecond resolution, monotonic clock) ---- */
struct ring_timer {
    uint64_t deadline_ms;
    unsigned heap_idx;      /* 0 = not armed; otherwise index + 1 */
    void (*on_fire)(struct ring_timer *t);
};

/* Arms (or re-arms) t to fire delay_ms from now. */
void ring_timer_arm(struct ring *r, struct ring_timer *t, uint64_t delay_ms);
void ring_timer_cancel(struct ring *r, struct ring_timer *t);
static inline bool ring_timer_armed(const struct ring_timer *t) { return t->heap_idx != 0; }

/* ---- deferred callbacks: run at the end of the current loop turn ---- */
struct ring_defer {
    struct ring_defer *next;
    bool queued;
    void (*fn)(struct ring_defer *d);
};
/* Queues d once (a second call before it runs is a no-op). */
void ring_defer(struct ring *r, struct ring_defer *d);
/* Removes d if queued: an owner calls this before freeing the memory d lives in. */
void ring_defer_cancel(struct ring *r, struct ring_defer *d);

/* ---- fd readiness polling (multishot; for c-ares sockets, eventfds) ---- */
struct ring_poll {
    struct ring_op op;
    struct ring_op cancel_op;
    int fd;
    unsigned events;        /* POLLIN | POLLOUT */
    bool active;            /* wanted by the owner */
    unsigned inflight;      /* ops the kernel still holds; do not free or reuse while > 0 */
    void (*on_ready)(struct ring_poll *p, unsigned revents);
};
/* Starts polling fd for events. Returns 0, or -EBUSY while p is still busy with another fd or
 * other events (use another ring_poll to change interest). */
int ring_poll_start(struct ring *r, struct ring_poll *p, int fd, unsigned events);
/* Stops polling; p may be reused or freed once ring_poll_busy(p) is false. */
void ring_poll_stop(struct ring *r, struct ring_poll *p);
static inline bool ring_poll_busy(const struct ring_poll *p) { return p->inflight > 0; }

/* ---- stream sockets ---- */
enum ring_sock_event {
    RING_SOCK_CONNECTED,    /* connect finished; receiving has started */
    RING_SOCK_DATA,         /* data/len valid only during the callback */
    RING_SOCK_WRITTEN,      /* the whole buffer of the last ring_sock_send is on the wire */
    RING_SOCK_EOF,          /* peer closed its side */
    RING_SOCK_ERROR,        /* err = -errno (connect refused, reset, ...) */
    RING_SOCK_CLOSED,       /* last event after ring_sock_close: the owner may free now */
};

struct ring_sock {
    struct ring *ring;
    int fd;
    void (*on_event)(struct ring_sock *s, enum ring_sock_event ev,
                     const uint8_t *data, size_t len, int err);
    /* internal */
    struct ring_op op_connect, op_recv, op_send, op_cancel;
    const uint8_t *send_buf;
    size_t send_len, send_off;
    unsigned inflight;
    bool connected, recv_armed, closing, closed_delivered, eof;
    struct ring_defer close_defer;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

/* Creates a non-blocking socket, binds src (if given, with port 0), starts an asynchronous
 * connect to dst. Returns 0 or -errno (socket/bind failures are reported synchronously). */
int ring_sock_connect(struct ring *r, struct ring_sock *s,
                      const struct sockaddr *dst, socklen_t dst_len,
                      const struct sockaddr *src, socklen_t src_len);
/* Sends len bytes from buf; buf must stay valid until RING_SOCK_WRITTEN. One send at a time:
 * returns -EBUSY if one is outstanding. Short writes are continued internally. */
int ring_sock_send(struct ring_sock *s, const void *buf, size_t len);
static inline bool ring_sock_sending(const struct ring_sock *s) { return s->send_buf != NULL; }
/* Cancels outstanding operations and closes the fd; RING_SOCK_CLOSED follows, always from a
 * later loop turn, and is the last event. Idempotent. */
void ring_sock_close(struct ring_sock *s);
/* Local address the kernel chose (after CONNECTED); returns 0 or -errno. */
int ring_sock_local_addr(const struct ring_sock *s, struct sockaddr_storage *out, socklen_t *len);

/* ---- loop ---- */
int ring_create(struct ring **out, const struct ring_config *cfg);
void ring_destroy(struct ring *r);
/* Submits queued work, waits up to max_wait_ms (or until the next timer), runs completions,
 * expired timers, then deferred callbacks. Returns 0 or -errno. */
int ring_run_once(struct ring *r, int64_t max_wait_ms);
/* Monotonic milliseconds, refreshed once per loop turn. */
uint64_t ring_now_ms(const struct ring *r);
/* Number of sockets, polls and timers the ring still tracks (0 when fully idle). */
unsigned ring_pending(const struct ring *r);

/* Counters for benchmarks and metrics. */
struct ring_stats {
    uint64_t submits;        /* io_uring_enter calls that submitted */
    uint64_t sqes;           /* operations submitted */
    uint64_t cqes;           /* completions handled */
    uint64_t recv_nobufs;    /* receives that ran out of provided buffers */
};
void ring_get_stats(const struct ring *r, struct ring_stats *out);

/* Formats an address as "1.2.3.4" or "::1" (no port). */
const char *ring_addr_to_text(const struct sockaddr *sa, char *buf, size_t cap);
/* Parses "1.2.3.4", "::1", "1.2.3.4:25", "[::1]:25" into out; port_default if none given.
 * Returns 0 or -EINVAL. */
int ring_addr_parse(const char *text, uint16_t port_default, struct sockaddr_storage *out,
                    socklen_t *len);

#endif
