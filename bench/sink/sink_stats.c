/* bench/sink/sink_stats.c — counters, report line and JSON summary of the benchmark sink.
 * Lookups (hash tables keyed by client IP and by address pair) happen once per connection,
 * never per message. Does not own sockets or the SMTP session. */
#include "bench/sink/sink_stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SINK_STATS__SOURCE_SLOTS (SINK_STATS_MAX_SOURCES * 2) /* power of two */
#define SINK_STATS__PAIR_SLOTS (SINK_STATS_MAX_PAIRS * 2)

double sink_stats_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double sink_stats__tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

double sink_stats_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return sink_stats__tv_s(ru.ru_utime) + sink_stats__tv_s(ru.ru_stime);
}

int sink_stats_init(struct sink_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->sources = calloc(SINK_STATS_MAX_SOURCES + 1, sizeof(*st->sources));
    st->source_slots = calloc(SINK_STATS__SOURCE_SLOTS, sizeof(*st->source_slots));
    st->pairs = calloc(SINK_STATS_MAX_PAIRS + 1, sizeof(*st->pairs));
    st->pair_slots = calloc(SINK_STATS__PAIR_SLOTS, sizeof(*st->pair_slots));
    if (!st->sources || !st->source_slots || !st->pairs || !st->pair_slots) {
        sink_stats_fini(st);
        return -ENOMEM;
    }
    strcpy(st->sources[0].name, "other");
    st->nsources = 1;
    st->pairs[0].listen = UINT32_MAX;
    st->npairs = 1;
    st->start_s = sink_stats_now_s();
    st->last_report_s = st->start_s;
    return 0;
}

void sink_stats_fini(struct sink_stats *st)
{
    free(st->sources);
    free(st->source_slots);
    free(st->pairs);
    free(st->pair_slots);
    st->sources = NULL;
    st->source_slots = NULL;
    st->pairs = NULL;
    st->pair_slots = NULL;
}

uint32_t sink_stats_add_listen(struct sink_stats *st, const char *name)
{
    uint32_t i = st->nlisten++;
    snprintf(st->listen_name[i], sizeof(st->listen_name[i]), "%s", name);
    return i;
}

static uint32_t sink_stats__hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

uint32_t sink_stats_source_index(struct sink_stats *st, const struct sockaddr_storage *ss)
{
    uint8_t key[16] = {0}; /* IPv6; IPv4 as ::ffff:a.b.c.d, so both families share a key */
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &sin->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else {
        return 0;
    }
    uint32_t mask = SINK_STATS__SOURCE_SLOTS - 1;
    for (uint32_t h = sink_stats__hash(key, sizeof(key));; h++) {
        uint32_t *slot = &st->source_slots[h & mask];
        if (*slot == 0) {
            if (st->nsources > SINK_STATS_MAX_SOURCES)
                return 0;
            uint32_t i = st->nsources++;
            struct sink_stats_source *src = &st->sources[i];
            memcpy(src->addr, key, sizeof(key));
            if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)key))
                inet_ntop(AF_INET, key + 12, src->name, sizeof(src->name));
            else
                inet_ntop(AF_INET6, key, src->name, sizeof(src->name));
            *slot = i + 1;
            return i;
        }
        if (memcmp(st->sources[*slot - 1].addr, key, sizeof(key)) == 0)
            return *slot - 1;
    }
}

uint32_t sink_stats_pair_index(struct sink_stats *st, uint32_t listen, uint32_t source)
{
    if (source == 0)
        return 0;
    uint32_t key[2] = {listen, source};
    uint32_t mask = SINK_STATS__PAIR_SLOTS - 1;
    for (uint32_t h = sink_stats__hash((const uint8_t *)key, sizeof(key));; h++) {
        uint32_t *slot = &st->pair_slots[h & mask];
        if (*slot == 0) {
            if (st->npairs > SINK_STATS_MAX_PAIRS)
                return 0;
            uint32_t i = st->npairs++;
            st->pairs[i].listen = listen;
            st->pairs[i].source = source;
            *slot = i + 1;
            return i;
        }
        const struct sink_stats_pair *p = &st->pairs[*slot - 1];
        if (p->listen == listen && p->source == source)
            return *slot - 1;
    }
}

void sink_stats_count_connection(struct sink_stats *st, uint32_t listen, uint32_t source,
                                 uint32_t pair)
{
    st->total.connections++;
    st->listen[listen].connections++;
    st->sources[source].c.connections++;
    st->pairs[pair].c.connections++;
    if (++st->conns_open > st->conns_peak)
        st->conns_peak = st->conns_open;
}

void sink_stats_report_line(struct sink_stats *st, FILE *f)
{
    double now = sink_stats_now_s();
    double cpu = sink_stats_cpu_s();
    double dt = now - st->last_report_s;
    uint64_t dm = st->total.messages - st->last_report_messages;
    double dcpu = cpu - st->last_report_cpu_s;
    fprintf(f,
            "sink: t=%.1fs msgs=%llu (%.0f/s) rcpts=%llu rejected=%llu conns=%llu open=%llu "
            "cpu=%.0f%% %.2fus/msg\n",
            now - st->start_s, (unsigned long long)st->total.messages,
            dt > 0 ? (double)dm / dt : 0.0, (unsigned long long)st->total.recipients,
            (unsigned long long)st->total.rcpt_rejected,
            (unsigned long long)st->total.connections, (unsigned long long)st->conns_open,
            dt > 0 ? 100.0 * dcpu / dt : 0.0, dm ? dcpu * 1e6 / (double)dm : 0.0);
    fflush(f);
    st->last_report_s = now;
    st->last_report_messages = st->total.messages;
    st->last_report_cpu_s = cpu;
}

static void sink_stats__counts_json(FILE *f, const struct sink_counts *c)
{
    fprintf(f,
            "\"connections\": %llu, \"messages\": %llu, \"recipients\": %llu, "
            "\"rcpt_rejected\": %llu, \"message_bytes\": %llu",
            (unsigned long long)c->connections, (unsigned long long)c->messages,
            (unsigned long long)c->recipients, (unsigned long long)c->rcpt_rejected,
            (unsigned long long)c->message_bytes);
}

static void sink_stats__json(FILE *f, const struct sink_stats *st,
                             const struct sink_smtp_server *srv)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double user = sink_stats__tv_s(ru.ru_utime);
    double sys = sink_stats__tv_s(ru.ru_stime);
    const struct sink_counts *t = &st->total;

    fprintf(f, "{\n  \"elapsed_s\": %.3f,\n", sink_stats_now_s() - st->start_s);
    double serving = user + sys - st->start_cpu_s; /* without start-up (buffer allocation) */
    fprintf(f,
            "  \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, \"cpu_serving_s\": %.3f, "
            "\"cpu_us_per_message\": %.3f,\n",
            user, sys, serving, t->messages ? serving * 1e6 / (double)t->messages : 0.0);
    fprintf(f, "  ");
    sink_stats__counts_json(f, t);
    fprintf(f,
            ",\n  \"connections_open\": %llu, \"connections_peak\": %llu, "
            "\"connections_refused\": %llu, \"recv_bytes\": %llu,\n",
            (unsigned long long)st->conns_open, (unsigned long long)st->conns_peak,
            (unsigned long long)st->conns_refused, (unsigned long long)st->recv_bytes);
    fprintf(f,
            "  \"loop_turns\": %llu, \"cqes\": %llu, \"recvs\": %llu, \"sends\": %llu,\n",
            (unsigned long long)st->loop_turns, (unsigned long long)st->cqes,
            (unsigned long long)st->recvs, (unsigned long long)st->sends);
    fprintf(f,
            "  \"errors\": {\"line_too_long\": %llu, \"out_overflow\": %llu, "
            "\"bad_commands\": %llu, \"accept\": %llu, \"recv\": %llu, \"send\": %llu, "
            "\"recv_nobufs\": %llu},\n",
            (unsigned long long)srv->line_too_long, (unsigned long long)srv->out_overflow,
            (unsigned long long)srv->bad_commands, (unsigned long long)st->accept_errors,
            (unsigned long long)st->recv_errors, (unsigned long long)st->send_errors,
            (unsigned long long)st->recv_nobufs);

    fprintf(f, "  \"listen\": [");
    for (uint32_t i = 0; i < st->nlisten; i++) {
        fprintf(f, "%s\n    {\"addr\": \"%s\", ", i ? "," : "", st->listen_name[i]);
        sink_stats__counts_json(f, &st->listen[i]);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"sources\": [");
    bool first = true;
    for (uint32_t i = 0; i < st->nsources; i++) {
        const struct sink_stats_source *s = &st->sources[i];
        if (i == 0 && s->c.connections == 0)
            continue;
        fprintf(f, "%s\n    {\"ip\": \"%s\", ", first ? "" : ",", s->name);
        sink_stats__counts_json(f, &s->c);
        fprintf(f, "}");
        first = false;
    }
    fprintf(f, "\n  ],\n  \"pairs\": [");
    first = true;
    for (uint32_t i = 0; i < st->npairs; i++) {
        const struct sink_stats_pair *p = &st->pairs[i];
        if (i == 0 && p->c.connections == 0)
            continue;
        fprintf(f, "%s\n    {\"listen\": \"%s\", \"source\": \"%s\", ", first ? "" : ",",
                i == 0 ? "other" : st->listen_name[p->listen],
                i == 0 ? "other" : st->sources[p->source].name);
        sink_stats__counts_json(f, &p->c);
        fprintf(f, "}");
        first = false;
    }
    fprintf(f, "\n  ]\n}\n");
}

int sink_stats_write_json(const struct sink_stats *st, const struct sink_smtp_server *srv,
                          const char *path)
{
    if (!path) {
        sink_stats__json(stdout, st, srv);
        return fflush(stdout) == 0 ? 0 : -errno;
    }
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    sink_stats__json(f, st, srv);
    /* No fsync: rename alone makes readers see the old or the new file, never a torn one,
     * and a benchmark does not need the file to survive a power cut. */
    int err = 0;
    if (fflush(f) != 0)
        err = -errno;
    if (fclose(f) != 0 && err == 0)
        err = -errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = -errno;
    if (err != 0)
        unlink(tmp);
    return err;
}
