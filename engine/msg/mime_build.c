/* engine/msg/mime_build.c — the message's shape: which headers, in what order, single part
 * or multipart/alternative or multipart/mixed, boundaries, Date and Message-ID. Encoding
 * bytes is mime_encode.c's job; folding header lines, mime_header.c's. */
#include "engine/msg/mime.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/msg/mime_address.h"
#include "engine/msg/mime_encode.h"
#include "engine/msg/mime_header.h"

#define MIME_MAX_HEADERS 100
/* Boundaries are "=_salvo_<mix|alt>_<unique>": "=_" cannot occur in quoted-printable or
 * base64 output, and 7bit bodies with a line starting "--=_" are sent as QP instead, so a
 * boundary never occurs in the content (RFC 2046 §5.1.1). */
#define MIME_BOUNDARY_BYTES 40

/* RFC 5322 §3.6: fields a message may carry at most once. */
static const char *const mime__once[] = { "Date", "From", "Sender", "Reply-To", "To", "Cc",
                                          "Bcc", "Message-ID", "In-Reply-To", "References",
                                          "Subject" };

static bool mime__is_once(const char *name)
{
    for (size_t i = 0; i < sizeof mime__once / sizeof mime__once[0]; i++)
        if (strcasecmp(name, mime__once[i]) == 0)
            return true;
    return false;
}

static int mime__grow_error(int rc, const char **err)
{
    *err = rc == -ENOBUFS ? "message too large" : "out of memory";
    return -1;
}

/* ---- validation ---- */

static int mime__check_headers(const struct mime_parts *p, bool has_to, bool *has_date,
                               bool *has_msgid, const char **err)
{
    if (p->nheaders > MIME_MAX_HEADERS) {
        *err = "too many headers";
        return -1;
    }
    if (p->nheaders && !p->headers) {
        *err = "missing headers";
        return -1;
    }
    for (unsigned i = 0; i < p->nheaders; i++) {
        const char *name = p->headers[i].name;
        if (mime_check_header(name, p->headers[i].value, err))
            return -1;
        /* Fields the parts struct already sets would end up twice. */
        if (strcasecmp(name, "From") == 0 || (has_to && strcasecmp(name, "To") == 0) ||
            (p->reply_to && strcasecmp(name, "Reply-To") == 0) ||
            (p->subject && strcasecmp(name, "Subject") == 0)) {
            *err = "duplicate header";
            return -1;
        }
        if (mime__is_once(name)) {
            for (unsigned j = 0; j < i; j++) {
                if (strcasecmp(name, p->headers[j].name) == 0) {
                    *err = "duplicate header";
                    return -1;
                }
            }
        }
        *has_date |= strcasecmp(name, "Date") == 0;
        *has_msgid |= strcasecmp(name, "Message-ID") == 0;
    }
    return 0;
}

static bool mime__token_char(char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static size_t mime__token(const char *s, size_t i, size_t n)
{
    size_t k = i;
    while (k < n && mime__token_char(s[k]))
        k++;
    return k - i;
}

/* type "/" subtype *(";" attribute "=" (token / quoted-string)), RFC 2045 §5.1. */
static const char *mime__check_content_type(const char *ct)
{
    static const char bad[] = "invalid attachment content type";
    size_t n = strlen(ct), i = 0, t;
    if (n > MIME_MAX_CONTENT_TYPE_BYTES)
        return "attachment content type too long";
    if ((t = mime__token(ct, 0, n)) == 0 || t >= n || ct[t] != '/')
        return bad;
    if ((strncasecmp(ct, "multipart", t) == 0 && t == 9) ||
        (strncasecmp(ct, "message", t) == 0 && t == 7))
        return "attachment content type cannot be multipart or message";
    i = t + 1;
    if ((t = mime__token(ct, i, n)) == 0)
        return bad;
    for (i += t;;) {
        while (i < n && (ct[i] == ' ' || ct[i] == '\t'))
            i++;
        if (i == n)
            return NULL;
        if (ct[i++] != ';')
            return bad;
        while (i < n && (ct[i] == ' ' || ct[i] == '\t'))
            i++;
        if ((t = mime__token(ct, i, n)) == 0 || i + t >= n || ct[i + t] != '=')
            return bad;
        i += t + 1;
        if (i < n && ct[i] == '"') {
            for (i++; i < n && ct[i] != '"'; i++) {
                unsigned char c = (unsigned char)ct[i];
                if ((c < 0x20 && c != '\t') || c >= 0x7f)
                    return bad;
                if (c == '\\' && ++i == n)
                    return bad;
            }
            if (i++ == n)
                return bad;
        } else if ((t = mime__token(ct, i, n)) == 0) {
            return bad;
        } else {
            i += t;
        }
    }
}

static const char *mime__check_attachment(const struct mime_attachment *a)
{
    if (a->len && !a->data)
        return "attachment has no data";
    if (a->content_type) {
        const char *e = mime__check_content_type(a->content_type);
        if (e)
            return e;
    }
    if (!a->filename)
        return NULL;
    size_t n = strlen(a->filename);
    if (n > MIME_MAX_FILENAME_BYTES)
        return "attachment filename too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a->filename[i];
        if (c == '\r' || c == '\n')
            return "header injection";
        if (c < 0x20 || c == 0x7f)
            return "control character in attachment filename";
    }
    if (!mime_utf8_valid((const uint8_t *)a->filename, n))
        return "attachment filename is not valid UTF-8";
    return NULL;
}

/* The Message-ID's right side: the given domain, or the From address's. */
static int mime__msgid_domain(const struct mime_parts *p, const char **d, size_t *n,
                              const char **err)
{
    if (p->message_id_domain) {
        *d = p->message_id_domain;
        *n = strlen(*d);
    } else {
        struct mime_mailbox mb;
        size_t pos = 0;
        if (mime_mailbox_next(p->from, strlen(p->from), &pos, &mb) != 1) {
            *err = "invalid From address";
            return -1;
        }
        const char *at = memrchr(mb.addr, '@', mb.addr_len);
        *d = at + 1;
        *n = (size_t)(mb.addr + mb.addr_len - *d);
    }
    bool ok = *n > 0 && *n <= 253;
    for (size_t i = 0; ok && i < *n; i++) {
        char c = (*d)[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-' || c == '_' || c == '[' || c == ']' || c == ':';
    }
    if (!ok) {
        *err = "invalid Message-ID domain";
        return -1;
    }
    return 0;
}

/* ---- writing ---- */

/* RFC 5322 §3.3 date-time in UTC; days to civil date after H. Hinnant's algorithm, so no
 * time zone database or locale is involved. */
static int mime__write_date(struct buf *out, uint64_t now_ms)
{
    static const char *const wday[] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    uint64_t secs = now_ms / 1000, days = secs / 86400, sod = secs % 86400;
    uint64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    uint64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    uint64_t y = yoe + era * 400 + (m <= 2);
    return buf_printf(out, "Date: %s, %u %s %04" PRIu64 " %02u:%02u:%02u +0000\r\n",
                      wday[days % 7], (unsigned)d, mon[m - 1], y, (unsigned)(sod / 3600),
                      (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
}

static int mime__write_text_part(struct buf *out, const char *subtype, const char *s, size_t n)
{
    enum mime_cte cte = mime_body_cte((const uint8_t *)s, n);
    int rc = buf_printf(out,
                        "Content-Type: text/%s; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: %s\r\n\r\n",
                        subtype, mime_cte_to_text(cte));
    if (rc)
        return rc;
    return cte == MIME_CTE_7BIT ? mime_append_7bit(out, (const uint8_t *)s, n)
                                : mime_append_qp(out, (const uint8_t *)s, n);
}

/* The readable body: one text part, or both as multipart/alternative (plain text first,
 * the least preferred, RFC 2046 §5.1.4). */
static int mime__write_body(struct buf *out, const struct mime_parts *p, uint64_t unique)
{
    if (p->text && p->html) {
        char b[MIME_BOUNDARY_BYTES];
        snprintf(b, sizeof b, "=_salvo_alt_%016" PRIx64, unique);
        int rc = buf_printf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n"
                                 "\r\n--%s\r\n", b, b);
        if (!rc)
            rc = mime__write_text_part(out, "plain", p->text, p->text_len);
        if (!rc)
            rc = buf_printf(out, "\r\n--%s\r\n", b);
        if (!rc)
            rc = mime__write_text_part(out, "html", p->html, p->html_len);
        if (!rc)
            rc = buf_printf(out, "\r\n--%s--", b);
        return rc;
    }
    if (p->text)
        return mime__write_text_part(out, "plain", p->text, p->text_len);
    return mime__write_text_part(out, "html", p->html, p->html_len);
}

static int mime__write_attachment(struct buf *out, const struct mime_attachment *a,
                                  const char **err)
{
    const char *ct = a->content_type ? a->content_type : "application/octet-stream";
    struct mime_hw ct_w, cd_w;
    /* Errors are sticky within one header writer, so check each before the next. */
    mime_hw_begin(&ct_w, out, "Content-Type");
    if (mime_hw_words(&ct_w, ct, strlen(ct)) || mime_hw_end(&ct_w)) {
        *err = ct_w.err;
        return -1;
    }
    mime_hw_begin(&cd_w, out, "Content-Disposition");
    if (mime_hw_words(&cd_w, "attachment", 10) ||
        (a->filename &&
         mime_hw_param(&cd_w, "filename", (const uint8_t *)a->filename, strlen(a->filename))) ||
        mime_hw_end(&cd_w)) {
        *err = cd_w.err;
        return -1;
    }
    int rc = mime_buf_put(out, "Content-Transfer-Encoding: base64\r\n\r\n", 37);
    if (!rc)
        rc = mime_append_base64(out, a->data, a->len);
    return rc ? mime__grow_error(rc, err) : 0;
}

static int mime__write_mixed(struct buf *out, const struct mime_parts *p, uint64_t unique,
                             const char **err)
{
    char b[MIME_BOUNDARY_BYTES];
    snprintf(b, sizeof b, "=_salvo_mix_%016" PRIx64, unique);
    bool body = p->text || p->html;
    int rc = buf_printf(out, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n", b);
    if (!rc && body)
        rc = buf_printf(out, "--%s\r\n", b);
    if (!rc && body)
        rc = mime__write_body(out, p, unique);
    if (rc)
        return mime__grow_error(rc, err);
    for (unsigned i = 0; i < p->nattachments; i++) {
        /* The first delimiter may open the body; every later one needs its own line. */
        if ((rc = buf_printf(out, "%s--%s\r\n", body || i ? "\r\n" : "", b)))
            return mime__grow_error(rc, err);
        if (mime__write_attachment(out, &p->attachments[i], err))
            return -1;
    }
    rc = buf_printf(out, "\r\n--%s--", b);
    return rc ? mime__grow_error(rc, err) : 0;
}

static int mime__check_parts(const struct mime_parts *p, const char *rcpt, bool *has_date,
                             bool *has_msgid, const char **err)
{
    if (!p->from) {
        *err = "missing From";
        return -1;
    }
    if (!p->text && !p->html && p->nattachments == 0) {
        *err = "message has no body";
        return -1;
    }
    if (p->nattachments && !p->attachments) {
        *err = "missing attachments";
        return -1;
    }
    if (mime_header_check_value("From", p->from, "invalid From address", err))
        return -1;
    const char *to = p->to ? p->to : rcpt;
    if (to && mime_header_check_value("To", to, "invalid To address", err))
        return -1;
    if (p->reply_to &&
        mime_header_check_value("Reply-To", p->reply_to, "invalid Reply-To address", err))
        return -1;
    if (p->subject && mime_header_check_value("Subject", p->subject, NULL, err))
        return -1;
    if (mime__check_headers(p, to != NULL, has_date, has_msgid, err))
        return -1;
    for (unsigned i = 0; i < p->nattachments; i++) {
        if ((*err = mime__check_attachment(&p->attachments[i])))
            return -1;
    }
    return 0;
}

static int mime__write(const struct mime_parts *p, const char *rcpt, uint64_t now_ms,
                       uint64_t unique, struct buf *out, const char **err)
{
    bool has_date = false, has_msgid = false;
    const char *dom = "";
    size_t dom_len = 0;
    if (mime__check_parts(p, rcpt, &has_date, &has_msgid, err))
        return -1;
    if (!has_msgid && mime__msgid_domain(p, &dom, &dom_len, err))
        return -1;
    const char *to = p->to ? p->to : rcpt;
    int rc = has_date ? 0 : mime__write_date(out, now_ms);
    if (rc)
        return mime__grow_error(rc, err);
    if (mime_header_write(out, "From", p->from, err) ||
        (to && mime_header_write(out, "To", to, err)) ||
        (p->reply_to && mime_header_write(out, "Reply-To", p->reply_to, err)) ||
        (p->subject && mime_header_write(out, "Subject", p->subject, err)))
        return -1;
    if (!has_msgid && (rc = buf_printf(out, "Message-ID: <%" PRIx64 ".%" PRIu64 "@%.*s>\r\n",
                                       unique, now_ms, (int)dom_len, dom)))
        return mime__grow_error(rc, err);
    for (unsigned i = 0; i < p->nheaders; i++)
        if (mime_header_write(out, p->headers[i].name, p->headers[i].value, err))
            return -1;
    if ((rc = mime_buf_put(out, "MIME-Version: 1.0\r\n", 19)))
        return mime__grow_error(rc, err);
    if (p->nattachments) {
        if (mime__write_mixed(out, p, unique, err))
            return -1;
    } else if ((rc = mime__write_body(out, p, unique))) {
        return mime__grow_error(rc, err);
    }
    /* The message ends with a line break however its last part ended. */
    if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
        if ((rc = mime_buf_put(out, "\r\n", 2)))
            return mime__grow_error(rc, err);
    return 0;
}

int mime_build(const struct mime_parts *p, const char *envelope_rcpt, uint64_t now_ms,
               uint64_t unique, struct buf *out, const char **err)
{
    size_t start = out->len;
    if (mime__write(p, envelope_rcpt, now_ms, unique, out, err)) {
        out->len = start;
        return -1;
    }
    return 0;
}
