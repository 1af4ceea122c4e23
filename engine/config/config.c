/* engine/config/config.c — the field table and its three users: the JSON file loader, --set,
 * and the field listing. jansson stays inside this file. */
#include "engine/config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/redis/rds.h"
#include "engine/ring/ring.h"
#include "schedulers/warmup.h"

enum cf_type { CF_UINT, CF_SIZE, CF_U16, CF_BOOL, CF_STR, CF_DOUBLE, CF_TLS, CF_ROUTES, CF_UINT_LIST, CF_SOURCES, CF_POOLS };

struct cf_field {
    const char *path;
    enum cf_type type;
    size_t off;
    double min, max;
    const char *doc;
};

#define F(path, type, member, min, max, doc) {path, type, offsetof(struct salvo_config, member), min, max, doc}
#define T(name, doc) F("timeouts." #name, CF_UINT, dlv.session.timeouts.name, 1, 86400000, doc)

static const struct cf_field cf__fields[] = {
    F("ehlo_name", CF_STR, ehlo_name, 0, 0, "name sent in EHLO/HELO (default: this host's name)"),
    F("timeout_scale", CF_DOUBLE, timeout_scale, 0.0001, 1000, "multiplies every protocol timeout (default 1)"),
    F("max_message_bytes", CF_UINT, max_message_bytes, 1, 2147483647.0, "largest message accepted (default 52428800)"),
    F("instance", CF_STR, instance, 0, 0, "this replica's consumer name; stable across restarts (default: host name; env SALVO_INSTANCE)"),
    F("redis.url", CF_STR, redis_url, 0, 0, "redis://[:password@]host[:port][/db] (default redis://127.0.0.1:6379; env SALVO_REDIS_URL)"),
    F("redis.prefix", CF_STR, prefix, 0, 0, "key prefix (default \"salvo\")"),
    F("shaping.file", CF_STR, shaping_file, 0, 0, "traffic shaping rules (docs/shaping.md); reloaded on SIGHUP (default: none, the limits here apply to every destination)"),
    F("intake.max_in_memory", CF_UINT, intake.max_in_memory, 1, 1000000, "messages held in memory at once; reading stops when full (default 5000)"),
    F("intake.tx_reserve", CF_UINT, intake.tx_reserve, 0, 1000000, "of those, slots only transactional mail may use (default 500)"),
    F("intake.read_batch", CF_UINT, intake.read_batch, 1, 100000, "entries per stream read (default 500)"),
    F("intake.block_ms", CF_UINT, intake.block_ms, 1, 60000, "how long a stream read waits for new entries (default 1000)"),
    F("intake.heartbeat_ttl_ms", CF_UINT, intake.heartbeat_ttl_ms, 300, 3600000, "a replica silent this long is dead and its work is claimed (default 10000)"),
    F("intake.claim_interval_ms", CF_UINT, intake.claim_interval_ms, 100, 3600000, "how often dead replicas' work is looked for (default 5000)"),
    F("intake.promote_interval_ms", CF_UINT, intake.promote_interval_ms, 10, 60000, "how often due retries move back to the streams (default 500)"),
    F("events.stream_max", CF_UINT, intake.events_max, 1, 100000000, "events stream cap, approximate (default 1000000)"),
    F("events.file", CF_STR, events_file, 0, 0, "also append events as JSON lines to this file; reopened on SIGHUP (default none)"),
    F("events.dead_max", CF_UINT, intake.dead_max, 1, 100000000, "dead-letter stream cap (default 100000)"),
    F("retry.schedule_s", CF_UINT_LIST, intake.retry_s, 1, 31536000, "delays before attempts 2, 3, ...; the last repeats (default [60,300,900,1800,3600,7200,14400])"),
    F("retry.jitter", CF_DOUBLE, intake.retry_jitter, 0, 1, "random +- fraction applied to each delay (default 0.1)"),
    F("retry.max_attempts", CF_UINT, intake.max_attempts, 1, 1000, "attempts before a message expires (default 30)"),
    F("retry.max_age_s", CF_UINT, max_age_s, 1, 31536000, "age at which a message expires (default 259200 = 3 days)"),
    F("intake.busy_retry_ms", CF_UINT, intake.busy_retry_ms, 10, 3600000, "a message its destination cannot take now (busy or backing off) waits this long, no attempt used (default 5000)"),
    F("delivery.max_queued_per_dest", CF_UINT, dlv.max_queued_per_dest, 1, 1000000, "transactions waiting at one destination before new ones are pushed back to the retry set, unless it sends more than that in 5 s; salvo run caps it at a quarter of intake.max_in_memory (default 1000)"),
    F("delivery.dest_retry_s", CF_UINT, dlv.dest_retry_s, 0, 86400, "after every host of a destination failed temporarily, new mail for it waits this long without connecting (default 30)"),
    F("idempotency.ttl_s", CF_UINT, intake.idempotency_ttl_s, 1, 31536000, "how long an idempotency key is remembered (default 86400)"),
    F("limits.max_job_bytes", CF_SIZE, intake.job_limits.max_job_bytes, 1024, 1073741824, "largest job accepted (default 10485760)"),
    F("limits.max_rcpts_per_job", CF_UINT, intake.job_limits.max_rcpts, 1, 1000, "recipients in one job (default 1000)"),
    F("shutdown_grace_s", CF_UINT, shutdown_grace_s, 0, 3600, "on SIGTERM, time to finish what is in memory (default 30)"),
    F("progress_interval_s", CF_UINT, progress_interval_s, 0, 3600, "log a progress line this often, 0 = never (default 10)"),
    F("workers", CF_UINT, workers, 0, 256, "salvo run: worker threads, each with its own io_uring and Redis connections (default 0: one per online CPU)"),
    F("dns.servers", CF_STR, dns_servers, 0, 0, "resolvers, \"host:port\" list (string or array; default: the system's)"),
    F("dns.timeout_ms", CF_UINT, dns.timeout_ms, 1, 600000, "per-try DNS timeout (default 2000)"),
    F("dns.tries", CF_UINT, dns.tries, 1, 10, "DNS tries per query (default 2)"),
    F("dns.cache_entries", CF_UINT, dns.cache_entries, 1, 10000000, "names cached (default 10000)"),
    F("dns.ttl_min_s", CF_UINT, dns.ttl_min_s, 0, 86400, "lower clamp for positive TTLs (default 5)"),
    F("dns.ttl_max_s", CF_UINT, dns.ttl_max_s, 1, 604800, "upper clamp for positive TTLs (default 86400)"),
    F("dns.negative_ttl_s", CF_UINT, dns.negative_ttl_s, 0, 86400, "cap for cached negative answers (default 300)"),
    F("dns.ipv6", CF_BOOL, dns.ipv6, 0, 0, "look up AAAA records too (default true)"),
    F("delivery.tls", CF_TLS, tls_policy, 0, 0, "disabled | opportunistic | required | verify (default opportunistic)"),
    F("delivery.ca_file", CF_STR, ca_file, 0, 0, "PEM CA bundle for verify (default: system store)"),
    F("delivery.source_ip", CF_STR, source_ip, 0, 0, "local address bound before connecting (default: none)"),
    F("delivery.mx_port", CF_U16, dlv.mx_port, 1, 65535, "port used for MX hosts (default 25)"),
    F("delivery.max_conns_per_dest", CF_UINT, dlv.max_conns_per_dest, 1, 10000, "connections per destination (default 10)"),
    F("delivery.max_msgs_per_conn", CF_UINT, dlv.max_msgs_per_conn, 1, 1000000, "transactions per connection before QUIT (default 100)"),
    F("delivery.max_rcpts_per_txn", CF_UINT, dlv.max_rcpts_per_txn, 1, 1000, "recipients per transaction (default 100)"),
    F("delivery.max_txns", CF_UINT, dlv.max_txns, 1, 10000000, "transactions held in memory at once (default 10000)"),
    F("delivery.tls_broken_ttl_s", CF_UINT, dlv.tls_broken_ttl_s, 1, 604800, "after a failed opportunistic handshake, use plaintext with that host this long (default 3600)"),
    F("delivery.pipelining", CF_BOOL, dlv.session.use_pipelining, 0, 0, "use PIPELINING when offered (default true)"),
    F("delivery.chunking", CF_BOOL, dlv.session.use_chunking, 0, 0, "use BDAT when CHUNKING is offered (default true)"),
    F("delivery.body_chunk_bytes", CF_SIZE, dlv.session.body_chunk_bytes, 4096, 16777216, "body bytes per write / BDAT chunk (default 262144)"),
    F("egress.sources", CF_SOURCES, sources, 0, 0, "egress sources: {\"name\": {\"ip\": \"addr\", \"ehlo\": \"host\"}} (default: one source, delivery.source_ip)"),
    F("egress.pools", CF_POOLS, pools, 0, 0, "weighted pools: {\"pool\": {\"source\": weight, ...}} (default: one pool \"default\" of every source, equal weights)"),
    F("egress.default_pool", CF_STR, default_pool, 0, 0, "pool for messages that name none (default: the pool named \"default\", else the first)"),
    F("delivery.routes", CF_ROUTES, routes, 0, 0, "static routes: {\"domain\": \"host:port\"} (default none)"),
    F("limits.max_reply_line_bytes", CF_SIZE, dlv.session.reply_limits.max_line_bytes, 64, 1048576, "longest SMTP reply line accepted (default 2048)"),
    F("limits.max_reply_lines", CF_UINT, dlv.session.reply_limits.max_lines, 1, 100000, "lines in one reply (default 128)"),
    T(connect_ms, "TCP connect (default 30000)"),
    T(greeting_ms, "220 greeting (default 300000)"),
    T(ehlo_ms, "EHLO/HELO reply (default 300000)"),
    T(starttls_ms, "STARTTLS reply and TLS handshake (default 300000)"),
    T(auth_ms, "each AUTH step (default 300000)"),
    T(mail_ms, "MAIL reply (default 300000)"),
    T(rcpt_ms, "each RCPT reply (default 300000)"),
    T(data_ms, "354 reply to DATA (default 120000)"),
    T(data_block_ms, "each body write (default 180000)"),
    T(end_ms, "reply to end of data / last BDAT (default 600000)"),
    T(rset_ms, "RSET reply (default 120000)"),
    T(quit_ms, "QUIT reply (default 30000)"),
    T(idle_ms, "an unused connection is kept this long (default 5000)"),
};
#define CF_NFIELDS (sizeof cf__fields / sizeof *cf__fields)

static int cf__err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cf__err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

void config_init(struct salvo_config *c)
{
    memset(c, 0, sizeof *c);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    c->ehlo_name = strdup(host);
    c->instance = strdup(host);
    c->redis_url = strdup("redis://127.0.0.1:6379");
    c->prefix = strdup("salvo");
    c->tls_policy = strdup("opportunistic");
    intake_config_defaults(&c->intake);
    c->max_age_s = 259200;
    c->shutdown_grace_s = 30;
    c->progress_interval_s = 10;
    c->timeout_scale = 1.0;
    c->max_message_bytes = 50u * 1024 * 1024;
    dns_config_defaults(&c->dns);
    dlv_config_defaults(&c->dlv);
}

void config_fini(struct salvo_config *c)
{
    free(c->ehlo_name);
    free(c->dns_servers);
    free(c->ca_file);
    free(c->source_ip);
    free(c->tls_policy);
    free(c->instance);
    free(c->redis_url);
    free(c->prefix);
    free(c->events_file);
    free(c->shaping_file);
    free(c->default_pool);
    memset(c, 0, sizeof *c);
}

static const struct cf_field *cf__find(const char *path)
{
    for (size_t i = 0; i < CF_NFIELDS; i++)
        if (strcmp(cf__fields[i].path, path) == 0)
            return &cf__fields[i];
    return NULL;
}

static int cf__set_str(char **slot, const char *v)
{
    char *dup = v ? strdup(v) : NULL;
    if (v && !dup)
        return -ENOMEM;
    free(*slot);
    *slot = dup;
    return 0;
}

int config_add_route(struct salvo_config *c, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return cf__err(err, errlen, "route '%s': expected DOMAIN=HOST:PORT", spec);
    return config_set(c, "delivery.routes", spec, err, errlen);
}

/* Parses "host:port" / "[v6]:port" / "host" for a route into r. */
static int cf__route(struct dlv_route *r, const char *domain, size_t dlen, const char *target,
                     char *err, size_t errlen)
{
    if (dlen == 0 || dlen >= sizeof r->domain)
        return cf__err(err, errlen, "delivery.routes: bad domain '%.*s'", (int)dlen, domain);
    for (size_t i = 0; i < dlen; i++)
        r->domain[i] = (char)((domain[i] >= 'A' && domain[i] <= 'Z') ? domain[i] + 32 : domain[i]);
    r->domain[dlen] = '\0';
    r->auth_user[0] = r->auth_pass[0] = '\0';
    /* "user:password@host:port": credentials for a smarthost */
    const char *at = strrchr(target, '@');
    if (at) {
        const char *colon = memchr(target, ':', (size_t)(at - target));
        size_t ul = colon ? (size_t)(colon - target) : 0, pl = colon ? (size_t)(at - colon - 1) : 0;
        if (!colon || ul == 0 || ul >= sizeof r->auth_user || pl >= sizeof r->auth_pass)
            return cf__err(err, errlen, "delivery.routes.%s: expected user:password@host:port", r->domain);
        memcpy(r->auth_user, target, ul);
        r->auth_user[ul] = '\0';
        memcpy(r->auth_pass, colon + 1, pl);
        r->auth_pass[pl] = '\0';
        target = at + 1;
    }
    const char *host = target, *hend, *port = NULL;
    if (*target == '[') {
        host = target + 1;
        hend = strchr(host, ']');
        if (!hend)
            return cf__err(err, errlen, "delivery.routes.%s: bad host '%s'", r->domain, target);
        if (hend[1] == ':')
            port = hend + 2;
        else if (hend[1] != '\0')
            return cf__err(err, errlen, "delivery.routes.%s: bad host '%s'", r->domain, target);
    } else {
        hend = strrchr(target, ':');
        if (hend && strchr(target, ':') != hend)
            hend = NULL; /* bare IPv6 */
        if (hend)
            port = hend + 1;
        else
            hend = target + strlen(target);
    }
    size_t hl = (size_t)(hend - host);
    if (hl == 0 || hl >= sizeof r->host)
        return cf__err(err, errlen, "delivery.routes.%s: bad host '%s'", r->domain, target);
    memcpy(r->host, host, hl);
    r->host[hl] = '\0';
    r->port = 25;
    if (port) {
        char *e;
        unsigned long p = strtoul(port, &e, 10);
        if (!*port || *e || p == 0 || p > 65535)
            return cf__err(err, errlen, "delivery.routes.%s: bad port in '%s'", r->domain, target);
        r->port = (uint16_t)p;
    }
    return 0;
}

/* Applies one JSON value to a field; the single place types are checked. */
static int cf__apply(struct salvo_config *c, const struct cf_field *f, json_t *v, char *err,
                     size_t errlen)
{
    char *base = (char *)c;
    switch (f->type) {
    case CF_UINT:
    case CF_SIZE:
    case CF_U16: {
        if (!json_is_integer(v))
            return cf__err(err, errlen, "%s: expected an integer", f->path);
        json_int_t x = json_integer_value(v);
        if ((double)x < f->min || (double)x > f->max)
            return cf__err(err, errlen, "%s: %lld is out of range [%.0f, %.0f]", f->path,
                           (long long)x, f->min, f->max);
        if (f->type == CF_U16)
            *(uint16_t *)(base + f->off) = (uint16_t)x;
        else if (f->type == CF_SIZE)
            *(size_t *)(base + f->off) = (size_t)x;
        else
            *(unsigned *)(base + f->off) = (unsigned)x;
        return 0;
    }
    case CF_DOUBLE: {
        if (!json_is_number(v))
            return cf__err(err, errlen, "%s: expected a number", f->path);
        double x = json_number_value(v);
        if (!(x >= f->min && x <= f->max))
            return cf__err(err, errlen, "%s: %g is out of range [%g, %g]", f->path, x, f->min, f->max);
        *(double *)(base + f->off) = x;
        return 0;
    }
    case CF_BOOL:
        if (!json_is_boolean(v))
            return cf__err(err, errlen, "%s: expected true or false", f->path);
        *(bool *)(base + f->off) = json_is_true(v);
        return 0;
    case CF_TLS: {
        enum tls_policy p;
        if (!json_is_string(v) || tls_policy_from_text(json_string_value(v), &p) != 0)
            return cf__err(err, errlen, "%s: expected disabled, opportunistic, required or verify",
                           f->path);
        return cf__set_str((char **)(base + f->off), json_string_value(v));
    }
    case CF_STR:
        if (json_is_null(v))
            return cf__set_str((char **)(base + f->off), NULL);
        if (json_is_array(v) && strcmp(f->path, "dns.servers") == 0) {
            char joined[1024] = "";
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e))
                    return cf__err(err, errlen, "%s[%zu]: expected a string", f->path, i);
                if (strlen(joined) + strlen(json_string_value(e)) + 2 > sizeof joined)
                    return cf__err(err, errlen, "%s: too long", f->path);
                if (i)
                    strcat(joined, ",");
                strcat(joined, json_string_value(e));
            }
            return cf__set_str((char **)(base + f->off), joined);
        }
        if (!json_is_string(v))
            return cf__err(err, errlen, "%s: expected a string", f->path);
        if (strlen(json_string_value(v)) > 1000)
            return cf__err(err, errlen, "%s: too long", f->path);
        return cf__set_str((char **)(base + f->off), json_string_value(v));
    case CF_UINT_LIST: {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > INTAKE_MAX_RETRY_STEPS)
            return cf__err(err, errlen, "%s: expected a list of 1 to %d integers", f->path, INTAKE_MAX_RETRY_STEPS);
        size_t i;
        json_t *e;
        unsigned *dst = (unsigned *)(base + f->off);
        json_array_foreach(v, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < f->min || json_integer_value(e) > f->max)
                return cf__err(err, errlen, "%s[%zu]: expected an integer in [%.0f, %.0f]", f->path, i, f->min, f->max);
            dst[i] = (unsigned)json_integer_value(e);
        }
        c->intake.nretry = (unsigned)json_array_size(v);
        return 0;
    }
    case CF_SOURCES: {
        if (!json_is_object(v))
            return cf__err(err, errlen, "%s: expected {\"name\": {\"ip\": ..., \"ehlo\": ...}}", f->path);
        const char *k;
        json_t *t;
        json_object_foreach(v, k, t) {
            if (c->nsources >= DLV_MAX_SOURCES)
                return cf__err(err, errlen, "%s: more than %d sources", f->path, DLV_MAX_SOURCES);
            if (!*k || strlen(k) >= sizeof c->sources[0].name || strpbrk(k, " |,"))
                return cf__err(err, errlen, "%s: bad source name '%s'", f->path, k);
            if (!json_is_object(t))
                return cf__err(err, errlen, "%s.%s: expected an object", f->path, k);
            struct dlv_source *src = &c->sources[c->nsources];
            memset(src, 0, sizeof *src);
            snprintf(src->name, sizeof src->name, "%s", k);
            const char *kk;
            json_t *vv;
            json_object_foreach(t, kk, vv) {
                if (strcmp(kk, "ip") == 0) {
                    if (!json_is_string(vv) ||
                        (!inet_pton(AF_INET, json_string_value(vv), &(struct in_addr){0}) &&
                         !inet_pton(AF_INET6, json_string_value(vv), &(struct in6_addr){0})) ||
                        ring_addr_parse(json_string_value(vv), 0, &src->addr, &src->addr_len) != 0)
                        return cf__err(err, errlen, "%s.%s.ip: expected an IP address", f->path, k);
                    src->has_addr = true;
                } else if (strcmp(kk, "ehlo") == 0) {
                    if (!json_is_string(vv) || !*json_string_value(vv) ||
                        strlen(json_string_value(vv)) >= sizeof src->ehlo ||
                        strpbrk(json_string_value(vv), " \t\r\n<>"))
                        return cf__err(err, errlen, "%s.%s.ehlo: expected a host name", f->path, k);
                    snprintf(src->ehlo, sizeof src->ehlo, "%s", json_string_value(vv));
                } else if (strcmp(kk, "warmup") == 0) {
                    json_t *plan = json_object_get(vv, "plan"), *start = json_object_get(vv, "start");
                    if (!json_is_object(vv) || json_object_size(vv) != 2 || !json_is_string(plan) ||
                        !*json_string_value(plan) ||
                        strlen(json_string_value(plan)) >= sizeof src->warmup_plan ||
                        !json_is_string(start) ||
                        warmup_date_parse(json_string_value(start), &src->warmup_start_day) != 0)
                        return cf__err(err, errlen,
                                       "%s.%s.warmup: expected {\"plan\": \"name\", \"start\": \"YYYY-MM-DD\"}",
                                       f->path, k);
                    snprintf(src->warmup_plan, sizeof src->warmup_plan, "%s", json_string_value(plan));
                } else {
                    return cf__err(err, errlen, "unknown field '%s.%s.%s'", f->path, k, kk);
                }
            }
            for (unsigned i = 0; i < c->nsources; i++)
                if (strcmp(c->sources[i].name, k) == 0)
                    return cf__err(err, errlen, "%s.%s: defined twice", f->path, k);
            c->nsources++;
        }
        return 0;
    }
    case CF_POOLS: {
        if (!json_is_object(v))
            return cf__err(err, errlen, "%s: expected {\"pool\": {\"source\": weight}}", f->path);
        const char *k;
        json_t *t;
        json_object_foreach(v, k, t) {
            if (c->npools >= DLV_MAX_POOLS)
                return cf__err(err, errlen, "%s: more than %d pools", f->path, DLV_MAX_POOLS);
            if (!*k || strlen(k) >= sizeof c->pools[0].name)
                return cf__err(err, errlen, "%s: bad pool name '%s'", f->path, k);
            if (!json_is_object(t) || json_object_size(t) == 0 || json_object_size(t) > DLV_POOL_MAX)
                return cf__err(err, errlen, "%s.%s: expected 1 to %d {\"source\": weight}", f->path, k, DLV_POOL_MAX);
            struct dlv_pool *p = &c->pools[c->npools];
            memset(p, 0, sizeof *p);
            snprintf(p->name, sizeof p->name, "%s", k);
            const char *sk;
            json_t *w;
            json_object_foreach(t, sk, w) {
                unsigned si = 0;
                while (si < c->nsources && strcmp(c->sources[si].name, sk) != 0)
                    si++;
                if (si == c->nsources)
                    return cf__err(err, errlen, "%s.%s.%s: no such source (egress.sources)", f->path, k, sk);
                if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 1000)
                    return cf__err(err, errlen, "%s.%s.%s: weight must be an integer 1-1000", f->path, k, sk);
                p->member[p->n] = si;
                p->weight[p->n++] = (unsigned)json_integer_value(w);
            }
            c->npools++;
        }
        return 0;
    }
    case CF_ROUTES: {
        if (!json_is_object(v))
            return cf__err(err, errlen, "%s: expected an object {\"domain\": \"host:port\"}", f->path);
        const char *k;
        json_t *t;
        json_object_foreach(v, k, t) {
            if (c->nroutes >= CONFIG_MAX_ROUTES)
                return cf__err(err, errlen, "%s: more than %d routes", f->path, CONFIG_MAX_ROUTES);
            struct dlv_route *r = &c->routes[c->nroutes];
            if (json_is_object(t)) {
                /* {"host": "h:p", "user": "...", "password": "..."} keeps secrets out of ps */
                json_t *h = json_object_get(t, "host"), *u = json_object_get(t, "user"),
                       *pw = json_object_get(t, "password");
                const char *kk;
                json_t *vv;
                json_object_foreach(t, kk, vv) {
                    if (strcmp(kk, "host") && strcmp(kk, "user") && strcmp(kk, "password"))
                        return cf__err(err, errlen, "unknown field '%s.%s.%s'", f->path, k, kk);
                }
                if (!json_is_string(h) || (u && !json_is_string(u)) || (pw && !json_is_string(pw)) || (!u != !pw))
                    return cf__err(err, errlen, "%s.%s: expected {\"host\": \"host:port\"[, \"user\", \"password\"]}", f->path, k);
                if (strchr(json_string_value(h), '@'))
                    return cf__err(err, errlen, "%s.%s.host: credentials go in user/password", f->path, k);
                if (cf__route(r, k, strlen(k), json_string_value(h), err, errlen))
                    return -1;
                if (u) {
                    if (strlen(json_string_value(u)) >= sizeof r->auth_user || strlen(json_string_value(pw)) >= sizeof r->auth_pass ||
                        !*json_string_value(u))
                        return cf__err(err, errlen, "%s.%s: user or password empty or too long", f->path, k);
                    snprintf(r->auth_user, sizeof r->auth_user, "%s", json_string_value(u));
                    snprintf(r->auth_pass, sizeof r->auth_pass, "%s", json_string_value(pw));
                }
            } else if (json_is_string(t)) {
                if (cf__route(r, k, strlen(k), json_string_value(t), err, errlen))
                    return -1;
            } else {
                return cf__err(err, errlen, "%s.%s: expected \"host:port\" or an object", f->path, k);
            }
            c->nroutes++;
        }
        return 0;
    }
    }
    return cf__err(err, errlen, "%s: unsupported type", f->path);
}

static int cf__walk(struct salvo_config *c, json_t *obj, const char *prefix, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
        const struct cf_field *f = cf__find(path);
        if (f) {
            if (cf__apply(c, f, v, err, errlen) != 0)
                return -1;
            continue;
        }
        if (json_is_object(v)) {
            /* a section: its fields have this path as prefix */
            size_t pl = strlen(path);
            bool section = false;
            for (size_t i = 0; i < CF_NFIELDS && !section; i++)
                section = strncmp(cf__fields[i].path, path, pl) == 0 && cf__fields[i].path[pl] == '.';
            if (section) {
                if (cf__walk(c, v, path, err, errlen) != 0)
                    return -1;
                continue;
            }
        }
        return cf__err(err, errlen, "unknown field '%s'", path);
    }
    return 0;
}

int config_load_file(struct salvo_config *c, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cf__err(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return cf__err(err, errlen, "%s: the top level must be a JSON object", path);
    }
    int rc = cf__walk(c, root, "", err, errlen);
    json_decref(root);
    return rc;
}

int config_set(struct salvo_config *c, const char *path, const char *value, char *err,
               size_t errlen)
{
    const struct cf_field *f = cf__find(path);
    if (!f)
        return cf__err(err, errlen, "unknown field '%s'", path);
    json_t *v = NULL;
    if (f->type == CF_ROUTES) {
        const char *eq = strchr(value, '=');
        if (!eq)
            return cf__err(err, errlen, "%s: expected DOMAIN=HOST:PORT", path);
        if (c->nroutes >= CONFIG_MAX_ROUTES)
            return cf__err(err, errlen, "%s: more than %d routes", path, CONFIG_MAX_ROUTES);
        if (cf__route(&c->routes[c->nroutes], value, (size_t)(eq - value), eq + 1, err, errlen))
            return -1;
        c->nroutes++;
        return 0;
    }
    if (f->type == CF_SOURCES || f->type == CF_POOLS) {
        json_error_t je;
        v = json_loads(value, 0, &je);
        if (!v)
            return cf__err(err, errlen, "%s: expected a JSON object, got '%s'", path, value);
    } else if (f->type == CF_UINT_LIST && value[0] != '[') {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "[%s]", value);
        json_error_t je;
        v = json_loads(tmp, 0, &je);
        if (!v)
            return cf__err(err, errlen, "%s: cannot parse '%s'", path, value);
    } else if (f->type == CF_STR || f->type == CF_TLS) {
        v = json_string(value);
    } else {
        json_error_t je;
        v = json_loads(value, JSON_DECODE_ANY, &je);
        if (!v)
            return cf__err(err, errlen, "%s: cannot parse '%s'", path, value);
    }
    int rc = cf__apply(c, f, v, err, errlen);
    json_decref(v);
    return rc;
}

int config_finish(struct salvo_config *c, char *err, size_t errlen)
{
    if (tls_policy_from_text(c->tls_policy, &c->dlv.tls_policy) != 0)
        return cf__err(err, errlen, "delivery.tls: unknown policy '%s'", c->tls_policy);
    if (!c->ehlo_name || !*c->ehlo_name || strpbrk(c->ehlo_name, " \t\r\n<>"))
        return cf__err(err, errlen, "ehlo_name: must be a non-empty host name");
    c->dlv.session.ehlo_name = c->ehlo_name;
    c->timeouts_base = c->dlv.session.timeouts;
    if (c->timeout_scale != 1.0)
        smtp_timeouts_scale(&c->dlv.session.timeouts, c->timeout_scale);
    c->dlv.timeout_scale = c->timeout_scale;
    c->dlv.has_source = false;
    if (c->source_ip && *c->source_ip) {
        if (!inet_pton(AF_INET, c->source_ip, &(struct in_addr){0}) &&
            !inet_pton(AF_INET6, c->source_ip, &(struct in6_addr){0}))
            return cf__err(err, errlen, "delivery.source_ip: '%s' is not an IP address", c->source_ip);
        if (ring_addr_parse(c->source_ip, 0, &c->dlv.source, &c->dlv.source_len) != 0)
            return cf__err(err, errlen, "delivery.source_ip: '%s' is not an IP address", c->source_ip);
        c->dlv.has_source = true;
        c->has_source_ip_set = true;
    }
    if (c->redis_url) {
        char host[256], pw[256];
        uint16_t port;
        unsigned db;
        const char *why = NULL;
        if (rds_url_parse(c->redis_url, host, sizeof host, &port, pw, sizeof pw, &db, &why) != 0)
            return cf__err(err, errlen, "redis.url: %s", why);
    }
    if (c->ca_file && *c->ca_file && access(c->ca_file, R_OK) != 0)
        return cf__err(err, errlen, "delivery.ca_file: cannot read '%s'", c->ca_file);
    if (c->dns.ttl_min_s > c->dns.ttl_max_s)
        return cf__err(err, errlen, "dns.ttl_min_s: larger than dns.ttl_max_s");
    c->dns.servers = c->dns_servers;
    if (!c->instance || !*c->instance || strpbrk(c->instance, " \t\r\n") || strlen(c->instance) > 200)
        return cf__err(err, errlen, "instance: must be a non-empty name without spaces, at most 200 bytes");
    if (!c->prefix || !*c->prefix || strpbrk(c->prefix, " {}"))
        return cf__err(err, errlen, "redis.prefix: must be non-empty, without spaces or braces");
    if (c->intake.tx_reserve >= c->intake.max_in_memory)
        return cf__err(err, errlen, "intake.tx_reserve: must be smaller than intake.max_in_memory");
    c->intake.redis_url = c->redis_url;
    c->intake.instance = c->instance;
    c->intake.prefix = c->prefix;
    c->intake.events_file = c->events_file;
    c->intake.max_age_ms = (uint64_t)c->max_age_s * 1000;
    c->dlv.routes = c->routes;
    c->dlv.nroutes = c->nroutes;
    if (c->npools && !c->nsources)
        return cf__err(err, errlen, "egress.pools: no egress.sources are defined");
    if (c->nsources && c->has_source_ip_set)
        return cf__err(err, errlen, "delivery.source_ip: use egress.sources when sources are defined");
    c->dlv.sources = c->sources;
    c->dlv.nsources = c->nsources;
    c->dlv.pools = c->pools;
    c->dlv.npools = c->npools;
    c->dlv.default_pool = 0;
    if (c->default_pool && *c->default_pool) {
        unsigned i = 0;
        while (i < c->npools && strcmp(c->pools[i].name, c->default_pool) != 0)
            i++;
        if (i == c->npools)
            return cf__err(err, errlen, "egress.default_pool: no pool '%s' in egress.pools", c->default_pool);
        c->dlv.default_pool = i;
    } else {
        for (unsigned i = 0; i < c->npools; i++)
            if (strcmp(c->pools[i].name, "default") == 0)
                c->dlv.default_pool = i;
    }
    return 0;
}

int config_apply_env(struct salvo_config *c, char *err, size_t errlen)
{
    const char *v = getenv("SALVO_REDIS_URL");
    if (v && *v && config_set(c, "redis.url", v, err, errlen) != 0)
        return -1;
    v = getenv("SALVO_INSTANCE");
    if (v && *v && config_set(c, "instance", v, err, errlen) != 0)
        return -1;
    return 0;
}

int config_load_shaping(const struct salvo_config *c, struct shaping_rules **out, char *err,
                        size_t errlen)
{
    char *text = NULL;
    size_t len = 2;
    if (c->shaping_file && *c->shaping_file) {
        FILE *f = fopen(c->shaping_file, "rb");
        if (!f)
            return cf__err(err, errlen, "shaping.file: cannot open '%s': %s", c->shaping_file, strerror(errno));
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        if (n < 0 || n > (16 << 20)) {
            fclose(f);
            return cf__err(err, errlen, "shaping.file: '%s' is not a readable file under 16 MiB", c->shaping_file);
        }
        text = malloc((size_t)n + 1);
        len = text ? fread(text, 1, (size_t)n, f) : 0;
        fclose(f);
        if (!text)
            return cf__err(err, errlen, "out of memory");
    }
    char perr[400];
    int rc = shaping_parse(text ? text : "{}", len, out, perr, sizeof perr);
    free(text);
    if (rc != 0)
        return cf__err(err, errlen, "%s: %s", c->shaping_file ? c->shaping_file : "shaping", perr);
    struct shaping_limits b;
    shaping_limits_builtin(&b);
    b.max_connections = c->dlv.max_conns_per_dest;
    b.max_msgs_per_connection = c->dlv.max_msgs_per_conn;
    b.max_rcpts_per_txn = c->dlv.max_rcpts_per_txn;
    b.nretry = c->intake.nretry < SHAPING_RETRY_MAX ? c->intake.nretry : SHAPING_RETRY_MAX;
    memcpy(b.retry_schedule_s, c->intake.retry_s, b.nretry * sizeof b.retry_schedule_s[0]);
    b.max_age_s = c->max_age_s;
    enum shaping_tls st;
    if (shaping_tls_from_text(c->tls_policy, &st) == 0)
        b.tls = st;
    const struct smtp_timeouts *t = &c->timeouts_base;
    b.timeouts = (struct shaping_timeouts){t->connect_ms, t->greeting_ms, t->ehlo_ms, t->starttls_ms,
                                           t->auth_ms, t->mail_ms, t->rcpt_ms, t->data_ms,
                                           t->data_block_ms, t->end_ms, t->rset_ms, t->quit_ms,
                                           t->idle_ms};
    if (shaping_set_base(*out, &b, "config") != 0) {
        shaping_free(*out);
        *out = NULL;
        return cf__err(err, errlen, "shaping: the configuration's limits are out of range for shaping");
    }
    return 0;
}

void config_print_fields(void)
{
    for (size_t i = 0; i < CF_NFIELDS; i++)
        printf("  %-32s %s\n", cf__fields[i].path, cf__fields[i].doc);
}
