/* engine/intake/job.c — job_parse: the top level of the JSON job format (envelope, kind,
 * scheduling, meta, engine state) and the merge fields of campaign jobs. The "message"
 * object is read by job_message.c, and job_payload.c writes jobs back out. */
#include "engine/intake/job.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/intake/addr.h"
#include "engine/intake/job_arena.h"
#include "engine/intake/job_json.h"
#include "engine/intake/job_priv.h"
#include "engine/msg/tmpl.h"

static const char *const job__keys[] = {
    "id", "idempotency_key", "lane", "from", "to", "content", "message", "campaign", "merge",
    "not_before", "expires_at", "max_age_s", "max_attempts", "pool", "meta", "_state", NULL,
};
static const char *const job__state_keys[] = {"attempt", "created_ms", "last_error", "message_id", NULL};

void job_error_set(struct job_error *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    /* Details quote producer text (field names, addresses); keep them one printable line. */
    for (char *p = err->detail; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

const char *job_kind_to_text(enum job_kind k)
{
    switch (k) {
    case JOB_RAW: return "raw";
    case JOB_PARTS: return "parts";
    case JOB_CAMPAIGN: return "campaign";
    }
    return "?";
}

const char *job_lane_to_text(enum job_lane l)
{
    return l == JOB_LANE_BULK ? "bulk" : "transactional";
}

/* An envelope address: CR/LF/NUL would smuggle SMTP commands, so they are reported as
 * injection rather than as a mere syntax error. */
static int job__envelope_addr(json_t *v, const char *path, bool sender, struct job_arena *a,
                              const char **out, struct job_error *err)
{
    size_t n;
    const char *why;
    if (job_json_string(v, path, JOB_STR_HEADER, 0, a, out, &n, err))
        return -1;
    if (!(sender ? addr_valid_sender(*out, n, &why) : addr_valid(*out, n, &why)))
        return job_json_fail(err, JOB_ERR_INVALID_ADDRESS, "%s: invalid address: %s", path, why);
    return 0;
}

/* Orders addresses for duplicate detection: local part exact, domain without case. */
static int job__addr_order(const char *a, const char *b)
{
    const char *da = strrchr(a, '@'), *db = strrchr(b, '@');
    size_t la = (size_t)(da - a), lb = (size_t)(db - b);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c || la != lb)
        return c ? c : (la < lb ? -1 : 1);
    return strcasecmp(da, db);
}

/* qsort over pointers into j->to; equal addresses stay in list order, so the first of a
 * run of duplicates is the one kept. */
static int job__addr_cmp(const void *pa, const void *pb)
{
    const char *const *ea = *(const char *const *const *)pa;
    const char *const *eb = *(const char *const *const *)pb;
    int c = job__addr_order(*ea, *eb);
    if (c)
        return c;
    return ea == eb ? 0 : ea < eb ? -1 : 1;
}

/* Removes repeated recipients in place, keeping first occurrences in their order: a
 * recipient listed twice would get the message once but two events. */
static int job__dedupe(struct job *j, struct job_arena *a, struct job_error *err)
{
    if (j->nto < 2)
        return 0;
    const char **sorted_buf[64];
    const char ***sorted = sorted_buf;
    if (j->nto > 64 && !(sorted = job_arena_alloc(a, j->nto * sizeof *sorted)))
        return job_json_nomem(err, "to");
    for (unsigned i = 0; i < j->nto; i++)
        sorted[i] = &j->to[i];
    qsort(sorted, j->nto, sizeof *sorted, job__addr_cmp);
    bool dup = false;
    const char *keep = *sorted[0];
    for (unsigned i = 1; i < j->nto; i++) {
        if (job__addr_order(keep, *sorted[i]) == 0) {
            *sorted[i] = NULL;
            dup = true;
        } else
            keep = *sorted[i];
    }
    if (!dup)
        return 0;
    unsigned o = 0;
    for (unsigned i = 0; i < j->nto; i++)
        if (j->to[i])
            j->to[o++] = j->to[i];
    j->nto = o;
    return 0;
}

static int job__to(json_t *v, const struct job_limits *lim, struct job_arena *a,
                   struct job *j, struct job_error *err)
{
    if (json_is_string(v)) {
        j->to = job_arena_alloc(a, sizeof *j->to);
        if (!j->to)
            return job_json_nomem(err, "to");
        j->nto = 1;
        return job__envelope_addr(v, "to", false, a, &j->to[0], err);
    }
    if (!json_is_array(v))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "to: must be an address or an array of addresses");
    size_t n = json_array_size(v);
    if (n == 0)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "to: no recipients");
    if (n > lim->max_rcpts)
        return job_json_fail(err, JOB_ERR_TOO_MANY_RECIPIENTS, "to: %zu recipients, limit %u",
                             n, lim->max_rcpts);
    j->to = job_arena_alloc(a, n * sizeof *j->to);
    if (!j->to)
        return job_json_nomem(err, "to");
    for (size_t i = 0; i < n; i++) {
        char p[32];
        job_json_path(p, sizeof p, "to[%zu]", i);
        if (job__envelope_addr(json_array_get(v, i), p, false, a, &j->to[i], err))
            return -1;
    }
    j->nto = (unsigned)n;
    return job__dedupe(j, a, err);
}

/* Merge values are text for the template: numbers as JSON writes them, the shortest form
 * that reads back as the same double. */
static int job__merge_value(json_t *v, const char *path, struct job_arena *a,
                            struct job_merge_field *f, struct job_error *err)
{
    char tmp[40];
    const char *s = tmp;
    size_t n;
    if (json_is_string(v))
        return job_json_string(v, path, 0, 0, a, &f->value, &f->value_len, err);
    if (json_is_integer(v))
        n = (size_t)snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) {
        double d = json_real_value(v);
        n = 0;
        for (int prec = 1; prec <= 17; prec++) {
            n = (size_t)snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
    } else if (json_is_boolean(v))
        s = json_is_true(v) ? "true" : "false", n = strlen(s);
    else
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "%s: must be a string, number, boolean or null", path);
    f->value = job_arena_strndup(a, s, n);
    f->value_len = n;
    return f->value ? 0 : job_json_nomem(err, path);
}

static int job__merge(json_t *obj, struct job_priv *priv, struct job_error *err)
{
    if (!json_is_object(obj))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "merge: must be an object");
    size_t n = json_object_size(obj);
    if (n > JOB_MAX_MERGE_FIELDS)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "merge: more than %d fields",
                             JOB_MAX_MERGE_FIELDS);
    priv->merge = job_arena_alloc(&priv->arena, (n ? n : 1) * sizeof *priv->merge);
    if (!priv->merge)
        return job_json_nomem(err, "merge");
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        char p[96];
        size_t kl = strlen(k);
        job_json_path(p, sizeof p, "merge.%.64s", k);
        /* A name the template syntax cannot spell is a producer's mistake worth surfacing. */
        bool ok = kl > 0 && kl <= TMPL_MAX_NAME_BYTES;
        for (size_t i = 0; ok && i < kl; i++)
            ok = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                 (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '.' || k[i] == '-';
        if (!ok)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "%s: field names are 1-%d of [A-Za-z0-9_.-]", p,
                                 TMPL_MAX_NAME_BYTES);
        if (json_is_null(v))
            continue;   /* null reads as absent, so a template default applies */
        struct job_merge_field *f = &priv->merge[priv->nmerge];
        if (job__merge_value(v, p, &priv->arena, f, err))
            return -1;
        f->name = job_arena_strndup(&priv->arena, k, kl);
        f->name_len = kl;
        if (!f->name)
            return job_json_nomem(err, p);
        priv->nmerge++;
    }
    return 0;
}

const char *job_merge_lookup(void *job, const char *name, size_t name_len, size_t *value_len)
{
    const struct job *j = job;
    const struct job_priv *priv = j ? j->priv : NULL;
    if (!priv)
        return NULL;
    for (unsigned i = 0; i < priv->nmerge; i++) {
        const struct job_merge_field *f = &priv->merge[i];
        if (f->name_len == name_len && memcmp(f->name, name, name_len) == 0) {
            *value_len = f->value_len;
            return f->value;
        }
    }
    return NULL;
}

static int job__state(json_t *obj, struct job_arena *a, struct job *j, struct job_error *err)
{
    json_t *v;
    uint64_t x;
    if (!json_is_object(obj))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "_state: must be an object");
    if (job_json_known_keys(obj, "_state.", job__state_keys, err))
        return -1;
    if ((v = job_json_member(obj, "attempt"))) {
        if (job_json_uint(v, "_state.attempt", 0, 1000000, &x, err))
            return -1;
        j->attempt = (unsigned)x;
    }
    if ((v = job_json_member(obj, "created_ms"))) {
        if (job_json_uint(v, "_state.created_ms", 0, (uint64_t)JOB_MAX_TIME_MS, &x, err))
            return -1;
        j->created_ms = (int64_t)x;
    }
    if ((v = job_json_member(obj, "message_id"))) {
        const char *s;
        size_t n;
        if (job_json_string(v, "_state.message_id", JOB_STR_NO_CTL, 0, a, &s, &n, err))
            return -1;
        if (n >= sizeof j->message_id)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "_state.message_id: too long");
        memcpy(j->message_id, s, n);
        j->message_id[n] = '\0';
    }
    if ((v = job_json_member(obj, "last_error"))) {
        const char *s;
        size_t n;
        if (job_json_string(v, "_state.last_error", 0, 0, a, &s, &n, err))
            return -1;
        /* Salvo writes this field itself; an overlong one is cut at a character edge. */
        if (n >= sizeof j->last_error) {
            n = sizeof j->last_error - 1;
            while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
                n--;
        }
        memcpy(j->last_error, s, n);
        j->last_error[n] = '\0';
    }
    return 0;
}

/* Exactly one of content, message and campaign says what is sent. */
static int job__kind(json_t *root, struct job *j, struct job_error *err)
{
    static const char *const names[] = {"content", "message", "campaign"};
    static const enum job_kind kinds[] = {JOB_RAW, JOB_PARTS, JOB_CAMPAIGN};
    int found = -1;
    for (int i = 0; i < 3; i++) {
        if (!job_json_member(root, names[i]))
            continue;
        if (found >= 0)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "%s: not allowed with %s (give exactly one)", names[i],
                                 names[found]);
        found = i;
    }
    if (found < 0)
        return job_json_fail(err, JOB_ERR_MISSING_FIELD,
                             "content: one of content, message or campaign is required");
    j->kind = kinds[found];
    return 0;
}

static int job__fields(json_t *root, const struct job_limits *lim, struct job_priv *priv,
                       struct job *j, struct job_error *err)
{
    struct job_arena *a = &priv->arena;
    json_t *v;
    uint64_t x;
    if (job_json_known_keys(root, "", job__keys, err) || job__kind(root, j, err))
        return -1;
    if ((v = job_json_member(root, "id")) &&
        job_json_string(v, "id", JOB_STR_NO_CTL | JOB_STR_NONEMPTY, JOB_MAX_ID_BYTES, a, &j->id,
                        NULL, err))
        return -1;
    if ((v = job_json_member(root, "idempotency_key")) &&
        job_json_string(v, "idempotency_key", JOB_STR_NO_CTL | JOB_STR_NONEMPTY,
                        JOB_MAX_ID_BYTES, a, &j->idempotency_key, NULL, err))
        return -1;
    if ((v = job_json_member(root, "lane"))) {
        if (job_json_lane(v, "lane", &j->lane, err))
            return -1;
        j->lane_given = true;
    }
    if ((v = job_json_member(root, "from"))) {
        if (job__envelope_addr(v, "from", true, a, &j->from, err))
            return -1;
    } else if (j->kind != JOB_CAMPAIGN)
        return job_json_fail(err, JOB_ERR_MISSING_FIELD,
                             "from: required (the envelope sender; \"\" for the null sender)");
    if (!(v = job_json_member(root, "to")))
        return job_json_fail(err, JOB_ERR_MISSING_FIELD, "to: required");
    if (j->kind == JOB_CAMPAIGN && json_array_size(v) > 1)
        return job_json_fail(err, JOB_ERR_TOO_MANY_RECIPIENTS,
                             "to: a campaign job has exactly one recipient");
    if (job__to(v, lim, a, j, err))
        return -1;

    if ((v = job_json_member(root, "content"))) {
        if (job_json_string(v, "content", JOB_STR_NONEMPTY, 0, a, &j->content,
                            &j->content_len, err))
            return -1;
    } else if ((v = job_json_member(root, "message"))) {
        if (job_json_message(v, "message", false, lim->max_attachment_bytes, a, &j->parts, err))
            return -1;
    } else if (job_json_name(job_json_member(root, "campaign"), "campaign", a, &j->campaign_id,
                             err))
        return -1;
    if ((v = job_json_member(root, "merge"))) {
        if (j->kind != JOB_CAMPAIGN)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "merge: only with campaign");
        if (job__merge(v, priv, err))
            return -1;
    }

    if ((v = job_json_member(root, "not_before")) &&
        job_json_time(v, "not_before", &j->not_before_ms, err))
        return -1;
    if ((v = job_json_member(root, "expires_at")) &&
        job_json_time(v, "expires_at", &j->expires_at_ms, err))
        return -1;
    if (j->expires_at_ms && j->not_before_ms && j->expires_at_ms <= j->not_before_ms)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "expires_at: not after not_before");
    if ((v = job_json_member(root, "max_age_s"))) {
        if (job_json_uint(v, "max_age_s", 0, JOB_MAX_AGE_S, &x, err))
            return -1;
        j->max_age_ms = x * 1000;
    }
    if ((v = job_json_member(root, "max_attempts"))) {
        if (job_json_uint(v, "max_attempts", 0, JOB_MAX_ATTEMPTS, &x, err))
            return -1;
        j->max_attempts = (unsigned)x;
    }
    if ((v = job_json_member(root, "pool")) && job_json_name(v, "pool", a, &j->pool, err))
        return -1;
    if ((v = job_json_member(root, "meta")) && job_json_meta(v, "meta", a, &j->meta_json, err))
        return -1;
    if ((v = job_json_member(root, "_state")) && job__state(v, a, j, err))
        return -1;
    return 0;
}

int job_parse(const char *json, size_t len, const struct job_limits *lim, struct job *out,
              struct job_error *err)
{
    struct job_limits l = {0};
    if (lim)
        l = *lim;
    if (!l.max_job_bytes)
        l.max_job_bytes = JOB_DEFAULT_MAX_JOB_BYTES;
    if (!l.max_rcpts)
        l.max_rcpts = JOB_DEFAULT_MAX_RCPTS;
    if (!l.max_attachment_bytes)
        l.max_attachment_bytes = JOB_DEFAULT_MAX_ATTACHMENT_BYTES;
    memset(out, 0, sizeof *out);
    err->code = NULL;
    err->detail[0] = '\0';

    if (len > l.max_job_bytes)
        return job_json_fail(err, JOB_ERR_OVERSIZED, "job: %zu bytes, limit %zu", len,
                             l.max_job_bytes);
    json_error_t je;
    /* NUL is let through the JSON layer so the field that holds it can be named. */
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        return job_json_fail(err, JOB_ERR_BAD_JSON, "job: line %d column %d: %s", je.line,
                             je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return job_json_fail(err, JOB_ERR_BAD_JSON, "job: must be a JSON object");
    }
    struct job_priv *priv = calloc(1, sizeof *priv);
    if (!priv) {
        json_decref(root);
        job_json_nomem(err, "job");
        return -ENOMEM;
    }
    job_arena_init(&priv->arena, len + len / 4);
    out->priv = priv;
    int rc = job__fields(root, &l, priv, out, err);
    json_decref(root);
    if (rc) {
        bool nomem = err->code == job_json_nomem_code;
        job_free(out);
        return nomem ? -ENOMEM : -1;
    }
    return 0;
}

void job_free(struct job *j)
{
    struct job_priv *priv = j->priv;
    if (priv) {
        job_arena_fini(&priv->arena);
        free(priv);
    }
    memset(j, 0, sizeof *j);
}
