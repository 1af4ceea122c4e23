/* bench/sink/main.c — command line of bench_sink, the project's own fast SMTP sink used as
 * the destination in delivery benchmarks. Parses flags into the limits structs, raises the
 * descriptor limit, runs the loop (sink_ring.c) and writes the final JSON summary. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/sink/sink_ring.h"
#include "bench/sink/sink_smtp.h"
#include "bench/sink/sink_stats.h"

#define SINK_MAX_LINE_BYTES 4096
#define SINK_MAX_OUT_BYTES (1u << 20)

static const char sink_usage[] =
    "usage: bench_sink --listen ADDR:PORT [--listen ADDR:PORT ...] [options]\n"
    "       bench_sink --listen-range A.B.C.X-Y:PORT [options]\n"
    "\n"
    "Fast SMTP sink for delivery benchmarks: accepts and discards mail, counts it per\n"
    "listen address and per client source IP. One thread, one io_uring.\n"
    "\n"
    "Listening (repeatable, combinable; loopback addresses such as 127.0.1.1..20 need no\n"
    "interface configuration on Linux):\n"
    "  --listen ADDR:PORT           IPv4 a.b.c.d:port or IPv6 [addr]:port\n"
    "  --listen-range A.B.C.X-Y:PORT  every address A.B.C.X .. A.B.C.Y on PORT\n"
    "\n"
    "Protocol:\n"
    "  --hostname NAME              name in the greeting and HELO/EHLO reply (sink.salvo.test)\n"
    "  --chunking                   advertise CHUNKING and accept BDAT\n"
    "  --reject-rcpt-pattern SUBSTR reply 550 5.1.1 to RCPT lines containing SUBSTR\n"
    "                               (case-sensitive)\n"
    "  --max-message-bytes N        value advertised in EHLO SIZE, not enforced (104857600)\n"
    "  --trace                      log every command, reply and state change to stderr\n"
    "\n"
    "Stopping and reporting:\n"
    "  --max-messages N             exit after N accepted messages (replies are flushed;\n"
    "                               reads after the one that reached N are ignored)\n"
    "  --report-interval SECONDS    progress line on stderr every SECONDS (default off);\n"
    "                               also rewrites --stats-file each time\n"
    "  --stats-file FILE            write the JSON summary to FILE (atomically: temp file +\n"
    "                               rename) instead of stdout\n"
    "  The JSON summary is written on SIGINT/SIGTERM or at --max-messages.\n"
    "\n"
    "Limits:\n"
    "  --max-conns N                connection pool; extra connections are closed (16384)\n"
    "  --backlog N                  listen(2) backlog per address (4096)\n"
    "  --ring-entries N             io_uring submission queue entries (4096)\n"
    "  --recv-buffers N             provided receive buffers, power of two (2048)\n"
    "  --recv-buffer-bytes N        size of each receive buffer (16384)\n"
    "  Command lines longer than 4096 bytes get 500 5.5.0 and the connection is closed.\n"
    "\n"
    "  -h, --help                   this text\n";

enum sink_opt {
    SINK_OPT_LISTEN = 256,
    SINK_OPT_LISTEN_RANGE,
    SINK_OPT_HOSTNAME,
    SINK_OPT_CHUNKING,
    SINK_OPT_REJECT_RCPT,
    SINK_OPT_MAX_MESSAGE_BYTES,
    SINK_OPT_TRACE,
    SINK_OPT_MAX_MESSAGES,
    SINK_OPT_REPORT_INTERVAL,
    SINK_OPT_STATS_FILE,
    SINK_OPT_MAX_CONNS,
    SINK_OPT_BACKLOG,
    SINK_OPT_RING_ENTRIES,
    SINK_OPT_RECV_BUFFERS,
    SINK_OPT_RECV_BUFFER_BYTES,
};

static const struct option sink_options[] = {
    {"listen", required_argument, NULL, SINK_OPT_LISTEN},
    {"listen-range", required_argument, NULL, SINK_OPT_LISTEN_RANGE},
    {"hostname", required_argument, NULL, SINK_OPT_HOSTNAME},
    {"chunking", no_argument, NULL, SINK_OPT_CHUNKING},
    {"reject-rcpt-pattern", required_argument, NULL, SINK_OPT_REJECT_RCPT},
    {"max-message-bytes", required_argument, NULL, SINK_OPT_MAX_MESSAGE_BYTES},
    {"trace", no_argument, NULL, SINK_OPT_TRACE},
    {"max-messages", required_argument, NULL, SINK_OPT_MAX_MESSAGES},
    {"report-interval", required_argument, NULL, SINK_OPT_REPORT_INTERVAL},
    {"stats-file", required_argument, NULL, SINK_OPT_STATS_FILE},
    {"max-conns", required_argument, NULL, SINK_OPT_MAX_CONNS},
    {"backlog", required_argument, NULL, SINK_OPT_BACKLOG},
    {"ring-entries", required_argument, NULL, SINK_OPT_RING_ENTRIES},
    {"recv-buffers", required_argument, NULL, SINK_OPT_RECV_BUFFERS},
    {"recv-buffer-bytes", required_argument, NULL, SINK_OPT_RECV_BUFFER_BYTES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct sink_addrs {
    struct sink_listen_addr v[SINK_STATS_MAX_LISTEN];
    uint32_t n;
};

/* 0, or -1 with a message printed. */
static int sink_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max,
                          uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min || v > max) {
        fprintf(stderr, "bench_sink: %s: expected an integer in %llu..%llu, got '%s'\n", flag,
                (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int sink_parse_u32(const char *flag, const char *s, uint32_t min, uint32_t max,
                          uint32_t *out)
{
    uint64_t v;
    if (sink_parse_u64(flag, s, min, max, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int sink_parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    if (sink_parse_u64("port", s, 1, 65535, &v) != 0)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int sink_addrs_add_v4(struct sink_addrs *a, struct in_addr ip, uint16_t port)
{
    if (a->n >= SINK_STATS_MAX_LISTEN) {
        fprintf(stderr, "bench_sink: more than %d listen addresses\n", SINK_STATS_MAX_LISTEN);
        return -1;
    }
    struct sink_listen_addr *l = &a->v[a->n++];
    memset(l, 0, sizeof(*l));
    struct sockaddr_in *sin = (struct sockaddr_in *)&l->ss;
    sin->sin_family = AF_INET;
    sin->sin_addr = ip;
    sin->sin_port = htons(port);
    l->len = sizeof(*sin);
    char txt[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, txt, sizeof(txt));
    snprintf(l->name, sizeof(l->name), "%s:%u", txt, port);
    return 0;
}

/* a.b.c.d:port or [v6]:port */
static int sink_parse_listen(struct sink_addrs *a, const char *arg)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *colon = strrchr(buf, ':');
    uint16_t port;
    if (!colon || sink_parse_port(colon + 1, &port) != 0)
        goto bad;
    *colon = '\0';
    if (buf[0] == '[') {
        size_t n = strlen(buf);
        if (n < 3 || buf[n - 1] != ']')
            goto bad;
        buf[n - 1] = '\0';
        struct in6_addr ip6;
        if (inet_pton(AF_INET6, buf + 1, &ip6) != 1)
            goto bad;
        if (a->n >= SINK_STATS_MAX_LISTEN)
            goto bad;
        struct sink_listen_addr *l = &a->v[a->n++];
        memset(l, 0, sizeof(*l));
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = ip6;
        sin6->sin6_port = htons(port);
        l->len = sizeof(*sin6);
        char txt[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &ip6, txt, sizeof(txt));
        snprintf(l->name, sizeof(l->name), "[%s]:%u", txt, port);
        return 0;
    }
    struct in_addr ip;
    if (inet_pton(AF_INET, buf, &ip) != 1)
        goto bad;
    return sink_addrs_add_v4(a, ip, port);
bad:
    fprintf(stderr, "bench_sink: --listen: expected a.b.c.d:port or [v6addr]:port, got '%s'\n",
            arg);
    return -1;
}

/* A.B.C.X-Y:PORT */
static int sink_parse_listen_range(struct sink_addrs *a, const char *arg)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *colon = strrchr(buf, ':');
    char *dash = strchr(buf, '-');
    char *dot = dash ? memrchr(buf, '.', (size_t)(dash - buf)) : NULL;
    uint16_t port;
    uint32_t first, last;
    if (!colon || !dash || !dot || dash > colon)
        goto bad;
    *colon = '\0';
    *dash = '\0';
    if (sink_parse_port(colon + 1, &port) != 0 ||
        sink_parse_u32("--listen-range", dot + 1, 0, 255, &first) != 0 ||
        sink_parse_u32("--listen-range", dash + 1, first, 255, &last) != 0)
        goto bad;
    *dot = '\0';
    char base[sizeof(buf) + 4];
    snprintf(base, sizeof(base), "%s.0", buf);
    struct in_addr ip;
    if (inet_pton(AF_INET, base, &ip) != 1)
        goto bad;
    for (uint32_t x = first; x <= last; x++) {
        struct in_addr host = {.s_addr = htonl((ntohl(ip.s_addr) & 0xffffff00u) | x)};
        if (sink_addrs_add_v4(a, host, port) != 0)
            return -1;
    }
    return 0;
bad:
    fprintf(stderr, "bench_sink: --listen-range: expected A.B.C.X-Y:PORT "
                    "(e.g. 127.0.1.1-20:2525), got '%s'\n", arg);
    return -1;
}

/* Raises the soft descriptor limit (and the hard one when privileged) to fit the pool. */
static void sink_raise_nofile(uint32_t *max_conns, uint32_t nlisten)
{
    rlim_t want = (rlim_t)*max_conns + nlisten + 64;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur >= want)
        return;
    struct rlimit nrl = {want, rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
        return;
    nrl.rlim_cur = rl.rlim_max;
    nrl.rlim_max = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nrl);
    uint32_t fit = rl.rlim_max > nlisten + 64 ? (uint32_t)(rl.rlim_max - nlisten - 64) : 16;
    fprintf(stderr, "bench_sink: descriptor limit %llu: --max-conns lowered from %u to %u\n",
            (unsigned long long)rl.rlim_max, *max_conns, fit);
    *max_conns = fit;
}

int main(int argc, char **argv)
{
    static struct sink_addrs addrs;
    static struct sink_smtp_server srv;
    static struct sink_stats st;
    struct sink_ring_config cfg = {
        .lim = {
            .max_conns = 16384,
            .ring_entries = 4096,
            .recv_buffers = 2048,
            .recv_buffer_bytes = 16384,
            .listen_backlog = 4096,
        },
    };
    const char *hostname = "sink.salvo.test";
    srv.lim.max_line_bytes = SINK_MAX_LINE_BYTES;
    srv.lim.max_out_bytes = SINK_MAX_OUT_BYTES;
    srv.lim.max_message_bytes = 104857600;

    int opt;
    while ((opt = getopt_long(argc, argv, "h", sink_options, NULL)) != -1) {
        int bad = 0;
        double secs;
        char *end;
        switch (opt) {
        case SINK_OPT_LISTEN: bad = sink_parse_listen(&addrs, optarg); break;
        case SINK_OPT_LISTEN_RANGE: bad = sink_parse_listen_range(&addrs, optarg); break;
        case SINK_OPT_HOSTNAME: hostname = optarg; break;
        case SINK_OPT_CHUNKING: srv.chunking = true; break;
        case SINK_OPT_REJECT_RCPT:
            srv.reject_rcpt = optarg;
            srv.reject_rcpt_len = strlen(optarg);
            if (srv.reject_rcpt_len == 0)
                srv.reject_rcpt = NULL;
            break;
        case SINK_OPT_MAX_MESSAGE_BYTES:
            bad = sink_parse_u64("--max-message-bytes", optarg, 0, UINT64_MAX / 2,
                                 &srv.lim.max_message_bytes);
            break;
        case SINK_OPT_TRACE: srv.trace = true; break;
        case SINK_OPT_MAX_MESSAGES:
            bad = sink_parse_u64("--max-messages", optarg, 1, UINT64_MAX / 2,
                                 &cfg.max_messages);
            break;
        case SINK_OPT_REPORT_INTERVAL:
            secs = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || secs < 0.01 || secs > 86400) {
                fprintf(stderr, "bench_sink: --report-interval: expected seconds, got '%s'\n",
                        optarg);
                bad = -1;
            }
            cfg.report_interval_ms = (uint32_t)(secs * 1000 + 0.5);
            break;
        case SINK_OPT_STATS_FILE: cfg.stats_file = optarg; break;
        case SINK_OPT_MAX_CONNS:
            bad = sink_parse_u32("--max-conns", optarg, 1, 1000000, &cfg.lim.max_conns);
            break;
        case SINK_OPT_BACKLOG:
            bad = sink_parse_u32("--backlog", optarg, 1, 1000000, &cfg.lim.listen_backlog);
            break;
        case SINK_OPT_RING_ENTRIES:
            bad = sink_parse_u32("--ring-entries", optarg, 64, 32768, &cfg.lim.ring_entries);
            break;
        case SINK_OPT_RECV_BUFFERS:
            bad = sink_parse_u32("--recv-buffers", optarg, 16, 32768, &cfg.lim.recv_buffers);
            if (!bad && (cfg.lim.recv_buffers & (cfg.lim.recv_buffers - 1))) {
                fprintf(stderr, "bench_sink: --recv-buffers must be a power of two\n");
                bad = -1;
            }
            break;
        case SINK_OPT_RECV_BUFFER_BYTES:
            bad = sink_parse_u32("--recv-buffer-bytes", optarg, 512, 1u << 20,
                                 &cfg.lim.recv_buffer_bytes);
            break;
        case 'h': fputs(sink_usage, stdout); return 0;
        default: fputs(sink_usage, stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind != argc || addrs.n == 0) {
        fputs(addrs.n == 0 ? "bench_sink: no --listen or --listen-range given\n"
                           : "bench_sink: unexpected argument\n", stderr);
        fputs(sink_usage, stderr);
        return 2;
    }

    sink_smtp_server_init(&srv, hostname);
    if (srv.greeting_len == 0 || srv.ehlo_reply_len == 0) {
        fprintf(stderr, "bench_sink: --hostname too long\n");
        return 2;
    }
    if (sink_stats_init(&st) != 0) {
        fprintf(stderr, "bench_sink: out of memory\n");
        return 1;
    }
    sink_raise_nofile(&cfg.lim.max_conns, addrs.n);

    fprintf(stderr, "bench_sink: listening on %u address%s (%s%s), pool %u connections\n",
            addrs.n, addrs.n == 1 ? "" : "es", addrs.v[0].name, addrs.n > 1 ? " ..." : "",
            cfg.lim.max_conns);
    const char *err = NULL;
    int ret = sink_ring_run(&cfg, addrs.v, addrs.n, &srv, &st, &err);
    if (ret != 0) {
        fprintf(stderr, "bench_sink: %s: %s\n", err ? err : "event loop", strerror(-ret));
        sink_stats_fini(&st);
        return 1;
    }
    ret = sink_stats_write_json(&st, &srv, cfg.stats_file);
    if (ret != 0)
        fprintf(stderr, "bench_sink: writing %s: %s\n", cfg.stats_file ? cfg.stats_file
                                                                       : "stdout",
                strerror(-ret));
    sink_stats_fini(&st);
    return ret == 0 ? 0 : 1;
}
