/* tests/unit/engine/msg/mime_readback.h — what the MIME tests need to read messages back:
 * wire checks, header lookup with unfolding, part splitting and independent QP, base64 and
 * RFC 2047 decoders (written from the RFCs, not from the encoder, so they check it). */
#ifndef SALVO_TESTS_MSG_MIME_READBACK_H
#define SALVO_TESTS_MSG_MIME_READBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Every line ends in CRLF, no bare CR or LF, no NUL, no line over 998 bytes; returns the
 * longest line (CRLF excluded). */
static size_t tm_check_wire(const uint8_t *m, size_t n)
{
    size_t longest = 0, col = 0;
    assert_true(n >= 2);
    assert_memory_equal(m + n - 2, "\r\n", 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(m[i], 0);
        if (m[i] == '\r') {
            assert_true(i + 1 < n && m[i + 1] == '\n');
            if (col > longest)
                longest = col;
            col = 0;
            i++;
            continue;
        }
        assert_int_not_equal(m[i], '\n');
        col++;
    }
    assert_true(longest <= 998);
    return longest;
}

/* Offset of the blank line ending the header block (the body starts 4 bytes later). */
static size_t tm_header_end(const uint8_t *m, size_t n)
{
    const uint8_t *p = memmem(m, n, "\r\n\r\n", 4);
    assert_non_null(p);
    return (size_t)(p - m) + 2;
}

/* Finds field name in the header block at h (up to n bytes or its blank line), unfolds its
 * value into out (NUL-terminated, leading whitespace dropped) and returns how many times the
 * field occurs. */
static int tm_header(const uint8_t *h, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    int count = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e + 1 < n && !(h[e] == '\r' && h[e + 1] == '\n'))
            e++;
        if (e == i)
            break; /* the blank line: the header block ends */
        if (e - i > nl && h[i + nl] == ':' && strncasecmp((const char *)h + i, name, nl) == 0) {
            if (count++ == 0 && out) {
                size_t o = 0, k = i + nl + 1;
                if (k < n && h[k] == ' ')
                    k++;
                for (;;) {
                    while (k < e) {
                        assert_true(o + 1 < cap);
                        out[o++] = (char)h[k++];
                    }
                    /* Continuation lines start with whitespace: unfolding drops the CRLF. */
                    if (e + 2 < n && (h[e + 2] == ' ' || h[e + 2] == '\t')) {
                        k = e + 2;
                        e = k;
                        while (e + 1 < n && !(h[e] == '\r' && h[e + 1] == '\n'))
                            e++;
                        continue;
                    }
                    break;
                }
                out[o] = '\0';
                /* Leading whitespace is not part of the value (it may follow a fold). */
                size_t lead = strspn(out, " \t");
                memmove(out, out + lead, o - lead + 1);
            }
        }
        i = e + 2;
    }
    return count;
}

static int tm_b64_val(uint8_t c)
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

/* Decodes base64, skipping CRLF; asserts on any other stray byte. */
static size_t tm_b64_decode(const uint8_t *s, size_t n, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        if (s[i] == '=')
            break;
        int v = tm_b64_val(s[i]);
        assert_true(v >= 0);
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

static int tm_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Strict RFC 2045 §6.7 decoder: asserts lines <= 76, no trailing whitespace, "=" only as
 * =XX (upper-case hex) or soft break, only printable ASCII, space and tab literal. */
static size_t tm_qp_decode(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0, col = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            assert_true(col <= 76);
            assert_true(i == 0 || (s[i - 1] != ' ' && s[i - 1] != '\t'));
            out[o++] = '\r';
            out[o++] = '\n';
            i++;
            col = 0;
            continue;
        }
        col++;
        if (c == '=') {
            if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
                assert_true(col <= 76);
                i += 2;
                col = 0;
                continue;
            }
            assert_true(i + 2 < n || i + 2 == n);
            int hi = tm_hex(s[i + 1]), lo = tm_hex(s[i + 2]);
            assert_true(hi >= 0 && lo >= 0);
            out[o++] = (uint8_t)(hi << 4 | lo);
            i += 2;
            col += 2;
            continue;
        }
        assert_true((c >= 33 && c <= 126) || c == ' ' || c == '\t');
        out[o++] = c;
    }
    assert_true(col <= 76);
    assert_true(n == 0 || (s[n - 1] != ' ' && s[n - 1] != '\t'));
    return o;
}

static bool tm_utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t l = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        if (l == 0 || i + l > n)
            return false;
        for (size_t k = 1; k < l; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += l;
    }
    return true;
}

/* Decodes an unfolded unstructured value with =?UTF-8?B?..?= words: whitespace between two
 * encoded-words is dropped (RFC 2047 §6.2). Asserts every encoded-word is <= 75 chars and
 * holds whole UTF-8 characters. Returns the decoded length; out is NUL-terminated. */
static size_t tm_2047_decode(const char *v, char *out, int *nwords)
{
    size_t n = strlen(v), o = 0, i = 0;
    bool prev_ew = false;
    *nwords = 0;
    while (i < n) {
        size_t ws = i;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t w = i;
        while (i < n && v[i] != ' ' && v[i] != '\t')
            i++;
        size_t wl = i - w;
        bool ew = wl >= 12 && memcmp(v + w, "=?UTF-8?B?", 10) == 0 &&
                  memcmp(v + i - 2, "?=", 2) == 0;
        if (!(prev_ew && ew) || w == i) {
            memcpy(out + o, v + ws, w - ws);
            o += w - ws;
        }
        if (ew) {
            assert_true(wl <= 75);
            size_t d = tm_b64_decode((const uint8_t *)v + w + 10, wl - 12, (uint8_t *)out + o);
            assert_true(tm_utf8_valid((const uint8_t *)out + o, d));
            o += d;
            (*nwords)++;
        } else {
            memcpy(out + o, v + w, wl);
            o += wl;
        }
        prev_ew = ew;
    }
    out[o] = '\0';
    return o;
}

struct tm_part {
    const uint8_t *p;   /* headers, blank line, body */
    size_t len;
};

/* Splits a multipart body into its parts by boundary b; asserts the close delimiter. */
static int tm_split(const uint8_t *body, size_t n, const char *b, struct tm_part *parts, int max)
{
    char delim[128];
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", b);
    const uint8_t *p = body;
    int k = 0;
    /* The first delimiter may sit at the very start of the body. */
    if (n >= (size_t)dl - 2 && memcmp(body, delim + 2, (size_t)dl - 2) == 0) {
        p = body + dl - 2;
    } else {
        const uint8_t *f = memmem(body, n, delim, (size_t)dl);
        assert_non_null(f);
        p = f + dl;
    }
    for (;;) {
        assert_true(p + 2 <= body + n);
        if (memcmp(p, "--", 2) == 0)
            return k;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
        const uint8_t *next = memmem(p, (size_t)(body + n - p), delim, (size_t)dl);
        assert_non_null(next);
        assert_true(k < max);
        parts[k].p = p;
        parts[k].len = (size_t)(next - p);
        k++;
        p = next + dl;
    }
}

/* Body of a part (after its blank line). */
static const uint8_t *tm_part_body(const struct tm_part *pt, size_t *len)
{
    size_t he = tm_header_end(pt->p, pt->len);
    *len = pt->len - he - 2;
    return pt->p + he + 2;
}

/* The boundary parameter of a Content-Type value. */
static void tm_boundary(const char *ct, char *b, size_t cap)
{
    const char *s = strstr(ct, "boundary=\"");
    assert_non_null(s);
    s += 10;
    const char *e = strchr(s, '"');
    assert_non_null(e);
    assert_true((size_t)(e - s) < cap);
    memcpy(b, s, (size_t)(e - s));
    b[e - s] = '\0';
}

#endif
