/* engine/intake/job_message.c — the "message" object of a job or campaign into struct
 * mime_parts: addresses, subject, bodies, extra headers and base64 attachments, each checked
 * the way mime_build will need it. Assembling the message is engine/msg's job, not this. */
#include "engine/intake/job_json.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/intake/addr.h"
#include "engine/intake/job_arena.h"
#include "engine/msg/tmpl.h"

static const char *const msg__keys[] = {"from", "to", "reply_to", "subject", "text", "html",
                                        "headers", "attachments", NULL};
static const char *const msg__att_keys[] = {"filename", "content_type", "content_base64", NULL};

/* Headers the message object has a field for, or that Salvo writes itself. */
static const struct {
    const char *name, *why;
} msg__reserved[] = {
    {"From", "use message.from"},
    {"To", "use message.to"},
    {"Reply-To", "use message.reply_to"},
    {"Subject", "use message.subject"},
    {"Bcc", "would show the blind copies to every recipient; put them in \"to\""},
    {"MIME-Version", "set by Salvo"},
    {"Content-Type", "set by Salvo"},
    {"Content-Transfer-Encoding", "set by Salvo"},
};

/* A template field: only its syntax can be checked before the merge. */
static int msg__template(const char *path, const char *s, size_t n, bool templates,
                         struct job_error *err)
{
    const char *why;
    if (templates && tmpl_check(s, n, &why) != 0)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: template: %s", path, why);
    return 0;
}

/* from/to/reply_to: header text, and (outside templates) real addresses. */
static int msg__address(json_t *v, const char *path, const char *header, bool list,
                        bool templates, struct job_arena *a, const char **out,
                        struct job_error *err)
{
    size_t n;
    const char *why;
    if (job_json_string(v, path, JOB_STR_HEADER | JOB_STR_NO_CTL | JOB_STR_NONEMPTY,
                        MIME_MAX_HEADER_VALUE_BYTES, a, out, &n, err))
        return -1;
    if (templates)
        return msg__template(path, *out, n, true, err);
    if (!addr_header_valid(*out, n, list, &why))
        return job_json_fail(err, JOB_ERR_INVALID_ADDRESS, "%s: invalid address: %s", path, why);
    /* mime_build reads these with its own parser; agree with it now, not at send time. */
    if (mime_check_header(header, *out, &why) != 0)
        return job_json_fail(err, JOB_ERR_INVALID_ADDRESS, "%s: %s", path, why);
    return 0;
}

static bool msg__header_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MIME_MAX_HEADER_NAME_BYTES)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 33 || (unsigned char)*s > 126 || *s == ':')
            return false;
    return true;
}

static int msg__headers(json_t *obj, const char *path, bool templates, struct job_arena *a,
                        struct mime_parts *out, struct job_error *err)
{
    if (!json_is_object(obj))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be an object", path);
    size_t n = json_object_size(obj);
    if (n > JOB_MAX_HEADERS)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: more than %d headers", path,
                             JOB_MAX_HEADERS);
    struct mime_header *h = job_arena_alloc(a, (n ? n : 1) * sizeof *h);
    if (!h)
        return job_json_nomem(err, path);
    unsigned i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        char p[128];
        job_json_path(p, sizeof p, "%s.%.64s", path, k);
        if (!msg__header_name_ok(k))
            return job_json_fail(err, JOB_ERR_HEADER_INJECTION, "%s: invalid header name", p);
        for (size_t r = 0; r < sizeof msg__reserved / sizeof msg__reserved[0]; r++)
            if (strcasecmp(k, msg__reserved[r].name) == 0)
                return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: %s", p,
                                     msg__reserved[r].why);
        if (templates && (strcasecmp(k, "List-Unsubscribe") == 0 ||
                          strcasecmp(k, "List-Unsubscribe-Post") == 0))
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: use the campaign's %s", p,
                                 strcasecmp(k, "List-Unsubscribe") == 0
                                     ? "list_unsubscribe" : "list_unsubscribe_post");
        const char *val, *why;
        size_t vlen;
        if (job_json_string(v, p, JOB_STR_HEADER | JOB_STR_NO_CTL, MIME_MAX_HEADER_VALUE_BYTES,
                            a, &val, &vlen, err))
            return -1;
        if (templates) {
            if (msg__template(p, val, vlen, true, err))
                return -1;
        } else if (mime_check_header(k, val, &why) != 0)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: %s", p, why);
        h[i].name = job_arena_strndup(a, k, strlen(k));
        h[i].value = val;
        if (!h[i].name)
            return job_json_nomem(err, p);
        i++;
    }
    out->headers = h;
    out->nheaders = i;
    return 0;
}

static int msg__b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* RFC 4648 base64, line breaks and spaces ignored (encoders wrap at 76), padding optional.
 * First pass validates and sizes, so an oversized attachment is refused before allocating. */
static int msg__b64(const char *s, size_t n, const char *path, size_t max,
                    struct job_arena *a, const uint8_t **out, size_t *outlen,
                    struct job_error *err)
{
    size_t digits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=' && digits > 0 && pad < 2) {
            pad++;
            continue;
        }
        if (pad || msg__b64_value(c) < 0)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "%s: invalid base64 at offset %zu", path, i);
        digits++;
    }
    if (digits % 4 == 1 || (pad && (digits + pad) % 4 != 0))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: truncated base64", path);
    size_t len = digits / 4 * 3 + (digits % 4 ? digits % 4 - 1 : 0);
    if (len > max)
        return job_json_fail(err, JOB_ERR_OVERSIZED, "%s: %zu bytes decoded, limit %zu", path,
                             len, max);
    uint8_t *d = job_arena_alloc(a, len ? len : 1);
    if (!d)
        return job_json_nomem(err, path);
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = msg__b64_value((unsigned char)s[i]);
        if (v < 0)
            continue;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = d;
    *outlen = o;
    return 0;
}

/* RFC 2045 token characters, for the type and subtype of a Content-Type. */
static bool msg__token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?=", c))
            return false;
    }
    return true;
}

static int msg__content_type(const char *s, const char *path, struct job_error *err)
{
    const char *slash = strchr(s, '/');
    const char *end = strchr(s, ';');
    if (!end)
        end = s + strlen(s);
    size_t tl = slash ? (size_t)(slash - s) : 0;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (!slash || slash > end || !msg__token(s, tl) ||
        !msg__token(slash + 1, (size_t)(end - slash - 1)))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "%s: not a media type (type/subtype[; parameters])", path);
    if (tl == 9 && strncasecmp(s, "multipart", 9) == 0)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "%s: multipart types cannot be attachments", path);
    return 0;
}

static int msg__attachment(json_t *o, const char *path, size_t max, struct job_arena *a,
                           struct mime_attachment *att, struct job_error *err)
{
    char p[128];
    json_t *v;
    if (!json_is_object(o))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be an object", path);
    job_json_path(p, sizeof p, "%s.", path);
    if (job_json_known_keys(o, p, msg__att_keys, err))
        return -1;
    if ((v = job_json_member(o, "filename"))) {
        job_json_path(p, sizeof p, "%s.filename", path);
        if (job_json_string(v, p, JOB_STR_HEADER | JOB_STR_NO_CTL | JOB_STR_NONEMPTY,
                            MIME_MAX_FILENAME_BYTES, a, &att->filename, NULL, err))
            return -1;
    }
    if ((v = job_json_member(o, "content_type"))) {
        job_json_path(p, sizeof p, "%s.content_type", path);
        if (job_json_string(v, p, JOB_STR_HEADER | JOB_STR_NO_CTL | JOB_STR_NONEMPTY,
                            MIME_MAX_CONTENT_TYPE_BYTES, a, &att->content_type, NULL, err) ||
            msg__content_type(att->content_type, p, err))
            return -1;
    }
    job_json_path(p, sizeof p, "%s.content_base64", path);
    if (!(v = job_json_member(o, "content_base64")))
        return job_json_fail(err, JOB_ERR_MISSING_FIELD, "%s: required", p);
    if (!json_is_string(v))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be a string", p);
    return msg__b64(json_string_value(v), json_string_length(v), p, max, a, &att->data,
                    &att->len, err);
}

static int msg__attachments(json_t *arr, const char *path, size_t max, struct job_arena *a,
                            struct mime_parts *out, struct job_error *err)
{
    if (!json_is_array(arr))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be an array", path);
    size_t n = json_array_size(arr);
    if (n > JOB_MAX_ATTACHMENTS)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: more than %d attachments", path,
                             JOB_MAX_ATTACHMENTS);
    struct mime_attachment *att = job_arena_alloc(a, (n ? n : 1) * sizeof *att);
    if (!att)
        return job_json_nomem(err, path);
    memset(att, 0, (n ? n : 1) * sizeof *att);
    for (size_t i = 0; i < n; i++) {
        char p[96];
        job_json_path(p, sizeof p, "%s[%zu]", path, i);
        if (msg__attachment(json_array_get(arr, i), p, max, a, &att[i], err))
            return -1;
    }
    out->attachments = att;
    out->nattachments = (unsigned)n;
    return 0;
}

int job_json_message(json_t *msg, const char *path, bool templates,
                     size_t max_attachment_bytes, struct job_arena *a, struct mime_parts *out,
                     struct job_error *err)
{
    char p[96];
    json_t *v;
    memset(out, 0, sizeof *out);
    if (!json_is_object(msg))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be an object", path);
    job_json_path(p, sizeof p, "%s.", path);
    if (job_json_known_keys(msg, p, msg__keys, err))
        return -1;

    job_json_path(p, sizeof p, "%s.from", path);
    if (!(v = job_json_member(msg, "from")))
        return job_json_fail(err, JOB_ERR_MISSING_FIELD, "%s: required (the From header)", p);
    if (msg__address(v, p, "From", false, templates, a, &out->from, err))
        return -1;
    if ((v = job_json_member(msg, "to"))) {
        job_json_path(p, sizeof p, "%s.to", path);
        if (msg__address(v, p, "To", true, templates, a, &out->to, err))
            return -1;
    }
    if ((v = job_json_member(msg, "reply_to"))) {
        job_json_path(p, sizeof p, "%s.reply_to", path);
        if (msg__address(v, p, "Reply-To", true, templates, a, &out->reply_to, err))
            return -1;
    }
    if ((v = job_json_member(msg, "subject"))) {
        size_t n;
        job_json_path(p, sizeof p, "%s.subject", path);
        if (job_json_string(v, p, JOB_STR_HEADER | JOB_STR_NO_CTL, MIME_MAX_HEADER_VALUE_BYTES,
                            a, &out->subject, &n, err) ||
            msg__template(p, out->subject, n, templates, err))
            return -1;
    }
    if ((v = job_json_member(msg, "text"))) {
        job_json_path(p, sizeof p, "%s.text", path);
        if (job_json_string(v, p, 0, 0, a, &out->text, &out->text_len, err) ||
            msg__template(p, out->text, out->text_len, templates, err))
            return -1;
    }
    if ((v = job_json_member(msg, "html"))) {
        job_json_path(p, sizeof p, "%s.html", path);
        if (job_json_string(v, p, 0, 0, a, &out->html, &out->html_len, err) ||
            msg__template(p, out->html, out->html_len, templates, err))
            return -1;
    }
    if ((v = job_json_member(msg, "headers"))) {
        job_json_path(p, sizeof p, "%s.headers", path);
        if (msg__headers(v, p, templates, a, out, err))
            return -1;
    }
    if ((v = job_json_member(msg, "attachments"))) {
        job_json_path(p, sizeof p, "%s.attachments", path);
        if (msg__attachments(v, p, max_attachment_bytes, a, out, err))
            return -1;
    }
    if (!out->text && !out->html && !out->nattachments)
        return job_json_fail(err, JOB_ERR_MISSING_FIELD,
                             "%s.text: a message needs text, html or an attachment", path);
    return 0;
}
