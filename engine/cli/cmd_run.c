/* engine/cli/cmd_run.c — `salvo run`: the long-running engine. Reads jobs from Redis, delivers,
 * settles outcomes; SIGTERM/SIGINT stop reading and finish what is in memory within the grace
 * period; SIGHUP reopens the events file. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/cli/cli.h"
#include "engine/config/config.h"
#include "engine/coord/coord.h"
#include "engine/intake/intake.h"
#include "engine/util/log.h"
#include "engine/worker/worker.h"

#define RUN_MAX_SHARDS 64

/* Set by signal handlers, read by every worker: lock-free atomics are async-signal-safe. */
static atomic_int run__stop, run__hup_gen, run__go;

static void run__on_signal(int sig)
{
    if (sig == SIGHUP)
        atomic_fetch_add(&run__hup_gen, 1);
    else
        atomic_fetch_add(&run__stop, 1);
}

/* One worker thread: its own ring, resolver, TLS context, delivery layer, intake consumer and
 * coordinator connection. Workers share nothing in memory; Redis makes their limits one. */
struct run_shard {
    unsigned idx;
    pthread_t th;
    struct salvo_config cfg;         /* shallow copy of the process's */
    char instance[160];              /* its consumer name: the instance, or "<instance>-wN" */
    atomic_int state;                /* 0 starting, 1 running, -1 failed to start, 2 done */
    char err[CONFIG_ERR_MAX];
    int rc;
};

static void run__on_holds(void *arg) { dlv_holds_changed(arg); }

static void run__on_yield(void *arg, const char *key) { dlv_yield_idle(arg, key); }

static void *run__shard_main(void *arg)
{
    struct run_shard *sh = arg;
    struct salvo_config *cfg = &sh->cfg;
    struct worker w;
    struct intake *in = NULL;
    struct coord *co = NULL;
    const char *why = NULL;
    /* the ring is created here: it belongs to the thread that submits to it */
    if (worker_init(&w, cfg, sh->err, sizeof sh->err) != 0) {
        atomic_store(&sh->state, -1);
        return NULL;
    }
    if (intake_create(&in, w.ring, w.dlv, &cfg->intake, &why) != 0) {
        snprintf(sh->err, sizeof sh->err, "%s", why ? why : "cannot start intake");
        worker_fini(&w);
        atomic_store(&sh->state, -1);
        return NULL;
    }
    /* cluster-wide limits, warm-up budgets and shared holds live in the same Redis */
    struct coord_config cc;
    coord_config_defaults(&cc);
    cc.redis_url = cfg->intake.redis_url;
    cc.prefix = cfg->intake.prefix;
    cc.instance = sh->instance;
    cc.holds = dlv_holds(w.dlv);
    cc.on_holds = run__on_holds;
    cc.on_yield = run__on_yield;
    cc.arg = w.dlv;
    if (coord_create(&co, w.ring, &cc, &why) != 0) {
        snprintf(sh->err, sizeof sh->err, "%s", why ? why : "cannot start the coordinator");
        intake_destroy(in);
        worker_fini(&w);
        atomic_store(&sh->state, -1);
        return NULL;
    }
    dlv_set_coord(w.dlv, co);
    atomic_store(&sh->state, 1);
    char err[CONFIG_ERR_MAX];
    int hup_seen = atomic_load(&run__hup_gen);
    uint64_t next_progress = ring_now_ms(w.ring) + cfg->progress_interval_s * 1000u;
    uint64_t stop_deadline = 0;
    const char *tag = sh->instance;
    sh->rc = CLI_EX_OK;
    for (;;) {
        int lr = ring_run_once(w.ring, 100);
        if (lr != 0) {
            log_error("[%s] event loop: %s", tag, strerror(-lr));
            sh->rc = CLI_EX_SOFTWARE;
            atomic_fetch_add(&run__stop, 1); /* the others stop too */
            break;
        }
        uint64_t now = ring_now_ms(w.ring);
        int stop = atomic_load(&run__stop);
        if (!atomic_load(&run__go) && !stop)
            continue; /* the other workers are still starting */
        int hup = atomic_load(&run__hup_gen);
        if (hup != hup_seen) {
            hup_seen = hup;
            intake_reopen_events(in);
            if (worker_reload_shaping(&w, cfg, err, sizeof err) != 0)
                log_error("SIGHUP: shaping rules not reloaded (the old ones stay): %s", err);
            else if (sh->idx == 0)
                log_info("SIGHUP: events file reopened, shaping rules reloaded");
        }
        if (stop && !stop_deadline) {
            log_info("salvo run: %s stopping; %u messages in memory", tag, intake_in_memory(in));
            intake_stop_reading(in);
            stop_deadline = now + cfg->shutdown_grace_s * 1000u + 1;
        }
        if (stop_deadline && (intake_in_memory(in) == 0 || now >= stop_deadline || stop > 1)) {
            if (intake_in_memory(in))
                log_warn("salvo run: %s: %u messages still in memory after the grace period: open "
                         "transactions are cut (deferred), the rest stay pending for takeover",
                         tag, intake_in_memory(in));
            break;
        }
        if (cfg->progress_interval_s && now >= next_progress) {
            struct intake_stats st;
            intake_get_stats(in, &st);
            log_info("progress%s%s: read %llu delivered %llu deferred %llu bounced %llu expired %llu "
                     "rejected %llu in-memory %u%s", sh->idx || strcmp(tag, cfg->instance) ? " " : "",
                     sh->idx || strcmp(tag, cfg->instance) ? tag : "",
                     (unsigned long long)st.read, (unsigned long long)st.delivered,
                     (unsigned long long)st.deferred, (unsigned long long)st.bounced,
                     (unsigned long long)st.expired, (unsigned long long)st.rejected,
                     intake_in_memory(in), intake_ready(in) ? "" : " (redis unavailable)");
            next_progress = now + cfg->progress_interval_s * 1000u;
        }
    }
    worker_drain(&w, 2000);
    dlv_set_coord(w.dlv, NULL);
    coord_destroy(co);
    intake_destroy(in);
    worker_fini(&w);
    atomic_store(&sh->state, 2);
    return NULL;
}

static void run__usage(FILE *f)
{
    fprintf(f,
        "Usage: salvo run [options]\n\n"
        "Runs the engine: reads jobs from Redis, delivers them, writes every outcome as an event.\n"
        "With no configuration file it runs on the documented defaults (docs/config.md).\n\n"
        "Options:\n"
        "  --config FILE          JSON configuration file\n"
        "  --redis URL            Redis URL (env SALVO_REDIS_URL; default redis://127.0.0.1:6379)\n"
        "  --instance NAME        this replica's name (env SALVO_INSTANCE; default: host name)\n"
        "  --resolver HOST:PORT   DNS resolver (repeatable; default: the system's)\n"
        "  --mx-port N            port used to connect to MX hosts (default 25)\n"
        "  --route DOMAIN=HOST:PORT  static route (repeatable)\n"
        "  --timeout-scale F      multiply every protocol timeout by F\n"
        "  --events-file PATH     also write events as JSON lines to PATH (reopened on SIGHUP)\n"
        "  --set PATH=VALUE       set any configuration field (repeatable)\n"
        "  --log-level LEVEL      error | warn | info | debug | trace (default info)\n"
        "  -v, --verbose          trace every SMTP line (same as --log-level trace)\n"
        "  -h, --help             this text\n\n"
        "Signals: SIGTERM/SIGINT finish in-memory work (grace: shutdown_grace_s) and exit 0;\n"
        "a second one ends the grace period at once (open transactions are cut and deferred,\n"
        "messages not yet sent stay pending and are taken over);\n"
        "SIGHUP reopens the events file and reloads the shaping rules (connections stay open).\n");
}

enum { R_CONFIG = 256, R_REDIS, R_INSTANCE, R_RESOLVER, R_MXPORT, R_ROUTE, R_SCALE, R_EVENTS, R_SET, R_LOG };

static const struct option run__opts[] = {
    {"config", required_argument, 0, R_CONFIG}, {"redis", required_argument, 0, R_REDIS},
    {"instance", required_argument, 0, R_INSTANCE}, {"resolver", required_argument, 0, R_RESOLVER},
    {"mx-port", required_argument, 0, R_MXPORT}, {"route", required_argument, 0, R_ROUTE},
    {"timeout-scale", required_argument, 0, R_SCALE}, {"events-file", required_argument, 0, R_EVENTS},
    {"set", required_argument, 0, R_SET}, {"log-level", required_argument, 0, R_LOG},
    {"verbose", no_argument, 0, 'v'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
};

int cmd_run(int argc, char **argv)
{
    struct salvo_config cfg;
    config_init(&cfg);
    char err[CONFIG_ERR_MAX];
    char resolvers[1024] = "";
    const char *config_file = NULL;
    int rc = CLI_EX_USAGE, c;
    enum log_level lvl = LOG_INFO;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", run__opts, NULL)) != -1)
        if (c == R_CONFIG)
            config_file = optarg;
    if (config_file && config_load_file(&cfg, config_file, err, sizeof err) != 0) {
        fprintf(stderr, "salvo run: %s\n", err);
        config_fini(&cfg);
        return CLI_EX_CONFIG;
    }
    if (config_apply_env(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "salvo run: environment: %s\n", err);
        config_fini(&cfg);
        return CLI_EX_CONFIG;
    }
    opterr = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", run__opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case R_CONFIG: break;
        case R_REDIS: bad = config_set(&cfg, "redis.url", optarg, err, sizeof err); break;
        case R_INSTANCE: bad = config_set(&cfg, "instance", optarg, err, sizeof err); break;
        case R_RESOLVER: bad = cli_list_append(resolvers, sizeof resolvers, optarg, err, sizeof err); break;
        case R_MXPORT: bad = config_set(&cfg, "delivery.mx_port", optarg, err, sizeof err); break;
        case R_ROUTE: bad = config_add_route(&cfg, optarg, err, sizeof err); break;
        case R_SCALE: bad = config_set(&cfg, "timeout_scale", optarg, err, sizeof err); break;
        case R_EVENTS: bad = config_set(&cfg, "events.file", optarg, err, sizeof err); break;
        case R_SET: bad = cli_set(&cfg, optarg, err, sizeof err); break;
        case R_LOG:
            if (log_level_from_text(optarg, &lvl) != 0) {
                snprintf(err, sizeof err, "unknown log level '%s'", optarg);
                bad = 1;
            }
            break;
        case 'v': lvl = LOG_TRACE; break;
        case 'h':
            run__usage(stdout);
            config_fini(&cfg);
            return CLI_EX_OK;
        default:
            run__usage(stderr);
            config_fini(&cfg);
            return CLI_EX_USAGE;
        }
        if (bad) {
            fprintf(stderr, "salvo run: %s\n", err);
            config_fini(&cfg);
            return CLI_EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "salvo run: unexpected argument '%s'\n", argv[optind]);
        config_fini(&cfg);
        return CLI_EX_USAGE;
    }
    if ((resolvers[0] && config_set(&cfg, "dns.servers", resolvers, err, sizeof err) != 0) ||
        config_finish(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "salvo run: %s\n", err);
        config_fini(&cfg);
        return CLI_EX_CONFIG;
    }
    log_set_level(lvl);
    /* each in-memory message can need one transaction per recipient domain */
    if (cfg.dlv.max_txns < cfg.intake.max_in_memory * 2)
        cfg.dlv.max_txns = cfg.intake.max_in_memory * 2;
    /* one slow destination may not fill the memory budget: beyond a quarter of it (or what it
     * sends in a few seconds, if more), its messages wait in the retry set */
    if (cfg.dlv.max_queued_per_dest > cfg.intake.max_in_memory / 4)
        cfg.dlv.max_queued_per_dest = cfg.intake.max_in_memory / 4 ? cfg.intake.max_in_memory / 4 : 1;

    unsigned nshards = cfg.workers;
    if (!nshards) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        nshards = ncpu > 0 ? (unsigned)ncpu : 1;
    }
    if (nshards > RUN_MAX_SHARDS)
        nshards = RUN_MAX_SHARDS;
    struct run_shard *shards = calloc(nshards, sizeof *shards);
    if (!shards) {
        fprintf(stderr, "salvo run: out of memory\n");
        config_fini(&cfg);
        return CLI_EX_SOFTWARE;
    }
    /* the memory budget is the process's: each worker gets its share */
    unsigned per_mem = cfg.intake.max_in_memory / nshards ? cfg.intake.max_in_memory / nshards : 1;
    unsigned per_tx = cfg.intake.tx_reserve / nshards;
    if (per_tx >= per_mem)
        per_tx = per_mem / 2;
    {
        /* never log the password */
        char shown[512];
        const char *at = strrchr(cfg.redis_url, '@');
        if (at)
            snprintf(shown, sizeof shown, "redis://****@%s", at + 1);
        else
            snprintf(shown, sizeof shown, "%s", cfg.redis_url);
        log_info("salvo run: instance %s, redis %s, %u worker%s", cfg.instance, shown, nshards,
                 nshards == 1 ? "" : "s");
    }
    struct sigaction sa = {0};
    sa.sa_handler = run__on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* workers never take signals: the main thread does, and tells them through atomics */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started = 0;
    rc = CLI_EX_OK;
    for (unsigned i = 0; i < nshards; i++) {
        struct run_shard *sh = &shards[i];
        sh->idx = i;
        sh->cfg = cfg; /* shallow: strings stay owned by cfg; the worker writes only its copy */
        if (nshards == 1)
            snprintf(sh->instance, sizeof sh->instance, "%s", cfg.intake.instance);
        else
            snprintf(sh->instance, sizeof sh->instance, "%s-w%u", cfg.intake.instance, i);
        sh->cfg.intake.instance = sh->instance;
        sh->cfg.intake.max_in_memory = per_mem;
        sh->cfg.intake.tx_reserve = per_tx;
        /* each in-memory message can need one transaction per recipient domain */
        if (sh->cfg.dlv.max_txns < per_mem * 2)
            sh->cfg.dlv.max_txns = per_mem * 2;
        /* one slow destination may not fill the memory budget: beyond a quarter of it (or what
         * it sends in a few seconds, if more), its messages wait in the retry set */
        if (sh->cfg.dlv.max_queued_per_dest > per_mem / 4)
            sh->cfg.dlv.max_queued_per_dest = per_mem / 4 ? per_mem / 4 : 1;
        if (pthread_create(&sh->th, NULL, run__shard_main, sh) != 0) {
            fprintf(stderr, "salvo run: cannot start worker thread %u\n", i);
            atomic_store(&run__stop, 2);
            rc = CLI_EX_SOFTWARE;
            break;
        }
        started++;
        /* one at a time: a configuration error is reported once, before anything runs */
        while (atomic_load(&sh->state) == 0)
            usleep(1000);
        if (atomic_load(&sh->state) < 0) {
            fprintf(stderr, "salvo run: %s\n", sh->err);
            atomic_store(&run__stop, 2);
            rc = CLI_EX_CONFIG;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == CLI_EX_OK)
        atomic_store(&run__go, 1);
    /* the main thread only waits: for signals (handled in run__on_signal) and the workers */
    for (;;) {
        unsigned running = 0;
        for (unsigned i = 0; i < started; i++)
            running += atomic_load(&shards[i].state) == 1;
        if (!running)
            break;
        usleep(20000);
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(shards[i].th, NULL);
        if (shards[i].rc > rc)
            rc = shards[i].rc;
    }
    free(shards);
    config_fini(&cfg);
    return rc;
}
