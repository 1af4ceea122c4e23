/* engine/ring/ring.c — io_uring event loop: sockets (connect, multishot recv into a shared
 * provided-buffer ring, send), multishot fd polls, a timer heap and deferred callbacks.
 * Completions are collected into a local batch first and their callbacks run after, so a
 * callback may close or re-arm anything; owners are freed only on RING_SOCK_CLOSED, which
 * is delivered from a deferred callback once the kernel holds no operation of theirs. */
#include "engine/ring/ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RING_BGID 1
#define RING_CQE_BATCH 256

enum ring_op_kind {
    OP_CONNECT = 1,
    OP_RECV,
    OP_SEND,
    OP_SOCK_CANCEL,
    OP_POLL,
    OP_POLL_CANCEL,
};

struct ring {
    struct io_uring uring;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    unsigned nbufs, buf_bytes;
    uint64_t now_ms;
    struct ring_timer **heap;
    unsigned heap_len, heap_cap;
    struct ring_defer *defer_head, *defer_tail;
    unsigned open_socks, active_polls;
    unsigned queued_sqes;
    struct ring_stats stats;
};

static uint64_t ring__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ring_now_ms(const struct ring *r) { return r->now_ms; }

/* An SQE, submitting the queue first when it is full; never returns NULL for long. */
static struct io_uring_sqe *ring__sqe(struct ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    while (!sqe) {
        int rc = io_uring_submit(&r->uring);
        if (rc > 0) {
            r->stats.submits++;
            r->stats.sqes += (uint64_t)rc;
        }
        r->queued_sqes = 0;
        sqe = io_uring_get_sqe(&r->uring);
    }
    r->queued_sqes++;
    return sqe;
}

/* ---------------------------------------------------------------- timers */

static void heap__swap(struct ring *r, unsigned a, unsigned b)
{
    struct ring_timer *t = r->heap[a];
    r->heap[a] = r->heap[b];
    r->heap[b] = t;
    r->heap[a]->heap_idx = a + 1;
    r->heap[b]->heap_idx = b + 1;
}

static void heap__up(struct ring *r, unsigned i)
{
    while (i > 0) {
        unsigned parent = (i - 1) / 2;
        if (r->heap[parent]->deadline_ms <= r->heap[i]->deadline_ms)
            break;
        heap__swap(r, i, parent);
        i = parent;
    }
}

static void heap__down(struct ring *r, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, rr = l + 1, m = i;
        if (l < r->heap_len && r->heap[l]->deadline_ms < r->heap[m]->deadline_ms)
            m = l;
        if (rr < r->heap_len && r->heap[rr]->deadline_ms < r->heap[m]->deadline_ms)
            m = rr;
        if (m == i)
            return;
        heap__swap(r, i, m);
        i = m;
    }
}

void ring_timer_cancel(struct ring *r, struct ring_timer *t)
{
    if (!t->heap_idx)
        return;
    unsigned i = t->heap_idx - 1;
    unsigned last = r->heap_len - 1;
    if (i != last) {
        heap__swap(r, i, last);
        r->heap_len--;
        heap__down(r, i);
        heap__up(r, i);
    } else {
        r->heap_len--;
    }
    t->heap_idx = 0;
}

void ring_timer_arm(struct ring *r, struct ring_timer *t, uint64_t delay_ms)
{
    ring_timer_cancel(r, t);
    if (r->heap_len == r->heap_cap) {
        unsigned cap = r->heap_cap ? r->heap_cap * 2 : 256;
        struct ring_timer **h = realloc(r->heap, cap * sizeof *h);
        if (!h)
            abort(); /* timers are bounded by connections; running out here is fatal */
        r->heap = h;
        r->heap_cap = cap;
    }
    t->deadline_ms = r->now_ms + delay_ms;
    r->heap[r->heap_len] = t;
    t->heap_idx = ++r->heap_len;
    heap__up(r, r->heap_len - 1);
}

static void ring__run_timers(struct ring *r)
{
    /* bounded: a timer that re-arms itself with delay 0 runs again next turn, not forever */
    unsigned budget = r->heap_len;
    while (budget-- && r->heap_len && r->heap[0]->deadline_ms <= r->now_ms) {
        struct ring_timer *t = r->heap[0];
        ring_timer_cancel(r, t);
        t->on_fire(t);
    }
}

/* ---------------------------------------------------------------- defer */

void ring_defer(struct ring *r, struct ring_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    if (r->defer_tail)
        r->defer_tail->next = d;
    else
        r->defer_head = d;
    r->defer_tail = d;
}

void ring_defer_cancel(struct ring *r, struct ring_defer *d)
{
    if (!d->queued)
        return;
    struct ring_defer *prev = NULL;
    for (struct ring_defer *x = r->defer_head; x; prev = x, x = x->next) {
        if (x != d)
            continue;
        if (prev)
            prev->next = x->next;
        else
            r->defer_head = x->next;
        if (r->defer_tail == x)
            r->defer_tail = prev;
        break;
    }
    d->queued = false;
    d->next = NULL;
}

static void ring__run_deferred(struct ring *r)
{
    /* Only what was queued before this point runs now; the rest waits for the next turn so a
     * callback that re-queues itself cannot starve I/O. */
    struct ring_defer *d = r->defer_head, *end = r->defer_tail;
    r->defer_head = r->defer_tail = NULL;
    while (d) {
        struct ring_defer *next = d->next;
        bool last = d == end;
        d->queued = false;
        d->next = NULL;
        d->fn(d);
        if (last)
            break;
        d = next;
    }
}

/* ---------------------------------------------------------------- polls */

static void poll__arm(struct ring *r, struct ring_poll *p)
{
    struct io_uring_sqe *sqe = ring__sqe(r);
    io_uring_prep_poll_multishot(sqe, p->fd, p->events);
    io_uring_sqe_set_data(sqe, &p->op);
    p->inflight++;
}

int ring_poll_start(struct ring *r, struct ring_poll *p, int fd, unsigned events)
{
    if (p->inflight > 0)
        return (p->active && p->fd == fd && p->events == events) ? 0 : -EBUSY;
    p->op.kind = OP_POLL;
    p->op.owner = p;
    p->cancel_op.kind = OP_POLL_CANCEL;
    p->cancel_op.owner = p;
    p->fd = fd;
    p->events = events;
    p->active = true;
    r->active_polls++;
    poll__arm(r, p);
    return 0;
}

void ring_poll_stop(struct ring *r, struct ring_poll *p)
{
    if (!p->active)
        return;
    p->active = false;
    r->active_polls--;
    if (p->inflight == 0)
        return;
    struct io_uring_sqe *sqe = ring__sqe(r);
    /* cancel rather than poll_remove: a remove racing a pending wake-up answers -EALREADY
     * and leaves the multishot poll armed; a cancel always ends it with -ECANCELED */
    io_uring_prep_cancel64(sqe, (__u64)(uintptr_t)&p->op, 0);
    io_uring_sqe_set_data(sqe, &p->cancel_op);
    p->inflight++;
}

static void poll__complete(struct ring *r, struct ring_op *op, int res, unsigned flags)
{
    struct ring_poll *p = op->owner;
    if (op->kind == OP_POLL_CANCEL) {
        p->inflight--;
        return;
    }
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        p->inflight--;
    if (res > 0 && p->active)
        p->on_ready(p, (unsigned)res);
    if (!more && p->active && p->inflight == 0 && res != -ECANCELED)
        poll__arm(r, p);
}

/* ---------------------------------------------------------------- sockets */

static void sock__event(struct ring_sock *s, enum ring_sock_event ev, const uint8_t *data,
                        size_t len, int err)
{
    if (!s->closing)
        s->on_event(s, ev, data, len, err);
}

static void sock__on_closed(struct ring_defer *d)
{
    struct ring_sock *s = (struct ring_sock *)((char *)d - offsetof(struct ring_sock, close_defer));
    s->closed_delivered = true;
    s->on_event(s, RING_SOCK_CLOSED, NULL, 0, 0);
}

static void sock__maybe_finish_close(struct ring_sock *s)
{
    if (!s->closing || s->inflight > 0 || s->fd < 0)
        return;
    close(s->fd);
    s->fd = -1;
    s->ring->open_socks--;
    s->close_defer.fn = sock__on_closed;
    ring_defer(s->ring, &s->close_defer);
}

static void sock__arm_recv(struct ring_sock *s)
{
    struct io_uring_sqe *sqe = ring__sqe(s->ring);
    io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RING_BGID;
    io_uring_sqe_set_data(sqe, &s->op_recv);
    s->inflight++;
    s->recv_armed = true;
}

static void sock__arm_send(struct ring_sock *s)
{
    struct io_uring_sqe *sqe = ring__sqe(s->ring);
    io_uring_prep_send(sqe, s->fd, s->send_buf + s->send_off, s->send_len - s->send_off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, &s->op_send);
    s->inflight++;
}

int ring_sock_connect(struct ring *r, struct ring_sock *s, const struct sockaddr *dst,
                      socklen_t dst_len, const struct sockaddr *src, socklen_t src_len)
{
    void (*cb)(struct ring_sock *, enum ring_sock_event, const uint8_t *, size_t, int) =
        s->on_event;
    memset(s, 0, sizeof *s);
    s->on_event = cb;
    s->ring = r;
    s->fd = -1;
    if (dst_len > sizeof s->peer)
        return -EINVAL;
    int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
        /* Defer port choice to connect(): many connections per source IP need the 4-tuple,
         * not the local port alone, to be unique. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, src, src_len) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    s->fd = fd;
    memcpy(&s->peer, dst, dst_len);
    s->peer_len = dst_len;
    s->op_connect = (struct ring_op){OP_CONNECT, s};
    s->op_recv = (struct ring_op){OP_RECV, s};
    s->op_send = (struct ring_op){OP_SEND, s};
    s->op_cancel = (struct ring_op){OP_SOCK_CANCEL, s};
    r->open_socks++;
    struct io_uring_sqe *sqe = ring__sqe(r);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&s->peer, s->peer_len);
    io_uring_sqe_set_data(sqe, &s->op_connect);
    s->inflight++;
    return 0;
}

int ring_sock_send(struct ring_sock *s, const void *buf, size_t len)
{
    if (s->closing || s->fd < 0)
        return -EPIPE;
    if (s->send_buf)
        return -EBUSY;
    if (len == 0)
        return -EINVAL;
    s->send_buf = buf;
    s->send_len = len;
    s->send_off = 0;
    sock__arm_send(s);
    return 0;
}

void ring_sock_close(struct ring_sock *s)
{
    if (s->closing)
        return;
    s->closing = true;
    if (s->fd < 0) {
        /* never connected: still deliver CLOSED from a later turn */
        s->close_defer.fn = sock__on_closed;
        ring_defer(s->ring, &s->close_defer);
        return;
    }
    if (s->inflight > 0) {
        struct io_uring_sqe *sqe = ring__sqe(s->ring);
        io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data(sqe, &s->op_cancel);
        s->inflight++;
        return;
    }
    sock__maybe_finish_close(s);
}

int ring_sock_local_addr(const struct ring_sock *s, struct sockaddr_storage *out, socklen_t *len)
{
    *len = sizeof *out;
    if (s->fd < 0)
        return -EBADF;
    return getsockname(s->fd, (struct sockaddr *)out, len) == 0 ? 0 : -errno;
}

static void ring__recycle_buf(struct ring *r, unsigned bid)
{
    io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->buf_bytes, r->buf_bytes, (unsigned short)bid,
                          io_uring_buf_ring_mask(r->nbufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

static void sock__complete(struct ring *r, struct ring_op *op, int res, unsigned flags)
{
    struct ring_sock *s = op->owner;
    switch (op->kind) {
    case OP_CONNECT:
        s->inflight--;
        if (res < 0) {
            sock__event(s, RING_SOCK_ERROR, NULL, 0, res);
        } else {
            s->connected = true;
            if (!s->closing)
                sock__arm_recv(s);
            sock__event(s, RING_SOCK_CONNECTED, NULL, 0, 0);
        }
        break;
    case OP_RECV: {
        bool more = flags & IORING_CQE_F_MORE;
        if (!more) {
            s->inflight--;
            s->recv_armed = false;
        }
        if (res > 0) {
            unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
            sock__event(s, RING_SOCK_DATA, r->bufs + (size_t)bid * r->buf_bytes, (size_t)res, 0);
            ring__recycle_buf(r, bid);
            if (!more && !s->closing && !s->eof)
                sock__arm_recv(s);
        } else if (res == 0) {
            s->eof = true;
            sock__event(s, RING_SOCK_EOF, NULL, 0, 0);
        } else if (res == -ENOBUFS) {
            r->stats.recv_nobufs++;
            if (!s->closing)
                sock__arm_recv(s);
        } else if (res != -ECANCELED) {
            sock__event(s, RING_SOCK_ERROR, NULL, 0, res);
        }
        break;
    }
    case OP_SEND:
        s->inflight--;
        if (res < 0) {
            s->send_buf = NULL;
            if (res != -ECANCELED)
                sock__event(s, RING_SOCK_ERROR, NULL, 0, res);
            break;
        }
        s->send_off += (size_t)res;
        if (s->send_off < s->send_len && !s->closing) {
            sock__arm_send(s);
        } else {
            s->send_buf = NULL;
            sock__event(s, RING_SOCK_WRITTEN, NULL, 0, 0);
        }
        break;
    case OP_SOCK_CANCEL:
        s->inflight--;
        break;
    default:
        abort();
    }
    sock__maybe_finish_close(s);
}

/* ---------------------------------------------------------------- loop */

int ring_create(struct ring **out, const struct ring_config *cfg)
{
    struct ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    unsigned entries = cfg && cfg->entries ? cfg->entries : 1024;
    r->nbufs = cfg && cfg->recv_buffers ? cfg->recv_buffers : 1024;
    r->buf_bytes = cfg && cfg->recv_buf_bytes ? cfg->recv_buf_bytes : 4096;
    if (r->nbufs & (r->nbufs - 1) || r->nbufs > 32768) {
        free(r);
        return -EINVAL;
    }

    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = entries * 2;
    p.flags |= IORING_SETUP_CQSIZE;
    int rc = io_uring_queue_init_params(entries, &r->uring, &p);
    if (rc == -EINVAL) { /* older kernel: plain ring */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 2;
        rc = io_uring_queue_init_params(entries, &r->uring, &p);
    }
    if (rc < 0) {
        free(r);
        return rc;
    }

    r->br_bytes = r->nbufs * sizeof(struct io_uring_buf);
    r->br = mmap(NULL, r->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    r->bufs = malloc((size_t)r->nbufs * r->buf_bytes);
    if (r->br == MAP_FAILED || !r->bufs) {
        rc = -ENOMEM;
        goto fail;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)r->br, .ring_entries = r->nbufs, .bgid = RING_BGID};
    rc = io_uring_register_buf_ring(&r->uring, &reg, 0);
    if (rc < 0)
        goto fail;
    io_uring_buf_ring_init(r->br);
    for (unsigned i = 0; i < r->nbufs; i++)
        io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * r->buf_bytes, r->buf_bytes,
                              (unsigned short)i, io_uring_buf_ring_mask(r->nbufs), (int)i);
    io_uring_buf_ring_advance(r->br, (int)r->nbufs);
    r->now_ms = ring__clock_ms();
    *out = r;
    return 0;
fail:
    if (r->br != MAP_FAILED && r->br)
        munmap(r->br, r->br_bytes);
    free(r->bufs);
    io_uring_queue_exit(&r->uring);
    free(r);
    return rc;
}

void ring_destroy(struct ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->uring);
    munmap(r->br, r->br_bytes);
    free(r->bufs);
    free(r->heap);
    free(r);
}

static void ring__dispatch(struct ring *r, void *data, int res, unsigned flags)
{
    struct ring_op *op = data;
    if (!op)
        return;
    switch (op->kind) {
    case OP_CONNECT:
    case OP_RECV:
    case OP_SEND:
    case OP_SOCK_CANCEL:
        sock__complete(r, op, res, flags);
        break;
    case OP_POLL:
    case OP_POLL_CANCEL:
        poll__complete(r, op, res, flags);
        break;
    default:
        abort();
    }
}

int ring_run_once(struct ring *r, int64_t max_wait_ms)
{
    r->now_ms = ring__clock_ms();
    int64_t wait = max_wait_ms < 0 ? 0 : max_wait_ms;
    if (r->heap_len) {
        int64_t until = (int64_t)r->heap[0]->deadline_ms - (int64_t)r->now_ms;
        if (until < wait)
            wait = until < 0 ? 0 : until;
    }
    if (r->defer_head)
        wait = 0;

    int rc;
    struct io_uring_cqe *cqe = NULL;
    unsigned queued = io_uring_sq_ready(&r->uring);
    if (wait > 0) {
        struct __kernel_timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
    } else {
        /* DEFER_TASKRUN: completions only appear when we ask the kernel for events. */
        rc = io_uring_submit_and_get_events(&r->uring);
    }
    if (queued) {
        r->stats.submits++;
        r->stats.sqes += queued;
    }
    r->queued_sqes = 0;
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;

    /* Collect first, run callbacks after: the CQ slots are released before any callback
     * can submit (and so produce) more completions. */
    struct { void *data; int res; unsigned flags; } batch[RING_CQE_BATCH];
    for (;;) {
        unsigned n = 0, head;
        io_uring_for_each_cqe(&r->uring, head, cqe) {
            batch[n].data = io_uring_cqe_get_data(cqe);
            batch[n].res = cqe->res;
            batch[n].flags = cqe->flags;
            if (++n == RING_CQE_BATCH)
                break;
        }
        io_uring_cq_advance(&r->uring, n);
        r->stats.cqes += n;
        r->now_ms = ring__clock_ms();
        for (unsigned i = 0; i < n; i++)
            ring__dispatch(r, batch[i].data, batch[i].res, batch[i].flags);
        if (n < RING_CQE_BATCH)
            break;
    }
    r->now_ms = ring__clock_ms();
    ring__run_timers(r);
    ring__run_deferred(r);
    return 0;
}

unsigned ring_pending(const struct ring *r)
{
    return r->open_socks + r->active_polls + r->heap_len + (r->defer_head != NULL);
}

void ring_get_stats(const struct ring *r, struct ring_stats *out) { *out = r->stats; }

/* ---------------------------------------------------------------- addresses */

const char *ring_addr_to_text(const struct sockaddr *sa, char *buf, size_t cap)
{
    if (!sa || cap == 0)
        return "";
    buf[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
    return buf;
}

int ring_addr_parse(const char *text, uint16_t port_default, struct sockaddr_storage *out,
                    socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_s = NULL;
    size_t hl;
    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end)
            return -EINVAL;
        hl = (size_t)(end - text - 1);
        if (hl >= sizeof host)
            return -EINVAL;
        memcpy(host, text + 1, hl);
        if (end[1] == ':')
            port_s = end + 2;
        else if (end[1] != '\0')
            return -EINVAL;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* bare IPv6 literal */
        hl = colon ? (size_t)(colon - text) : strlen(text);
        if (hl >= sizeof host)
            return -EINVAL;
        memcpy(host, text, hl);
        if (colon)
            port_s = colon + 1;
    }
    host[hl] = '\0';
    unsigned long port = port_default;
    if (port_s) {
        char *e;
        if (!*port_s)
            return -EINVAL;
        port = strtoul(port_s, &e, 10);
        if (*e || port == 0 || port > 65535)
            return -EINVAL;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return 0;
    }
    return -EINVAL;
}
