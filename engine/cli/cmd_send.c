/* engine/cli/cmd_send.c — `salvo send`: deliver one message through the real engine (MX
 * lookup, STARTTLS, pipelining) and print each recipient's outcome. Also the operator's
 * debugging tool: -v traces every SMTP line. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/cli/cli.h"
#include "engine/config/config.h"
#include "engine/util/log.h"
#include "engine/worker/worker.h"

static void send__usage(FILE *f)
{
    fprintf(f,
        "Usage: salvo send [options] --from ADDR --to ADDR [--to ADDR...] [FILE]\n\n"
        "Delivers the RFC 5322 message in FILE (or standard input when FILE is absent or '-')\n"
        "to each recipient's mail servers now, and prints one outcome per recipient.\n\n"
        "Options:\n"
        "  --from ADDR            envelope sender (MAIL FROM); '' for the null sender\n"
        "  --to ADDR              recipient (repeatable)\n"
        "  --resolver HOST:PORT   DNS resolver to use (repeatable; default: the system's)\n"
        "  --mx-port N            port used to connect to MX hosts (default 25)\n"
        "  --route DOMAIN=HOST:PORT  send DOMAIN's mail to HOST:PORT instead of its MX (repeatable)\n"
        "  --tls POLICY           disabled | opportunistic | required | verify (default opportunistic)\n"
        "  --ca-file FILE         CA certificates (PEM) for --tls verify\n"
        "  --source-ip ADDR       local address to send from\n"
        "  --ehlo NAME            name to announce in EHLO (default: this host's name)\n"
        "  --timeout-scale F      multiply every protocol timeout by F (e.g. 0.01 in tests)\n"
        "  --config FILE          JSON configuration file (see docs/config.md)\n"
        "  --set PATH=VALUE       set one configuration field (repeatable)\n"
        "  --json                 print one JSON object per recipient\n"
        "  -v, --verbose          trace every SMTP line sent and received, and every state\n"
        "                         change, on standard error\n"
        "  -h, --help             this text\n\n"
        "Exit status: 0 every recipient accepted; 1 some recipient bounced (permanent failure);\n"
        "75 some recipient deferred (temporary failure) and none bounced; 64 usage error;\n"
        "66 message unreadable; 78 configuration error.\n");
}

enum {
    OPT_FROM = 256, OPT_TO, OPT_RESOLVER, OPT_MX_PORT, OPT_ROUTE, OPT_TLS, OPT_CA, OPT_SRC,
    OPT_EHLO, OPT_SCALE, OPT_CONFIG, OPT_SET, OPT_JSON,
};

static const struct option send__opts[] = {
    {"from", required_argument, 0, OPT_FROM},
    {"to", required_argument, 0, OPT_TO},
    {"resolver", required_argument, 0, OPT_RESOLVER},
    {"mx-port", required_argument, 0, OPT_MX_PORT},
    {"route", required_argument, 0, OPT_ROUTE},
    {"tls", required_argument, 0, OPT_TLS},
    {"ca-file", required_argument, 0, OPT_CA},
    {"source-ip", required_argument, 0, OPT_SRC},
    {"ehlo", required_argument, 0, OPT_EHLO},
    {"timeout-scale", required_argument, 0, OPT_SCALE},
    {"config", required_argument, 0, OPT_CONFIG},
    {"set", required_argument, 0, OPT_SET},
    {"json", no_argument, 0, OPT_JSON},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static uint8_t *send__read_all(FILE *f, size_t max, size_t *len, int *err)
{
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) {
        *err = ENOMEM;
        return NULL;
    }
    errno = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= max + 1) {
                free(b);
                *err = EFBIG;
                return NULL;
            }
            cap *= 2;
            uint8_t *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                *err = ENOMEM;
                return NULL;
            }
            b = nb;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        *err = errno ? errno : EIO; /* e.g. EISDIR for a directory */
        free(b);
        return NULL;
    }
    if (n > max) {
        free(b);
        *err = EFBIG;
        return NULL;
    }
    *len = n;
    return b;
}

static bool send__done;

static void send__on_done(struct dlv_msg *m)
{
    (void)m;
    send__done = true;
}

static void send__print_json(const struct dlv_rcpt *r)
{
    const struct smtp_outcome *o = &r->r.outcome;
    json_t *j = json_object();
    json_object_set_new(j, "recipient", json_string(r->r.addr));
    json_object_set_new(j, "status", json_string(dlv_status_to_text(r->status)));
    json_object_set_new(j, "code", o->code ? json_integer(o->code) : json_null());
    json_object_set_new(j, "enhanced", json_string(o->enhanced));
    json_object_set_new(j, "reply", json_string(o->text));
    json_object_set_new(j, "command", json_string(fail_phase_to_text(o->phase)));
    json_object_set_new(j, "mx_host", json_string(r->conn.mx_host));
    json_object_set_new(j, "mx_addr", json_string(r->conn.mx_addr));
    json_object_set_new(j, "mx_port", r->conn.mx_port ? json_integer(r->conn.mx_port) : json_null());
    json_object_set_new(j, "source_addr", json_string(r->conn.source_addr));
    json_object_set_new(j, "tls_version", json_string(r->conn.tls_version));
    json_object_set_new(j, "tls_cipher", json_string(r->conn.tls_cipher));
    json_object_set_new(j, "tls_verified", json_boolean(r->conn.tls_verified));
    if (r->status == DLV_DELIVERED) {
        json_object_set_new(j, "scope", json_null());
        json_object_set_new(j, "class", json_null());
    } else {
        json_object_set_new(j, "scope", json_string(fail_scope_to_text(r->verdict.scope)));
        json_object_set_new(j, "class", json_string(r->verdict.cls == FAIL_PERMANENT ? "permanent" : "temporary"));
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

static void send__print_text(const struct dlv_rcpt *r)
{
    const struct smtp_outcome *o = &r->r.outcome;
    printf("%s: %s", r->r.addr, dlv_status_to_text(r->status));
    if (o->code)
        printf(" (%d%s%s %s)", o->code, o->enhanced[0] ? " " : "", o->enhanced, o->text);
    else
        printf(" (%s%s%s)", o->enhanced, o->enhanced[0] ? " " : "", o->text);
    printf(" [%s]", fail_phase_to_text(o->phase));
    if (r->conn.mx_addr[0])
        printf(" via %s[%s]:%u", r->conn.mx_host, r->conn.mx_addr, r->conn.mx_port);
    if (r->conn.source_addr[0])
        printf(" from %s", r->conn.source_addr);
    if (r->conn.tls_version[0])
        printf(" %s %s%s", r->conn.tls_version, r->conn.tls_cipher,
               r->conn.tls_verified ? " verified" : "");
    printf("\n");
}

int cmd_send(int argc, char **argv)
{
    struct salvo_config cfg;
    config_init(&cfg);
    char err[CONFIG_ERR_MAX];
    const char *from = NULL, *config_file = NULL;
    char **to = calloc((size_t)argc, sizeof *to);
    unsigned nto = 0;
    char resolvers[1024] = "";
    bool json = false;
    int verbose = 0, rc = CLI_EX_USAGE;
    uint8_t *body = NULL;
    struct dlv_rcpt *rcpts = NULL;
    struct worker w = {0};
    bool worker_up = false;

    /* Two passes: the config file first, so that options override it whatever their order. */
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", send__opts, NULL)) != -1)
        if (c == OPT_CONFIG)
            config_file = optarg;
    if (config_file && config_load_file(&cfg, config_file, err, sizeof err) != 0) {
        fprintf(stderr, "salvo send: %s\n", err);
        rc = CLI_EX_CONFIG;
        goto out;
    }
    opterr = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", send__opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_FROM: from = optarg; break;
        case OPT_TO: to[nto++] = optarg; break;
        case OPT_RESOLVER: bad = cli_list_append(resolvers, sizeof resolvers, optarg, err, sizeof err); break;
        case OPT_MX_PORT: bad = config_set(&cfg, "delivery.mx_port", optarg, err, sizeof err); break;
        case OPT_ROUTE: bad = config_add_route(&cfg, optarg, err, sizeof err); break;
        case OPT_TLS: bad = config_set(&cfg, "delivery.tls", optarg, err, sizeof err); break;
        case OPT_CA: bad = config_set(&cfg, "delivery.ca_file", optarg, err, sizeof err); break;
        case OPT_SRC: bad = config_set(&cfg, "delivery.source_ip", optarg, err, sizeof err); break;
        case OPT_EHLO: bad = config_set(&cfg, "ehlo_name", optarg, err, sizeof err); break;
        case OPT_SCALE: bad = config_set(&cfg, "timeout_scale", optarg, err, sizeof err); break;
        case OPT_CONFIG: break;
        case OPT_SET: bad = cli_set(&cfg, optarg, err, sizeof err); break;
        case OPT_JSON: json = true; break;
        case 'v': verbose++; break;
        case 'h':
            send__usage(stdout);
            rc = CLI_EX_OK;
            goto out;
        default:
            send__usage(stderr);
            goto out;
        }
        if (bad) {
            fprintf(stderr, "salvo send: %s\n", err);
            goto out;
        }
    }
    if (!from) {
        fprintf(stderr, "salvo send: --from is required (use --from '' for the null sender)\n");
        goto out;
    }
    if (nto == 0) {
        fprintf(stderr, "salvo send: at least one --to is required\n");
        goto out;
    }
    if (optind < argc - 1) {
        fprintf(stderr, "salvo send: only one message file may be given\n");
        goto out;
    }
    if (resolvers[0] && config_set(&cfg, "dns.servers", resolvers, err, sizeof err) != 0) {
        fprintf(stderr, "salvo send: %s\n", err);
        goto out;
    }
    if (config_finish(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "salvo send: %s\n", err);
        rc = CLI_EX_CONFIG;
        goto out;
    }
    if (verbose)
        log_set_level(LOG_TRACE);

    const char *file = optind < argc ? argv[optind] : "-";
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "salvo send: cannot open %s: %s\n", file, strerror(errno));
        rc = CLI_EX_NOINPUT;
        goto out;
    }
    size_t body_len = 0;
    int rerr = 0;
    body = send__read_all(f, cfg.max_message_bytes, &body_len, &rerr);
    if (f != stdin)
        fclose(f);
    if (!body) {
        fprintf(stderr, "salvo send: cannot read %s: %s\n", file,
                rerr == EFBIG ? "larger than max_message_bytes" : strerror(rerr));
        rc = CLI_EX_NOINPUT;
        goto out;
    }

    if (worker_init(&w, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "salvo send: %s\n", err);
        rc = CLI_EX_CONFIG;
        goto out;
    }
    worker_up = true;
    rcpts = calloc(nto, sizeof *rcpts);
    if (!rcpts) {
        rc = CLI_EX_SOFTWARE;
        goto out;
    }
    for (unsigned i = 0; i < nto; i++)
        rcpts[i].r.addr = to[i];
    struct dlv_msg msg = {
        .from = from, .rcpts = rcpts, .nrcpts = nto, .body = body, .body_len = body_len,
        .on_done = send__on_done,
    };
    int src = dlv_submit(w.dlv, &msg);
    if (src != 0) {
        fprintf(stderr, "salvo send: cannot submit: %s\n", strerror(-src));
        rc = CLI_EX_SOFTWARE;
        goto out;
    }
    while (!send__done) {
        int lr = ring_run_once(w.ring, 1000);
        if (lr != 0) {
            fprintf(stderr, "salvo send: event loop: %s\n", strerror(-lr));
            rc = CLI_EX_SOFTWARE;
            goto out;
        }
    }
    bool bounced = false, deferred = false;
    for (unsigned i = 0; i < nto; i++) {
        if (json)
            send__print_json(&rcpts[i]);
        else
            send__print_text(&rcpts[i]);
        bounced |= rcpts[i].status == DLV_BOUNCED;
        deferred |= rcpts[i].status == DLV_DEFERRED;
    }
    fflush(stdout);
    rc = bounced ? CLI_EX_FAILED : deferred ? CLI_EX_TEMPFAIL : CLI_EX_OK;

out:
    if (worker_up) {
        worker_drain(&w, cfg.dlv.session.timeouts.quit_ms + 1000);
        worker_fini(&w);
    }
    free(rcpts);
    free(body);
    free(to);
    config_fini(&cfg);
    return rc;
}

int cmd_check_config(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc == 2 ? stdout : stderr;
        fprintf(f, "Usage: salvo check-config FILE\n\nValidates FILE and prints 'ok', or the first "
                   "error naming the field.\n\nFields:\n");
        if (argc == 2)
            config_print_fields();
        return argc == 2 ? CLI_EX_OK : CLI_EX_USAGE;
    }
    struct salvo_config cfg;
    char err[CONFIG_ERR_MAX];
    config_init(&cfg);
    int rc = CLI_EX_OK;
    struct shaping_rules *rules = NULL;
    if (config_load_file(&cfg, argv[1], err, sizeof err) != 0 ||
        config_finish(&cfg, err, sizeof err) != 0 ||
        config_load_shaping(&cfg, &rules, err, sizeof err) != 0) {
        fprintf(stderr, "salvo check-config: %s\n", err);
        rc = CLI_EX_CONFIG;
    } else {
        printf("ok\n");
    }
    if (rules)
        shaping_free(rules);
    config_fini(&cfg);
    return rc;
}
