/* tests/unit/engine/redis/test_rds.c — the pipelined Redis client against a real redis-server on
 * a free loopback port (started per test in a temp dir, killed at the end): URL parsing,
 * connect, 10,000 pipelined commands answered in order, error and array replies, AUTH and
 * SELECT, losing the server (pending callbacks get NULL) and reconnecting to a new one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/redis/rds.h"
#include "engine/ring/ring.h"
#include "engine/util/log.h"

/* ------------------------------------------------------------------ URL parsing */

static void test_url_parse(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int rc;
        const char *host;
        uint16_t port;
        const char *pw;
        unsigned db;
    } cases[] = {
        {"redis://127.0.0.1:6379", 0, "127.0.0.1", 6379, "", 0},
        {"redis://127.0.0.25", 0, "127.0.0.25", 6379, "", 0},
        {"redis://localhost:7000/3", 0, "localhost", 7000, "", 3},
        {"redis://cache.internal/", 0, "cache.internal", 6379, "", 0},
        {"redis://:s3cret@127.0.0.25:6380/15", 0, "127.0.0.25", 6380, "s3cret", 15},
        {"redis://user:pw@h:1", 0, "h", 1, "pw", 0},
        {"redis://:p@ss:w@rd@h", 0, "h", 6379, "p@ss:w@rd", 0},
        {"redis://:@h", 0, "h", 6379, "", 0},
        {"redis://[::1]:6390/2", 0, "::1", 6390, "", 2},
        {"redis://[::1]", 0, "::1", 6379, "", 0},
        {"redis://[2001:db8::7]/4", 0, "2001:db8::7", 6379, "", 4},
        {"redis://:pw@[::1]:1", 0, "::1", 1, "pw", 0},
        {"127.0.0.1:6000", 0, "127.0.0.1", 6000, "", 0},
        {"redis://h:65535/10000", 0, "h", 65535, "", 10000},
        /* bad */
        {"http://h:6379", -1, NULL, 0, NULL, 0},
        {"rediss://h", -1, NULL, 0, NULL, 0},
        {"redis://", -1, NULL, 0, NULL, 0},
        {"", -1, NULL, 0, NULL, 0},
        {"redis://:6379", -1, NULL, 0, NULL, 0},
        {"redis://h:", -1, NULL, 0, NULL, 0},
        {"redis://h:0", -1, NULL, 0, NULL, 0},
        {"redis://h:65536", -1, NULL, 0, NULL, 0},
        {"redis://h:63x79", -1, NULL, 0, NULL, 0},
        {"redis://h:6379:1", -1, NULL, 0, NULL, 0},
        {"redis://h/x", -1, NULL, 0, NULL, 0},
        {"redis://h/1/2", -1, NULL, 0, NULL, 0},
        {"redis://h/-1", -1, NULL, 0, NULL, 0},
        {"redis://h/10001", -1, NULL, 0, NULL, 0},
        {"redis://[::1", -1, NULL, 0, NULL, 0},
        {"redis://[::1]x", -1, NULL, 0, NULL, 0},
        {"redis://[]:1", -1, NULL, 0, NULL, 0},
        {"redis://[::1]:", -1, NULL, 0, NULL, 0},
        {"redis://:pw@", -1, NULL, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char host[64], pw[32];
        uint16_t port = 1;
        unsigned db = 99;
        const char *why = NULL;
        int rc = rds_url_parse(cases[i].url, host, sizeof host, &port, pw, sizeof pw, &db, &why);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d (%s), wanted %d", cases[i].url, rc, why ? why : "", cases[i].rc);
        if (rc) {
            assert_non_null(why);
            continue;
        }
        assert_string_equal(host, cases[i].host);
        assert_int_equal(port, cases[i].port);
        assert_string_equal(pw, cases[i].pw);
        assert_int_equal(db, cases[i].db);
    }
    /* lengths: host and password must fit the caller's buffers */
    char host[8], pw[4];
    uint16_t port;
    unsigned db;
    const char *why = NULL;
    assert_int_equal(rds_url_parse("redis://a-long-host-name", host, sizeof host, &port, pw,
                                   sizeof pw, &db, &why), -1);
    assert_non_null(why);
    why = NULL;
    assert_int_equal(rds_url_parse("redis://:longpw@h", host, sizeof host, &port, pw, sizeof pw,
                                   &db, &why), -1);
    assert_non_null(why);
    assert_int_equal(rds_url_parse("redis://:pwd@h", host, sizeof host, &port, pw, sizeof pw,
                                   &db, &why), 0);
    assert_string_equal(pw, "pwd");
}

/* ------------------------------------------------------------------ redis-server */

static char DIR_[64];
static pid_t SERVER = -1;
static uint16_t PORT;
static struct ring *R;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts redis-server on PORT (extra: one more "--option value" pair, or NULL). */
static void server_start(const char *opt, const char *val)
{
    char port[8];
    snprintf(port, sizeof port, "%u", PORT);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive a crashed test */
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", DIR_, opt, val, NULL};
        if (!opt)
            argv[11] = NULL;
        execvp("redis-server", (char **)argv);
        _exit(127);
    }
    SERVER = pid;
    uint64_t start = wall_ms();
    while (!port_open(PORT)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            SERVER = -1;
            fail_msg("redis-server exited at start (status %d)", st);
        }
        if (wall_ms() - start > 10000)
            fail_msg("redis-server did not start on port %u", PORT);
        usleep(5000);
    }
}

static void server_kill(void)
{
    if (SERVER <= 0)
        return;
    kill(SERVER, SIGKILL);
    waitpid(SERVER, NULL, 0);
    SERVER = -1;
}

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);   /* connection-lost warnings are expected here */
    snprintf(DIR_, sizeof DIR_, "/tmp/salvo-rds-XXXXXX");
    assert_non_null(mkdtemp(DIR_));
    PORT = free_port();
    struct ring_config cfg = {.entries = 256, .recv_buffers = 256, .recv_buf_bytes = 4096};
    assert_int_equal(ring_create(&R, &cfg), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    server_kill();
    for (int i = 0; i < 200 && ring_pending(R) > 0; i++)
        ring_run_once(R, 5);
    assert_int_equal(ring_pending(R), 0);
    ring_destroy(R);
    R = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ------------------------------------------------------------------ client helpers */

struct conn {
    struct rds *r;
    int ups, downs;
    char why[128];
};

static void on_up(struct rds *r, void *arg)
{
    struct conn *c = arg;
    assert_ptr_equal(r, c->r);
    c->ups++;
}

static void on_down(struct rds *r, void *arg, const char *why)
{
    struct conn *c = arg;
    assert_ptr_equal(r, c->r);
    assert_non_null(why);
    snprintf(c->why, sizeof c->why, "%s", why);
    c->downs++;
}

static void run_until(bool (*cond)(void *), void *arg, const char *what)
{
    uint64_t start = wall_ms();
    while (!cond(arg)) {
        if (wall_ms() - start > 10000)
            fail_msg("timed out waiting for %s", what);
        assert_int_equal(ring_run_once(R, 10), 0);
    }
}

static bool ups_reached(void *arg)
{
    struct conn *c = arg;
    return c->ups >= 1 && rds_is_up(c->r);
}

static void conn_open(struct conn *c, const char *url, unsigned connect_timeout_ms)
{
    memset(c, 0, sizeof *c);
    char def[64];
    snprintf(def, sizeof def, "redis://127.0.0.1:%u", PORT);
    struct rds_config cfg = {.url = url ? url : def, .connect_timeout_ms = connect_timeout_ms,
                             .reconnect_min_ms = 20, .reconnect_max_ms = 100,
                             .on_up = on_up, .on_down = on_down, .arg = c, .name = "test"};
    const char *why = NULL;
    /* on_up cannot run inside rds_create (connecting is asynchronous), so c->r is set first */
    assert_int_equal(rds_create(&c->r, R, &cfg, &why), 0);
}

/* Replies are copied out of the callback (they are only valid during it). */
struct reply {
    bool called, null;
    int calls;
    enum rds_type type;
    char str[256];
    size_t len;
    long long integer;
    size_t nelem;
};

static void on_reply(struct rds *r, const struct rds_reply *rep, void *arg)
{
    (void)r;
    struct reply *x = arg;
    x->called = true;
    x->calls++;
    x->null = rep == NULL;
    if (!rep)
        return;
    x->type = rds_reply_type(rep);
    size_t len;
    const char *s = rds_reply_str(rep, &len);
    x->len = len;
    memcpy(x->str, s, len < sizeof x->str - 1 ? len : sizeof x->str - 1);
    x->str[len < sizeof x->str - 1 ? len : sizeof x->str - 1] = '\0';
    x->integer = rds_reply_int(rep);
    x->nelem = rds_reply_len(rep);
}

static bool reply_called(void *arg)
{
    return ((struct reply *)arg)->called;
}

/* Runs one command to completion. */
static void cmd(struct conn *c, struct reply *x, int argc, const char *const *argv)
{
    memset(x, 0, sizeof *x);
    assert_int_equal(rds_commandv(c->r, on_reply, x, argc, argv), 0);
    run_until(reply_called, x, argv[0]);
    assert_int_equal(x->calls, 1);
    assert_false(x->null);
}
#define CMD(c, x, ...)                                                                          \
    do {                                                                                        \
        const char *av_[] = {__VA_ARGS__};                                                      \
        cmd((c), (x), (int)(sizeof av_ / sizeof *av_), av_);                                    \
    } while (0)

static void conn_close(struct conn *c)
{
    rds_destroy(c->r);
    c->r = NULL;
}

/* ------------------------------------------------------------------ tests */

static void test_connect_and_basic(void **state)
{
    (void)state;
    server_start(NULL, NULL);
    struct conn c;
    conn_open(&c, NULL, 0);
    assert_false(rds_is_up(c.r));
    const char *av[] = {"PING"};
    assert_int_equal(rds_commandv(c.r, on_reply, NULL, 1, av), -ENOTCONN);  /* not up yet */
    run_until(ups_reached, &c, "on_up");
    assert_int_equal(c.ups, 1);
    assert_int_equal(c.downs, 0);
    struct reply x;
    CMD(&c, &x, "PING");
    assert_int_equal(x.type, RDS_STATUS);
    assert_string_equal(x.str, "PONG");
    CMD(&c, &x, "SET", "k", "v");
    assert_int_equal(x.type, RDS_STATUS);
    assert_string_equal(x.str, "OK");
    CMD(&c, &x, "GET", "k");
    assert_int_equal(x.type, RDS_STRING);
    assert_string_equal(x.str, "v");
    CMD(&c, &x, "GET", "missing");
    assert_int_equal(x.type, RDS_NIL);
    assert_int_equal(x.len, 0);
    assert_string_equal(x.str, "");
    CMD(&c, &x, "INCRBY", "n", "41");
    assert_int_equal(x.type, RDS_INTEGER);
    assert_int_equal(x.integer, 41);
    CMD(&c, &x, "GET", "n");
    assert_int_equal(x.type, RDS_STRING);
    assert_int_equal(x.integer, 41);     /* rds_reply_int reads a numeric string */
    assert_int_equal(x.nelem, 0);        /* not an array */

    /* binary-safe arguments and values (NUL, CR LF) */
    static const char val[] = "a\0b\r\nc";
    const char *bav[] = {"SET", "bin", val};
    const size_t blen[] = {3, 3, sizeof val - 1};
    memset(&x, 0, sizeof x);
    assert_int_equal(rds_command(c.r, on_reply, &x, 3, bav, blen), 0);
    run_until(reply_called, &x, "binary SET");
    CMD(&c, &x, "GET", "bin");
    assert_int_equal(x.len, sizeof val - 1);
    assert_memory_equal(x.str, val, sizeof val - 1);

    /* a large value comes back whole, through many receive buffers */
    size_t big = 300000;
    char *v = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)('a' + i % 26);
    v[big] = '\0';
    CMD(&c, &x, "SET", "big", v);
    CMD(&c, &x, "STRLEN", "big");
    assert_int_equal(x.integer, big);
    free(v);

    struct rds_stats st;
    rds_get_stats(c.r, &st);
    assert_true(st.commands >= 10);
    assert_int_equal(st.commands, st.replies);
    assert_int_equal(rds_pending(c.r), 0);
    conn_close(&c);
}

/* ---- 10,000 pipelined SET then GET, replies in order ---- */

static unsigned NEXT_REPLY, BAD_REPLIES;

static void on_set(struct rds *r, const struct rds_reply *rep, void *arg)
{
    (void)r;
    unsigned i = (unsigned)(uintptr_t)arg;
    if (i != NEXT_REPLY++ || !rep || rds_reply_type(rep) != RDS_STATUS)
        BAD_REPLIES++;
}

static void on_get(struct rds *r, const struct rds_reply *rep, void *arg)
{
    (void)r;
    unsigned i = (unsigned)(uintptr_t)arg;
    char want[32];
    int n = snprintf(want, sizeof want, "value-%u", i * 7);
    size_t len;
    const char *s = rep ? rds_reply_str(rep, &len) : NULL;
    if (i != NEXT_REPLY++ || !rep || rds_reply_type(rep) != RDS_STRING || len != (size_t)n ||
        memcmp(s, want, len) != 0)
        BAD_REPLIES++;
}

static bool replies_reached(void *arg)
{
    return NEXT_REPLY >= *(unsigned *)arg;
}

static void test_pipeline_10000(void **state)
{
    (void)state;
    server_start(NULL, NULL);
    struct conn c;
    conn_open(&c, NULL, 0);
    run_until(ups_reached, &c, "on_up");
    const unsigned N = 10000;
    struct rds_stats st0, st1;
    rds_get_stats(c.r, &st0);
    NEXT_REPLY = BAD_REPLIES = 0;
    for (unsigned i = 0; i < N; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "key:%u", i);
        snprintf(val, sizeof val, "value-%u", i * 7);
        const char *av[] = {"SET", key, val};
        assert_int_equal(rds_commandv(c.r, on_set, (void *)(uintptr_t)i, 3, av), 0);
    }
    assert_int_equal(rds_pending(c.r), N);
    assert_int_equal(NEXT_REPLY, 0);   /* never answered inside rds_command */
    run_until(replies_reached, (void *)&N, "10000 SET replies");
    rds_get_stats(c.r, &st1);
    /* queued in one turn: written in one go, not one write per command */
    assert_true(st1.writes - st0.writes <= 2);
    NEXT_REPLY = 0;
    for (unsigned i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "key:%u", i);
        const char *av[] = {"GET", key};
        assert_int_equal(rds_commandv(c.r, on_get, (void *)(uintptr_t)i, 2, av), 0);
    }
    run_until(replies_reached, (void *)&N, "10000 GET replies");
    assert_int_equal(BAD_REPLIES, 0);
    assert_int_equal(rds_pending(c.r), 0);
    rds_get_stats(c.r, &st1);
    assert_int_equal(st1.replies - st0.replies, 2 * N);
    conn_close(&c);
}

static void test_errors_and_arrays(void **state)
{
    (void)state;
    server_start(NULL, NULL);
    struct conn c;
    conn_open(&c, NULL, 0);
    run_until(ups_reached, &c, "on_up");
    struct reply x;

    /* errors are replies: delivered as RDS_ERROR, the pipeline goes on */
    CMD(&c, &x, "SET", "str", "x");
    struct reply e1 = {0}, e2 = {0}, after = {0};
    const char *wrongtype[] = {"LPUSH", "str", "y"};
    const char *unknown[] = {"NOSUCHCOMMAND", "a"};
    const char *get[] = {"GET", "str"};
    assert_int_equal(rds_commandv(c.r, on_reply, &e1, 3, wrongtype), 0);
    assert_int_equal(rds_commandv(c.r, on_reply, &e2, 2, unknown), 0);
    assert_int_equal(rds_commandv(c.r, on_reply, &after, 2, get), 0);
    run_until(reply_called, &after, "GET after errors");
    assert_int_equal(e1.type, RDS_ERROR);
    assert_non_null(strstr(e1.str, "WRONGTYPE"));
    assert_int_equal(e2.type, RDS_ERROR);
    assert_int_equal(after.type, RDS_STRING);
    assert_string_equal(after.str, "x");
    assert_true(rds_is_up(c.r));
    assert_int_equal(c.downs, 0);

    /* LRANGE: an array of strings; an empty array */
    CMD(&c, &x, "RPUSH", "list", "a", "bb", "ccc");
    assert_int_equal(x.integer, 3);
    CMD(&c, &x, "LRANGE", "list", "0", "-1");
    assert_int_equal(x.type, RDS_ARRAY);
    assert_int_equal(x.nelem, 3);
    CMD(&c, &x, "LRANGE", "nolist", "0", "-1");
    assert_int_equal(x.type, RDS_ARRAY);
    assert_int_equal(x.nelem, 0);
    conn_close(&c);
}

/* Walks nested replies inside the callback. */
struct shape {
    bool called, ok;
    char detail[128];
};

static void on_lrange(struct rds *r, const struct rds_reply *rep, void *arg)
{
    (void)r;
    struct shape *s = arg;
    s->called = true;
    static const char *const want[] = {"a", "bb", "ccc"};
    s->ok = rep && rds_reply_type(rep) == RDS_ARRAY && rds_reply_len(rep) == 3;
    for (size_t i = 0; s->ok && i < 3; i++) {
        const struct rds_reply *e = rds_reply_elem(rep, i);
        size_t len;
        const char *v = rds_reply_str(e, &len);
        s->ok = rds_reply_type(e) == RDS_STRING && len == strlen(want[i]) && memcmp(v, want[i], len) == 0;
        if (!s->ok)
            snprintf(s->detail, sizeof s->detail, "element %zu", i);
    }
}

static void on_xrange(struct rds *r, const struct rds_reply *rep, void *arg)
{
    (void)r;
    struct shape *s = arg;
    s->called = true;
    s->ok = rep && rds_reply_type(rep) == RDS_ARRAY && rds_reply_len(rep) == 2;
    for (size_t i = 0; s->ok && i < 2; i++) {
        const struct rds_reply *entry = rds_reply_elem(rep, i);
        /* [id, [field, value, field, value]] */
        s->ok = rds_reply_type(entry) == RDS_ARRAY && rds_reply_len(entry) == 2;
        if (!s->ok)
            break;
        const struct rds_reply *id = rds_reply_elem(entry, 0);
        const struct rds_reply *fv = rds_reply_elem(entry, 1);
        char want_id[16];
        snprintf(want_id, sizeof want_id, "%zu-1", i + 1);
        s->ok = rds_reply_type(id) == RDS_STRING && strcmp(rds_reply_str(id, NULL), want_id) == 0 &&
                rds_reply_type(fv) == RDS_ARRAY && rds_reply_len(fv) == 4 &&
                strcmp(rds_reply_str(rds_reply_elem(fv, 0), NULL), "job") == 0 &&
                strcmp(rds_reply_str(rds_reply_elem(fv, 2), NULL), "n") == 0 &&
                rds_reply_int(rds_reply_elem(fv, 3)) == (long long)i + 1;
        if (!s->ok)
            snprintf(s->detail, sizeof s->detail, "entry %zu", i);
    }
}

static bool shape_called(void *arg)
{
    return ((struct shape *)arg)->called;
}

static void test_reply_accessors_nested(void **state)
{
    (void)state;
    server_start(NULL, NULL);
    struct conn c;
    conn_open(&c, NULL, 0);
    run_until(ups_reached, &c, "on_up");
    struct reply x;
    CMD(&c, &x, "RPUSH", "list", "a", "bb", "ccc");
    struct shape s = {0};
    const char *lr[] = {"LRANGE", "list", "0", "-1"};
    assert_int_equal(rds_commandv(c.r, on_lrange, &s, 4, lr), 0);
    run_until(shape_called, &s, "LRANGE");
    if (!s.ok)
        fail_msg("LRANGE reply: %s", s.detail);

    CMD(&c, &x, "XADD", "stream", "1-1", "job", "{\"a\":1}", "n", "1");
    assert_int_equal(x.type, RDS_STRING);
    assert_string_equal(x.str, "1-1");
    CMD(&c, &x, "XADD", "stream", "2-1", "job", "{\"b\":2}", "n", "2");
    s = (struct shape){0};
    const char *xr[] = {"XRANGE", "stream", "-", "+"};
    assert_int_equal(rds_commandv(c.r, on_xrange, &s, 4, xr), 0);
    run_until(shape_called, &s, "XRANGE");
    if (!s.ok)
        fail_msg("XRANGE reply: %s", s.detail);

    /* rds_reply_is_error on non-errors and NULL */
    assert_false(rds_reply_is_error(NULL, "ERR"));
    conn_close(&c);
}

static void test_auth_and_db(void **state)
{
    (void)state;
    server_start("--requirepass", "s3cret");
    struct conn c;
    char url[128];
    snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%u/3", PORT);
    conn_open(&c, url, 0);
    run_until(ups_reached, &c, "on_up with AUTH");
    struct reply x;
    CMD(&c, &x, "CLIENT", "INFO");
    assert_int_equal(x.type, RDS_STRING);
    assert_non_null(strstr(x.str, " db=3 "));
    conn_close(&c);

    /* a wrong password never comes up (and does not report a down it never had) */
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%u", PORT);
    conn_open(&c, url, 0);
    for (int i = 0; i < 30; i++)
        ring_run_once(R, 10);
    assert_false(rds_is_up(c.r));
    assert_int_equal(c.ups, 0);
    assert_int_equal(c.downs, 0);
    struct rds_stats st;
    rds_get_stats(c.r, &st);
    assert_true(st.reconnects >= 2);    /* it keeps trying */
    conn_close(&c);
}

static bool downs_reached(void *arg)
{
    return ((struct conn *)arg)->downs >= 1;
}

static bool second_up(void *arg)
{
    struct conn *c = arg;
    return c->ups >= 2 && rds_is_up(c->r);
}

static void test_server_lost_and_back(void **state)
{
    (void)state;
    server_start(NULL, NULL);
    struct conn c;
    conn_open(&c, NULL, 0);
    run_until(ups_reached, &c, "on_up");
    /* a command that waits forever, and two pipelined behind it */
    struct reply blk = {0}, p1 = {0}, p2 = {0};
    const char *blpop[] = {"BLPOP", "nothing", "0"};
    const char *ping[] = {"PING"};
    assert_int_equal(rds_commandv(c.r, on_reply, &blk, 3, blpop), 0);
    assert_int_equal(rds_commandv(c.r, on_reply, &p1, 1, ping), 0);
    assert_int_equal(rds_commandv(c.r, on_reply, &p2, 1, ping), 0);
    for (int i = 0; i < 10; i++)
        ring_run_once(R, 5);
    assert_false(blk.called);
    assert_int_equal(rds_pending(c.r), 3);

    server_kill();
    run_until(downs_reached, &c, "on_down");
    assert_int_equal(c.downs, 1);
    assert_false(rds_is_up(c.r));
    /* every waiting callback learned it, once, with NULL, in order */
    assert_true(blk.called && blk.null && blk.calls == 1);
    assert_true(p1.called && p1.null && p1.calls == 1);
    assert_true(p2.called && p2.null && p2.calls == 1);
    assert_int_equal(rds_pending(c.r), 0);
    struct reply x = {0};
    assert_int_equal(rds_commandv(c.r, on_reply, &x, 1, ping), -ENOTCONN);
    /* while the server is away it keeps retrying without reporting more downs */
    for (int i = 0; i < 20; i++)
        ring_run_once(R, 10);
    assert_int_equal(c.downs, 1);
    assert_int_equal(c.ups, 1);

    server_start(NULL, NULL);   /* same port */
    run_until(second_up, &c, "reconnect");
    assert_int_equal(c.ups, 2);
    CMD(&c, &x, "SET", "after", "1");
    CMD(&c, &x, "GET", "after");
    assert_string_equal(x.str, "1");
    struct rds_stats st;
    rds_get_stats(c.r, &st);
    assert_true(st.reconnects >= 2);

    /* destroy with a command outstanding: its callback gets NULL, once */
    struct reply last = {0};
    assert_int_equal(rds_commandv(c.r, on_reply, &last, 3, blpop), 0);
    conn_close(&c);
    assert_true(last.called && last.null && last.calls == 1);
    assert_int_equal(c.downs, 2);    /* was up: destroy reports it too */
}

static void test_reply_too_large(void **state)
{
    (void)state;
    server_start(NULL, NULL);
    struct conn c;
    memset(&c, 0, sizeof c);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", PORT);
    struct rds_config cfg = {.url = url, .reconnect_min_ms = 20, .reconnect_max_ms = 100,
                             .max_reply_bytes = 10000, .on_up = on_up, .on_down = on_down,
                             .arg = &c};
    const char *why;
    assert_int_equal(rds_create(&c.r, R, &cfg, &why), 0);
    run_until(ups_reached, &c, "on_up");
    char *v = malloc(200001);
    memset(v, 'v', 200000);
    v[200000] = '\0';
    struct reply x;
    CMD(&c, &x, "SET", "big", v);   /* a small reply: fine */
    free(v);
    memset(&x, 0, sizeof x);
    const char *get[] = {"GET", "big"};
    assert_int_equal(rds_commandv(c.r, on_reply, &x, 2, get), 0);
    run_until(reply_called, &x, "GET of an oversized value");
    assert_true(x.null);
    assert_int_equal(c.downs, 1);
    assert_non_null(strstr(c.why, "too large"));
    run_until(second_up, &c, "reconnect after oversized reply");
    CMD(&c, &x, "PING");
    conn_close(&c);
}

/* Regression (fixed): a server that accepts the TCP connection but never answers the handshake (a hung
 * Redis, a black-holed proxy) leaves the client in RDS_HANDSHAKE forever: RING_SOCK_CONNECTED
 * cancels the connect timer (rds_hiredis.c:366, ring_timer_cancel in rds__on_sock) and
 * nothing re-arms it for the handshake, although rds__on_timer handles RDS_HANDSHAKE as a
 * timeout (rds_hiredis.c:411). Expected: after connect_timeout_ms the connection is dropped
 * and retried (reconnects grows); actual: one connection attempt, never up, never retried. */
static bool reconnected(void *arg)
{
    struct rds_stats st;
    rds_get_stats(arg, &st);
    return st.reconnects >= 2;
}

static void test_handshake_timeout(void **state)
{
    (void)state;
    /* a listener that never accepts or answers: the kernel completes the connect */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 16), 0);
    struct conn c;
    conn_open(&c, NULL, 100);
    uint64_t start = wall_ms();
    while (!reconnected(c.r) && wall_ms() - start < 2000)   /* 20 x the timeout */
        ring_run_once(R, 10);
    struct rds_stats st;
    rds_get_stats(c.r, &st);
    bool retried = st.reconnects >= 2;
    assert_false(rds_is_up(c.r));
    conn_close(&c);
    close(lfd);
    if (!retried)
        fail_msg("still waiting for the handshake after 2 s with connect_timeout_ms=100 "
                 "(%llu connection attempt)", (unsigned long long)st.reconnects);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test_setup_teardown(test_connect_and_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_10000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_accessors_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_and_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_lost_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
