/* engine/intake/job_payload.c — job_to_payload: a parsed job written back in the job format,
 * for the retry set, with the recipients still owed and the engine's "_state". Streams into
 * the caller's buffer (no jansson tree: a 10 MiB job would otherwise be copied twice). */
#include "engine/intake/job.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "engine/intake/job_priv.h"
#include "engine/util/base64.h"
#include "engine/util/jsonw.h"

struct payload {
    struct buf *b;
    bool comma;     /* a member was written at this nesting level */
    int err;
};

static void pl__raw(struct payload *p, const char *s, size_t n)
{
    if (!p->err)
        p->err = buf_append(p->b, s, n);
}

static void pl__key(struct payload *p, const char *key)
{
    if (p->comma)
        pl__raw(p, ",", 1);
    p->comma = true;
    if (key) {
        pl__raw(p, "\"", 1);
        pl__raw(p, key, strlen(key));
        pl__raw(p, "\":", 2);
    }
}

static void pl__strn(struct payload *p, const char *key, const char *s, size_t n)
{
    pl__key(p, key);
    if (!p->err && jsonw_escape(p->b, s, n))
        p->err = -ENOBUFS;
}

static void pl__str(struct payload *p, const char *key, const char *s)
{
    if (s)
        pl__strn(p, key, s, strlen(s));
}

static void pl__int(struct payload *p, const char *key, int64_t v)
{
    pl__key(p, key);
    if (!p->err)
        p->err = buf_printf(p->b, "%" PRId64, v);
}

/* Opens an object or array as a member (or element, key NULL); returns the outer comma
 * state for pl__close. */
static bool pl__open(struct payload *p, const char *key, char c)
{
    pl__key(p, key);
    pl__raw(p, &c, 1);
    bool outer = p->comma;
    p->comma = false;
    return outer;
}

static void pl__close(struct payload *p, char c, bool outer)
{
    pl__raw(p, &c, 1);
    p->comma = outer;
}

/* "name":"value" with both sides escaped (object members whose names are producer data). */
static void pl__pair(struct payload *p, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    pl__key(p, NULL);
    if (!p->err && (jsonw_escape(p->b, name, nlen) || buf_append(p->b, ":", 1) ||
                    jsonw_escape(p->b, value, vlen)))
        p->err = -ENOBUFS;
}

static void pl__base64(struct payload *p, const char *key, const uint8_t *d, size_t n)
{
    pl__key(p, key);
    if (!p->err)
        p->err = buf_reserve(p->b, base64_encoded_len(n) + 3);   /* quotes and encoder's NUL */
    if (p->err)
        return;
    struct buf *b = p->b;
    b->data[b->len++] = '"';
    b->len += base64_encode(d, n, (char *)b->data + b->len);
    b->data[b->len++] = '"';
}

static void pl__message(struct payload *p, const struct mime_parts *m)
{
    bool o = pl__open(p, "message", '{');
    pl__str(p, "from", m->from);
    pl__str(p, "to", m->to);
    pl__str(p, "reply_to", m->reply_to);
    pl__str(p, "subject", m->subject);
    if (m->text)
        pl__strn(p, "text", m->text, m->text_len);
    if (m->html)
        pl__strn(p, "html", m->html, m->html_len);
    if (m->nheaders) {
        bool h = pl__open(p, "headers", '{');
        for (unsigned i = 0; i < m->nheaders; i++)
            pl__pair(p, m->headers[i].name, strlen(m->headers[i].name), m->headers[i].value,
                     strlen(m->headers[i].value));
        pl__close(p, '}', h);
    }
    if (m->nattachments) {
        bool arr = pl__open(p, "attachments", '[');
        for (unsigned i = 0; i < m->nattachments; i++) {
            const struct mime_attachment *a = &m->attachments[i];
            bool e = pl__open(p, NULL, '{');
            pl__str(p, "filename", a->filename);
            pl__str(p, "content_type", a->content_type);
            pl__base64(p, "content_base64", a->data, a->len);
            pl__close(p, '}', e);
        }
        pl__close(p, ']', arr);
    }
    pl__close(p, '}', o);
}

static void pl__merge(struct payload *p, const struct job *j)
{
    const struct job_priv *priv = j->priv;
    if (!priv || !priv->nmerge)
        return;
    bool o = pl__open(p, "merge", '{');
    for (unsigned i = 0; i < priv->nmerge; i++)
        pl__pair(p, priv->merge[i].name, priv->merge[i].name_len, priv->merge[i].value,
                 priv->merge[i].value_len);
    pl__close(p, '}', o);
}

int job_to_payload(const struct job *j, const char *const *remaining, unsigned nremaining,
                   unsigned attempt, int64_t created_ms, const char *last_error,
                   struct buf *out)
{
    if (nremaining == 0 || (j->kind == JOB_CAMPAIGN && nremaining != 1))
        return -EINVAL;
    struct payload p = {.b = out};
    size_t start = out->len;
    bool top = pl__open(&p, NULL, '{');
    pl__str(&p, "id", j->id);
    pl__str(&p, "idempotency_key", j->idempotency_key);
    if (j->lane_given)
        pl__str(&p, "lane", job_lane_to_text(j->lane));
    pl__str(&p, "from", j->from);
    bool t = pl__open(&p, "to", '[');
    for (unsigned i = 0; i < nremaining; i++)
        pl__str(&p, NULL, remaining[i] ? remaining[i] : "");
    pl__close(&p, ']', t);
    switch (j->kind) {
    case JOB_RAW:
        pl__strn(&p, "content", j->content, j->content_len);
        break;
    case JOB_PARTS:
        pl__message(&p, &j->parts);
        break;
    case JOB_CAMPAIGN:
        pl__str(&p, "campaign", j->campaign_id);
        pl__merge(&p, j);
        break;
    }
    if (j->not_before_ms)
        pl__int(&p, "not_before", j->not_before_ms);
    if (j->expires_at_ms)
        pl__int(&p, "expires_at", j->expires_at_ms);
    if (j->max_age_ms)
        pl__int(&p, "max_age_s", (int64_t)((j->max_age_ms + 999) / 1000));
    if (j->max_attempts)
        pl__int(&p, "max_attempts", j->max_attempts);
    pl__str(&p, "pool", j->pool);
    if (j->meta_json) {
        pl__key(&p, "meta");
        pl__raw(&p, j->meta_json, strlen(j->meta_json));
    }
    bool s = pl__open(&p, "_state", '{');
    pl__int(&p, "attempt", attempt);
    pl__int(&p, "created_ms", created_ms);
    if (j->message_id[0])
        pl__str(&p, "message_id", j->message_id);
    if (last_error && *last_error) {
        /* Cut where job_parse would (it keeps what fits struct job's last_error). */
        size_t n = strlen(last_error);
        if (n >= sizeof j->last_error) {
            n = sizeof j->last_error - 1;
            while (n && ((unsigned char)last_error[n] & 0xc0) == 0x80)
                n--;
        }
        pl__strn(&p, "last_error", last_error, n);
    }
    pl__close(&p, '}', s);
    pl__close(&p, '}', top);
    if (p.err)
        out->len = start;
    return p.err;
}
