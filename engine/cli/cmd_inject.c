/* engine/cli/cmd_inject.c — `salvo inject`: the producer tool. Enqueues a transactional
 * message, or stores a campaign and enqueues one job per recipient from a CSV or JSON-lines
 * list, streaming (a million-row file needs little memory), pipelining XADDs through the
 * ring, with a progress bar on a terminal. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/cli/cli.h"
#include "engine/util/csv.h"
#include "engine/redis/rds.h"
#include "engine/ring/ring.h"
#include "engine/util/buf.h"
#include "engine/util/jsonw.h"

#define INJ_WINDOW 2000
#define INJ_MAX_META 64

static void inject__usage(FILE *f)
{
    fprintf(f,
        "Usage: salvo inject [options]\n\n"
        "Enqueues mail for Salvo in Redis and prints the number of jobs enqueued.\n\n"
        "Recipients:\n"
        "  --to ADDR              recipient (repeatable): one job for all of them\n"
        "  --recipients FILE      .csv (header row; column 'email' is the address, other\n"
        "                         columns are merge fields) or .jsonl ({\"email\": ..., fields});\n"
        "                         one job per row\n"
        "Content (one of):\n"
        "  --content FILE.eml     raw RFC 5322 message\n"
        "  --subject S --text FILE [--html FILE]   parts Salvo assembles into MIME;\n"
        "                         with --campaign they are templates with {{field}} merge fields\n"
        "Options:\n"
        "  --from ADDR            envelope sender (required)\n"
        "  --from-header TEXT     From: header (default: the envelope sender)\n"
        "  --campaign ID          store the content as campaign ID (if content is given) and\n"
        "                         enqueue campaign jobs; without content ID must already exist\n"
        "  --list-unsubscribe URI List-Unsubscribe for the campaign (template), adds one-click\n"
        "                         List-Unsubscribe-Post when it contains an https URI\n"
        "  --lane transactional|bulk  (default: transactional, bulk for campaigns)\n"
        "  --meta KEY=VALUE       user metadata echoed in every event (repeatable)\n"
        "  --redis URL            Redis URL (env SALVO_REDIS_URL; default redis://127.0.0.1:6379)\n"
        "  --prefix P             key prefix (default salvo)\n"
        "  --quiet                no progress bar\n"
        "  -h, --help             this text\n");
}

enum { I_TO = 256, I_RCPTS, I_CONTENT, I_SUBJECT, I_TEXT, I_HTML, I_FROM, I_FROMH, I_CAMPAIGN,
       I_LANE, I_META, I_REDIS, I_PREFIX, I_QUIET, I_UNSUB };

static const struct option inject__opts[] = {
    {"to", required_argument, 0, I_TO}, {"recipients", required_argument, 0, I_RCPTS},
    {"content", required_argument, 0, I_CONTENT}, {"subject", required_argument, 0, I_SUBJECT},
    {"text", required_argument, 0, I_TEXT}, {"html", required_argument, 0, I_HTML},
    {"from", required_argument, 0, I_FROM}, {"from-header", required_argument, 0, I_FROMH},
    {"campaign", required_argument, 0, I_CAMPAIGN}, {"lane", required_argument, 0, I_LANE},
    {"meta", required_argument, 0, I_META}, {"redis", required_argument, 0, I_REDIS},
    {"prefix", required_argument, 0, I_PREFIX}, {"quiet", no_argument, 0, I_QUIET},
    {"list-unsubscribe", required_argument, 0, I_UNSUB}, {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static struct {
    struct ring *ring;
    struct rds *r;
    bool up, failed;
    unsigned inflight;
    unsigned long long sent, acked;
    char err[512];
} I;

static void inject__on_up(struct rds *r, void *arg) { (void)r; (void)arg; I.up = true; }

static void inject__on_down(struct rds *r, void *arg, const char *why)
{
    (void)r;
    (void)arg;
    I.up = false;
    if (!I.failed) {
        I.failed = true;
        snprintf(I.err, sizeof I.err, "Redis connection lost: %s", why);
    }
}

static void inject__on_reply(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    (void)arg;
    I.inflight--;
    if (!reply || rds_reply_type(reply) == RDS_ERROR) {
        if (!I.failed) {
            I.failed = true;
            snprintf(I.err, sizeof I.err, "Redis: %s", reply ? rds_reply_str(reply, NULL) : "no reply");
        }
        return;
    }
    I.acked++;
}

static char *inject__slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b;
    buf_init(&b, 1u << 30);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(&b, tmp, n) != 0) {
            fclose(f);
            buf_fini(&b);
            return NULL;
        }
    fclose(f);
    buf_append(&b, "", 1);
    *len = b.len - 1;
    return (char *)b.data;
}

static int inject__command(int argc, const char **argv, const size_t *lens)
{
    while (I.inflight >= INJ_WINDOW && !I.failed)
        ring_run_once(I.ring, 100);
    if (I.failed)
        return -1;
    if (rds_command(I.r, inject__on_reply, NULL, argc, argv, lens) != 0) {
        I.failed = true;
        snprintf(I.err, sizeof I.err, "Redis is not connected");
        return -1;
    }
    I.inflight++;
    I.sent++;
    return 0;
}

static void inject__progress(const char *what, unsigned long long done, double frac, double t0,
                             bool final)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double el = ts.tv_sec + ts.tv_nsec / 1e9 - t0;
    int width = 30, fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %3.0f%% %llu jobs %6.0f/s%s", what, bar, frac * 100, done,
            el > 0 ? done / el : 0.0, final ? "\n" : "");
}

/* Appends "message": {...} parts (templates when campaign) to w. */
static void inject__parts(struct jsonw *w, const char *from_header, const char *subject,
                          const char *text, const char *html)
{
    jsonw_raw(w, "message", NULL);
    w->b->len -= 4; /* replace the null with an object */
    struct jsonw m;
    jsonw_begin(&m, w->b);
    jsonw_str(&m, "from", from_header);
    if (subject)
        jsonw_str(&m, "subject", subject);
    if (text)
        jsonw_str(&m, "text", text);
    if (html)
        jsonw_str(&m, "html", html);
    jsonw_end(&m);
}

int cmd_inject(int argc, char **argv)
{
    const char *to[1024];
    unsigned nto = 0;
    const char *rcpts_file = NULL, *content_file = NULL, *subject = NULL, *text_file = NULL,
               *html_file = NULL, *from = NULL, *from_header = NULL, *campaign = NULL,
               *lane = NULL, *prefix = "salvo", *unsub = NULL;
    const char *url = getenv("SALVO_REDIS_URL");
    const char *meta_k[INJ_MAX_META], *meta_v[INJ_MAX_META];
    unsigned nmeta = 0;
    bool quiet = !isatty(STDERR_FILENO);
    int c, rc = CLI_EX_USAGE;
    char *content = NULL, *text = NULL, *html = NULL;
    size_t content_len = 0, text_len = 0, html_len = 0;
    struct buf job;
    buf_init(&job, 64u << 20);
    struct buf meta;
    buf_init(&meta, 1u << 20);
    double t0 = 0;
    unsigned long long jobs = 0;
    bool input_error = false;
    struct csv_reader *csv = NULL;
    memset(&I, 0, sizeof I);

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", inject__opts, NULL)) != -1) {
        switch (c) {
        case I_TO:
            if (nto == sizeof to / sizeof *to) {
                fprintf(stderr, "salvo inject: too many --to (use --recipients)\n");
                goto out;
            }
            to[nto++] = optarg;
            break;
        case I_RCPTS: rcpts_file = optarg; break;
        case I_CONTENT: content_file = optarg; break;
        case I_SUBJECT: subject = optarg; break;
        case I_TEXT: text_file = optarg; break;
        case I_HTML: html_file = optarg; break;
        case I_FROM: from = optarg; break;
        case I_FROMH: from_header = optarg; break;
        case I_CAMPAIGN: campaign = optarg; break;
        case I_LANE: lane = optarg; break;
        case I_UNSUB: unsub = optarg; break;
        case I_META: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || nmeta == INJ_MAX_META) {
                fprintf(stderr, "salvo inject: --meta expects KEY=VALUE\n");
                goto out;
            }
            *eq = '\0';
            meta_k[nmeta] = optarg;
            meta_v[nmeta++] = eq + 1;
            break;
        }
        case I_REDIS: url = optarg; break;
        case I_PREFIX: prefix = optarg; break;
        case I_QUIET: quiet = true; break;
        case 'h': inject__usage(stdout); rc = CLI_EX_OK; goto out;
        default: inject__usage(stderr); goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "salvo inject: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (!from) {
        fprintf(stderr, "salvo inject: --from is required\n");
        goto out;
    }
    if (!nto && !rcpts_file) {
        fprintf(stderr, "salvo inject: give --to or --recipients\n");
        goto out;
    }
    if (nto && rcpts_file) {
        fprintf(stderr, "salvo inject: --to and --recipients are exclusive\n");
        goto out;
    }
    if (content_file && (subject || text_file || html_file)) {
        fprintf(stderr, "salvo inject: --content excludes --subject/--text/--html\n");
        goto out;
    }
    bool have_parts = subject || text_file || html_file;
    if (!content_file && !have_parts && !campaign) {
        fprintf(stderr, "salvo inject: give --content, or --subject with --text/--html\n");
        goto out;
    }
    if (have_parts && !text_file && !html_file) {
        fprintf(stderr, "salvo inject: --subject needs --text or --html\n");
        goto out;
    }
    if (campaign && content_file) {
        fprintf(stderr, "salvo inject: campaigns are built from --subject/--text/--html templates\n");
        goto out;
    }
    if (campaign && nto > 1) {
        fprintf(stderr, "salvo inject: a campaign job has one recipient: use --recipients\n");
        goto out;
    }
    if (lane && strcmp(lane, "transactional") && strcmp(lane, "bulk")) {
        fprintf(stderr, "salvo inject: --lane must be transactional or bulk\n");
        goto out;
    }
    if (!lane)
        lane = campaign ? "bulk" : "transactional";
    rc = CLI_EX_NOINPUT;
    if (content_file && !(content = inject__slurp(content_file, &content_len))) {
        fprintf(stderr, "salvo inject: cannot read %s: %s\n", content_file, strerror(errno));
        goto out;
    }
    if (text_file && !(text = inject__slurp(text_file, &text_len))) {
        fprintf(stderr, "salvo inject: cannot read %s: %s\n", text_file, strerror(errno));
        goto out;
    }
    if (html_file && !(html = inject__slurp(html_file, &html_len))) {
        fprintf(stderr, "salvo inject: cannot read %s: %s\n", html_file, strerror(errno));
        goto out;
    }
    if (rcpts_file) {
        const char *why = NULL;
        csv = csv_open(rcpts_file, &why);
        if (!csv) {
            fprintf(stderr, "salvo inject: %s: %s\n", rcpts_file, why);
            goto out;
        }
    }
    if (!from_header)
        from_header = from;

    rc = CLI_EX_TEMPFAIL;
    if (ring_create(&I.ring, &(struct ring_config){.entries = 256, .recv_buffers = 256, .recv_buf_bytes = 16384}) != 0) {
        fprintf(stderr, "salvo inject: cannot create io_uring\n");
        goto out;
    }
    const char *why = NULL;
    struct rds_config rcfg = {.url = url ? url : "redis://127.0.0.1:6379", .on_up = inject__on_up,
                              .on_down = inject__on_down, .name = "inject"};
    if (rds_create(&I.r, I.ring, &rcfg, &why) != 0) {
        fprintf(stderr, "salvo inject: %s\n", why);
        rc = CLI_EX_USAGE;
        goto out;
    }
    for (int i = 0; i < 50 && !I.up; i++)
        ring_run_once(I.ring, 100);
    if (!I.up) {
        fprintf(stderr, "salvo inject: cannot connect to %s\n", rcfg.url);
        goto out;
    }

    char stream[256], ckey[512];
    snprintf(stream, sizeof stream, "%s:{p0}:in:%s", prefix, strcmp(lane, "bulk") == 0 ? "bulk" : "tx");
    if (nmeta) {
        struct jsonw mw;
        jsonw_begin(&mw, &meta);
        for (unsigned i = 0; i < nmeta; i++)
            jsonw_str(&mw, meta_k[i], meta_v[i]);
        jsonw_end(&mw);
        buf_append(&meta, "", 1);
    }
    const char *meta_json = nmeta ? (const char *)meta.data : NULL;

    if (campaign && have_parts) {
        /* store the campaign once; each job then carries only its recipient and fields */
        buf_clear(&job);
        struct jsonw w;
        jsonw_begin(&w, &job);
        jsonw_str(&w, "id", campaign);
        jsonw_str(&w, "from", from);
        inject__parts(&w, from_header, subject, text, html);
        if (unsub) {
            jsonw_str(&w, "list_unsubscribe", unsub);
            jsonw_bool(&w, "list_unsubscribe_post", strstr(unsub, "https://") != NULL);
        }
        jsonw_str(&w, "lane", lane);
        jsonw_raw(&w, "meta", meta_json);
        jsonw_end(&w);
        snprintf(ckey, sizeof ckey, "%s:{p0}:campaign:%s", prefix, campaign);
        const char *av[] = {"SET", ckey, (const char *)job.data};
        size_t lens[] = {3, strlen(ckey), job.len};
        if (inject__command(3, av, lens) != 0)
            goto wait;
    }

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = ts.tv_sec + ts.tv_nsec / 1e9;
    if (!csv) {
        buf_clear(&job);
        struct jsonw w;
        jsonw_begin(&w, &job);
        jsonw_str(&w, "from", from);
        jsonw_raw(&w, "to", NULL);
        job.len -= 4;
        buf_append(&job, "[", 1);
        for (unsigned i = 0; i < nto; i++) {
            if (i)
                buf_append(&job, ",", 1);
            jsonw_escape(&job, to[i], strlen(to[i]));
        }
        buf_append(&job, "]", 1);
        if (campaign)
            jsonw_str(&w, "campaign", campaign);
        else if (content)
            jsonw_strn(&w, "content", content, content_len);
        else
            inject__parts(&w, from_header, subject, text, html);
        jsonw_str(&w, "lane", lane);
        jsonw_raw(&w, "meta", meta_json);
        jsonw_end(&w);
        if (campaign && nto > 1) {
            fprintf(stderr, "salvo inject: a campaign job has one recipient: use --recipients\n");
            I.failed = true;
            snprintf(I.err, sizeof I.err, "usage error");
            rc = CLI_EX_USAGE;
            goto wait;
        }
        const char *av[] = {"XADD", stream, "*", "job", (const char *)job.data};
        size_t lens[] = {4, strlen(stream), 1, 3, job.len};
        if (inject__command(5, av, lens) == 0)
            jobs++;
    } else {
        struct csv_row row;
        const char *cwhy;
        int r;
        while ((r = csv_next(csv, &row, &cwhy)) > 0) {
            if (!row.email || !*row.email) {
                fprintf(stderr, "\nsalvo inject: %s:%lu: no email; row skipped\n", rcpts_file, row.line);
                continue;
            }
            buf_clear(&job);
            struct jsonw w;
            jsonw_begin(&w, &job);
            jsonw_str(&w, "from", from);
            jsonw_str(&w, "to", row.email);
            if (campaign) {
                jsonw_str(&w, "campaign", campaign);
                jsonw_raw(&w, "merge", NULL);
                job.len -= 4;
                struct jsonw mw;
                jsonw_begin(&mw, &job);
                for (unsigned i = 0; i < row.nfields; i++)
                    jsonw_str(&mw, row.names[i], row.values[i]);
                jsonw_end(&mw);
            } else if (content) {
                jsonw_strn(&w, "content", content, content_len);
            } else {
                inject__parts(&w, from_header, subject, text, html);
            }
            jsonw_str(&w, "lane", lane);
            jsonw_raw(&w, "meta", meta_json);
            jsonw_end(&w);
            const char *av[] = {"XADD", stream, "*", "job", (const char *)job.data};
            size_t lens[] = {4, strlen(stream), 1, 3, job.len};
            if (inject__command(5, av, lens) != 0)
                break;
            jobs++;
            if (!quiet && jobs % 1000 == 0)
                inject__progress("enqueue", jobs, csv_progress(csv), t0, false);
        }
        if (r < 0) {
            fprintf(stderr, "\nsalvo inject: %s: %s\n", rcpts_file, cwhy);
            input_error = true;
        }
    }
wait:
    while (I.inflight > 0 && !I.failed)
        ring_run_once(I.ring, 100);
    if (!quiet && csv)
        inject__progress("enqueue", jobs, 1.0, t0, true);
    if (I.failed) {
        fprintf(stderr, "salvo inject: %s (%llu of %llu commands confirmed)\n", I.err, I.acked, I.sent);
        if (rc != CLI_EX_USAGE)
            rc = CLI_EX_TEMPFAIL;
        goto out;
    }
    if (input_error) {
        /* the rows before the bad one are enqueued (confirmed above); say how many */
        fprintf(stderr, "salvo inject: stopped at a malformed row; %llu jobs enqueued before it\n",
                campaign && have_parts ? I.acked - 1 : I.acked);
        rc = CLI_EX_DATAERR;
        goto out;
    }
    printf("%llu\n", campaign && have_parts ? I.acked - 1 : I.acked);
    rc = CLI_EX_OK;
out:
    if (csv)
        csv_close(csv);
    if (I.r)
        rds_destroy(I.r);
    if (I.ring)
        ring_destroy(I.ring);
    buf_fini(&job);
    buf_fini(&meta);
    free(content);
    free(text);
    free(html);
    return rc;
}
