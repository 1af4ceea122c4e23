/* engine/msg/mime_encode.c — transfer encodings (RFC 2045 §6.7 quoted-printable, §6.8
 * base64), RFC 2047 B-encoded words and UTF-8 scanning. Bounded: every loop walks its input
 * once and writes only through buf, so a too-large message fails on buf's cap. */
#include "engine/msg/mime_encode.h"

#include <string.h>

#include "engine/util/base64.h"

size_t mime_utf8_seq_len(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8. */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

bool mime_utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = mime_utf8_seq_len(s + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

bool mime_is_ascii(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80)
            return false;
    return true;
}

size_t mime_utf8_prefix(const uint8_t *s, size_t n, size_t max)
{
    size_t i = 0;
    while (i < n) {
        size_t l = mime_utf8_seq_len(s + i, n - i);
        if (l == 0)
            l = 1;
        if (i + l > max)
            break;
        i += l;
    }
    return i;
}

/* Length of the line break at s[0] (CRLF, CR or LF), 0 when s[0] is not one. */
static size_t mime__eol_len(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0;
    if (s[0] == '\r')
        return n > 1 && s[1] == '\n' ? 2 : 1;
    return s[0] == '\n' ? 1 : 0;
}

static size_t mime__line_len(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] != '\r' && s[i] != '\n')
        i++;
    return i;
}

enum mime_cte mime_body_cte(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i <= n;) {
        size_t l = mime__line_len(s + i, n - i);
        if (l > 998)
            return MIME_CTE_QP;
        /* Our boundaries start with "=_"; QP and base64 can never produce that at a line
         * start, but 7bit text could, so such text is sent as QP instead. */
        if (l >= 4 && memcmp(s + i, "--=_", 4) == 0)
            return MIME_CTE_QP;
        for (size_t k = i; k < i + l; k++)
            if (s[k] == 0 || s[k] >= 0x80)
                return MIME_CTE_QP;
        i += l;
        if (i == n)
            break;
        i += mime__eol_len(s + i, n - i);
    }
    return MIME_CTE_7BIT;
}

int mime_append_7bit(struct buf *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = mime__line_len(s + i, n - i);
        int rc = mime_buf_put(out, s + i, l);
        if (rc)
            return rc;
        i += l;
        if (i == n)
            break;
        i += mime__eol_len(s + i, n - i);
        if ((rc = mime_buf_put(out, "\r\n", 2)))
            return rc;
    }
    return 0;
}

/* One input line (no line break) as QP lines joined by soft breaks. */
static int mime__qp_line(struct buf *out, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    /* Each soft-broken line holds at least 73 chars, which bounds the soft breaks. */
    int rc = buf_reserve(out, n * 3 + (n * 3 / 73 + 1) * 3);
    if (rc)
        return rc;
    uint8_t *o = out->data + out->len;
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        bool last = i + 1 == n;
        /* Whitespace at the end of a line would be stripped in transit (rule 3). */
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
        size_t w = literal ? 1 : 3;
        /* Leave room for the soft break's "=" unless this is the line's last char. */
        if (col + w > (last ? MIME_QP_LINE_BYTES : MIME_QP_LINE_BYTES - 1)) {
            *o++ = '=';
            *o++ = '\r';
            *o++ = '\n';
            col = 0;
        }
        if (literal) {
            *o++ = c;
        } else {
            *o++ = '=';
            *o++ = (uint8_t)hex[c >> 4];
            *o++ = (uint8_t)hex[c & 15];
        }
        col += w;
    }
    out->len = (size_t)(o - out->data);
    return 0;
}

int mime_append_qp(struct buf *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = mime__line_len(s + i, n - i);
        int rc = mime__qp_line(out, s + i, l);
        if (rc)
            return rc;
        i += l;
        if (i == n)
            break;
        i += mime__eol_len(s + i, n - i);
        if ((rc = mime_buf_put(out, "\r\n", 2)))
            return rc;
    }
    return 0;
}

int mime_append_base64(struct buf *out, const uint8_t *s, size_t n)
{
    enum { RAW = MIME_B64_LINE_BYTES / 4 * 3 };
    for (size_t i = 0; i < n; i += RAW) {
        char line[MIME_B64_LINE_BYTES + 1];
        size_t take = n - i < RAW ? n - i : RAW;
        size_t l = base64_encode(s + i, take, line);
        int rc = mime_buf_put(out, line, l);
        if (!rc && i + take < n)
            rc = mime_buf_put(out, "\r\n", 2);
        if (rc)
            return rc;
    }
    return 0;
}

int mime_append_encoded_word(struct buf *out, const uint8_t *s, size_t n)
{
    char b64[base64_encoded_len(MIME_EW_MAX_RAW_BYTES) + 1];
    if (n > MIME_EW_MAX_RAW_BYTES)
        n = MIME_EW_MAX_RAW_BYTES;
    size_t l = base64_encode(s, n, b64);
    return buf_printf(out, "=?UTF-8?B?%.*s?=", (int)l, b64);
}
