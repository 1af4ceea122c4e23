/* tests/unit/engine/ring/test_ring.c — the io_uring loop against real loopback sockets: timer
 * order, re-arm and cancel; deferred callbacks per turn; connect/send/receive/EOF/error/close
 * events (each checked for count and order); source binding; address text; fd polls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/ring/ring.h"

#define CONTAINER(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static struct ring *R;
static unsigned long TURN;  /* number of the ring_run_once in progress (or last finished) */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void turn(int64_t wait_ms)
{
    TURN++;
    assert_int_equal(ring_run_once(R, wait_ms), 0);
}

/* Runs the loop until cond(arg) holds; a generous bound only turns a hang into a failure. */
static void run_until(bool (*cond)(void *), void *arg, const char *what)
{
    uint64_t start = wall_ms();
    while (!cond(arg)) {
        if (wall_ms() - start > 10000)
            fail_msg("timed out waiting for %s", what);
        turn(20);
    }
}

static int setup(void **state)
{
    (void)state;
    struct ring_config cfg = {.entries = 64, .recv_buffers = 64, .recv_buf_bytes = 4096};
    assert_int_equal(ring_create(&R, &cfg), 0);
    TURN = 0;
    return 0;
}

static bool ring_idle(void *arg)
{
    (void)arg;
    return ring_pending(R) == 0;
}

static int teardown(void **state)
{
    (void)state;
    run_until(ring_idle, NULL, "the ring to go idle");
    ring_destroy(R);
    R = NULL;
    return 0;
}

/* ------------------------------------------------------------------ timers */

struct ttimer {
    struct ring_timer t;
    int id;
    int fired;
    uint64_t fired_now;
};
static int ORDER[2048];
static unsigned NORDER;

static void on_timer(struct ring_timer *t)
{
    struct ttimer *x = CONTAINER(t, struct ttimer, t);
    x->fired++;
    x->fired_now = ring_now_ms(R);
    /* a timer never fires before its deadline, as the ring's clock sees it */
    assert_true(x->fired_now >= t->deadline_ms);
    assert_false(ring_timer_armed(t));
    ORDER[NORDER++] = x->id;
}

static bool order_has(void *arg)
{
    return NORDER >= *(unsigned *)arg;
}

static void test_timers_order(void **state)
{
    (void)state;
    NORDER = 0;
    struct ttimer a = {.t.on_fire = on_timer, .id = 1}, b = {.t.on_fire = on_timer, .id = 2},
                  c = {.t.on_fire = on_timer, .id = 3};
    assert_int_equal(ring_pending(R), 0);
    ring_timer_arm(R, &a.t, 60);
    ring_timer_arm(R, &b.t, 10);
    ring_timer_arm(R, &c.t, 30);
    assert_true(ring_timer_armed(&a.t) && ring_timer_armed(&b.t) && ring_timer_armed(&c.t));
    assert_int_equal(ring_pending(R), 3);
    unsigned want = 3;
    run_until(order_has, &want, "three timers");
    assert_int_equal(ORDER[0], 2);
    assert_int_equal(ORDER[1], 3);
    assert_int_equal(ORDER[2], 1);
    assert_int_equal(a.fired + b.fired + c.fired, 3);
    assert_int_equal(ring_pending(R), 0);
    /* nothing fires twice */
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(NORDER, 3);
}

static void test_timers_many(void **state)
{
    (void)state;
    NORDER = 0;
    static struct ttimer t[1000];
    unsigned seed = 12345;
    for (int i = 0; i < 1000; i++) {
        t[i] = (struct ttimer){.t.on_fire = on_timer, .id = i};
        seed = seed * 1103515245u + 12345u;
        ring_timer_arm(R, &t[i].t, (seed >> 16) % 80);
    }
    /* cancel every third one, some of them twice */
    unsigned cancelled = 0;
    for (int i = 0; i < 1000; i += 3) {
        ring_timer_cancel(R, &t[i].t);
        ring_timer_cancel(R, &t[i].t);
        cancelled++;
    }
    assert_int_equal(ring_pending(R), 1000 - cancelled);
    unsigned want = 1000 - cancelled;
    run_until(order_has, &want, "all timers");
    for (int k = 0; k < 10; k++)
        turn(0);
    assert_int_equal(NORDER, 1000 - cancelled);
    for (unsigned k = 1; k < NORDER; k++)
        assert_true(t[ORDER[k - 1]].t.deadline_ms <= t[ORDER[k]].t.deadline_ms);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(t[i].fired, i % 3 == 0 ? 0 : 1);
    assert_int_equal(ring_pending(R), 0);
}

static void test_timers_rearm_cancel(void **state)
{
    (void)state;
    NORDER = 0;
    struct ttimer a = {.t.on_fire = on_timer, .id = 1}, b = {.t.on_fire = on_timer, .id = 2},
                  c = {.t.on_fire = on_timer, .id = 3};
    ring_timer_arm(R, &a.t, 10);
    ring_timer_arm(R, &b.t, 40);
    ring_timer_arm(R, &c.t, 20);
    ring_timer_arm(R, &a.t, 80);   /* re-arm: one heap entry, later deadline */
    assert_int_equal(ring_pending(R), 3);
    ring_timer_cancel(R, &c.t);
    assert_false(ring_timer_armed(&c.t));
    assert_int_equal(ring_pending(R), 2);
    unsigned want = 2;
    run_until(order_has, &want, "two timers");
    for (int k = 0; k < 5; k++)
        turn(0);
    assert_int_equal(NORDER, 2);
    assert_int_equal(ORDER[0], 2);
    assert_int_equal(ORDER[1], 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(c.fired, 0);
    /* a fired timer can be armed again */
    ring_timer_arm(R, &c.t, 0);
    want = 3;
    run_until(order_has, &want, "re-armed timer");
    assert_int_equal(c.fired, 1);
}

/* A periodic timer re-arms itself; a timer callback cancels another due in the same turn. */
static struct ttimer P, VICTIM;
static void on_periodic(struct ring_timer *t)
{
    on_timer(t);
    if (P.fired < 3)
        ring_timer_arm(R, t, 5);
    ring_timer_cancel(R, &VICTIM.t);
}

static void test_timers_from_callbacks(void **state)
{
    (void)state;
    NORDER = 0;
    P = (struct ttimer){.t.on_fire = on_periodic, .id = 7};
    VICTIM = (struct ttimer){.t.on_fire = on_timer, .id = 8};
    ring_timer_arm(R, &P.t, 1);
    ring_timer_arm(R, &VICTIM.t, 1000);
    unsigned want = 3;
    run_until(order_has, &want, "periodic timer");
    for (int k = 0; k < 3; k++)
        turn(10);
    assert_int_equal(P.fired, 3);
    assert_int_equal(VICTIM.fired, 0);
    assert_false(ring_timer_armed(&VICTIM.t));
    assert_int_equal(ring_pending(R), 0);
}

/* ------------------------------------------------------------------ defer */

struct tdefer {
    struct ring_defer d;
    int runs;
    unsigned long last_turn;
    struct tdefer *chain;   /* queued from this one's callback */
    bool requeue_self;
};
static void on_defer(struct ring_defer *d)
{
    struct tdefer *x = CONTAINER(d, struct tdefer, d);
    x->runs++;
    x->last_turn = TURN;
    assert_false(d->queued);
    if (x->chain)
        ring_defer(R, &x->chain->d);
    if (x->requeue_self && x->runs < 3)
        ring_defer(R, d);
}

static struct tdefer *SEQ[4];
static unsigned NSEQ;
static void on_defer_seq(struct ring_defer *d)
{
    SEQ[NSEQ++] = CONTAINER(d, struct tdefer, d);
}

static void test_defer_once_per_queueing(void **state)
{
    (void)state;
    struct tdefer a = {.d.fn = on_defer};
    ring_defer(R, &a.d);
    ring_defer(R, &a.d);     /* no-op: already queued */
    assert_true(a.d.queued);
    assert_int_equal(ring_pending(R), 1);
    assert_int_equal(a.runs, 0);   /* never inside ring_defer */
    turn(0);
    assert_int_equal(a.runs, 1);
    assert_int_equal(ring_pending(R), 0);
    turn(0);
    assert_int_equal(a.runs, 1);
    /* queued again: runs again */
    ring_defer(R, &a.d);
    turn(0);
    assert_int_equal(a.runs, 2);

    /* FIFO order */
    struct tdefer x = {.d.fn = on_defer_seq}, y = {.d.fn = on_defer_seq}, z = {.d.fn = on_defer_seq};
    NSEQ = 0;
    ring_defer(R, &y.d);
    ring_defer(R, &x.d);
    ring_defer(R, &z.d);
    ring_defer(R, &x.d);
    turn(0);
    assert_int_equal(NSEQ, 3);
    assert_ptr_equal(SEQ[0], &y);
    assert_ptr_equal(SEQ[1], &x);
    assert_ptr_equal(SEQ[2], &z);
}

static void test_defer_chain_next_turn(void **state)
{
    (void)state;
    struct tdefer b = {.d.fn = on_defer};
    struct tdefer a = {.d.fn = on_defer, .chain = &b};
    ring_defer(R, &a.d);
    turn(0);
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 0);          /* queued from a defer: next turn */
    assert_int_equal(ring_pending(R), 1);
    turn(0);
    assert_int_equal(b.runs, 1);
    assert_int_equal(b.last_turn, a.last_turn + 1);

    /* a self-requeueing defer runs once per turn, not in a loop */
    struct tdefer s = {.d.fn = on_defer, .requeue_self = true};
    ring_defer(R, &s.d);
    turn(0);
    assert_int_equal(s.runs, 1);
    turn(0);
    assert_int_equal(s.runs, 2);
    turn(0);
    assert_int_equal(s.runs, 3);
    turn(0);
    assert_int_equal(s.runs, 3);
    assert_int_equal(ring_pending(R), 0);
}

/* A defer queued from a timer callback runs at the end of that same turn. */
static struct tdefer TD;
static unsigned long TIMER_TURN;
static void on_timer_defers(struct ring_timer *t)
{
    (void)t;
    TIMER_TURN = TURN;
    ring_defer(R, &TD.d);
}

static bool td_ran(void *arg)
{
    (void)arg;
    return TD.runs > 0;
}

static void test_defer_end_of_turn(void **state)
{
    (void)state;
    TD = (struct tdefer){.d.fn = on_defer};
    struct ring_timer t = {.on_fire = on_timer_defers};
    ring_timer_arm(R, &t, 5);
    run_until(td_ran, NULL, "defer from timer");
    assert_int_equal(TD.last_turn, TIMER_TURN);
}

/* ------------------------------------------------------------------ peer (helper thread) */

enum peer_mode { PEER_SINK, PEER_SOURCE, PEER_HOLD };

struct peer {
    int lfd;
    uint16_t port;
    enum peer_mode mode;
    const uint8_t *src;          /* SOURCE: bytes to write */
    size_t src_len;
    uint8_t *got;                /* SINK: bytes read until EOF */
    size_t got_len, got_cap;
    int release;                 /* eventfd: HOLD closes when written */
    struct sockaddr_storage seen; /* getpeername of the accepted socket */
    bool accepted, failed;
    pthread_t th;
};

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    struct pollfd pfd = {.fd = p->lfd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1) {
        p->failed = true;
        return NULL;
    }
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        p->failed = true;
        return NULL;
    }
    socklen_t sl = sizeof p->seen;
    getpeername(fd, (struct sockaddr *)&p->seen, &sl);
    __atomic_store_n(&p->accepted, true, __ATOMIC_SEQ_CST);
    if (p->mode == PEER_SINK) {
        for (;;) {
            if (p->got_len + 1024 > p->got_cap) {
                p->got_cap = p->got_cap ? p->got_cap * 2 : 65536;
                p->got = realloc(p->got, p->got_cap);
            }
            ssize_t n = read(fd, p->got + p->got_len, 1024); /* small reads: slow reader */
            if (n <= 0)
                break;
            p->got_len += (size_t)n;
        }
    } else if (p->mode == PEER_SOURCE) {
        size_t off = 0;
        while (off < p->src_len) {
            size_t chunk = p->src_len - off < 3000 ? p->src_len - off : 3000;
            ssize_t n = write(fd, p->src + off, chunk);
            if (n <= 0) {
                p->failed = true;
                break;
            }
            off += (size_t)n;
        }
    } else {
        uint64_t v;
        struct pollfd r = {.fd = p->release, .events = POLLIN};
        poll(&r, 1, 10000);
        if (read(p->release, &v, sizeof v) != sizeof v)
            p->failed = true;
    }
    close(fd);
    return NULL;
}

static void peer_start(struct peer *p, enum peer_mode mode, int rcvbuf)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->lfd >= 0);
    if (rcvbuf)
        setsockopt(p->lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    socklen_t sl = sizeof a;
    getsockname(p->lfd, (struct sockaddr *)&a, &sl);
    p->port = ntohs(a.sin_port);
    p->release = eventfd(0, EFD_CLOEXEC);
    assert_true(p->release >= 0);
}

static void peer_run(struct peer *p)
{
    assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_release(struct peer *p)
{
    uint64_t one = 1;
    assert_int_equal(write(p->release, &one, sizeof one), sizeof one);
}

static void peer_join(struct peer *p)
{
    pthread_join(p->th, NULL);
    close(p->lfd);
    close(p->release);
    assert_false(p->failed);
}

static void peer_free(struct peer *p)
{
    free(p->got);
    p->got = NULL;
}

static struct sockaddr_in loop_addr(uint16_t port)
{
    return (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

/* ------------------------------------------------------------------ client */

struct client {
    struct ring_sock s;
    int n[RING_SOCK_CLOSED + 1];
    enum ring_sock_event log[64];
    unsigned nlog;
    int err;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    int depth;                    /* callbacks are never nested */
    unsigned long closed_turn;
    bool close_on_connected, close_on_error, close_on_eof;
};

static void on_sock(struct ring_sock *s, enum ring_sock_event ev, const uint8_t *data, size_t len,
                    int err)
{
    struct client *c = CONTAINER(s, struct client, s);
    assert_int_equal(c->depth, 0);
    c->depth++;
    /* CLOSED is the last event: nothing at all after it */
    assert_int_equal(c->n[RING_SOCK_CLOSED], 0);
    c->n[ev]++;
    if (c->nlog < 64 && (ev != RING_SOCK_DATA || c->nlog == 0 || c->log[c->nlog - 1] != ev))
        c->log[c->nlog++] = ev;
    switch (ev) {
    case RING_SOCK_DATA:
        assert_true(len > 0);
        if (c->rx_len + len > c->rx_cap) {
            c->rx_cap = (c->rx_len + len) * 2;
            c->rx = realloc(c->rx, c->rx_cap);
        }
        memcpy(c->rx + c->rx_len, data, len);
        c->rx_len += len;
        break;
    case RING_SOCK_ERROR:
        c->err = err;
        assert_true(err < 0);
        if (c->close_on_error)
            ring_sock_close(s);
        break;
    case RING_SOCK_CONNECTED:
        if (c->close_on_connected)
            ring_sock_close(s);
        break;
    case RING_SOCK_EOF:
        if (c->close_on_eof)
            ring_sock_close(s);
        break;
    case RING_SOCK_CLOSED:
        c->closed_turn = TURN;
        break;
    default:
        break;
    }
    if (ev == RING_SOCK_CLOSED) {
        assert_int_equal(c->n[RING_SOCK_CLOSED], 1);
    }
    c->depth--;
}

static void client_init(struct client *c)
{
    memset(c, 0, sizeof *c);
    c->s.on_event = on_sock;
}

static void client_free(struct client *c)
{
    free(c->rx);
    c->rx = NULL;
}

static int client_connect(struct client *c, uint16_t port)
{
    struct sockaddr_in a = loop_addr(port);
    return ring_sock_connect(R, &c->s, (struct sockaddr *)&a, sizeof a, NULL, 0);
}

#define WAIT_EV(c, ev, count)                                                                   \
    do {                                                                                        \
        struct wait_arg wa_ = {(c), (ev), (count)};                                             \
        run_until(ev_reached, &wa_, #ev);                                                       \
    } while (0)

struct wait_arg {
    struct client *c;
    enum ring_sock_event ev;
    int count;
};
static bool ev_reached(void *arg)
{
    struct wait_arg *w = arg;
    return w->c->n[w->ev] >= w->count;
}

/* Close from outside the loop: CLOSED comes from a later turn, exactly once. */
static void client_close(struct client *c)
{
    unsigned long at = TURN;
    ring_sock_close(&c->s);
    assert_int_equal(c->n[RING_SOCK_CLOSED], 0);  /* never inside ring_sock_close */
    ring_sock_close(&c->s);                        /* idempotent */
    WAIT_EV(c, RING_SOCK_CLOSED, 1);
    assert_true(c->closed_turn > at);
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(c->n[RING_SOCK_CLOSED], 1);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

static void test_sock_connect(void **state)
{
    (void)state;
    struct peer p;
    peer_start(&p, PEER_HOLD, 0);
    peer_run(&p);
    struct client c;
    client_init(&c);
    assert_int_equal(client_connect(&c, p.port), 0);
    assert_int_equal(ring_pending(R), 1);
    assert_int_equal(c.n[RING_SOCK_CONNECTED], 0);   /* asynchronous */
    WAIT_EV(&c, RING_SOCK_CONNECTED, 1);
    assert_int_equal(c.n[RING_SOCK_ERROR], 0);
    struct sockaddr_storage la;
    socklen_t ll;
    assert_int_equal(ring_sock_local_addr(&c.s, &la, &ll), 0);
    assert_int_equal(la.ss_family, AF_INET);
    assert_int_equal(((struct sockaddr_in *)&la)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    client_close(&c);
    assert_int_equal(ring_pending(R), 0);
    assert_int_equal(c.n[RING_SOCK_EOF] + c.n[RING_SOCK_ERROR] + c.n[RING_SOCK_DATA], 0);
    peer_release(&p);
    peer_join(&p);
    client_free(&c);
}

static void test_sock_send_1mb(void **state)
{
    (void)state;
    const size_t N = 1 << 20;
    uint8_t *data = pattern(N, 1);
    struct peer p;
    peer_start(&p, PEER_SINK, 4096);
    peer_run(&p);
    struct client c;
    client_init(&c);
    assert_int_equal(client_connect(&c, p.port), 0);
    int small = 4096;
    setsockopt(c.s.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    WAIT_EV(&c, RING_SOCK_CONNECTED, 1);
    struct ring_stats st0, st1;
    ring_get_stats(R, &st0);
    assert_int_equal(ring_sock_send(&c.s, data, N), 0);
    assert_true(ring_sock_sending(&c.s));
    assert_int_equal(ring_sock_send(&c.s, data, 10), -EBUSY);
    WAIT_EV(&c, RING_SOCK_WRITTEN, 1);
    ring_get_stats(R, &st1);
    assert_false(ring_sock_sending(&c.s));
    /* the kernel cannot take 1 MiB at once through these buffers: short writes happened
     * and were continued (one SQE each) */
    print_message("send SQEs for 1 MiB: %llu\n", (unsigned long long)(st1.sqes - st0.sqes));
    assert_true(st1.sqes - st0.sqes > 2);
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(c.n[RING_SOCK_WRITTEN], 1);
    assert_int_equal(ring_sock_send(&c.s, data, 0), -EINVAL);
    /* a second send after WRITTEN works */
    assert_int_equal(ring_sock_send(&c.s, (const uint8_t *)"tail", 4), 0);
    WAIT_EV(&c, RING_SOCK_WRITTEN, 2);
    client_close(&c);
    peer_join(&p);
    assert_int_equal(p.got_len, N + 4);
    assert_memory_equal(p.got, data, N);
    assert_memory_equal(p.got + N, "tail", 4);
    assert_int_equal(c.n[RING_SOCK_ERROR], 0);
    assert_int_equal(ring_sock_send(&c.s, data, 4), -EPIPE);  /* after close */
    peer_free(&p);
    client_free(&c);
    free(data);
}

/* 1 MiB in through few, small provided buffers (forces -ENOBUFS re-arms), then EOF. */
static void test_sock_receive_and_eof(void **state)
{
    (void)state;
    ring_destroy(R);
    struct ring_config cfg = {.entries = 32, .recv_buffers = 4, .recv_buf_bytes = 1024};
    assert_int_equal(ring_create(&R, &cfg), 0);
    const size_t N = (1 << 20) + 17;
    uint8_t *data = pattern(N, 2);
    struct peer p;
    peer_start(&p, PEER_SOURCE, 0);
    p.src = data;
    p.src_len = N;
    peer_run(&p);
    struct client c;
    client_init(&c);
    assert_int_equal(client_connect(&c, p.port), 0);
    WAIT_EV(&c, RING_SOCK_EOF, 1);
    assert_int_equal(c.rx_len, N);
    assert_memory_equal(c.rx, data, N);
    /* order: CONNECTED, DATA..., EOF */
    assert_int_equal(c.log[0], RING_SOCK_CONNECTED);
    assert_int_equal(c.log[1], RING_SOCK_DATA);
    assert_int_equal(c.log[2], RING_SOCK_EOF);
    assert_int_equal(c.nlog, 3);
    for (int i = 0; i < 5; i++)
        turn(0);
    assert_int_equal(c.n[RING_SOCK_EOF], 1);
    assert_int_equal(c.n[RING_SOCK_ERROR], 0);
    struct ring_stats st;
    ring_get_stats(R, &st);
    print_message("recv -ENOBUFS re-arms: %llu\n", (unsigned long long)st.recv_nobufs);
    client_close(&c);
    peer_join(&p);
    client_free(&c);
    free(data);
}

/* Peer closes at once; the owner closes from inside its EOF callback. */
static void test_sock_eof_close_in_callback(void **state)
{
    (void)state;
    struct peer p;
    peer_start(&p, PEER_SOURCE, 0);
    p.src = (const uint8_t *)"hello";
    p.src_len = 5;
    peer_run(&p);
    struct client c;
    client_init(&c);
    c.close_on_eof = true;
    assert_int_equal(client_connect(&c, p.port), 0);
    WAIT_EV(&c, RING_SOCK_CLOSED, 1);
    assert_int_equal(c.rx_len, 5);
    assert_memory_equal(c.rx, "hello", 5);
    assert_int_equal(c.n[RING_SOCK_EOF], 1);
    assert_int_equal(c.log[c.nlog - 1], RING_SOCK_CLOSED);
    assert_int_equal(ring_pending(R), 0);
    peer_join(&p);
    client_free(&c);
}

static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loop_addr(0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);   /* bound, never listened: nobody there */
    return ntohs(a.sin_port);
}

static void test_sock_refused(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    assert_int_equal(client_connect(&c, closed_port()), 0);
    WAIT_EV(&c, RING_SOCK_ERROR, 1);
    assert_int_equal(c.err, -ECONNREFUSED);
    assert_int_equal(c.n[RING_SOCK_CONNECTED], 0);
    assert_int_equal(ring_pending(R), 1);    /* still the owner's until closed */
    client_close(&c);
    assert_int_equal(c.n[RING_SOCK_ERROR], 1);
    assert_int_equal(ring_pending(R), 0);

    /* closing from inside the ERROR callback (nothing in flight any more): CLOSED still
     * never comes from inside a callback, and comes once */
    client_init(&c);
    c.close_on_error = true;
    assert_int_equal(client_connect(&c, closed_port()), 0);
    WAIT_EV(&c, RING_SOCK_CLOSED, 1);
    assert_int_equal(c.n[RING_SOCK_ERROR], 1);
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(c.n[RING_SOCK_CLOSED], 1);
    client_free(&c);
}

/* Close right after connect (connect still in flight) and from the CONNECTED callback. */
static void test_sock_close_outstanding_connect(void **state)
{
    (void)state;
    struct peer p;
    peer_start(&p, PEER_HOLD, 0);
    struct client c;
    client_init(&c);
    assert_int_equal(client_connect(&c, p.port), 0);
    client_close(&c);
    assert_int_equal(c.n[RING_SOCK_CONNECTED], 0);   /* events stop at close */
    assert_int_equal(c.n[RING_SOCK_ERROR], 0);
    assert_int_equal(ring_pending(R), 0);

    client_init(&c);
    c.close_on_connected = true;
    assert_int_equal(client_connect(&c, p.port), 0);
    WAIT_EV(&c, RING_SOCK_CLOSED, 1);
    assert_int_equal(c.n[RING_SOCK_CONNECTED], 1);
    assert_int_equal(c.n[RING_SOCK_DATA] + c.n[RING_SOCK_EOF] + c.n[RING_SOCK_ERROR], 0);
    close(p.lfd);
    close(p.release);
    client_free(&c);
}

/* Close while a big send is stuck (peer does not read) and a receive is armed. */
static void test_sock_close_outstanding_io(void **state)
{
    (void)state;
    const size_t N = 8 << 20;
    uint8_t *data = pattern(N, 3);
    struct peer p;
    peer_start(&p, PEER_HOLD, 4096);
    peer_run(&p);
    struct client c;
    client_init(&c);
    assert_int_equal(client_connect(&c, p.port), 0);
    int small = 4096;
    setsockopt(c.s.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    WAIT_EV(&c, RING_SOCK_CONNECTED, 1);
    assert_int_equal(ring_sock_send(&c.s, data, N), 0);
    for (int i = 0; i < 5; i++)
        turn(5);
    assert_int_equal(c.n[RING_SOCK_WRITTEN], 0);
    assert_true(c.s.inflight >= 2);  /* the send and the receive */
    client_close(&c);
    assert_int_equal(c.n[RING_SOCK_WRITTEN] + c.n[RING_SOCK_ERROR], 0);
    assert_int_equal(ring_pending(R), 0);
    peer_release(&p);
    peer_join(&p);
    client_free(&c);
    free(data);   /* only now: the kernel let go of it before CLOSED */
}

static void test_sock_source_address(void **state)
{
    (void)state;
    struct peer p;
    peer_start(&p, PEER_HOLD, 0);
    peer_run(&p);
    struct client c;
    client_init(&c);
    struct sockaddr_in dst = loop_addr(p.port);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
    assert_int_equal(ring_sock_connect(R, &c.s, (struct sockaddr *)&dst, sizeof dst,
                                       (struct sockaddr *)&src, sizeof src), 0);
    WAIT_EV(&c, RING_SOCK_CONNECTED, 1);
    uint64_t start = wall_ms();
    while (!__atomic_load_n(&p.accepted, __ATOMIC_SEQ_CST) && wall_ms() - start < 10000)
        usleep(1000);
    char text[64];
    assert_int_equal(p.seen.ss_family, AF_INET);
    assert_string_equal(ring_addr_to_text((struct sockaddr *)&p.seen, text, sizeof text), "127.0.0.2");
    struct sockaddr_storage la;
    socklen_t ll;
    assert_int_equal(ring_sock_local_addr(&c.s, &la, &ll), 0);
    assert_string_equal(ring_addr_to_text((struct sockaddr *)&la, text, sizeof text), "127.0.0.2");
    assert_int_equal(((struct sockaddr_in *)&la)->sin_port,
                     ((struct sockaddr_in *)&p.seen)->sin_port);
    client_close(&c);
    peer_release(&p);
    peer_join(&p);

    /* an address this host does not have: a synchronous error; close still ends in CLOSED */
    client_init(&c);
    inet_pton(AF_INET, "192.0.2.1", &src.sin_addr);
    int rc = ring_sock_connect(R, &c.s, (struct sockaddr *)&dst, sizeof dst,
                               (struct sockaddr *)&src, sizeof src);
    if (rc == 0) {
        /* net.ipv4.ip_nonlocal_bind=1 on this host: nothing to check synchronously */
        client_close(&c);
    } else {
        assert_int_equal(rc, -EADDRNOTAVAIL);
        assert_int_equal(ring_pending(R), 0);
        assert_int_equal(ring_sock_local_addr(&c.s, &la, &ll), -EBADF);
        client_close(&c);
        assert_int_equal(c.nlog, 1);
    }
    client_free(&c);
}

/* ------------------------------------------------------------------ addresses */

static void test_addr_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        int family;
        const char *text;
        uint16_t port;
    } cases[] = {
        {"127.2.3.4", 0, AF_INET, "127.2.3.4", 25},
        {"127.2.3.4:2525", 0, AF_INET, "127.2.3.4", 2525},
        {"127.0.0.1:65535", 0, AF_INET, "127.0.0.1", 65535},
        {"::1", 0, AF_INET6, "::1", 25},
        {"2001:db8::1", 0, AF_INET6, "2001:db8::1", 25},
        {"[::1]:587", 0, AF_INET6, "::1", 587},
        {"[2001:db8::25]", 0, AF_INET6, "2001:db8::25", 25},
        {"[::ffff:127.2.3.4]:1", 0, AF_INET6, "::ffff:127.2.3.4", 1},
        {"127.2.3.4:0", -EINVAL, 0, NULL, 0},
        {"127.2.3.4:65536", -EINVAL, 0, NULL, 0},
        {"127.2.3.4:", -EINVAL, 0, NULL, 0},
        {"127.2.3.4:25x", -EINVAL, 0, NULL, 0},
        {"127.2.3.4:-1", -EINVAL, 0, NULL, 0},
        {"127.2.3.4:99999999999999999999", -EINVAL, 0, NULL, 0},
        {"[::1]:", -EINVAL, 0, NULL, 0},
        {"[::1]:0", -EINVAL, 0, NULL, 0},
        {"[::1]x", -EINVAL, 0, NULL, 0},
        {"[::1", -EINVAL, 0, NULL, 0},
        {"[]", -EINVAL, 0, NULL, 0},
        {"", -EINVAL, 0, NULL, 0},
        {"localhost", -EINVAL, 0, NULL, 0},
        {"mx.example.com:25", -EINVAL, 0, NULL, 0},
        {"1.2.3", -EINVAL, 0, NULL, 0},
        {"127.2.3.256", -EINVAL, 0, NULL, 0},
        {"::g", -EINVAL, 0, NULL, 0},
        {"[127.2.3.4.5]:25", -EINVAL, 0, NULL, 0},
        {"127.2.3.4:25:26", -EINVAL, 0, NULL, 0},
        {"11111111111111111111111111111111111111111111111111111111:25", -EINVAL, 0, NULL, 0},
        {"[11111111111111111111111111111111111111111111111111111111]", -EINVAL, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        int rc = ring_addr_parse(cases[i].in, 25, &ss, &len);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, wanted %d", cases[i].in, rc, cases[i].rc);
        if (rc)
            continue;
        assert_int_equal(ss.ss_family, cases[i].family);
        char text[INET6_ADDRSTRLEN];
        assert_string_equal(ring_addr_to_text((struct sockaddr *)&ss, text, sizeof text), cases[i].text);
        if (cases[i].family == AF_INET) {
            assert_int_equal(len, sizeof(struct sockaddr_in));
            assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), cases[i].port);
        } else {
            assert_int_equal(len, sizeof(struct sockaddr_in6));
            assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), cases[i].port);
        }
    }
    /* the default port is the caller's */
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(ring_addr_parse("127.0.0.21", 0, &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, 0);

    /* to_text: unknown family and NULL give "" */
    char text[64] = "junk";
    struct sockaddr_un_like { sa_family_t f; char x[20]; } u = {AF_UNIX, {0}};
    assert_string_equal(ring_addr_to_text((struct sockaddr *)&u, text, sizeof text), "");
    assert_string_equal(ring_addr_to_text(NULL, text, sizeof text), "");
}

/* ------------------------------------------------------------------ polls */

struct tpoll {
    struct ring_poll p;
    int ready;
    unsigned revents;
    bool drain;
};

static void on_ready(struct ring_poll *p, unsigned revents)
{
    struct tpoll *t = CONTAINER(p, struct tpoll, p);
    t->ready++;
    t->revents = revents;
    if (t->drain) {
        uint64_t v;
        ssize_t n = read(p->fd, &v, sizeof v);
        (void)n;
    }
}

static bool poll_ready_n(void *arg)
{
    struct tpoll *t = arg;
    return t->ready >= 1;
}

struct int_wait {
    int *p;
    int v;
};
static bool int_reached(void *arg)
{
    struct int_wait *w = arg;
    return *w->p >= w->v;
}
#define WAIT_INT(ptr, val)                                                                      \
    do {                                                                                        \
        struct int_wait iw_ = {(ptr), (val)};                                                   \
        run_until(int_reached, &iw_, #ptr " >= " #val);                                         \
    } while (0)

static bool poll_not_busy(void *arg)
{
    return !ring_poll_busy(arg);
}

static void efd_signal(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof one), sizeof one);
}

static void test_poll_eventfd(void **state)
{
    (void)state;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int efd2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct tpoll t = {.p.on_ready = on_ready, .drain = true};
    assert_int_equal(ring_poll_start(R, &t.p, efd, POLLIN), 0);
    assert_int_equal(ring_poll_start(R, &t.p, efd, POLLIN), 0);      /* same interest: fine */
    assert_int_equal(ring_poll_start(R, &t.p, efd2, POLLIN), -EBUSY); /* other fd */
    assert_int_equal(ring_poll_start(R, &t.p, efd, POLLOUT), -EBUSY); /* other events */
    assert_int_equal(ring_pending(R), 1);
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(t.ready, 0);

    /* multishot: each signal is one callback, without restarting */
    for (int k = 1; k <= 3; k++) {
        efd_signal(efd);
        WAIT_INT(&t.ready, k);
        assert_true(t.revents & POLLIN);
    }
    assert_int_equal(t.ready, 3);

    /* stop: busy until the kernel lets go; no callback after stop */
    ring_poll_stop(R, &t.p);
    assert_int_equal(ring_pending(R), 0);
    assert_true(ring_poll_busy(&t.p));
    efd_signal(efd);
    run_until(poll_not_busy, &t.p, "poll to finish");
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(t.ready, 3);
    ring_poll_stop(R, &t.p);           /* second stop: harmless */
    assert_false(ring_poll_busy(&t.p));

    /* restart, on another fd too: the pending signal is seen at once */
    assert_int_equal(ring_poll_start(R, &t.p, efd, POLLIN), 0);
    assert_int_equal(ring_pending(R), 1);
    WAIT_INT(&t.ready, 4);
    assert_int_equal(t.ready, 4);
    ring_poll_stop(R, &t.p);
    run_until(poll_not_busy, &t.p, "poll to finish");
    assert_int_equal(ring_poll_start(R, &t.p, efd2, POLLIN), 0);
    efd_signal(efd2);
    WAIT_INT(&t.ready, 5);
    assert_int_equal(t.ready, 5);
    ring_poll_stop(R, &t.p);
    run_until(poll_not_busy, &t.p, "poll to finish");
    assert_int_equal(ring_pending(R), 0);
    close(efd);
    close(efd2);
}

static void test_poll_pipe(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    struct tpoll rd = {.p.on_ready = on_ready, .drain = true};
    struct tpoll wr = {.p.on_ready = on_ready};
    assert_int_equal(ring_poll_start(R, &rd.p, fds[0], POLLIN), 0);
    assert_int_equal(ring_poll_start(R, &wr.p, fds[1], POLLOUT), 0);
    assert_int_equal(ring_pending(R), 2);
    run_until(poll_ready_n, &wr, "writable pipe");
    assert_true(wr.revents & POLLOUT);
    ring_poll_stop(R, &wr.p);
    assert_int_equal(write(fds[1], "x", 1), 1);
    run_until(poll_ready_n, &rd, "readable pipe");
    assert_true(rd.revents & POLLIN);
    /* stop from outside, then the writer goes away: no callback for the hang-up */
    ring_poll_stop(R, &rd.p);
    close(fds[1]);
    run_until(poll_not_busy, &rd.p, "reader poll to finish");
    run_until(poll_not_busy, &wr.p, "writer poll to finish");
    int r = rd.ready;
    for (int i = 0; i < 3; i++)
        turn(0);
    assert_int_equal(rd.ready, r);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timers_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers_rearm_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers_from_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_once_per_queueing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_chain_next_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_end_of_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_send_1mb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_receive_and_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_eof_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_close_outstanding_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_close_outstanding_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sock_source_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addr_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_eventfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_pipe, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
