/* engine/cli/cmd_shaping_state.c — the shared shaping state in Redis, for operators:
 * `salvo shaping warmup` (each warming source's day, caps, used, remaining),
 * `salvo shaping holds` (suspensions and reduced rates in force, cluster-wide),
 * `salvo shaping suspend SCOPE` and `salvo shaping resume SCOPE` (manual holds, written the
 * way backoff rules write theirs, so every replica applies them within a second). */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cli/cli.h"
#include "engine/config/config.h"
#include "engine/coord/coord_scripts.h"
#include "engine/coord/warmup_state.h"
#include "engine/redis/rds_sync.h"
#include "engine/ring/ring.h"
#include "schedulers/backoff.h"

#define STATE_TIMEOUT_MS 5000

static void state__usage(FILE *f)
{
    fprintf(f,
        "Usage: salvo shaping warmup [options]\n"
        "       salvo shaping holds [options]\n"
        "       salvo shaping suspend SCOPE --for SECONDS [--reason TEXT] [--action A] [--rate N] [options]\n"
        "       salvo shaping resume SCOPE [options]\n\n"
        "warmup   each warming source (egress.sources.NAME.warmup): day, step, held days and why,\n"
        "         and today's and this hour's cap, used and remaining, overall and per provider\n"
        "holds    suspensions, reduced rates and bounces in force on every replica\n"
        "suspend  puts a hold on SCOPE for SECONDS: every replica stops sending there within a\n"
        "         second; what is queued waits in the retry set, unattempted\n"
        "resume   ends the hold on SCOPE now\n\n"
        "SCOPE:   domain:DOMAIN | source:NAME | dest:provider:NAME | dest:mx:HOSTS |\n"
        "         dest:SOURCE|provider:NAME (one source only)   (docs/shaping.md#holds)\n\n"
        "Options:\n"
        "  --config FILE          configuration file (sources, shaping file, Redis)\n"
        "  --redis URL            Redis (default: redis.url of the config)\n"
        "  --set PATH=VALUE       set a configuration field (repeatable)\n"
        "  --action A             suspend (default), reduce_rate or bounce\n"
        "  --rate N               messages per second, for reduce_rate\n"
        "  --json                 print JSON\n"
        "  -h, --help             this text\n");
}

struct state_redis {
    struct ring *ring;
    struct rds *r;
    char err[512];
};

static json_t *state__redis(void *arg, int argc, const char *const *argv)
{
    struct state_redis *s = arg;
    return rds_sync(s->ring, s->r, argc, argv, STATE_TIMEOUT_MS, s->err, sizeof s->err);
}

static int64_t state__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void state__print_warmup(const json_t *st)
{
    const json_t *srcs = json_object_get(st, "sources");
    if (!json_array_size(srcs)) {
        printf("no warming sources (egress.sources.NAME.warmup)\n");
        return;
    }
    size_t i;
    const json_t *s;
    json_array_foreach(srcs, i, s) {
        printf("source %s: plan %s from %s, day %lld, step %lld%s",
               json_string_value(json_object_get(s, "source")),
               json_string_value(json_object_get(s, "plan")),
               json_string_value(json_object_get(s, "start")),
               (long long)json_integer_value(json_object_get(s, "day")),
               (long long)json_integer_value(json_object_get(s, "step")),
               json_is_true(json_object_get(s, "warm")) ? " (warm: no caps)" : "");
        long long held = (long long)json_integer_value(json_object_get(s, "held_days"));
        if (held)
            printf(", %lld day(s) held", held);
        const char *why = json_string_value(json_object_get(s, "hold_reason"));
        printf("%s%s\n", why ? "; last hold: " : "", why ? why : "");
        printf("  %-12s %10s %10s %10s %10s %10s %10s\n", "ramp", "day cap", "used", "left",
               "hour cap", "used", "left");
        size_t j;
        const json_t *r;
        json_array_foreach(json_object_get(s, "ramps"), j, r) {
            const char *p = json_string_value(json_object_get(r, "provider"));
            printf("  %-12s", p ? p : "(all)");
            const char *f[] = {"day_cap", "day_used", "day_remaining", "hour_cap", "hour_used",
                               "hour_remaining"};
            for (unsigned k = 0; k < 6; k++) {
                const json_t *v = json_object_get(r, f[k]);
                if (json_is_integer(v))
                    printf(" %10lld", (long long)json_integer_value(v));
                else
                    printf(" %10s", "-");
            }
            printf("\n");
        }
        const char *pk;
        const json_t *pv;
        json_object_foreach((json_t *)json_object_get(s, "today"), pk, pv)
            printf("  today at %s: sent %lld, bounced %lld, deferred %lld\n", pk,
                   (long long)json_integer_value(json_object_get(pv, "sent")),
                   (long long)json_integer_value(json_object_get(pv, "bounced")),
                   (long long)json_integer_value(json_object_get(pv, "deferred")));
    }
}

/* The holds in force, from the same hash the replicas poll. */
static json_t *state__holds(struct state_redis *sr, const char *prefix)
{
    char hash[300];
    snprintf(hash, sizeof hash, "%s:{p0}:holds", prefix);
    const char *av[] = {"HVALS", hash};
    json_t *vals = state__redis(sr, 2, av);
    if (!vals)
        return NULL;
    json_t *out = json_array();
    int64_t now = state__wall_ms();
    size_t i;
    json_t *v;
    json_array_foreach(vals, i, v) {
        json_t *h = json_loads(json_string_value(v) ? json_string_value(v) : "", 0, NULL);
        json_t *until = h ? json_object_get(h, "until_ms") : NULL;
        if (json_is_integer(until) && json_integer_value(until) > now) {
            json_object_set_new(h, "remaining_s", json_integer((json_integer_value(until) - now + 999) / 1000));
            json_array_append(out, h);
        }
        json_decref(h);
    }
    json_decref(vals);
    return out;
}

static int state__put_hold(struct state_redis *sr, const char *prefix, const char *scope,
                           const char *action, double rate, int64_t until, const char *reason)
{
    char hash[300], zset[310], until_s[24];
    snprintf(hash, sizeof hash, "%s:{p0}:holds", prefix);
    snprintf(zset, sizeof zset, "%s:{p0}:holds:until", prefix);
    snprintf(until_s, sizeof until_s, "%" PRId64, until);
    json_t *o = json_pack("{s:s, s:s, s:I, s:f, s:s, s:s, s:s}", "key", scope, "action", action,
                          "until_ms", (json_int_t)until, "rate_per_s", rate, "rule", "manual",
                          "reason", reason, "set_by", "salvo shaping");
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!js)
        return -1;
    const char *av[] = {"EVAL", coord_lua_hold_put, "2", hash, zset, scope, until_s, js};
    json_t *r = state__redis(sr, 8, av);
    free(js);
    json_decref(r);
    return r ? 0 : -1;
}

static bool state__scope_ok(const char *s)
{
    static const char *const kinds[] = {"domain:", "source:", "dest:"};
    for (unsigned i = 0; i < 3; i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(s, kinds[i], n) == 0 && s[n] && strlen(s) < 700 && !strpbrk(s, " \t\r\n"))
            return true;
    }
    return false;
}

int cmd_shaping_state(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"redis", required_argument, 0, 'R'},
        {"set", required_argument, 0, 'S'}, {"for", required_argument, 0, 'f'},
        {"reason", required_argument, 0, 'r'}, {"action", required_argument, 0, 'a'},
        {"rate", required_argument, 0, 'n'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *sub = argv[1];
    struct salvo_config cfg;
    config_init(&cfg);
    char err[CONFIG_ERR_MAX];
    const char *reason = "", *action = "suspend";
    double rate = 0;
    long long for_s = 0;
    bool json_out = false;
    int c, rc = CLI_EX_USAGE;
    struct shaping_rules *rules = NULL;
    struct state_redis sr = {0};
    argc--;
    argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        char *end = NULL;
        switch (c) {
        case 'c': bad = config_load_file(&cfg, optarg, err, sizeof err); break;
        case 'R': bad = config_set(&cfg, "redis.url", optarg, err, sizeof err); break;
        case 'S': bad = cli_set(&cfg, optarg, err, sizeof err); break;
        case 'f':
            for_s = strtoll(optarg, &end, 10);
            if (!*optarg || *end || for_s < 1 || for_s > 31536000) {
                snprintf(err, sizeof err, "--for: expected seconds, 1..31536000");
                bad = 1;
            }
            break;
        case 'r': reason = optarg; break;
        case 'a': action = optarg; break;
        case 'n':
            rate = strtod(optarg, &end);
            if (!*optarg || *end || !(rate > 0 && rate <= 1000000)) {
                snprintf(err, sizeof err, "--rate: expected messages per second, > 0");
                bad = 1;
            }
            break;
        case 'j': json_out = true; break;
        case 'h': state__usage(stdout); rc = CLI_EX_OK; goto out;
        default: state__usage(stderr); goto out;
        }
        if (bad) {
            fprintf(stderr, "salvo shaping %s: %s\n", sub, err);
            goto out;
        }
    }
    bool scoped = strcmp(sub, "suspend") == 0 || strcmp(sub, "resume") == 0;
    if (optind != argc - (scoped ? 1 : 0)) {
        fprintf(stderr, "salvo shaping %s: %s\n", sub, scoped ? "give exactly one SCOPE" : "unexpected argument");
        goto out;
    }
    const char *scope = scoped ? argv[optind] : NULL;
    enum backoff_action act;
    if (scope && !state__scope_ok(scope)) {
        fprintf(stderr, "salvo shaping %s: bad SCOPE '%s' (domain:D, source:NAME or dest:SITE)\n", sub, scope);
        goto out;
    }
    if (strcmp(sub, "suspend") == 0) {
        if (!for_s) {
            fprintf(stderr, "salvo shaping suspend: --for SECONDS is required\n");
            goto out;
        }
        if (backoff_action_from_text(action, &act) != 0 || act == BACKOFF_SUSPEND_SOURCE) {
            fprintf(stderr, "salvo shaping suspend: --action: expected suspend, reduce_rate or bounce\n");
            goto out;
        }
        if ((act == BACKOFF_REDUCE_RATE) != (rate > 0)) {
            fprintf(stderr, "salvo shaping suspend: --rate goes with --action reduce_rate, and only with it\n");
            goto out;
        }
    }
    if (config_finish(&cfg, err, sizeof err) != 0 ||
        (strcmp(sub, "warmup") == 0 && config_load_shaping(&cfg, &rules, err, sizeof err) != 0)) {
        fprintf(stderr, "salvo shaping %s: %s\n", sub, err);
        rc = CLI_EX_CONFIG;
        goto out;
    }
    rc = CLI_EX_TEMPFAIL;
    const char *why = NULL;
    struct rds_config rcfg = {.url = cfg.intake.redis_url, .name = "shaping"};
    if (ring_create(&sr.ring, &(struct ring_config){.entries = 64, .recv_buffers = 64, .recv_buf_bytes = 16384}) != 0 ||
        rds_create(&sr.r, sr.ring, &rcfg, &why) != 0 || rds_sync_wait_up(sr.ring, sr.r, STATE_TIMEOUT_MS) != 0) {
        fprintf(stderr, "salvo shaping %s: cannot reach Redis at %s%s%s\n", sub, cfg.intake.redis_url,
                why ? ": " : "", why ? why : "");
        goto out;
    }
    if (strcmp(sub, "warmup") == 0) {
        json_t *st = warmup_state_json(cfg.dlv.sources, cfg.dlv.nsources, rules, cfg.intake.prefix,
                                       (int64_t)time(NULL), state__redis, &sr);
        if (!st) {
            fprintf(stderr, "salvo shaping warmup: %s\n", sr.err);
            goto out;
        }
        if (json_out)
            json_dumpf(st, stdout, JSON_INDENT(2)), printf("\n");
        else
            state__print_warmup(st);
        json_decref(st);
    } else if (strcmp(sub, "holds") == 0) {
        json_t *hs = state__holds(&sr, cfg.intake.prefix);
        if (!hs) {
            fprintf(stderr, "salvo shaping holds: %s\n", sr.err);
            goto out;
        }
        if (json_out) {
            json_dumpf(hs, stdout, JSON_INDENT(2));
            printf("\n");
        } else if (!json_array_size(hs)) {
            printf("no holds in force\n");
        }
        size_t i;
        json_t *h;
        json_array_foreach(hs, i, h) {
            if (json_out)
                break;
            /* written by any replica or tool: every field may be missing */
            const char *key = json_string_value(json_object_get(h, "key"));
            const char *act = json_string_value(json_object_get(h, "action"));
            const char *rule = json_string_value(json_object_get(h, "rule"));
            const char *why = json_string_value(json_object_get(h, "reason"));
            printf("%s: %s for %llds more (rule %s)%s%s\n", key ? key : "?", act ? act : "?",
                   (long long)json_integer_value(json_object_get(h, "remaining_s")),
                   rule ? rule : "?", why && *why ? ": " : "", why ? why : "");
        }
        json_decref(hs);
    } else {
        bool resume = strcmp(sub, "resume") == 0;
        int64_t now = state__wall_ms();
        if (state__put_hold(&sr, cfg.intake.prefix, scope, resume ? "suspend" : action, rate,
                            resume ? now : now + for_s * 1000, resume ? "resumed by hand" : reason) != 0) {
            fprintf(stderr, "salvo shaping %s: %s\n", sub, sr.err);
            goto out;
        }
        printf("%s %s%s\n", scope, resume ? "resumed" : action,
               resume ? "" : " (every replica applies it within a second)");
    }
    rc = CLI_EX_OK;
out:
    if (sr.r)
        rds_destroy(sr.r);
    if (sr.ring)
        ring_destroy(sr.ring);
    if (rules)
        shaping_free(rules);
    config_fini(&cfg);
    return rc;
}
