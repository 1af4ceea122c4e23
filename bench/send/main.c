/* bench/send/main.c — delivery benchmark: N messages through the real engine (delivery layer,
 * SMTP sessions, ring) to sinks on many loopback hosts, one domain per host via static
 * routes. Reports messages/s, CPU per message, peak RSS, ring syscalls, and the number of
 * malloc calls in the steady state (counted by interposing malloc in this binary). */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/config/config.h"
#include "engine/worker/worker.h"

/* ---- malloc counting: glibc lets the executable interpose the allocator ---- */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static atomic_ulong bench__mallocs;
void *malloc(size_t n) { atomic_fetch_add_explicit(&bench__mallocs, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&bench__mallocs, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&bench__mallocs, 1, memory_order_relaxed); return __libc_realloc(p, n); }

struct slot {
    struct dlv_msg msg;
    struct dlv_rcpt rcpt;
    char addr[64];
    struct slot *next;
};

static struct {
    unsigned hosts, messages, window, size, port;
    char base[32];
    struct slot *slots, *free;
    unsigned submitted, done, delivered, failed;
    unsigned long warm_mallocs;
    unsigned warm_done;
    uint8_t *body;
    size_t body_len;
} B = {.hosts = 20, .messages = 50000, .window = 2000, .size = 1024, .port = 2525, .base = "127.0.1."};

static double bench__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double bench__cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void bench__on_done(struct dlv_msg *m)
{
    struct slot *s = (struct slot *)m;
    B.done++;
    if (s->rcpt.status == DLV_DELIVERED)
        B.delivered++;
    else if (B.failed++ < 5)
        fprintf(stderr, "bench: %s %s: %s\n", s->addr, dlv_status_to_text(s->rcpt.status),
                s->rcpt.r.outcome.text);
    if (B.done == B.messages / 10) { /* warm-up over: connections open, buffers grown */
        B.warm_mallocs = atomic_load(&bench__mallocs);
        B.warm_done = B.done;
    }
    s->next = B.free;
    B.free = s;
}

static void bench__make_body(void)
{
    static const char hdr[] = "From: Bench <bench@sender.test>\r\nTo: <rcpt@dest.test>\r\n"
                              "Subject: benchmark message\r\nMessage-ID: <bench@sender.test>\r\n"
                              "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n";
    B.body = __libc_malloc(B.size + sizeof hdr + 80);
    size_t n = strlen(hdr);
    memcpy(B.body, hdr, n);
    while (n < B.size) {
        static const char line[] = "The quick brown fox jumps over the lazy dog. 0123456789 abcdef\r\n";
        size_t l = sizeof line - 1;
        if (n + l > B.size)
            l = B.size - n;
        memcpy(B.body + n, line, l);
        n += l;
    }
    B.body_len = n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"hosts", required_argument, 0, 'H'}, {"messages", required_argument, 0, 'n'},
        {"window", required_argument, 0, 'w'}, {"size", required_argument, 0, 's'},
        {"port", required_argument, 0, 'p'}, {"base", required_argument, 0, 'b'},
        {"set", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct salvo_config cfg;
    config_init(&cfg);
    char err[CONFIG_ERR_MAX];
    config_set(&cfg, "delivery.max_msgs_per_conn", "100000", err, sizeof err);
    config_set(&cfg, "delivery.max_conns_per_dest", "4", err, sizeof err);
    config_set(&cfg, "delivery.tls", "disabled", err, sizeof err);
    config_set(&cfg, "timeouts.idle_ms", "2000", err, sizeof err);
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H': B.hosts = (unsigned)atoi(optarg); break;
        case 'n': B.messages = (unsigned)atoi(optarg); break;
        case 'w': B.window = (unsigned)atoi(optarg); break;
        case 's': B.size = (unsigned)atoi(optarg); break;
        case 'p': B.port = (unsigned)atoi(optarg); break;
        case 'b': snprintf(B.base, sizeof B.base, "%s", optarg); break;
        case 'S': {
            char *eq = strchr(optarg, '=');
            if (!eq || (*eq = 0, config_set(&cfg, optarg, eq + 1, err, sizeof err)) != 0) {
                fprintf(stderr, "bench_send: --set %s: %s\n", optarg, eq ? err : "expected PATH=VALUE");
                return 64;
            }
            break;
        }
        default:
            printf("Usage: bench_send [--hosts 20] [--base 127.0.1.] [--port 2525] [--messages 50000]\n"
                   "                  [--size 1024] [--window 2000] [--set PATH=VALUE]...\n"
                   "Sends to d<k>.test routed to <base><k>:<port> for k = 1..hosts.\n");
            return c == 'h' ? 0 : 64;
        }
    }
    for (unsigned k = 1; k <= B.hosts; k++) {
        char spec[128];
        snprintf(spec, sizeof spec, "d%u.test=%s%u:%u", k, B.base, k, B.port);
        if (config_add_route(&cfg, spec, err, sizeof err) != 0) {
            fprintf(stderr, "bench_send: %s\n", err);
            return 64;
        }
    }
    char win[32];
    snprintf(win, sizeof win, "%u", B.window * 2);
    config_set(&cfg, "delivery.max_txns", win, err, sizeof err);
    if (config_finish(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_send: %s\n", err);
        return 78;
    }
    struct worker w;
    if (worker_init(&w, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_send: %s\n", err);
        return 1;
    }
    bench__make_body();
    B.slots = calloc(B.window, sizeof *B.slots);
    for (unsigned i = 0; i < B.window; i++) {
        B.slots[i].next = B.free;
        B.free = &B.slots[i];
    }
    struct ring_stats rs0, rs1;
    ring_get_stats(w.ring, &rs0);
    double t0 = bench__now(), c0 = bench__cpu();
    unsigned seq = 0;
    while (B.done < B.messages) {
        while (B.free && B.submitted < B.messages) {
            struct slot *s = B.free;
            B.free = s->next;
            unsigned k = seq++ % B.hosts + 1;
            snprintf(s->addr, sizeof s->addr, "user%u@d%u.test", seq, k);
            s->rcpt.r.addr = s->addr;
            s->msg = (struct dlv_msg){.from = "bench@sender.test", .rcpts = &s->rcpt, .nrcpts = 1,
                                      .body = B.body, .body_len = B.body_len,
                                      .on_done = bench__on_done};
            if (dlv_submit(w.dlv, &s->msg) != 0) {
                s->next = B.free;
                B.free = s;
                break;
            }
            B.submitted++;
        }
        ring_run_once(w.ring, 100);
    }
    double t1 = bench__now(), c1 = bench__cpu();
    unsigned long mallocs = atomic_load(&bench__mallocs) - B.warm_mallocs;
    ring_get_stats(w.ring, &rs1);
    struct dlv_stats ds;
    dlv_get_stats(w.dlv, &ds);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double secs = t1 - t0, cpu = c1 - c0;
    unsigned steady = B.done - B.warm_done;
    printf("{\"messages\":%u,\"delivered\":%u,\"failed\":%u,\"size\":%u,\"hosts\":%u,"
           "\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"cpu_s\":%.3f,\"cpu_us_per_msg\":%.2f,"
           "\"cpu_s_per_1000\":%.4f,\"peak_rss_kb\":%ld,\"connections\":%llu,"
           "\"sqes_per_msg\":%.2f,\"enters_per_msg\":%.3f,\"steady_mallocs\":%lu,"
           "\"steady_msgs\":%u,\"mallocs_per_msg\":%.4f}\n",
           B.messages, B.delivered, B.failed, B.size, B.hosts, secs, B.messages / secs, cpu,
           cpu * 1e6 / B.messages, cpu * 1000 / B.messages, ru.ru_maxrss,
           (unsigned long long)ds.conns_opened,
           (double)(rs1.sqes - rs0.sqes) / B.messages, (double)(rs1.submits - rs0.submits) / B.messages,
           mallocs, steady, steady ? (double)mallocs / steady : 0.0);
    worker_drain(&w, 5000);
    worker_fini(&w);
    config_fini(&cfg);
    return B.failed ? 1 : 0;
}
