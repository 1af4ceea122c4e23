/* engine/util/jsonw.c — JSON writer; strings are escaped byte by byte and invalid UTF-8
 * becomes U+FFFD, so whatever a remote server said can be put in an event safely. */
#include "engine/util/jsonw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Length of a valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t jsonw__utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int jsonw_escape(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n + 2) != 0)
        return -1;
    buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i && buf_append(b, p + i, run - i) != 0)
            return -1;
        i = run;
        if (i >= n)
            break;
        unsigned char c = p[i];
        char esc[8];
        int rc = 0;
        if (c == '"') rc = buf_append(b, "\\\"", 2);
        else if (c == '\\') rc = buf_append(b, "\\\\", 2);
        else if (c == '\n') rc = buf_append(b, "\\n", 2);
        else if (c == '\r') rc = buf_append(b, "\\r", 2);
        else if (c == '\t') rc = buf_append(b, "\\t", 2);
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            rc = buf_append(b, esc, 6);
        } else {
            size_t l = jsonw__utf8_len(p + i, n - i);
            if (l == 0) {
                rc = buf_append(b, "\\ufffd", 6);
                l = 1;
            } else {
                rc = buf_append(b, p + i, l);
            }
            i += l;
            if (rc)
                return -1;
            continue;
        }
        if (rc)
            return -1;
        i++;
    }
    return buf_append(b, "\"", 1);
}

static void jsonw__key(struct jsonw *w, const char *key)
{
    if (w->need_comma && buf_append(w->b, ",", 1))
        w->err = -ENOBUFS;
    w->need_comma = true;
    if (jsonw_escape(w->b, key, strlen(key)) || buf_append(w->b, ":", 1))
        w->err = -ENOBUFS;
}

void jsonw_begin(struct jsonw *w, struct buf *b)
{
    w->b = b;
    w->need_comma = false;
    w->err = buf_append(b, "{", 1) ? -ENOBUFS : 0;
}

int jsonw_end(struct jsonw *w)
{
    if (buf_append(w->b, "}", 1))
        w->err = -ENOBUFS;
    return w->err;
}

void jsonw_strn(struct jsonw *w, const char *key, const char *v, size_t n)
{
    jsonw__key(w, key);
    if (jsonw_escape(w->b, v, n))
        w->err = -ENOBUFS;
}

void jsonw_str(struct jsonw *w, const char *key, const char *v)
{
    if (!v) {
        jsonw_null(w, key);
        return;
    }
    jsonw_strn(w, key, v, strlen(v));
}

void jsonw_int(struct jsonw *w, const char *key, long long v)
{
    jsonw__key(w, key);
    if (buf_printf(w->b, "%lld", v))
        w->err = -ENOBUFS;
}

void jsonw_bool(struct jsonw *w, const char *key, bool v)
{
    jsonw__key(w, key);
    if (buf_append(w->b, v ? "true" : "false", v ? 4 : 5))
        w->err = -ENOBUFS;
}

void jsonw_null(struct jsonw *w, const char *key)
{
    jsonw__key(w, key);
    if (buf_append(w->b, "null", 4))
        w->err = -ENOBUFS;
}

void jsonw_raw(struct jsonw *w, const char *key, const char *v)
{
    if (!v) {
        jsonw_null(w, key);
        return;
    }
    jsonw__key(w, key);
    if (buf_append(w->b, v, strlen(v)))
        w->err = -ENOBUFS;
}
