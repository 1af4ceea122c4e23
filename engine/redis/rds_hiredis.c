/* engine/redis/rds_hiredis.c — the Redis client: RESP commands written through the ring,
 * replies parsed with hiredis's redisReader. The only file that includes hiredis. */
#include "engine/redis/rds.h"

#include <errno.h>
#include <netdb.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/buf.h"
#include "engine/util/log.h"

struct rds_pending_cb {
    rds_cb cb;
    void *arg;
};

enum rds_state { RDS_DOWN, RDS_CONNECTING, RDS_HANDSHAKE, RDS_UP };

struct rds {
    struct ring *ring;
    struct rds_config cfg;
    char host[256], password[256];
    uint16_t port;
    unsigned db;
    enum rds_state state;
    struct ring_sock sock;
    bool sock_open;
    redisReader *reader;
    struct buf out, wire;
    struct rds_pending_cb *q;
    unsigned q_cap, q_head, q_len;
    unsigned handshake_left;
    unsigned backoff_ms;
    struct ring_timer timer;      /* reconnect backoff / connect timeout */
    struct ring_defer flush;
    struct rds_stats stats;
    bool destroying;
};

/* ---------------------------------------------------------------- replies */

enum rds_type rds_reply_type(const struct rds_reply *r)
{
    switch (((const redisReply *)r)->type) {
    case REDIS_REPLY_STRING: return RDS_STRING;
    case REDIS_REPLY_ARRAY: return RDS_ARRAY;
    case REDIS_REPLY_INTEGER: return RDS_INTEGER;
    case REDIS_REPLY_STATUS: return RDS_STATUS;
    case REDIS_REPLY_ERROR: return RDS_ERROR;
    default: return RDS_NIL;
    }
}

const char *rds_reply_str(const struct rds_reply *r, size_t *len)
{
    const redisReply *x = (const redisReply *)r;
    if (x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS && x->type != REDIS_REPLY_ERROR) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = x->len;
    return x->str;
}

long long rds_reply_int(const struct rds_reply *r)
{
    const redisReply *x = (const redisReply *)r;
    if (x->type == REDIS_REPLY_INTEGER)
        return x->integer;
    if (x->type == REDIS_REPLY_STRING)
        return strtoll(x->str, NULL, 10);
    return 0;
}

size_t rds_reply_len(const struct rds_reply *r)
{
    const redisReply *x = (const redisReply *)r;
    return x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
}

const struct rds_reply *rds_reply_elem(const struct rds_reply *r, size_t i)
{
    const redisReply *x = (const redisReply *)r;
    return (const struct rds_reply *)x->element[i];
}

bool rds_reply_is_error(const struct rds_reply *r, const char *prefix)
{
    const redisReply *x = (const redisReply *)r;
    return x && x->type == REDIS_REPLY_ERROR && strncmp(x->str, prefix, strlen(prefix)) == 0;
}

/* ---------------------------------------------------------------- url */

int rds_url_parse(const char *url, char *host, size_t hostlen, uint16_t *port, char *password,
                  size_t pwlen, unsigned *db, const char **why)
{
    const char *p = url;
    *port = 6379;
    *db = 0;
    password[0] = '\0';
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://")) {
        *why = "only redis:// URLs are supported";
        return -1;
    }
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t pl = (size_t)(at - pw);
        if (pl >= pwlen) {
            *why = "password too long";
            return -1;
        }
        memcpy(password, pw, pl);
        password[pl] = '\0';
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hend = slash ? slash : p + strlen(p);
    const char *h = p, *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (!rb) {
            *why = "bad IPv6 host";
            return -1;
        }
        h++;
        colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
        hend = colon ? colon : rb;
        if (!colon && rb + 1 < (slash ? slash : p + strlen(p))) {
            *why = "bad host";
            return -1;
        }
        if (hend == rb + 1 || hend == colon)
            hend = rb;
    } else {
        colon = memchr(h, ':', (size_t)(hend - h));
        if (colon)
            hend = colon;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= hostlen) {
        *why = "missing or too long host";
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon) {
        char *e;
        unsigned long v = strtoul(colon + 1, &e, 10);
        if (e == colon + 1 || v == 0 || v > 65535 || (*e && *e != '/')) {
            *why = "bad port";
            return -1;
        }
        *port = (uint16_t)v;
    }
    if (slash && slash[1]) {
        char *e;
        unsigned long v = strtoul(slash + 1, &e, 10);
        if (*e || v > 10000) {
            *why = "bad database number";
            return -1;
        }
        *db = (unsigned)v;
    }
    return 0;
}

/* ---------------------------------------------------------------- queue */

static int rds__q_push(struct rds *r, rds_cb cb, void *arg)
{
    if (r->q_len == r->q_cap) {
        unsigned cap = r->q_cap ? r->q_cap * 2 : 1024;
        struct rds_pending_cb *nq = malloc(cap * sizeof *nq);
        if (!nq)
            return -ENOMEM;
        for (unsigned i = 0; i < r->q_len; i++)
            nq[i] = r->q[(r->q_head + i) % r->q_cap];
        free(r->q);
        r->q = nq;
        r->q_cap = cap;
        r->q_head = 0;
    }
    r->q[(r->q_head + r->q_len) % r->q_cap] = (struct rds_pending_cb){cb, arg};
    r->q_len++;
    return 0;
}

static bool rds__q_pop(struct rds *r, struct rds_pending_cb *out)
{
    if (!r->q_len)
        return false;
    *out = r->q[r->q_head];
    r->q_head = (r->q_head + 1) % r->q_cap;
    r->q_len--;
    return true;
}

/* ---------------------------------------------------------------- connection */

static void rds__connect(struct rds *r);

static void rds__schedule_reconnect(struct rds *r)
{
    if (r->destroying)
        return;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : r->cfg.reconnect_min_ms;
    if (r->backoff_ms > r->cfg.reconnect_max_ms)
        r->backoff_ms = r->cfg.reconnect_max_ms;
    ring_timer_arm(r->ring, &r->timer, r->backoff_ms);
}

/* Drops the connection: every waiting callback learns it with a NULL reply. */
static void rds__down(struct rds *r, const char *why)
{
    bool was_up = r->state == RDS_UP;
    if (r->state == RDS_DOWN)
        return;
    r->state = RDS_DOWN;
    ring_timer_cancel(r->ring, &r->timer);
    if (r->sock_open)
        ring_sock_close(&r->sock);
    buf_clear(&r->out);
    if (r->reader) {
        redisReaderFree(r->reader);
        r->reader = NULL;
    }
    struct rds_pending_cb pc;
    while (rds__q_pop(r, &pc))
        if (pc.cb)
            pc.cb(r, NULL, pc.arg);
    if (r->destroying)
        log_debug("redis %s: closed", r->cfg.name ? r->cfg.name : "");
    else
        log_warn("redis %s: connection lost: %s", r->cfg.name ? r->cfg.name : "", why);
    if (was_up && r->cfg.on_down)
        r->cfg.on_down(r, r->cfg.arg, why);
    if (!r->sock_open)
        rds__schedule_reconnect(r);
    /* else: reconnect once the socket is closed (RING_SOCK_CLOSED) */
}

static void rds__flush(struct rds *r)
{
    if (!r->sock_open || ring_sock_sending(&r->sock) || r->out.len == 0 || r->state == RDS_DOWN)
        return;
    struct buf t = r->wire;
    r->wire = r->out;
    r->out = t;
    buf_clear(&r->out);
    r->stats.writes++;
    if (ring_sock_send(&r->sock, r->wire.data, r->wire.len) != 0)
        rds__down(r, "send failed");
}

static void rds__on_flush(struct ring_defer *d)
{
    struct rds *r = (struct rds *)((char *)d - offsetof(struct rds, flush));
    rds__flush(r);
}

static int rds__append_cmd(struct rds *r, int argc, const char *const *argv, const size_t *argvlen)
{
    size_t need = 16;
    for (int i = 0; i < argc; i++)
        need += 24 + (argvlen ? argvlen[i] : strlen(argv[i]));
    if (buf_reserve(&r->out, need) != 0)
        return -ENOBUFS;
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "*%d\r\n", argc);
    buf_append(&r->out, hdr, (size_t)n);
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        n = snprintf(hdr, sizeof hdr, "$%zu\r\n", l);
        buf_append(&r->out, hdr, (size_t)n);
        buf_append(&r->out, argv[i], l);
        buf_append(&r->out, "\r\n", 2);
    }
    return 0;
}

static int rds__queue(struct rds *r, rds_cb cb, void *arg, int argc, const char *const *argv,
                      const size_t *argvlen)
{
    size_t before = r->out.len;
    if (rds__append_cmd(r, argc, argv, argvlen) != 0)
        return -ENOBUFS;
    if (rds__q_push(r, cb, arg) != 0) {
        r->out.len = before;
        return -ENOMEM;
    }
    r->stats.commands++;
    r->flush.fn = rds__on_flush;
    ring_defer(r->ring, &r->flush);
    return 0;
}

static void rds__on_handshake(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)arg;
    if (!reply)
        return;
    if (rds_reply_type(reply) == RDS_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "handshake: %s", rds_reply_str(reply, NULL));
        rds__down(r, why);
        return;
    }
    if (--r->handshake_left == 0) {
        ring_timer_cancel(r->ring, &r->timer);
        r->state = RDS_UP;
        r->backoff_ms = 0;
        log_info("redis %s: connected to %s:%u", r->cfg.name ? r->cfg.name : "", r->host, r->port);
        if (r->cfg.on_up)
            r->cfg.on_up(r, r->cfg.arg);
    }
}

static void rds__on_input(struct rds *r, const uint8_t *data, size_t len)
{
    if (redisReaderFeed(r->reader, (const char *)data, len) != REDIS_OK) {
        rds__down(r, "reply parser error");
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
            rds__down(r, r->reader->errstr[0] ? r->reader->errstr : "protocol error");
            return;
        }
        if (!reply)
            break;
        struct rds_pending_cb pc;
        if (!rds__q_pop(r, &pc)) {
            freeReplyObject(reply);
            rds__down(r, "reply without a command");
            return;
        }
        r->stats.replies++;
        if (pc.cb)
            pc.cb(r, (const struct rds_reply *)reply, pc.arg);
        freeReplyObject(reply);
        if (r->state == RDS_DOWN)
            return;
    }
    /* hiredis keeps the unparsed tail in its own buffer; bound it */
    if (r->reader->len - r->reader->pos > r->cfg.max_reply_bytes)
        rds__down(r, "reply too large");
}

static void rds__on_sock(struct ring_sock *s, enum ring_sock_event ev, const uint8_t *data,
                         size_t len, int err)
{
    struct rds *r = (struct rds *)((char *)s - offsetof(struct rds, sock));
    char why[128];
    switch (ev) {
    case RING_SOCK_CONNECTED: {
        /* the handshake (AUTH, SELECT) gets the same time as the connect */
        ring_timer_arm(r->ring, &r->timer, r->cfg.connect_timeout_ms);
        r->reader = redisReaderCreate();
        if (!r->reader) {
            rds__down(r, "out of memory");
            return;
        }
        r->state = RDS_HANDSHAKE;
        r->handshake_left = 1;
        if (r->password[0]) {
            const char *av[] = {"AUTH", r->password};
            rds__queue(r, rds__on_handshake, NULL, 2, av, NULL);
            r->handshake_left++;
        }
        char dbs[16];
        snprintf(dbs, sizeof dbs, "%u", r->db);
        const char *sv[] = {"SELECT", dbs};
        rds__queue(r, rds__on_handshake, NULL, 2, sv, NULL);
        return;
    }
    case RING_SOCK_DATA:
        rds__on_input(r, data, len);
        return;
    case RING_SOCK_WRITTEN:
        buf_clear(&r->wire);
        rds__flush(r);
        return;
    case RING_SOCK_EOF:
        rds__down(r, "server closed the connection");
        return;
    case RING_SOCK_ERROR:
        snprintf(why, sizeof why, "%s", strerrordesc_np(-err) ? strerrordesc_np(-err) : "socket error");
        rds__down(r, why);
        return;
    case RING_SOCK_CLOSED:
        r->sock_open = false;
        buf_clear(&r->wire);
        if (!r->destroying)
            rds__schedule_reconnect(r);
        return;
    }
}

static void rds__on_timer(struct ring_timer *t)
{
    struct rds *r = (struct rds *)((char *)t - offsetof(struct rds, timer));
    if (r->state == RDS_CONNECTING || r->state == RDS_HANDSHAKE) {
        rds__down(r, "connect timeout");
        return;
    }
    rds__connect(r);
}

static void rds__connect(struct rds *r)
{
    struct sockaddr_storage sa;
    socklen_t sl;
    if (ring_addr_parse(r->host, r->port, &sa, &sl) != 0) {
        /* A name (a container's service name, usually): resolved with the system resolver.
         * This blocks the loop briefly, but only when (re)connecting to Redis. */
        /* IPv4 first: Redis commonly binds 127.0.0.1 while "localhost" may also be ::1 */
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_INET}, *ai = NULL;
        char port[8];
        snprintf(port, sizeof port, "%u", r->port);
        int gr = getaddrinfo(r->host, port, &hints, &ai);
        if (gr != 0) {
            hints.ai_family = AF_UNSPEC;
            gr = getaddrinfo(r->host, port, &hints, &ai);
        }
        if (gr != 0 || !ai) {
            log_warn("redis: cannot resolve '%s': %s", r->host, gai_strerror(gr));
            if (ai)
                freeaddrinfo(ai);
            rds__schedule_reconnect(r);
            return;
        }
        memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
        sl = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    r->sock.on_event = rds__on_sock;
    int rc = ring_sock_connect(r->ring, &r->sock, (struct sockaddr *)&sa, sl, NULL, 0);
    if (rc != 0) {
        log_warn("redis: connect: %s", strerrordesc_np(-rc));
        rds__schedule_reconnect(r);
        return;
    }
    r->sock_open = true;
    r->state = RDS_CONNECTING;
    r->stats.reconnects++;
    ring_timer_arm(r->ring, &r->timer, r->cfg.connect_timeout_ms);
}

/* ---------------------------------------------------------------- public */

int rds_create(struct rds **out, struct ring *ring, const struct rds_config *cfg, const char **why)
{
    struct rds *r = calloc(1, sizeof *r);
    if (!r) {
        *why = "out of memory";
        return -1;
    }
    r->ring = ring;
    r->cfg = *cfg;
    if (!r->cfg.connect_timeout_ms)
        r->cfg.connect_timeout_ms = 2000;
    if (!r->cfg.reconnect_min_ms)
        r->cfg.reconnect_min_ms = 100;
    if (!r->cfg.reconnect_max_ms)
        r->cfg.reconnect_max_ms = 5000;
    if (!r->cfg.max_reply_bytes)
        r->cfg.max_reply_bytes = 64u << 20;
    if (rds_url_parse(cfg->url ? cfg->url : "redis://127.0.0.1:6379", r->host, sizeof r->host,
                      &r->port, r->password, sizeof r->password, &r->db, why) != 0) {
        free(r);
        return -1;
    }
    buf_init(&r->out, 256u << 20);
    buf_init(&r->wire, 256u << 20);
    r->timer.on_fire = rds__on_timer;
    r->state = RDS_DOWN;
    rds__connect(r);
    *out = r;
    return 0;
}

void rds_destroy(struct rds *r)
{
    if (!r)
        return;
    r->destroying = true;
    rds__down(r, "shutting down");
    ring_timer_cancel(r->ring, &r->timer);
    /* the socket's CLOSED event must arrive before the memory goes */
    for (int i = 0; i < 100 && r->sock_open; i++)
        ring_run_once(r->ring, 10);
    ring_defer_cancel(r->ring, &r->flush);
    if (r->reader)
        redisReaderFree(r->reader);
    buf_fini(&r->out);
    buf_fini(&r->wire);
    free(r->q);
    free(r);
}

int rds_command(struct rds *r, rds_cb cb, void *arg, int argc, const char *const *argv,
                const size_t *argvlen)
{
    if (r->state != RDS_UP)
        return -ENOTCONN;
    return rds__queue(r, cb, arg, argc, argv, argvlen);
}

int rds_commandv(struct rds *r, rds_cb cb, void *arg, int argc, const char *const *argv)
{
    return rds_command(r, cb, arg, argc, argv, NULL);
}

bool rds_is_up(const struct rds *r) { return r->state == RDS_UP; }

unsigned rds_pending(const struct rds *r) { return r->q_len; }

void rds_get_stats(const struct rds *r, struct rds_stats *out) { *out = r->stats; }
