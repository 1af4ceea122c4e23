/* engine/intake/intake.c — reading, building, settling. A message occupies one slot from the
 * moment it is read until the script call that settles it has been acknowledged by Redis;
 * until then its entry stays pending in the consumer group, so a crash at any point loses
 * nothing (the entry is re-read by this instance or claimed by another). */
#include "engine/intake/intake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/events/event.h"
#include "engine/intake/build.h"
#include "engine/intake/job_peek.h"
#include "engine/intake/scripts.h"
#include "engine/redis/rds.h"
#include "engine/util/buf.h"
#include "engine/util/log.h"

enum { K_TX, K_BULK, K_EVENTS, K_STATS, K_DELAY, K_DELAY_DATA, K_DEAD, K__COUNT };

struct imsg;

struct batch {
    struct buf arena;
    size_t *offs;
    unsigned nargs, cap;
    const char **argv;
    size_t *argvlen;
    unsigned argv_cap;
    struct imsg *msgs;
    unsigned nmsgs;
    unsigned msg_nops_arg, msg_nops;
    struct batch *next;
    struct intake *in;
};

enum imsg_state { IM_FREE, IM_READ, IM_WAIT_IDEM, IM_WAIT_CAMPAIGN, IM_DELIVERING, IM_SETTLING };

struct imsg {
    struct intake *in;
    struct imsg *next;
    enum imsg_state state;
    char entry_id[48];
    int stream;                  /* K_TX or K_BULK */
    struct buf raw;
    struct job job;
    bool has_job;
    struct build_ctx *campaign;  /* cached campaign, not owned */
    struct build_waiter waiter;
    enum { LOAD_OK, LOAD_MISSING, LOAD_OVERSIZED } load; /* how the job copy went */
    size_t job_len;                  /* the job's size as read */
    struct buf body;
    struct dlv_msg dm;
    struct dlv_rcpt *rcpts;
    unsigned rcpts_cap;
    int64_t created_ms, started_ms, deadline_ms;
};

struct intake {
    struct ring *ring;
    struct dlv *dlv;
    struct intake_config cfg;
    struct rds *cmd, *rd;
    char keys[K__COUNT][160];
    char hb_key[200], hb_prefix[160], idem_prefix[160], campaign_prefix[160];
    struct script_sha sha[SCRIPT__COUNT];
    struct imsg *slots, *free_slots;
    unsigned in_mem, in_mem_tx;
    bool reading, stopping, scripts_loaded, groups_ready;
    bool read_tx_only, unblock_sent;
    unsigned read_streams;            /* bit per stream in the read in flight */
    unsigned read_history;            /* bit per stream read from its history (not ">") */  /* the read in flight blocks on the tx stream alone */
    long long rd_client_id;           /* to wake that read when bulk room opens */
    unsigned scripts_pending;
    bool history[2];
    char hist_cursor[2][48];          /* re-reading our own pending entries from here */
    struct ring_timer tick;
    uint64_t next_hb, next_claim, next_promote;
    struct batch *cur, *free_batches, *retry_batches;
    struct ring_defer flush_defer, resume_defer;
    struct imsg *resubmit;       /* delivery pool was full */
    struct build_cache *campaigns;
    FILE *events;
    struct buf evbuf, scratch;
    uint64_t event_seq;
    struct intake_stats stats;
};

static void intake__read(struct intake *in);
static void intake__on_client_id(struct rds *r, const struct rds_reply *reply, void *arg);
static void intake__schedule_flush(struct intake *in);
static void intake__proceed(struct imsg *im);
static void intake__submit(struct imsg *im);
static void intake__check_idem(struct imsg *im);
static void intake__release(struct imsg *im);

void intake_config_defaults(struct intake_config *c)
{
    memset(c, 0, sizeof *c);
    c->redis_url = "redis://127.0.0.1:6379";
    c->prefix = "salvo";
    c->instance = "salvo-1";
    c->max_in_memory = 5000;
    c->tx_reserve = 500;
    c->read_batch = 500;
    c->block_ms = 1000;
    c->heartbeat_ttl_ms = 10000;
    c->claim_interval_ms = 5000;
    c->promote_interval_ms = 500;
    c->events_max = 1000000;
    c->dead_max = 100000;
    static const unsigned sched[] = {60, 300, 900, 1800, 3600, 7200, 14400};
    memcpy(c->retry_s, sched, sizeof sched);
    c->nretry = sizeof sched / sizeof *sched;
    c->retry_jitter = 0.1;
    c->max_attempts = 30;
    c->max_age_ms = 3ull * 24 * 3600 * 1000;
    c->idempotency_ttl_s = 86400;
    c->busy_retry_ms = 5000;
}

static int64_t intake__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- batches */

static struct batch *batch__get(struct intake *in)
{
    struct batch *b = in->free_batches;
    if (b) {
        in->free_batches = b->next;
    } else {
        b = calloc(1, sizeof *b);
        if (!b)
            return NULL;
        buf_init(&b->arena, 1u << 30);
        b->in = in;
    }
    b->next = NULL;
    b->msgs = NULL;
    b->nmsgs = 0;
    b->nargs = 0;
    buf_clear(&b->arena);
    return b;
}

static void batch__put(struct intake *in, struct batch *b)
{
    b->next = in->free_batches;
    in->free_batches = b;
}

static void batch__free(struct batch *b)
{
    buf_fini(&b->arena);
    free(b->offs);
    free(b->argv);
    free(b->argvlen);
    free(b);
}

/* Arguments are stored as offsets (the arena may move while the batch grows). */
static int batch__arg(struct batch *b, const void *p, size_t n)
{
    if (b->nargs + 1 > b->cap) {
        unsigned cap = b->cap ? b->cap * 2 : 256;
        size_t *o = realloc(b->offs, cap * 2 * sizeof *o);
        if (!o)
            return -ENOMEM;
        b->offs = o;
        b->cap = cap;
    }
    b->offs[2 * b->nargs] = b->arena.len;
    b->offs[2 * b->nargs + 1] = n;
    b->nargs++;
    return buf_append(&b->arena, p, n);
}

static int batch__argz(struct batch *b, const char *s) { return batch__arg(b, s, strlen(s)); }

static int batch__argf(struct batch *b, const char *fmt, long long v)
{
    char t[32];
    int n = snprintf(t, sizeof t, fmt, v);
    return batch__arg(b, t, (size_t)n);
}

static struct batch *intake__batch(struct intake *in)
{
    if (!in->cur)
        in->cur = batch__get(in);
    return in->cur;
}

static void batch__begin_msg(struct batch *b, struct imsg *im)
{
    batch__argz(b, "M");
    batch__argz(b, im->entry_id);
    batch__argf(b, "%lld", im->stream == K_TX ? 1 : 2);
    b->msg_nops_arg = b->nargs;
    batch__argz(b, "0000000000"); /* patched in batch__end_msg */
    b->msg_nops = 0;
}

static void batch__end_msg(struct batch *b, struct imsg *im)
{
    char t[16];
    int n = snprintf(t, sizeof t, "%u", b->msg_nops);
    size_t off = b->offs[2 * b->msg_nops_arg];
    memcpy(b->arena.data + off, t, (size_t)n);
    b->offs[2 * b->msg_nops_arg + 1] = (size_t)n;
    im->next = b->msgs;
    b->msgs = im;
    b->nmsgs++;
    im->state = IM_SETTLING;
}

/* ---------------------------------------------------------------- events */

static void intake__event(struct intake *in, struct batch *b, struct imsg *im,
                          struct event_info *ev)
{
    ev->instance = in->cfg.instance;
    ev->message_id = im->has_job && im->job.message_id[0] ? im->job.message_id : im->entry_id;
    if (im->has_job) {
        ev->job_id = im->job.id;
        ev->campaign_id = im->job.campaign_id;
        ev->sender = im->job.from ? im->job.from : im->dm.from;
        ev->meta_json = im->job.meta_json;
        ev->created_ms = im->created_ms;
    }
    ev->lane = im->stream == K_TX ? "transactional" : "bulk";
    ev->size = im->dm.body_len;
    buf_clear(&in->evbuf);
    if (event_format(ev, intake__wall_ms(), ++in->event_seq, &in->evbuf) != 0)
        return;
    batch__argz(b, "E");
    batch__arg(b, in->evbuf.data, in->evbuf.len);
    batch__argz(b, event_type_to_text(ev->type));
    batch__argz(b, ev->campaign_id ? ev->campaign_id : "");
    b->msg_nops++;
    switch (ev->type) {
    case EVENT_DELIVERED: in->stats.delivered++; break;
    case EVENT_DEFERRED: in->stats.deferred++; break;
    case EVENT_BOUNCED: in->stats.bounced++; break;
    case EVENT_EXPIRED: in->stats.expired++; break;
    case EVENT_REJECTED: in->stats.rejected++; break;
    case EVENT_SUPPRESSED: break;
    }
}

/* ---------------------------------------------------------------- terminal paths */

/* Malformed job: dead-letter with the reason and a `rejected` event; never retried. */
static void intake__reject(struct imsg *im, const char *code, const char *detail, bool dead)
{
    struct intake *in = im->in;
    struct batch *b = intake__batch(in);
    log_info("rejected %s: %s: %s", im->entry_id, code, detail);
    batch__begin_msg(b, im);
    if (dead) {
        batch__argz(b, "X");
        batch__arg(b, im->raw.data, im->raw.len);
        batch__argz(b, code);
        batch__argz(b, detail);
        b->msg_nops++;
    }
    struct event_info ev = {.type = EVENT_REJECTED, .reason = code, .detail = detail,
                            .delivery_ms = -1};
    if (im->has_job && im->job.nto > 0) {
        for (unsigned i = 0; i < im->job.nto; i++) {
            ev.recipient = im->job.to[i];
            intake__event(in, b, im, &ev);
        }
    } else {
        /* the job did not validate: name what the producer gave, as far as it can be read */
        struct job_peek pk;
        job_peek((const char *)im->raw.data, im->raw.len, &pk);
        ev.campaign_id = pk.campaign_id[0] ? pk.campaign_id : NULL;
        ev.job_id = pk.job_id[0] ? pk.job_id : NULL;
        ev.sender = pk.from[0] ? pk.from : NULL;
        for (unsigned i = 0; i < (pk.nto ? pk.nto : 1); i++) {
            ev.recipient = pk.nto ? pk.to[i] : NULL;
            intake__event(in, b, im, &ev);
        }
    }
    batch__end_msg(b, im);
    intake__schedule_flush(in);
}

static unsigned intake__retry_delay_s(const struct intake *in, unsigned attempt)
{
    unsigned idx = attempt < in->cfg.nretry ? attempt : in->cfg.nretry - 1;
    double d = in->cfg.retry_s[idx];
    if (in->cfg.retry_jitter > 0) {
        double r = (double)rand() / RAND_MAX * 2 - 1;
        d += d * in->cfg.retry_jitter * r;
    }
    return d < 1 ? 1 : (unsigned)d;
}

/* Puts the message (with only `remaining` recipients) into the retry set. */
static void intake__op_defer(struct intake *in, struct batch *b, struct imsg *im,
                             const char *const *remaining, unsigned n, unsigned attempt,
                             int64_t due_ms, const char *last_error)
{
    buf_clear(&in->scratch);
    if (job_to_payload(&im->job, remaining, n, attempt, im->created_ms, last_error, &in->scratch) != 0) {
        /* never lose it: re-queue the job as it arrived (recipients already done may get a
         * second copy; this only happens when memory runs out) */
        log_error("cannot serialise %s for retry; re-queueing the original job", im->entry_id);
        buf_clear(&in->scratch);
        if (buf_append(&in->scratch, im->raw.data, im->raw.len) != 0)
            return;
    }
    char member[80];
    snprintf(member, sizeof member, "%c|%s", im->stream == K_TX ? 't' : 'b', im->entry_id);
    batch__argz(b, "D");
    batch__argz(b, member);
    batch__argf(b, "%lld", due_ms);
    batch__arg(b, in->scratch.data, in->scratch.len);
    b->msg_nops++;
}

/* Every recipient has an outcome for this attempt: record and move the message on. */
static void intake__settle_attempt(struct dlv_msg *dm)
{
    struct imsg *im = dm->user;
    struct intake *in = im->in;
    struct batch *b = intake__batch(in);
    int64_t now = intake__wall_ms();
    long long dur = now - im->started_ms;
    unsigned attempt = im->job.attempt + 1;
    const char *remaining[1024];
    unsigned nrem = 0;
    const struct dlv_rcpt *last_fail = NULL;
    batch__begin_msg(b, im);
    /* Recipients deferred by scheduling (destination busy or backing off) were not attempted:
     * when nobody was attempted the message just waits, without using up an attempt. */
    bool any_attempted = false;
    unsigned wait_ms = 0;                    /* longest "may go in" among the unattempted */
    const struct dlv_rcpt *hint = NULL;      /* a destination's retry schedule / max age */
    for (unsigned i = 0; i < dm->nrcpts; i++) {
        const struct dlv_rcpt *r = &dm->rcpts[i];
        any_attempted |= !r->not_attempted;
        if (r->not_attempted && r->retry_after_ms > wait_ms)
            wait_ms = r->retry_after_ms;
        if (r->status == DLV_DEFERRED && r->nretry && !hint)
            hint = r;
    }
    if (hint && hint->max_age_s && !im->job.max_age_ms && !im->job.expires_at_ms &&
        !(im->campaign && build_campaign_max_age_ms(im->campaign)))
        im->deadline_ms = im->created_ms + (int64_t)hint->max_age_s * 1000;
    if (!any_attempted)
        attempt = im->job.attempt;
    unsigned max_attempts = im->job.max_attempts ? im->job.max_attempts
                            : (im->campaign && build_campaign_max_attempts(im->campaign))
                                ? build_campaign_max_attempts(im->campaign)
                                : in->cfg.max_attempts;
    bool by_attempts = any_attempted && attempt >= max_attempts;
    bool expire = by_attempts || now >= im->deadline_ms;
    int64_t due;
    if (!any_attempted) {
        due = now + (wait_ms ? wait_ms : in->cfg.busy_retry_ms);
    } else if (hint) {
        /* the destination's own schedule (shaping rules) */
        unsigned idx = im->job.attempt < hint->nretry ? im->job.attempt : hint->nretry - 1;
        double dly = hint->retry_s[idx];
        if (in->cfg.retry_jitter > 0)
            dly += dly * in->cfg.retry_jitter * ((double)rand() / RAND_MAX * 2 - 1);
        due = now + (int64_t)(dly < 1 ? 1000 : dly * 1000);
    } else {
        due = now + (int64_t)intake__retry_delay_s(in, im->job.attempt) * 1000;
    }
    if (!expire && due >= im->deadline_ms) {
        /* one last try shortly before the deadline, if there is still time for one */
        if (im->deadline_ms - 1000 > now + 100)
            due = im->deadline_ms - 1000;
        else
            expire = true;
    }
    for (unsigned i = 0; i < dm->nrcpts; i++) {
        struct dlv_rcpt *r = &dm->rcpts[i];
        if (r->not_attempted && r->status == DLV_DEFERRED && !expire) {
            if (nrem < sizeof remaining / sizeof *remaining)
                remaining[nrem++] = r->r.addr;
            last_fail = r;
            continue;
        }
        struct event_info ev = {.recipient = r->r.addr, .attempt = attempt, .outcome = &r->r.outcome,
                                .conn = &r->conn, .verdict = &r->verdict, .delivery_ms = dur,
                                .egress_source = r->source_name, .warmup_hold = r->warmup_note, .site = r->site};
        switch (r->status) {
        case DLV_DELIVERED: ev.type = EVENT_DELIVERED; ev.verdict = NULL; break;
        case DLV_BOUNCED: ev.type = EVENT_BOUNCED; break;
        case DLV_DEFERRED:
            last_fail = r;
            if (expire) {
                ev.type = EVENT_EXPIRED;
                ev.reason = "expired";
                ev.detail = by_attempts ? "maximum attempts reached" : "maximum age reached";
            } else {
                ev.type = EVENT_DEFERRED;
                ev.next_attempt_ms = due;
                if (nrem < sizeof remaining / sizeof *remaining)
                    remaining[nrem++] = r->r.addr;
            }
            break;
        }
        intake__event(in, b, im, &ev);
    }
    if (nrem) {
        char last[600];
        snprintf(last, sizeof last, "%s%s%.500s", last_fail->r.outcome.enhanced,
                 last_fail->r.outcome.enhanced[0] ? " " : "", last_fail->r.outcome.text);
        intake__op_defer(in, b, im, remaining, nrem, attempt, due, last);
    }
    batch__end_msg(b, im);
    intake__schedule_flush(in);
}

/* ---------------------------------------------------------------- slots */

static void intake__release(struct imsg *im)
{
    struct intake *in = im->in;
    if (im->has_job)
        job_free(&im->job);
    im->has_job = false;
    build_cache_put(im->campaign);
    im->campaign = NULL;
    im->state = IM_FREE;
    in->in_mem--;
    if (im->stream == K_TX)
        in->in_mem_tx--;
    im->next = in->free_slots;
    in->free_slots = im;
}

static void intake__on_resume(struct ring_defer *d)
{
    struct intake *in = (struct intake *)((char *)d - offsetof(struct intake, resume_defer));
    /* messages the delivery layer could not take yet */
    struct imsg *list = in->resubmit;
    in->resubmit = NULL;
    while (list) {
        struct imsg *next = list->next;
        list->next = NULL;
        if (list->state == IM_WAIT_IDEM)
            intake__check_idem(list);
        else if (list->state == IM_DELIVERING)
            intake__submit(list);
        else
            intake__proceed(list);
        list = next;
    }
    intake__read(in);
}

static void intake__kick(struct intake *in)
{
    in->resume_defer.fn = intake__on_resume;
    ring_defer(in->ring, &in->resume_defer);
}

/* ---------------------------------------------------------------- settle round trip */

static void intake__send_batch(struct intake *in, struct batch *b);

static void intake__on_settled(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct batch *b = arg;
    struct intake *in = b->in;
    if (!reply || rds_reply_type(reply) == RDS_ERROR) {
        if (reply && rds_reply_is_error(reply, "NOSCRIPT"))
            in->scripts_loaded = false;
        if (reply && !rds_reply_is_error(reply, "NOSCRIPT"))
            log_error("settle failed: %s", rds_reply_str(reply, NULL));
        /* keep the results; resend when Redis is back (the script skips what it already did) */
        b->next = in->retry_batches;
        in->retry_batches = b;
        return;
    }
    in->stats.settled_batches++;
    if (in->events) {
        /* the file gets what Redis has durably recorded, in the same order */
        unsigned i = 0;
        while (i + 3 < b->nargs) {
            unsigned nops = (unsigned)strtoul((const char *)b->arena.data + b->offs[2 * (i + 3)], NULL, 10);
            i += 4;
            for (unsigned k = 0; k < nops && i + 3 < b->nargs + 1; k++, i += 4) {
                const char *op = (const char *)b->arena.data + b->offs[2 * i];
                if (op[0] == 'E') {
                    fwrite(b->arena.data + b->offs[2 * (i + 1)], 1, b->offs[2 * (i + 1) + 1], in->events);
                    fputc('\n', in->events);
                }
            }
        }
        intake__schedule_flush(in);
    }
    struct imsg *im = b->msgs;
    while (im) {
        struct imsg *next = im->next;
        intake__release(im);
        im = next;
    }
    b->msgs = NULL;
    batch__put(in, b);
    intake__kick(in);
}

static void intake__send_batch(struct intake *in, struct batch *b)
{
    unsigned argc = 3 + K__COUNT + 4 + b->nargs;
    if (argc > b->argv_cap) {
        free(b->argv);
        free(b->argvlen);
        b->argv = malloc(argc * sizeof *b->argv);
        b->argvlen = malloc(argc * sizeof *b->argvlen);
        if (!b->argv || !b->argvlen) {
            b->argv_cap = 0;
            b->next = in->retry_batches;
            in->retry_batches = b;
            return;
        }
        b->argv_cap = argc;
    }
    unsigned k = 0;
    char nkeys[8], emax[16], dmax[16];
    snprintf(nkeys, sizeof nkeys, "%d", K__COUNT);
    snprintf(emax, sizeof emax, "%u", in->cfg.events_max);
    snprintf(dmax, sizeof dmax, "%u", in->cfg.dead_max);
    b->argv[k++] = "EVALSHA";
    b->argv[k++] = in->sha[SCRIPT_SETTLE].sha;
    b->argv[k++] = nkeys;
    for (int i = 0; i < K__COUNT; i++)
        b->argv[k++] = in->keys[i];
    b->argv[k++] = "salvo";
    b->argv[k++] = in->cfg.instance;
    b->argv[k++] = emax;
    b->argv[k++] = dmax;
    for (unsigned i = 0; i < k; i++)
        b->argvlen[i] = strlen(b->argv[i]);
    for (unsigned i = 0; i < b->nargs; i++, k++) {
        b->argv[k] = (const char *)b->arena.data + b->offs[2 * i];
        b->argvlen[k] = b->offs[2 * i + 1];
    }
    if (rds_command(in->cmd, intake__on_settled, b, (int)k, b->argv, b->argvlen) != 0) {
        b->next = in->retry_batches;
        in->retry_batches = b;
    }
}

static void intake__on_flush(struct ring_defer *d)
{
    struct intake *in = (struct intake *)((char *)d - offsetof(struct intake, flush_defer));
    if (in->events)
        fflush(in->events);
    if (!intake_ready(in))
        return;
    struct batch *rb = in->retry_batches;
    in->retry_batches = NULL;
    while (rb) {
        struct batch *next = rb->next;
        intake__send_batch(in, rb);
        rb = next;
    }
    if (in->cur && in->cur->nmsgs) {
        struct batch *b = in->cur;
        in->cur = NULL;
        intake__send_batch(in, b);
    }
}

static void intake__schedule_flush(struct intake *in)
{
    in->flush_defer.fn = intake__on_flush;
    ring_defer(in->ring, &in->flush_defer);
}

/* ---------------------------------------------------------------- building and submitting */

static void intake__submit(struct imsg *im)
{
    struct intake *in = im->in;
    const struct job *j = &im->job;
    if (j->nto > im->rcpts_cap) {
        struct dlv_rcpt *r = realloc(im->rcpts, j->nto * sizeof *r);
        if (!r) {
            intake__reject(im, "oversized", "out of memory for recipients", false);
            return;
        }
        im->rcpts = r;
        im->rcpts_cap = j->nto;
    }
    memset(im->rcpts, 0, j->nto * sizeof *im->rcpts);
    for (unsigned i = 0; i < j->nto; i++)
        im->rcpts[i].r.addr = j->to[i];
    const char *err = NULL;
    const uint8_t *body;
    size_t body_len;
    if (build_message(im->campaign, j, intake__wall_ms(), in->event_seq++, &im->body, &body,
                      &body_len, &err) != 0) {
        intake__reject(im, err && strstr(err, "injection") ? "header_injection" : "invalid_field",
                       err ? err : "message cannot be built", true);
        return;
    }
    im->dm = (struct dlv_msg){
        .from = im->campaign && (!j->from || !j->from[0]) ? build_campaign_from(im->campaign) : j->from,
        .rcpts = im->rcpts, .nrcpts = j->nto, .body = body, .body_len = body_len,
        .on_done = intake__settle_attempt, .user = im,
        .pool = j->pool ? j->pool : im->campaign ? build_campaign_pool(im->campaign) : NULL,
    };
    if (!im->dm.from)
        im->dm.from = "";
    im->started_ms = intake__wall_ms();
    im->state = IM_DELIVERING;
    int rc = dlv_submit(in->dlv, &im->dm);
    if (rc == -EAGAIN) {
        im->state = IM_DELIVERING;
        im->next = in->resubmit;
        in->resubmit = im;
        return;
    }
    if (rc == -ENOENT) {
        char d[200];
        snprintf(d, sizeof d, "pool: '%.100s' is not configured (egress.pools)", im->dm.pool);
        intake__reject(im, "invalid_field", d, true);
    } else if (rc != 0) {
        intake__reject(im, "invalid_field", "no recipients", true);
    }
}

static void intake__proceed(struct imsg *im)
{
    struct intake *in = im->in;
    struct job *j = &im->job;
    if (j->kind == JOB_CAMPAIGN && !im->campaign) {
        const char *why = NULL;
        int rc = build_cache_get(in->campaigns, j->campaign_id, &im->waiter, &im->campaign, &why);
        if (rc == BUILD_CACHE_PENDING) {
            im->state = IM_WAIT_CAMPAIGN;
            return; /* resumed by the cache */
        }
        if (rc != 0) {
            char d[400];
            snprintf(d, sizeof d, "campaign '%s' %s%s%s", j->campaign_id,
                     rc == BUILD_CACHE_UNKNOWN ? "does not exist" : "is invalid",
                     why ? ": " : "", why ? why : "");
            intake__reject(im, rc == BUILD_CACHE_UNKNOWN ? "unknown_campaign" : "invalid_campaign", d, true);
            return;
        }
    }
    if (!im->deadline_ms) {
        uint64_t age = j->max_age_ms ? j->max_age_ms
                       : (im->campaign && build_campaign_max_age_ms(im->campaign))
                           ? build_campaign_max_age_ms(im->campaign)
                           : in->cfg.max_age_ms;
        im->deadline_ms = j->expires_at_ms ? j->expires_at_ms : im->created_ms + (int64_t)age;
    }
    int64_t now = intake__wall_ms();
    if (now >= im->deadline_ms) {
        struct batch *b = intake__batch(in);
        batch__begin_msg(b, im);
        for (unsigned i = 0; i < j->nto; i++) {
            struct event_info ev = {.type = EVENT_EXPIRED, .recipient = j->to[i], .attempt = j->attempt,
                                    .reason = "expired",
                                    .detail = j->last_error[0] ? j->last_error : "expired before the first attempt",
                                    .delivery_ms = -1};
            intake__event(in, b, im, &ev);
        }
        batch__end_msg(b, im);
        intake__schedule_flush(in);
        return;
    }
    if (j->not_before_ms > now) {
        struct batch *b = intake__batch(in);
        batch__begin_msg(b, im);
        intake__op_defer(in, b, im, j->to, j->nto, j->attempt, j->not_before_ms, j->last_error);
        batch__end_msg(b, im);
        intake__schedule_flush(in);
        return;
    }
    intake__submit(im);
}

static void intake__on_campaign_ready(void *arg, struct build_waiter *list, bool loaded);

static void intake__on_idem(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct imsg *im = arg;
    if (!reply) {
        /* Redis went away: check again later by re-reading; release nothing, just retry */
        im->next = im->in->resubmit;
        im->in->resubmit = im;
        im->state = IM_WAIT_IDEM;
        return;
    }
    if (rds_reply_type(reply) == RDS_STRING) {
        size_t n;
        const char *prev = rds_reply_str(reply, &n);
        if (n != strlen(im->job.message_id) || memcmp(prev, im->job.message_id, n) != 0) {
            intake__reject(im, "duplicate", "idempotency key already used", false);
            return;
        }
    }
    intake__proceed(im);
}

/* A freshly read entry: parse, then check idempotency, campaign, timing. */
static void intake__admit(struct imsg *im);

static void intake__on_still_pending(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct imsg *im = arg;
    if (reply && rds_reply_type(reply) == RDS_ARRAY && rds_reply_len(reply) == 1) {
        im->in->stats.read++;
        intake__admit(im);
        return;
    }
    /* settled meanwhile (or unknown): it must not be delivered again */
    buf_clear(&im->raw);
    intake__release(im);
}

/* Takes a free slot for a stream entry and copies its job in (a too large one: a prefix, for
 * the dead letter). */
static struct imsg *intake__take_slot(struct intake *in, int stream, const char *id, size_t idlen,
                                      const char *payload, size_t plen)
{
    struct imsg *im = in->free_slots;
    in->free_slots = im->next;
    im->next = NULL;
    in->in_mem++;
    if (stream == K_TX)
        in->in_mem_tx++;
    im->state = IM_READ;
    im->stream = stream;
    snprintf(im->entry_id, sizeof im->entry_id, "%.*s", (int)idlen, id);
    buf_clear(&im->raw);
    im->load = payload ? LOAD_OK : LOAD_MISSING;
    im->job_len = plen;
    if (payload && buf_append(&im->raw, payload, plen) != 0) {
        im->load = LOAD_OVERSIZED;
        size_t keep = plen < 65536 ? plen : 65536;
        buf_append(&im->raw, payload, keep < im->raw.max ? keep : im->raw.max);
    }
    return im;
}

/* An entry read from our own pending history: the read may have crossed a settle of the same
 * entry on the other connection, so confirm it is still ours and pending first. */
static void intake__accept_history(struct intake *in, int stream, const char *id, size_t idlen,
                                   const char *payload, size_t plen)
{
    struct imsg *im = intake__take_slot(in, stream, id, idlen, payload, plen);
    const char *av[] = {"XPENDING", in->keys[stream], "salvo", im->entry_id, im->entry_id, "1",
                        in->cfg.instance};
    if (rds_commandv(in->cmd, intake__on_still_pending, im, 7, av) != 0)
        intake__release(im); /* stays pending in Redis: read again later */
}

static void intake__accept(struct intake *in, int stream, const char *id, size_t idlen,
                           const char *payload, size_t plen)
{
    struct imsg *im = intake__take_slot(in, stream, id, idlen, payload, plen);
    in->stats.read++;
    intake__admit(im);
}

/* The raw job is in im->raw: parse, then check idempotency, campaign, timing. */
static void intake__admit(struct imsg *im)
{
    struct intake *in = im->in;
    buf_clear(&im->body);
    im->deadline_ms = 0;
    im->dm = (struct dlv_msg){0};
    if (im->load == LOAD_MISSING) {
        intake__reject(im, "missing_field", "stream entry has no 'job' field", true);
        return;
    }
    if (im->load == LOAD_OVERSIZED) {
        char detail[200];
        snprintf(detail, sizeof detail, "job is %zu bytes, more than limits.max_job_bytes (%zu)",
                 im->job_len, im->raw.max);
        intake__reject(im, "oversized", detail, true);
        return;
    }
    struct job_error je = {0};
    if (job_parse((const char *)im->raw.data, im->raw.len, &in->cfg.job_limits, &im->job, &je) != 0) {
        intake__reject(im, je.code ? je.code : "bad_json", je.detail, true);
        return;
    }
    im->has_job = true;
    if (!im->job.message_id[0]) /* first time Salvo sees this message: its id is this entry's */
        snprintf(im->job.message_id, sizeof im->job.message_id, "%s", im->entry_id);
    im->created_ms = im->job.created_ms ? im->job.created_ms : intake__wall_ms();
    /* only a job that was never re-queued by Salvo (no _state yet) is checked */
    if (im->job.idempotency_key && im->job.created_ms == 0) {
        intake__check_idem(im);
        return;
    }
    intake__proceed(im);
}

/* A repeated idempotency key within its retention is not sent twice. The key holds the entry
 * id that claimed it, so re-reading the same entry after a crash is not a duplicate. */
static void intake__check_idem(struct imsg *im)
{
    struct intake *in = im->in;
    char key[400], ttl[16];
    snprintf(key, sizeof key, "%s%s", in->idem_prefix, im->job.idempotency_key);
    snprintf(ttl, sizeof ttl, "%u", in->cfg.idempotency_ttl_s);
    const char *av[] = {"SET", key, im->job.message_id, "NX", "GET", "EX", ttl};
    im->state = IM_WAIT_IDEM;
    if (rds_commandv(in->cmd, intake__on_idem, im, 7, av) == 0)
        return;
    im->next = in->resubmit; /* Redis down: check again on a later tick */
    in->resubmit = im;
}

static void intake__on_campaign_ready(void *arg, struct build_waiter *list, bool loaded)
{
    struct intake *in = arg;
    while (list) {
        struct build_waiter *next = list->next;
        struct imsg *im = (struct imsg *)((char *)list - offsetof(struct imsg, waiter));
        list->next = NULL;
        if (loaded) {
            intake__proceed(im);
        } else { /* Redis unavailable: try again on a later tick */
            im->next = in->resubmit;
            in->resubmit = im;
        }
        list = next;
    }
}

/* ---------------------------------------------------------------- reading */

/* Linear, but only history reads (start-up, after a claim) ask. */
static bool intake__in_memory_has(const struct intake *in, int stream, const char *id, size_t idl)
{
    for (unsigned i = 0; i < in->cfg.max_in_memory; i++) {
        const struct imsg *im = &in->slots[i];
        if (im->state != IM_FREE && im->stream == stream && strlen(im->entry_id) == idl &&
            memcmp(im->entry_id, id, idl) == 0)
            return true;
    }
    return false;
}

static void intake__on_read(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct intake *in = arg;
    in->reading = false;
    if (!reply) {
        return; /* reconnect resumes reading */
    }
    if (rds_reply_type(reply) == RDS_ERROR) {
        log_error("XREADGROUP: %s", rds_reply_str(reply, NULL));
        if (rds_reply_is_error(reply, "NOGROUP"))
            in->groups_ready = false;
        ring_timer_arm(in->ring, &in->tick, 500);
        return;
    }
    bool got[2] = {false, false};
    for (size_t s = 0; s < rds_reply_len(reply); s++) {
        const struct rds_reply *sr = rds_reply_elem(reply, s);
        if (rds_reply_len(sr) < 2)
            continue;
        size_t kl;
        const char *key = rds_reply_str(rds_reply_elem(sr, 0), &kl);
        int stream = strlen(in->keys[K_TX]) == kl && memcmp(key, in->keys[K_TX], kl) == 0 ? K_TX : K_BULK;
        const struct rds_reply *entries = rds_reply_elem(sr, 1);
        for (size_t e = 0; e < rds_reply_len(entries); e++) {
            const struct rds_reply *en = rds_reply_elem(entries, e);
            if (rds_reply_len(en) < 2)
                continue;
            size_t idl;
            const char *id = rds_reply_str(rds_reply_elem(en, 0), &idl);
            const struct rds_reply *fields = rds_reply_elem(en, 1);
            got[stream] = true;
            if (rds_reply_type(fields) != RDS_ARRAY) {
                /* deleted while pending (history read): nothing to deliver, just ack it */
                char ids[64];
                snprintf(ids, sizeof ids, "%.*s", (int)idl, id);
                const char *av[] = {"XACK", in->keys[stream], "salvo", ids};
                rds_commandv(in->cmd, NULL, NULL, 4, av);
                continue;
            }
            const char *payload = NULL;
            size_t pl = 0;
            for (size_t f = 0; f + 1 < rds_reply_len(fields); f += 2) {
                size_t fl;
                const char *fn = rds_reply_str(rds_reply_elem(fields, f), &fl);
                if (fl == 3 && memcmp(fn, "job", 3) == 0)
                    payload = rds_reply_str(rds_reply_elem(fields, f + 1), &pl);
            }
            if (in->read_history & (1u << stream)) {
                snprintf(in->hist_cursor[stream], sizeof in->hist_cursor[stream], "%.*s", (int)idl, id);
                if (intake__in_memory_has(in, stream, id, idl))
                    continue; /* already working on it: the history replays all we own */
            }
            if (!in->free_slots) {
                /* no room: it stays pending for us; re-read it through the history later */
                in->history[stream] = true;
                in->hist_cursor[stream][0] = '0';
                in->hist_cursor[stream][1] = '\0';
                continue;
            }
            if (in->read_history & (1u << stream))
                intake__accept_history(in, stream, id, idl, payload, pl);
            else
                intake__accept(in, stream, id, idl, payload, pl);
        }
    }
    for (int s = 0; s < 2; s++)
        if (in->history[s] && !got[s] && in->read_history & (1u << s)) {
            in->history[s] = false; /* our own pending backlog is drained */
            snprintf(in->hist_cursor[s], sizeof in->hist_cursor[s], "0");
        }
    intake__read(in);
}

static void intake__read(struct intake *in)
{
    if (in->stopping || !intake_ready(in) || !rds_is_up(in->rd) || !in->groups_ready)
        return;
    unsigned max = in->cfg.max_in_memory;
    if (in->reading) {
        /* A read blocked on the tx stream alone (bulk was full) would hold up bulk for up to
         * block_ms once bulk room opens: wake it. */
        unsigned bulk_in = in->in_mem - in->in_mem_tx;
        unsigned bulk_cap = max > in->cfg.tx_reserve ? max - in->cfg.tx_reserve : 1;
        if (in->read_tx_only && !in->unblock_sent && bulk_in < bulk_cap && in->rd_client_id > 0) {
            char id[24];
            snprintf(id, sizeof id, "%lld", in->rd_client_id);
            const char *av[] = {"CLIENT", "UNBLOCK", id};
            if (rds_commandv(in->cmd, NULL, NULL, 3, av) == 0)
                in->unblock_sent = true;
        }
        return;
    }
    unsigned room_all = max > in->in_mem ? max - in->in_mem : 0;
    unsigned bulk_in = in->in_mem - in->in_mem_tx;
    unsigned bulk_cap = max > in->cfg.tx_reserve ? max - in->cfg.tx_reserve : 1;
    unsigned room_bulk = bulk_cap > bulk_in ? bulk_cap - bulk_in : 0;
    if (room_bulk > room_all)
        room_bulk = room_all;
    bool want_tx = room_all > 0, want_bulk = room_bulk > 0;
    if (!want_tx && !want_bulk)
        return;
    /* COUNT applies to each stream: when reading both, split the room between them */
    if (want_tx && want_bulk && room_all < 2)
        want_bulk = false;
    unsigned count = want_tx && want_bulk ? (room_bulk < room_all / 2 ? room_bulk : room_all / 2)
                     : want_bulk         ? room_bulk
                                         : room_all;
    if (count > in->cfg.read_batch)
        count = in->cfg.read_batch;
    if (count == 0)
        return;
    char cnt[16], blk[16];
    snprintf(cnt, sizeof cnt, "%u", count);
    snprintf(blk, sizeof blk, "%u", in->cfg.block_ms);
    const char *av[16];
    int n = 0;
    av[n++] = "XREADGROUP";
    av[n++] = "GROUP";
    av[n++] = "salvo";
    av[n++] = in->cfg.instance;
    av[n++] = "COUNT";
    av[n++] = cnt;
    bool history = (want_tx && in->history[0]) || (want_bulk && in->history[1]);
    if (!history) {
        av[n++] = "BLOCK";
        av[n++] = blk;
    }
    av[n++] = "STREAMS";
    if (want_tx)
        av[n++] = in->keys[K_TX];
    if (want_bulk)
        av[n++] = in->keys[K_BULK];
    if (want_tx)
        av[n++] = in->history[0] ? in->hist_cursor[0] : ">";
    if (want_bulk)
        av[n++] = in->history[1] ? in->hist_cursor[1] : ">";
    in->read_streams = (want_tx ? 1u : 0u) | (want_bulk ? 2u : 0u);
    in->read_history = (want_tx && in->history[0] ? 1u : 0u) | (want_bulk && in->history[1] ? 2u : 0u);
    /* while one stream replays history the other waits, so the read never blocks on it */
    if (history && want_tx && want_bulk && in->history[0] != in->history[1]) {
        n = 0;
        av[n++] = "XREADGROUP"; av[n++] = "GROUP"; av[n++] = "salvo"; av[n++] = in->cfg.instance;
        av[n++] = "COUNT"; av[n++] = cnt; av[n++] = "STREAMS";
        int s = in->history[0] ? K_TX : K_BULK;
        av[n++] = in->keys[s];
        av[n++] = in->hist_cursor[s];
        in->read_streams = in->read_history = 1u << s;
    }
    if (rds_commandv(in->rd, intake__on_read, in, n, av) == 0) {
        in->reading = true;
        in->read_tx_only = want_tx && !want_bulk && !history;
        in->unblock_sent = false;
    }
}

static void intake__on_client_id(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct intake *in = arg;
    if (reply && rds_reply_type(reply) == RDS_INTEGER)
        in->rd_client_id = rds_reply_int(reply);
}

/* ---------------------------------------------------------------- housekeeping */

static void intake__on_script_loaded(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct script_sha *s = arg;
    if (reply && rds_reply_type(reply) == RDS_STRING) {
        size_t n;
        const char *sha = rds_reply_str(reply, &n);
        snprintf(s->sha, sizeof s->sha, "%.*s", (int)n, sha);
    } else if (reply) {
        log_error("SCRIPT LOAD %s: %s", s->s->name, rds_reply_str(reply, NULL));
    }
}

static void intake__on_scripts_done(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct intake *in = arg;
    if (!reply)
        return;
    for (int i = 0; i < SCRIPT__COUNT; i++)
        if (!in->sha[i].sha[0])
            return;
    in->scripts_loaded = true;
    log_info("intake: scripts loaded, instance %s", in->cfg.instance);
    intake__schedule_flush(in);
    intake__read(in);
}

static void intake__on_group(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct intake *in = arg;
    if (!reply)
        return;
    if (rds_reply_type(reply) == RDS_ERROR && !rds_reply_is_error(reply, "BUSYGROUP")) {
        log_error("XGROUP CREATE: %s", rds_reply_str(reply, NULL));
        return;
    }
    in->groups_ready = true;
    intake__read(in);
}

static void intake__heartbeat(struct intake *in)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", in->cfg.heartbeat_ttl_ms);
    const char *av[] = {"SET", in->hb_key, "alive", "PX", ttl};
    rds_commandv(in->cmd, NULL, NULL, 5, av);
}

static void intake__on_up(struct rds *r, void *arg)
{
    struct intake *in = arg;
    if (r == in->rd) {
        in->rd_client_id = 0;
        const char *av[] = {"CLIENT", "ID"};
        rds_commandv(in->rd, intake__on_client_id, in, 2, av);
        intake__read(in);
        return;
    }
    /* Redis may have restarted without its script cache: load every time */
    in->scripts_loaded = false;
    for (int i = 0; i < SCRIPT__COUNT; i++) {
        in->sha[i].s = &scripts[i];
        in->sha[i].sha[0] = '\0';
        const char *av[] = {"SCRIPT", "LOAD", scripts[i].source};
        rds_commandv(in->cmd, intake__on_script_loaded, &in->sha[i], 3, av);
    }
    const char *ping[] = {"PING"};
    rds_commandv(in->cmd, intake__on_scripts_done, in, 1, ping);
    intake__heartbeat(in);
    in->groups_ready = false;
    for (int s = K_TX; s <= K_BULK; s++) {
        const char *av[] = {"XGROUP", "CREATE", in->keys[s], "salvo", "0", "MKSTREAM"};
        rds_commandv(in->cmd, s == K_BULK ? intake__on_group : NULL, in, 6, av);
    }
    in->history[0] = in->history[1] = true; /* re-read what we held before a restart */
    snprintf(in->hist_cursor[0], sizeof in->hist_cursor[0], "0");
    snprintf(in->hist_cursor[1], sizeof in->hist_cursor[1], "0");
}

static void intake__on_down(struct rds *r, void *arg, const char *why)
{
    struct intake *in = arg;
    (void)why;
    if (r == in->cmd)
        in->scripts_loaded = false;
    if (r == in->rd)
        in->reading = false;
}

static void intake__on_promoted(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct intake *in = arg;
    if (reply && rds_reply_type(reply) == RDS_INTEGER && rds_reply_int(reply) >= 1000) {
        in->next_promote = 0; /* more are due: go again at once */
        ring_timer_arm(in->ring, &in->tick, 0);
    }
    if (reply && rds_reply_is_error(reply, "NOSCRIPT"))
        in->scripts_loaded = false;
}

static void intake__on_claimed(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct intake *in = arg;
    if (reply && rds_reply_type(reply) == RDS_INTEGER && rds_reply_int(reply) > 0) {
        log_info("intake: claimed %lld entries of dead replicas", rds_reply_int(reply));
        in->history[0] = in->history[1] = true;
        snprintf(in->hist_cursor[0], sizeof in->hist_cursor[0], "0");
        snprintf(in->hist_cursor[1], sizeof in->hist_cursor[1], "0");
    }
}

static void intake__on_tick(struct ring_timer *t)
{
    struct intake *in = (struct intake *)((char *)t - offsetof(struct intake, tick));
    uint64_t now = ring_now_ms(in->ring);
    ring_timer_arm(in->ring, &in->tick, 100);
    if (!intake_ready(in))
        return;
    if (now >= in->next_hb) {
        intake__heartbeat(in);
        in->next_hb = now + in->cfg.heartbeat_ttl_ms / 3;
    }
    if (now >= in->next_promote && !in->stopping) {
        char nows[24];
        snprintf(nows, sizeof nows, "%lld", (long long)intake__wall_ms());
        const char *av[] = {"EVALSHA", in->sha[SCRIPT_PROMOTE].sha, "4", in->keys[K_DELAY],
                            in->keys[K_DELAY_DATA], in->keys[K_TX], in->keys[K_BULK], nows, "1000"};
        rds_commandv(in->cmd, intake__on_promoted, in, 9, av);
        in->next_promote = now + in->cfg.promote_interval_ms;
    }
    if (now >= in->next_claim && !in->stopping) {
        for (int s = K_TX; s <= K_BULK; s++) {
            const char *av[] = {"EVALSHA", in->sha[SCRIPT_CLAIM].sha, "1", in->keys[s], "salvo",
                                in->cfg.instance, in->hb_prefix, "1000"};
            rds_commandv(in->cmd, intake__on_claimed, in, 8, av);
        }
        in->next_claim = now + in->cfg.claim_interval_ms;
    }
    if (!in->groups_ready) {
        for (int s = K_TX; s <= K_BULK; s++) {
            const char *av[] = {"XGROUP", "CREATE", in->keys[s], "salvo", "0", "MKSTREAM"};
            rds_commandv(in->cmd, s == K_BULK ? intake__on_group : NULL, in, 6, av);
        }
    }
    if (in->resubmit)
        intake__kick(in);
    intake__read(in);
    intake__schedule_flush(in);
}

/* ---------------------------------------------------------------- public */

static void intake__campaign_fetch(void *arg, const char *id, build_fetch_done done, void *done_arg);

int intake_create(struct intake **out, struct ring *ring, struct dlv *dlv,
                  const struct intake_config *cfg, const char **why)
{
    struct intake *in = calloc(1, sizeof *in);
    if (!in) {
        *why = "out of memory";
        return -1;
    }
    in->ring = ring;
    in->dlv = dlv;
    in->cfg = *cfg;
    if (!in->cfg.nretry) {
        in->cfg.retry_s[0] = 60;
        in->cfg.nretry = 1;
    }
    static const char *const names[K__COUNT] = {"in:tx", "in:bulk", "events", "stats", "delay",
                                                "delay:data", "dead"};
    for (int i = 0; i < K__COUNT; i++)
        snprintf(in->keys[i], sizeof in->keys[i], "%s:{p0}:%s", cfg->prefix, names[i]);
    snprintf(in->hb_prefix, sizeof in->hb_prefix, "%s:{p0}:hb:", cfg->prefix);
    snprintf(in->hb_key, sizeof in->hb_key, "%s%s", in->hb_prefix, cfg->instance);
    snprintf(in->idem_prefix, sizeof in->idem_prefix, "%s:{p0}:idem:", cfg->prefix);
    snprintf(in->campaign_prefix, sizeof in->campaign_prefix, "%s:{p0}:campaign:", cfg->prefix);
    in->slots = calloc(cfg->max_in_memory, sizeof *in->slots);
    if (!in->slots) {
        free(in);
        *why = "out of memory";
        return -1;
    }
    for (unsigned i = cfg->max_in_memory; i-- > 0;) {
        struct imsg *im = &in->slots[i];
        im->in = in;
        buf_init(&im->raw, in->cfg.job_limits.max_job_bytes ? in->cfg.job_limits.max_job_bytes : 10u << 20);
        buf_init(&im->body, 64u << 20);
        im->next = in->free_slots;
        in->free_slots = im;
    }
    buf_init(&in->evbuf, 1u << 20);
    buf_init(&in->scratch, 64u << 20);
    in->campaigns = build_cache_create(intake__campaign_fetch, in, intake__on_campaign_ready, in);
    if (cfg->events_file) {
        in->events = fopen(cfg->events_file, "a");
        if (!in->events) {
            *why = "cannot open the events file";
            intake_destroy(in);
            return -1;
        }
    }
    struct rds_config rc = {.url = cfg->redis_url, .on_up = intake__on_up, .on_down = intake__on_down,
                            .arg = in, .name = "commands"};
    if (rds_create(&in->cmd, ring, &rc, why) != 0) {
        intake_destroy(in);
        return -1;
    }
    rc.name = "reads";
    if (rds_create(&in->rd, ring, &rc, why) != 0) {
        intake_destroy(in);
        return -1;
    }
    in->tick.on_fire = intake__on_tick;
    ring_timer_arm(ring, &in->tick, 100);
    *out = in;
    return 0;
}

/* ---- campaign fetch (the cache asks; we GET) ---- */

struct fetch_req {
    build_fetch_done done;
    void *done_arg;
};

static void intake__on_campaign_get(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct fetch_req *fr = arg;
    if (!reply)
        fr->done(fr->done_arg, NULL, 0, true);
    else if (rds_reply_type(reply) == RDS_STRING) {
        size_t n;
        const char *s = rds_reply_str(reply, &n);
        fr->done(fr->done_arg, s, n, false);
    } else
        fr->done(fr->done_arg, NULL, 0, false);
    free(fr);
}

static void intake__campaign_fetch(void *arg, const char *id, build_fetch_done done, void *done_arg)
{
    struct intake *in = arg;
    struct fetch_req *fr = malloc(sizeof *fr);
    char key[400];
    snprintf(key, sizeof key, "%s%s", in->campaign_prefix, id);
    if (!fr) {
        done(done_arg, NULL, 0, true);
        return;
    }
    fr->done = done;
    fr->done_arg = done_arg;
    const char *av[] = {"GET", key};
    if (rds_commandv(in->cmd, intake__on_campaign_get, fr, 2, av) != 0) {
        free(fr);
        done(done_arg, NULL, 0, true);
    }
}

void intake_stop_reading(struct intake *in) { in->stopping = true; }

unsigned intake_in_memory(const struct intake *in) { return in->in_mem; }

bool intake_ready(const struct intake *in)
{
    return in->cmd && rds_is_up(in->cmd) && in->scripts_loaded;
}

void intake_reopen_events(struct intake *in)
{
    if (!in->cfg.events_file)
        return;
    if (in->events)
        fclose(in->events);
    in->events = fopen(in->cfg.events_file, "a");
    if (!in->events)
        log_error("cannot reopen events file %s", in->cfg.events_file);
}

void intake_destroy(struct intake *in)
{
    if (!in)
        return;
    ring_timer_cancel(in->ring, &in->tick);
    if (in->cmd && rds_is_up(in->cmd)) {
        const char *av[] = {"DEL", in->hb_key};
        rds_commandv(in->cmd, NULL, NULL, 2, av);
        for (int i = 0; i < 50 && rds_pending(in->cmd); i++)
            ring_run_once(in->ring, 10);
    }
    rds_destroy(in->rd);
    rds_destroy(in->cmd);
    ring_defer_cancel(in->ring, &in->flush_defer);
    ring_defer_cancel(in->ring, &in->resume_defer);
    if (in->events)
        fclose(in->events);
    for (unsigned i = 0; i < in->cfg.max_in_memory; i++) {
        if (in->slots[i].has_job)
            job_free(&in->slots[i].job);
        buf_fini(&in->slots[i].raw);
        buf_fini(&in->slots[i].body);
        free(in->slots[i].rcpts);
    }
    free(in->slots);
    build_cache_destroy(in->campaigns);
    struct batch *lists[] = {in->cur, in->free_batches, in->retry_batches};
    for (int l = 0; l < 3; l++) {
        struct batch *b = lists[l];
        while (b) {
            struct batch *n = l == 0 ? NULL : b->next;
            batch__free(b);
            b = n;
        }
    }
    buf_fini(&in->evbuf);
    buf_fini(&in->scratch);
    free(in);
}

void intake_get_stats(const struct intake *in, struct intake_stats *out)
{
    *out = in->stats;
    struct rds_stats a, b;
    rds_get_stats(in->cmd, &a);
    rds_get_stats(in->rd, &b);
    out->redis_commands = a.commands + b.commands;
}
