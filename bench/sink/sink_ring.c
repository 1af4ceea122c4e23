/* bench/sink/sink_ring.c — io_uring event loop of the benchmark sink. Per message the
 * steady state costs one receive completion per client write and one send per loop turn per
 * connection with replies queued; nothing is allocated. Owns listeners, the connection pool
 * and the provided-buffer ring; the protocol lives in sink_smtp.c. */
#include "bench/sink/sink_ring.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define SINK_RING__BGID 7

/* What a completion belongs to, in the top byte of user_data. */
enum sink_ring_op {
    SINK_RING_OP_ACCEPT = 1, /* index = listener */
    SINK_RING_OP_RECV,       /* index = connection */
    SINK_RING_OP_SEND,
    SINK_RING_OP_CANCEL,
    SINK_RING_OP_CLOSE,
    SINK_RING_OP_TIMER,
    SINK_RING_OP_SIGNAL,
};

struct sink_conn {
    int fd;
    uint32_t gen;                   /* bumped on reuse; stale completions are ignored */
    uint32_t listen, source, pair;  /* stats indexes, resolved at accept */
    uint32_t next_dirty;            /* dirty list link: index + 1, 0 = end */
    uint32_t nobuf_prev, nobuf_next;/* buffer wait list links: index + 1, 0 = end */
    uint32_t sent;                  /* bytes of out[sending] already on the wire */
    uint8_t sending;                /* out[sending] is being sent; replies go to the other */
    bool dirty;
    bool recv_armed;                /* the multishot receive is live in the kernel */
    bool recv_rearm;                /* it ended early (CQ overflow) and is wanted again */
    bool nobuf_waiting;             /* it ended for lack of buffers; on the wait list */
    bool send_inflight;
    bool closing;                   /* close once queued replies are sent */
    bool drop_output;               /* sending failed: close without flushing */
    bool cancel_sent;
    struct sink_smtp_session smtp;
    struct sink_outbuf out[2];
};

struct sink_loop {
    const struct sink_ring_config *cfg;
    struct sink_smtp_server *srv;
    struct sink_stats *st;
    struct io_uring ring;
    bool ring_ready;

    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufs;
    uint32_t bufs_returned;         /* re-added since the last advance */

    struct sink_conn *conns;
    char *lines;                    /* max_line_bytes per connection */
    uint32_t *free_stack;
    uint32_t nfree;
    uint32_t dirty_head;
    uint32_t nobuf_head, nobuf_tail;/* connections waiting for receive buffers, FIFO */
    uint32_t next_conn_id;
    uint64_t sends_inflight;

    int *listen_fds;
    uint32_t nlisten;
    int sigfd;
    struct signalfd_siginfo siginfo;
    struct __kernel_timespec report_ts;

    bool stopping;
    double stop_deadline_s;
};

static inline uint64_t sink_ring__ud(enum sink_ring_op op, uint32_t gen, uint32_t idx)
{
    return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | idx;
}

static struct io_uring_sqe *sink_ring__sqe(struct sink_loop *L)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&L->ring);
    while (!sqe) {
        io_uring_submit(&L->ring);
        sqe = io_uring_get_sqe(&L->ring);
    }
    return sqe;
}

static void sink_ring__mark_dirty(struct sink_loop *L, struct sink_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = L->dirty_head;
    L->dirty_head = (uint32_t)(c - L->conns) + 1;
}

/* A receive that ran out of buffers waits here instead of being re-armed at once: re-arming
 * every such connection each turn would just fail again (an -ENOBUFS storm). */
static void sink_ring__nobuf_push(struct sink_loop *L, struct sink_conn *c)
{
    uint32_t i = (uint32_t)(c - L->conns) + 1;
    c->nobuf_waiting = true;
    c->nobuf_next = 0;
    c->nobuf_prev = L->nobuf_tail;
    if (L->nobuf_tail)
        L->conns[L->nobuf_tail - 1].nobuf_next = i;
    else
        L->nobuf_head = i;
    L->nobuf_tail = i;
}

static void sink_ring__nobuf_unlink(struct sink_loop *L, struct sink_conn *c)
{
    if (!c->nobuf_waiting)
        return;
    if (c->nobuf_prev)
        L->conns[c->nobuf_prev - 1].nobuf_next = c->nobuf_next;
    else
        L->nobuf_head = c->nobuf_next;
    if (c->nobuf_next)
        L->conns[c->nobuf_next - 1].nobuf_prev = c->nobuf_prev;
    else
        L->nobuf_tail = c->nobuf_prev;
    c->nobuf_waiting = false;
}

static void sink_ring__arm_accept(struct sink_loop *L, uint32_t li)
{
    struct io_uring_sqe *sqe = sink_ring__sqe(L);
    io_uring_prep_multishot_accept(sqe, L->listen_fds[li], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_ACCEPT, 0, li));
}

static void sink_ring__arm_recv(struct sink_loop *L, struct sink_conn *c)
{
    struct io_uring_sqe *sqe = sink_ring__sqe(L);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = SINK_RING__BGID;
    io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_RECV, c->gen,
                                               (uint32_t)(c - L->conns)));
    c->recv_armed = true;
    c->recv_rearm = false;
}

static void sink_ring__send(struct sink_loop *L, struct sink_conn *c, const char *p, size_t n)
{
    struct io_uring_sqe *sqe = sink_ring__sqe(L);
    io_uring_prep_send(sqe, c->fd, p, n, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_SEND, c->gen,
                                               (uint32_t)(c - L->conns)));
    c->send_inflight = true;
    L->sends_inflight++;
    L->st->sends++;
}

static void sink_ring__arm_timer(struct sink_loop *L)
{
    struct io_uring_sqe *sqe = sink_ring__sqe(L);
    io_uring_prep_timeout(sqe, &L->report_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_TIMER, 0, 0));
}

static void sink_ring__arm_signal(struct sink_loop *L)
{
    struct io_uring_sqe *sqe = sink_ring__sqe(L);
    io_uring_prep_read(sqe, L->sigfd, &L->siginfo, sizeof(L->siginfo), 0);
    io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_SIGNAL, 0, 0));
}

/* Nothing of c is in the kernel any more: close the socket and return the slot. */
static void sink_ring__free_conn(struct sink_loop *L, struct sink_conn *c)
{
    struct io_uring_sqe *sqe = sink_ring__sqe(L);
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_CLOSE, 0, 0));
    if (L->srv->trace)
        fprintf(stderr, "sink[%u] closed\n", c->smtp.conn_id);
    sink_ring__nobuf_unlink(L, c);
    sink_outbuf_fini(&c->out[0]);
    sink_outbuf_fini(&c->out[1]);
    c->fd = -1;
    c->gen++;
    L->st->conns_open--;
    L->free_stack[L->nfree++] = (uint32_t)(c - L->conns);
}

/* Runs once per loop turn for each connection that changed: re-arms its receive, starts the
 * next send (one per turn, carrying every reply queued since), or moves a close along. */
static void sink_ring__service(struct sink_loop *L, struct sink_conn *c)
{
    if (c->recv_rearm && !c->recv_armed && !c->closing)
        sink_ring__arm_recv(L, c);
    if (c->send_inflight)
        return;
    if (!c->drop_output) {
        struct sink_outbuf *cur = &c->out[c->sending];
        if (c->sent < cur->len) {
            sink_ring__send(L, c, cur->data + c->sent, cur->len - c->sent);
            return;
        }
        cur->len = 0;
        c->sent = 0;
        struct sink_outbuf *next = &c->out[c->sending ^ 1];
        if (next->len > 0) {
            c->sending ^= 1;
            sink_ring__send(L, c, next->data, next->len);
            return;
        }
    }
    if (!c->closing)
        return;
    if (c->recv_armed) {
        if (!c->cancel_sent) {
            struct io_uring_sqe *sqe = sink_ring__sqe(L);
            io_uring_prep_cancel64(sqe, sink_ring__ud(SINK_RING_OP_RECV, c->gen,
                                                      (uint32_t)(c - L->conns)), 0);
            io_uring_sqe_set_data64(sqe, sink_ring__ud(SINK_RING_OP_CANCEL, 0, 0));
            c->cancel_sent = true;
        }
        return; /* the receive's final completion brings us back here */
    }
    sink_ring__free_conn(L, c);
}

static void sink_ring__flush(struct sink_loop *L)
{
    /* All buffers were returned at the end of the last turn; hand a share of them to the
     * connections that ran dry, oldest first. */
    uint32_t budget = L->cfg->lim.recv_buffers / 4;
    while (L->nobuf_head != 0 && budget-- > 0) {
        struct sink_conn *c = &L->conns[L->nobuf_head - 1];
        sink_ring__nobuf_unlink(L, c);
        if (!c->closing && !c->recv_armed)
            sink_ring__arm_recv(L, c);
    }
    while (L->dirty_head != 0) {
        struct sink_conn *c = &L->conns[L->dirty_head - 1];
        L->dirty_head = c->next_dirty;
        c->dirty = false;
        sink_ring__service(L, c);
    }
}

static void sink_ring__on_accept(struct sink_loop *L, uint32_t li, int fd)
{
    if (L->nfree == 0) {
        close(fd);
        L->st->conns_refused++;
        return;
    }
    uint32_t idx = L->free_stack[--L->nfree];
    struct sink_conn *c = &L->conns[idx];
    uint32_t gen = c->gen;
    memset(c, 0, offsetof(struct sink_conn, smtp));
    c->gen = gen;
    c->fd = fd;
    sink_outbuf_init(&c->out[0]);
    sink_outbuf_init(&c->out[1]);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        ss.ss_family = AF_UNSPEC;
    c->listen = li;
    c->source = sink_stats_source_index(L->st, &ss);
    c->pair = sink_stats_pair_index(L->st, li, c->source);
    sink_stats_count_connection(L->st, c->listen, c->source, c->pair);

    char *line = L->lines + (size_t)idx * L->srv->lim.max_line_bytes;
    if (sink_smtp_start(L->srv, &c->smtp, ++L->next_conn_id, line, &c->out[1]) ==
        SINK_SMTP_CLOSE)
        c->closing = true;
    else
        sink_ring__arm_recv(L, c);
    sink_ring__mark_dirty(L, c);
}

static void sink_ring__return_buffer(struct sink_loop *L, uint32_t bid)
{
    uint32_t size = L->cfg->lim.recv_buffer_bytes;
    io_uring_buf_ring_add(L->br, L->bufs + (size_t)bid * size, size, (unsigned short)bid,
                          io_uring_buf_ring_mask(L->cfg->lim.recv_buffers),
                          (int)L->bufs_returned++);
}

static void sink_ring__stop(struct sink_loop *L, double grace_s)
{
    if (L->stopping)
        return;
    L->stopping = true;
    L->stop_deadline_s = sink_stats_now_s() + grace_s;
}

static void sink_ring__on_recv(struct sink_loop *L, struct sink_conn *c,
                               const struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (cqe->res > 0) {
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        const char *data = L->bufs + (size_t)bid * L->cfg->lim.recv_buffer_bytes;
        L->st->recv_bytes += (uint64_t)cqe->res;
        L->st->recvs++;
        if (!c->closing && !L->stopping) { /* once stopping, counts are frozen */
            struct sink_smtp_tally t = {0};
            enum sink_smtp_step step = sink_smtp_feed(L->srv, &c->smtp, data,
                                                      (size_t)cqe->res,
                                                      &c->out[c->sending ^ 1], &t);
            if (t.messages | t.recipients | t.rcpt_rejected | t.message_bytes)
                sink_stats_count_tally(L->st, c->listen, c->source, c->pair, &t);
            if (step == SINK_SMTP_CLOSE)
                c->closing = true;
            if (L->cfg->max_messages && L->st->total.messages >= L->cfg->max_messages)
                sink_ring__stop(L, 2.0);
        }
        if (!more && !c->closing)
            c->recv_rearm = true;
    } else if (cqe->res == -ENOBUFS) {
        L->st->recv_nobufs++;
        if (!c->closing && !c->nobuf_waiting)
            sink_ring__nobuf_push(L, c);
    } else { /* 0 = the client closed; -ECANCELED = we cancelled; else an error */
        if (cqe->res < 0 && cqe->res != -ECANCELED) {
            L->st->recv_errors++;
            c->drop_output = true;
        }
        c->closing = true;
    }
    sink_ring__mark_dirty(L, c);
}

static void sink_ring__on_send(struct sink_loop *L, struct sink_conn *c, int res)
{
    c->send_inflight = false;
    L->sends_inflight--;
    if (res < 0) {
        L->st->send_errors++;
        c->drop_output = true;
        c->closing = true;
    } else {
        c->sent += (uint32_t)res;
    }
    sink_ring__mark_dirty(L, c);
}

static void sink_ring__on_timer(struct sink_loop *L)
{
    sink_stats_report_line(L->st, stderr);
    if (L->cfg->stats_file)
        sink_stats_write_json(L->st, L->srv, L->cfg->stats_file);
    if (!L->stopping)
        sink_ring__arm_timer(L);
}

/* Looks a connection up from a completion; NULL when the slot was reused since. */
static struct sink_conn *sink_ring__conn(struct sink_loop *L, uint64_t ud)
{
    uint32_t idx = (uint32_t)ud;
    uint32_t gen = (uint32_t)(ud >> 32) & 0xffffff;
    if (idx >= L->cfg->lim.max_conns)
        return NULL;
    struct sink_conn *c = &L->conns[idx];
    return (c->gen & 0xffffff) == gen && c->fd >= 0 ? c : NULL;
}

static void sink_ring__on_cqe(struct sink_loop *L, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    struct sink_conn *c;
    switch ((enum sink_ring_op)(ud >> 56)) {
    case SINK_RING_OP_ACCEPT:
        if (cqe->res >= 0)
            sink_ring__on_accept(L, (uint32_t)ud, cqe->res);
        else
            L->st->accept_errors++;
        if (!(cqe->flags & IORING_CQE_F_MORE) && !L->stopping)
            sink_ring__arm_accept(L, (uint32_t)ud);
        break;
    case SINK_RING_OP_RECV:
        c = sink_ring__conn(L, ud);
        if (c)
            sink_ring__on_recv(L, c, cqe);
        if (cqe->flags & IORING_CQE_F_BUFFER)
            sink_ring__return_buffer(L, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        break;
    case SINK_RING_OP_SEND:
        c = sink_ring__conn(L, ud);
        if (c)
            sink_ring__on_send(L, c, cqe->res);
        break;
    case SINK_RING_OP_CANCEL:
    case SINK_RING_OP_CLOSE:
        break;
    case SINK_RING_OP_TIMER:
        sink_ring__on_timer(L);
        break;
    case SINK_RING_OP_SIGNAL:
        if (L->srv->trace)
            fprintf(stderr, "sink: signal %u, stopping\n", L->siginfo.ssi_signo);
        sink_ring__stop(L, 0.5);
        break;
    default:
        fprintf(stderr, "sink: completion with unknown user_data %#llx\n",
                (unsigned long long)ud);
        abort();
    }
}

static int sink_ring__listen(const struct sink_listen_addr *a, uint32_t backlog)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* TCP_NODELAY set here is inherited by accepted sockets: no setsockopt per connection. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 ||
        listen(fd, (int)backlog) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int sink_ring__setup_ring(struct sink_loop *L)
{
    /* Newest flags first; older kernels reject them with -EINVAL. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = L->cfg->lim.ring_entries * 8;
        ret = io_uring_queue_init_params(L->cfg->lim.ring_entries, &L->ring, &p);
        if (ret == 0) {
            L->ring_ready = true;
            return 0;
        }
        if (ret != -EINVAL)
            break;
    }
    return ret;
}

static int sink_ring__setup_buffers(struct sink_loop *L)
{
    uint32_t n = L->cfg->lim.recv_buffers;
    uint32_t size = L->cfg->lim.recv_buffer_bytes;
    L->br_bytes = (size_t)n * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, L->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1,
                    0);
    if (br == MAP_FAILED)
        return -errno;
    L->br = br;
    L->bufs = malloc((size_t)n * size);
    if (!L->bufs)
        return -ENOMEM;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)(uintptr_t)br;
    reg.ring_entries = n;
    reg.bgid = SINK_RING__BGID;
    int ret = io_uring_register_buf_ring(&L->ring, &reg, 0);
    if (ret != 0)
        return ret;
    io_uring_buf_ring_init(L->br);
    for (uint32_t i = 0; i < n; i++)
        io_uring_buf_ring_add(L->br, L->bufs + (size_t)i * size, size, (unsigned short)i,
                              io_uring_buf_ring_mask(n), (int)i);
    io_uring_buf_ring_advance(L->br, (int)n);
    return 0;
}

static int sink_ring__setup(struct sink_loop *L, const struct sink_listen_addr *addrs,
                            uint32_t naddrs, const char **err)
{
    const struct sink_ring_limits *lim = &L->cfg->lim;
    L->conns = calloc(lim->max_conns, sizeof(*L->conns));
    L->lines = malloc((size_t)lim->max_conns * L->srv->lim.max_line_bytes);
    L->free_stack = malloc(lim->max_conns * sizeof(*L->free_stack));
    L->listen_fds = malloc(naddrs * sizeof(*L->listen_fds));
    if (!L->conns || !L->lines || !L->free_stack || !L->listen_fds) {
        *err = "allocating the connection pool";
        return -ENOMEM;
    }
    /* Slots are handed out lowest first; their pages are touched only when used. */
    for (uint32_t i = 0; i < lim->max_conns; i++)
        L->free_stack[i] = lim->max_conns - 1 - i;
    L->nfree = lim->max_conns;
    for (uint32_t i = 0; i < lim->max_conns; i++)
        L->conns[i].fd = -1;

    for (uint32_t i = 0; i < naddrs; i++) {
        int fd = sink_ring__listen(&addrs[i], lim->listen_backlog);
        if (fd < 0) {
            fprintf(stderr, "sink: cannot listen on %s: %s\n", addrs[i].name, strerror(-fd));
            *err = "binding a listen address";
            return fd;
        }
        L->listen_fds[L->nlisten++] = fd;
        sink_stats_add_listen(L->st, addrs[i].name);
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    L->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (L->sigfd < 0) {
        *err = "signalfd";
        return -errno;
    }

    int ret = sink_ring__setup_ring(L);
    if (ret != 0) {
        *err = "io_uring_queue_init_params";
        return ret;
    }
    ret = sink_ring__setup_buffers(L);
    if (ret != 0) {
        *err = "registering the provided-buffer ring";
        return ret;
    }
    return 0;
}

static void sink_ring__teardown(struct sink_loop *L)
{
    if (L->ring_ready)
        io_uring_queue_exit(&L->ring);
    for (uint32_t i = 0; i < L->nlisten; i++)
        close(L->listen_fds[i]);
    if (L->conns) {
        for (uint32_t i = 0; i < L->cfg->lim.max_conns; i++) {
            struct sink_conn *c = &L->conns[i];
            if (c->fd >= 0) {
                close(c->fd);
                sink_outbuf_fini(&c->out[0]);
                sink_outbuf_fini(&c->out[1]);
            }
        }
    }
    if (L->br)
        munmap(L->br, L->br_bytes);
    if (L->sigfd > 0)
        close(L->sigfd);
    free(L->bufs);
    free(L->conns);
    free(L->lines);
    free(L->free_stack);
    free(L->listen_fds);
}

int sink_ring_run(const struct sink_ring_config *cfg, const struct sink_listen_addr *addrs,
                  uint32_t naddrs, struct sink_smtp_server *srv, struct sink_stats *st,
                  const char **err)
{
    struct sink_loop L;
    memset(&L, 0, sizeof(L));
    L.cfg = cfg;
    L.srv = srv;
    L.st = st;
    L.sigfd = -1;
    int ret = sink_ring__setup(&L, addrs, naddrs, err);
    if (ret != 0) {
        sink_ring__teardown(&L);
        return ret;
    }

    for (uint32_t i = 0; i < L.nlisten; i++)
        sink_ring__arm_accept(&L, i);
    sink_ring__arm_signal(&L);
    if (cfg->report_interval_ms) {
        L.report_ts.tv_sec = cfg->report_interval_ms / 1000;
        L.report_ts.tv_nsec = (long long)(cfg->report_interval_ms % 1000) * 1000000;
        sink_ring__arm_timer(&L);
    }
    st->start_s = sink_stats_now_s();
    st->last_report_s = st->start_s;
    st->start_cpu_s = sink_stats_cpu_s();
    st->last_report_cpu_s = st->start_cpu_s;

    for (;;) {
        sink_ring__flush(&L);
        if (L.stopping &&
            (L.sends_inflight == 0 || sink_stats_now_s() > L.stop_deadline_s))
            break;
        if (L.stopping) {
            /* Drain: let the last replies (the 250 for message N) reach their clients. */
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
            struct io_uring_cqe *cqe;
            ret = io_uring_submit_and_wait_timeout(&L.ring, &cqe, 1, &ts, NULL);
        } else {
            ret = io_uring_submit_and_wait(&L.ring, 1);
        }
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EAGAIN && ret != -EBUSY) {
            *err = "io_uring_submit_and_wait";
            break;
        }
        ret = 0;
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&L.ring, head, cqe) {
            sink_ring__on_cqe(&L, cqe);
            n++;
        }
        io_uring_cq_advance(&L.ring, n);
        st->loop_turns++;
        st->cqes += n;
        if (L.bufs_returned) {
            io_uring_buf_ring_advance(L.br, (int)L.bufs_returned);
            L.bufs_returned = 0;
        }
    }
    sink_ring__teardown(&L);
    return ret;
}
