/* engine/intake/build.c — message bytes for a job, and the campaign cache. Campaign merging
 * renders each template into one scratch buffer (reused, so steady-state merging allocates
 * only while the buffer is still growing), then assembles MIME. */
#include "engine/intake/build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/intake/campaign.h"
#include "engine/msg/mime.h"
#include "engine/msg/tmpl.h"

#define BUILD_BUCKETS 256
#define BUILD_MAX_CAMPAIGNS 4096
#define BUILD_MAX_HEADERS (JOB_MAX_HEADERS + 4)

enum entry_state { ENTRY_LOADING, ENTRY_READY, ENTRY_UNKNOWN, ENTRY_INVALID };

struct build_ctx {
    char id[JOB_MAX_NAME_BYTES + 1];
    enum entry_state state;
    unsigned refs;              /* messages in memory using it: never evicted while > 0 */
    uint64_t negative_until_ms; /* an unknown or invalid campaign is asked for again after */
    struct campaign camp;
    bool has_camp;
    char error[300];
    struct build_waiter *waiters, **waiters_tail;
    struct build_ctx *hnext;
    struct build_cache *cache;
};

struct build_cache {
    build_fetch_fn fetch;
    void *fetch_arg;
    build_ready_fn ready;
    void *ready_arg;
    struct build_ctx *buckets[BUILD_BUCKETS];
    unsigned count;
    struct buf scratch;
};

static unsigned build__hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUILD_BUCKETS;
}

struct build_cache *build_cache_create(build_fetch_fn fetch, void *fetch_arg, build_ready_fn ready,
                                       void *ready_arg)
{
    struct build_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fetch = fetch;
    c->fetch_arg = fetch_arg;
    c->ready = ready;
    c->ready_arg = ready_arg;
    buf_init(&c->scratch, 64u << 20);
    return c;
}

static void build__entry_free(struct build_ctx *e)
{
    if (e->has_camp)
        campaign_free(&e->camp);
    free(e);
}

void build_cache_destroy(struct build_cache *c)
{
    if (!c)
        return;
    for (unsigned b = 0; b < BUILD_BUCKETS; b++) {
        struct build_ctx *e = c->buckets[b];
        while (e) {
            struct build_ctx *n = e->hnext;
            build__entry_free(e);
            e = n;
        }
    }
    buf_fini(&c->scratch);
    free(c);
}

static void build__unlink(struct build_cache *c, struct build_ctx *e)
{
    for (struct build_ctx **pp = &c->buckets[build__hash(e->id)]; *pp; pp = &(*pp)->hnext)
        if (*pp == e) {
            *pp = e->hnext;
            c->count--;
            return;
        }
}

#define BUILD_NEGATIVE_TTL_MS 10000

static uint64_t build__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void build__on_fetched(void *arg, const char *json, size_t len, bool temp_error)
{
    struct build_ctx *e = arg;
    struct build_cache *c = e->cache;
    struct build_waiter *list = e->waiters;
    e->waiters = NULL;
    e->waiters_tail = &e->waiters;
    if (temp_error) {
        /* forget the entry: the next request fetches again */
        build__unlink(c, e);
        build__entry_free(e);
        c->ready(c->ready_arg, list, false);
        return;
    }
    e->negative_until_ms = build__now_ms() + BUILD_NEGATIVE_TTL_MS;
    if (!json) {
        e->state = ENTRY_UNKNOWN;
    } else {
        struct job_error err = {0};
        if (campaign_parse(json, len, &e->camp, &err) == 0) {
            e->has_camp = true;
            e->state = ENTRY_READY;
        } else {
            e->state = ENTRY_INVALID;
            snprintf(e->error, sizeof e->error, "%s: %s", err.code ? err.code : "invalid", err.detail);
        }
    }
    c->ready(c->ready_arg, list, true);
}

int build_cache_get(struct build_cache *c, const char *id, struct build_waiter *w,
                    struct build_ctx **out, const char **why)
{
    unsigned b = build__hash(id);
    struct build_ctx *e;
    for (e = c->buckets[b]; e; e = e->hnext)
        if (strcmp(e->id, id) == 0)
            break;
    if (e && (e->state == ENTRY_UNKNOWN || e->state == ENTRY_INVALID) && e->refs == 0 &&
        build__now_ms() >= e->negative_until_ms) {
        /* it may have been stored (or fixed) since: ask again */
        build__unlink(c, e);
        build__entry_free(e);
        e = NULL;
    }
    if (!e) {
        if (strlen(id) > JOB_MAX_NAME_BYTES) {
            *why = "campaign id too long";
            return BUILD_CACHE_INVALID;
        }
        if (c->count >= BUILD_MAX_CAMPAIGNS) {
            /* evict one finished entry of this bucket or any bucket: campaigns are few */
            for (unsigned i = 0; i < BUILD_BUCKETS && c->count >= BUILD_MAX_CAMPAIGNS; i++)
                for (struct build_ctx *x = c->buckets[i]; x; x = x->hnext)
                    if (x->state != ENTRY_LOADING && x->refs == 0) {
                        build__unlink(c, x);
                        build__entry_free(x);
                        break;
                    }
        }
        e = calloc(1, sizeof *e);
        if (!e) {
            *why = "out of memory";
            return BUILD_CACHE_INVALID;
        }
        snprintf(e->id, sizeof e->id, "%s", id);
        e->cache = c;
        e->state = ENTRY_LOADING;
        e->waiters_tail = &e->waiters;
        e->hnext = c->buckets[b];
        c->buckets[b] = e;
        c->count++;
        w->next = NULL;
        *e->waiters_tail = w;
        e->waiters_tail = &w->next;
        c->fetch(c->fetch_arg, id, build__on_fetched, e);
        return BUILD_CACHE_PENDING;
    }
    switch (e->state) {
    case ENTRY_LOADING:
        w->next = NULL;
        *e->waiters_tail = w;
        e->waiters_tail = &w->next;
        return BUILD_CACHE_PENDING;
    case ENTRY_READY:
        e->refs++;
        *out = e;
        return 0;
    case ENTRY_UNKNOWN:
        *why = NULL;
        return BUILD_CACHE_UNKNOWN;
    case ENTRY_INVALID:
        *why = e->error;
        return BUILD_CACHE_INVALID;
    }
    return BUILD_CACHE_INVALID;
}

void build_cache_put(struct build_ctx *ctx)
{
    if (ctx && ctx->refs)
        ctx->refs--;
}

const char *build_campaign_from(const struct build_ctx *ctx) { return ctx->camp.from; }

uint64_t build_campaign_max_age_ms(const struct build_ctx *ctx) { return ctx->camp.max_age_ms; }

const char *build_campaign_pool(const struct build_ctx *ctx) { return ctx->camp.pool; }

unsigned build_campaign_max_attempts(const struct build_ctx *ctx) { return ctx->camp.max_attempts; }

/* ---------------------------------------------------------------- merging */

/* Renders tmpl into the scratch buffer, NUL-terminated; returns its offset or -1. */
static long build__render(struct buf *scratch, const char *tmpl, enum tmpl_escape esc,
                          const struct job *j, const char **err)
{
    if (!tmpl)
        return -2; /* absent */
    size_t off = scratch->len;
    if (tmpl_render(tmpl, strlen(tmpl), job_merge_lookup, (void *)j, esc, scratch, err) != 0)
        return -1;
    if (buf_append(scratch, "", 1) != 0) {
        *err = "message too large";
        return -1;
    }
    return (long)off;
}

static int build__campaign(struct build_ctx *ctx, const struct job *j, int64_t now_ms,
                           uint64_t unique, struct buf *body, const char **err)
{
    struct buf *s = &ctx->cache->scratch;
    const struct campaign *cp = &ctx->camp;
    const struct mime_parts *t = &cp->parts;
    buf_clear(s);
    long o_from = build__render(s, t->from, TMPL_HEADER, j, err);
    long o_to = build__render(s, t->to, TMPL_HEADER, j, err);
    long o_reply = build__render(s, t->reply_to, TMPL_HEADER, j, err);
    long o_subject = build__render(s, t->subject, TMPL_HEADER, j, err);
    long o_text = build__render(s, t->text, TMPL_RAW, j, err);
    long o_html = build__render(s, t->html, TMPL_HTML, j, err);
    long o_unsub = build__render(s, cp->list_unsubscribe, TMPL_HEADER, j, err);
    if (o_from == -1 || o_to == -1 || o_reply == -1 || o_subject == -1 || o_text == -1 ||
        o_html == -1 || o_unsub == -1)
        return -1;
    unsigned nh = t->nheaders < JOB_MAX_HEADERS ? t->nheaders : JOB_MAX_HEADERS;
    long o_hv[JOB_MAX_HEADERS];
    for (unsigned i = 0; i < nh; i++) {
        o_hv[i] = build__render(s, t->headers[i].value, TMPL_HEADER, j, err);
        if (o_hv[i] == -1)
            return -1;
    }
    /* every render is done: the scratch buffer will not move any more */
    const char *base = (const char *)s->data;
#define AT(o) ((o) >= 0 ? base + (o) : NULL)
    struct mime_header hdrs[BUILD_MAX_HEADERS];
    unsigned n = 0;
    for (unsigned i = 0; i < nh; i++)
        hdrs[n++] = (struct mime_header){t->headers[i].name, AT(o_hv[i])};
    if (o_unsub >= 0) {
        hdrs[n++] = (struct mime_header){"List-Unsubscribe", AT(o_unsub)};
        if (cp->list_unsubscribe_post)
            hdrs[n++] = (struct mime_header){"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"};
    }
    struct mime_parts p = *t;
    p.from = AT(o_from);
    p.to = AT(o_to);
    p.reply_to = AT(o_reply);
    p.subject = AT(o_subject);
    p.text = AT(o_text);
    p.text_len = o_text >= 0 ? strlen(p.text) : 0;
    p.html = AT(o_html);
    p.html_len = o_html >= 0 ? strlen(p.html) : 0;
    p.headers = hdrs;
    p.nheaders = n;
#undef AT
    return mime_build(&p, j->to[0], (uint64_t)now_ms, unique, body, err);
}

int build_message(struct build_ctx *ctx, const struct job *j, int64_t now_ms, uint64_t unique,
                  struct buf *body, const uint8_t **out, size_t *len, const char **err)
{
    buf_clear(body);
    switch (j->kind) {
    case JOB_RAW:
        *out = (const uint8_t *)j->content;
        *len = j->content_len;
        return 0;
    case JOB_PARTS:
        if (mime_build(&j->parts, j->to[0], (uint64_t)now_ms, unique, body, err) != 0)
            return -1;
        break;
    case JOB_CAMPAIGN:
        if (!ctx) {
            *err = "campaign not loaded";
            return -1;
        }
        if (build__campaign(ctx, j, now_ms, unique, body, err) != 0)
            return -1;
        break;
    }
    *out = body->data;
    *len = body->len;
    return 0;
}
