/* engine/msg/mime_header.c — header fields on the wire and the checks on caller headers.
 * Folding only inserts CRLF before existing whitespace, so unfolding restores the value;
 * non-ASCII words become RFC 2047 encoded-words (display names only, in address fields). */
#include "engine/msg/mime_header.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/msg/mime.h"
#include "engine/msg/mime_address.h"
#include "engine/msg/mime_encode.h"

static const char mime__too_long[] = "header line too long";

static bool mime__wsp(char c) { return c == ' ' || c == '\t'; }

static size_t mime__col(const struct mime_hw *w) { return w->out->len - w->line_start; }

static int mime__fail(struct mime_hw *w, int rc)
{
    if (!w->err)
        w->err = rc == -ENOBUFS ? "message too large" : "out of memory";
    return -1;
}

void mime_hw_begin(struct mime_hw *w, struct buf *out, const char *name)
{
    w->out = out;
    w->line_start = out->len;
    w->has_word = false;
    w->has_ew = false;
    w->err = NULL;
    int rc = buf_printf(out, "%s:", name);
    if (rc)
        mime__fail(w, rc);
}

static int mime__fold(struct mime_hw *w)
{
    int rc = mime_buf_put(w->out, "\r\n", 2);
    if (rc)
        return mime__fail(w, rc);
    w->line_start = w->out->len;
    w->has_ew = false;
    return 0;
}

int mime_hw_space(struct mime_hw *w, const char *ws, size_t ws_len, size_t next_len)
{
    if (w->err)
        return -1;
    size_t limit = w->has_ew ? MIME_EW_LINE_BYTES : MIME_FOLD_COLUMN;
    if (w->has_word && ws_len > 0 && mime__col(w) + ws_len + next_len > limit &&
        mime__fold(w))
        return -1;
    return mime_hw_put(w, ws, ws_len);
}

int mime_hw_put(struct mime_hw *w, const void *s, size_t n)
{
    if (w->err)
        return -1;
    int rc = mime_buf_put(w->out, s, n);
    if (rc)
        return mime__fail(w, rc);
    if (mime__col(w) > MIME_MAX_LINE_BYTES) {
        w->err = mime__too_long;
        return -1;
    }
    return 0;
}

/* How many bytes of raw (whole characters) fit one encoded-word starting at column col. */
static size_t mime__ew_fit(const uint8_t *raw, size_t n, size_t col)
{
    if (col + MIME_EW_OVERHEAD_BYTES >= MIME_EW_LINE_BYTES)
        return 0;
    size_t b64 = (MIME_EW_LINE_BYTES - col - MIME_EW_OVERHEAD_BYTES) / 4 * 4;
    size_t max = b64 / 4 * 3;
    if (max > MIME_EW_MAX_RAW_BYTES)
        max = MIME_EW_MAX_RAW_BYTES;
    return mime_utf8_prefix(raw, n, max);
}

int mime_hw_encoded(struct mime_hw *w, const char *ws, size_t ws_len, const uint8_t *raw,
                    size_t n)
{
    for (bool first = true; n > 0; first = false) {
        /* Whitespace between two encoded-words is dropped by decoders, so after the first
         * word a single space (or a fold) separates the pieces of one text. */
        const char *sep = first && ws_len ? ws : " ";
        size_t sep_len = first && ws_len ? ws_len : 1;
        if (w->err)
            return -1;
        size_t take = mime__ew_fit(raw, n, mime__col(w) + sep_len);
        if (take == 0 && w->has_word) {
            if (mime__fold(w))
                return -1;
            take = mime__ew_fit(raw, n, sep_len);
        }
        /* Right after a long field name nothing fits, but folding there would make readers
         * (Python's email, for one) see a leading space: one character, slightly long. */
        if (take == 0)
            take = mime_utf8_prefix(raw, n, 4);
        if (mime_hw_put(w, sep, sep_len))
            return -1;
        int rc = mime_append_encoded_word(w->out, raw, take);
        if (rc)
            return mime__fail(w, rc);
        if (mime_hw_put(w, "", 0))
            return -1;
        w->has_word = w->has_ew = true;
        raw += take;
        n -= take;
    }
    return 0;
}

int mime_hw_words(struct mime_hw *w, const char *s, size_t n)
{
    size_t i = 0;
    const char *ws = " ";
    size_t ws_len = 1;
    while (i < n && mime__wsp(s[i]))
        i++;
    while (i < n) {
        size_t start = i;
        while (i < n && !mime__wsp(s[i]))
            i++;
        if (mime_hw_space(w, ws, ws_len, i - start) || mime_hw_put(w, s + start, i - start))
            return -1;
        w->has_word = true;
        ws = s + i;
        while (i < n && mime__wsp(s[i]))
            i++;
        ws_len = (size_t)(s + i - ws);
    }
    return 0;
}

/* RFC 2231 attribute-char: what may stand unencoded in an extended parameter value. */
static bool mime__attr_char(uint8_t c)
{
    return c > 0x20 && c < 0x7f && !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

static bool mime__param_quotable(const uint8_t *v, size_t n, size_t attr_len)
{
    size_t q = attr_len + 3; /* attr="" */
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0x20 || v[i] >= 0x7f)
            return false;
        q += v[i] == '"' || v[i] == '\\' ? 2 : 1;
    }
    return q <= MIME_FOLD_COLUMN - 8; /* room for "; " and the line's leading space */
}

int mime_hw_param(struct mime_hw *w, const char *attr, const uint8_t *v, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t attr_len = strlen(attr);
    if (attr_len > 32) { /* our own parameter names; keeps the scratch below bounded */
        w->err = "parameter name too long";
        return -1;
    }
    if (mime__param_quotable(v, n, attr_len)) {
        char q[MIME_FOLD_COLUMN];
        size_t ql = 0;
        q[ql++] = '"';
        for (size_t i = 0; i < n; i++) {
            if (v[i] == '"' || v[i] == '\\')
                q[ql++] = '\\';
            q[ql++] = (char)v[i];
        }
        q[ql++] = '"';
        return mime_hw_put(w, ";", 1) || mime_hw_space(w, " ", 1, attr_len + 1 + ql) ||
                       mime_hw_put(w, attr, attr_len) || mime_hw_put(w, "=", 1) ||
                       mime_hw_put(w, q, ql)
                   ? -1
                   : 0;
    }
    /* Percent-encoded; one segment per line, cut only between whole characters. */
    enum { SEG_BYTES = 60 };
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += mime__attr_char(v[i]) ? 1 : 3;
    bool single = attr_len + 9 + total <= SEG_BYTES; /* attr*=utf-8'' */
    unsigned seg = 0;
    size_t i = 0;
    do {
        char piece[SEG_BYTES + 64];
        int pl = single ? snprintf(piece, sizeof piece, "%s*=utf-8''", attr)
                        : snprintf(piece, sizeof piece, "%s*%u*=%s", attr, seg,
                                   seg == 0 ? "utf-8''" : "");
        size_t len = (size_t)pl;
        while (i < n) {
            size_t cl = mime_utf8_seq_len(v + i, n - i);
            if (cl == 0)
                cl = 1;
            size_t enc = 0;
            for (size_t k = 0; k < cl; k++)
                enc += mime__attr_char(v[i + k]) ? 1 : 3;
            /* Each segment takes at least one character, so this always progresses. */
            if (len > (size_t)pl && len + enc > SEG_BYTES)
                break;
            for (size_t k = 0; k < cl; k++) {
                uint8_t c = v[i + k];
                if (mime__attr_char(c)) {
                    piece[len++] = (char)c;
                } else {
                    piece[len++] = '%';
                    piece[len++] = hex[c >> 4];
                    piece[len++] = hex[c & 15];
                }
            }
            i += cl;
        }
        if (mime_hw_put(w, ";", 1) || mime_hw_space(w, " ", 1, len) ||
            mime_hw_put(w, piece, len))
            return -1;
        seg++;
    } while (i < n);
    return 0;
}

int mime_hw_end(struct mime_hw *w)
{
    return mime_hw_put(w, "\r\n", 2);
}

/* ---- header values ---- */

static const char *const mime__owned[] = { "MIME-Version", "Content-Type",
                                           "Content-Transfer-Encoding" };

bool mime_header_is_owned(const char *name)
{
    for (size_t i = 0; i < sizeof mime__owned / sizeof mime__owned[0]; i++)
        if (strcasecmp(name, mime__owned[i]) == 0)
            return true;
    return false;
}

/* Subject and Comments are free text, so a word too long for any line may be sent as
 * encoded-words; in other headers that would change the value's meaning. */
static bool mime__is_free_text(const char *name)
{
    return strcasecmp(name, "Subject") == 0 || strcasecmp(name, "Comments") == 0;
}

static bool mime__needs_quote(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~ \t", c);
        if (!atext || c == '\0')
            return true;
    }
    /* An unquoted "=?..?=" would be decoded as an encoded-word by the receiver. */
    return memmem(s, n, "=?", 2) != NULL;
}

static int mime__write_display(struct mime_hw *w, const struct mime_mailbox *mb)
{
    char raw[MIME_MAX_DISPLAY_NAME_BYTES], q[2 * MIME_MAX_DISPLAY_NAME_BYTES + 2];
    size_t rl = 0;
    if (mime_display_unquote(mb, raw, sizeof raw, &rl)) {
        w->err = "display name too long";
        return -1;
    }
    while (rl > 0 && mime__wsp(raw[rl - 1]))
        rl--;
    if (rl == 0)
        return 0;
    if (!mime_is_ascii((const uint8_t *)raw, rl))
        return mime_hw_encoded(w, " ", 1, (const uint8_t *)raw, rl);
    if (!mime__needs_quote(raw, rl))
        return mime_hw_words(w, raw, rl);
    size_t ql = 0;
    q[ql++] = '"';
    for (size_t i = 0; i < rl; i++) {
        if (raw[i] == '"' || raw[i] == '\\')
            q[ql++] = '\\';
        q[ql++] = raw[i];
    }
    q[ql++] = '"';
    return mime_hw_words(w, q, ql);
}

static int mime__write_addresses(struct mime_hw *w, const char *v, size_t n)
{
    struct mime_mailbox mb;
    size_t pos = 0;
    int r, k = 0;
    while ((r = mime_mailbox_next(v, n, &pos, &mb)) == 1) {
        if (k++ && mime_hw_put(w, ",", 1))
            return -1;
        if (mb.display && mime__write_display(w, &mb))
            return -1;
        /* Angle brackets whenever there is a display name; a bare address stays bare. */
        bool angle = mb.display != NULL;
        if (mime_hw_space(w, " ", 1, mb.addr_len + (angle ? 3 : 1)) ||
            (angle && mime_hw_put(w, "<", 1)) || mime_hw_put(w, mb.addr, mb.addr_len) ||
            (angle && mime_hw_put(w, ">", 1)))
            return -1;
        w->has_word = true;
    }
    if (r < 0 || k == 0) {
        w->err = "invalid address";
        return -1;
    }
    return 0;
}

static bool mime__word_needs_ew(const char *word, size_t len, size_t ws_len, size_t name_len,
                                bool free_text)
{
    if (!mime_is_ascii((const uint8_t *)word, len))
        return true;
    return free_text && name_len + 2 + ws_len + len > MIME_MAX_LINE_BYTES;
}

static int mime__write_text(struct mime_hw *w, const char *name, const char *v, size_t n)
{
    size_t name_len = strlen(name), i = 0;
    bool free_text = mime__is_free_text(name);
    const char *ws = " ";
    size_t ws_len = 1;
    while (i < n) {
        size_t start = i;
        while (i < n && !mime__wsp(v[i]))
            i++;
        if (mime__word_needs_ew(v + start, i - start, ws_len, name_len, free_text)) {
            /* Take the following words too while they need encoding, whitespace and all:
             * whitespace between encoded-words would be lost, inside one it is kept. */
            size_t end = i;
            for (;;) {
                size_t k = end;
                while (k < n && mime__wsp(v[k]))
                    k++;
                size_t ws2 = k - end, ws_end = k;
                while (k < n && !mime__wsp(v[k]))
                    k++;
                if (k == ws_end ||
                    !mime__word_needs_ew(v + ws_end, k - ws_end, ws2, name_len, free_text))
                    break;
                end = k;
            }
            /* A whitespace run before the group goes inside it but for one separator
             * char, so a long run cannot overfill the line and nothing is lost. */
            if (ws_len > 1)
                start = (size_t)(ws + 1 - v);
            if (mime_hw_encoded(w, ws, ws_len > 1 ? 1 : ws_len, (const uint8_t *)v + start,
                                end - start))
                return -1;
            i = end;
        } else {
            if (mime_hw_space(w, ws, ws_len, i - start) || mime_hw_put(w, v + start, i - start))
                return -1;
            w->has_word = true;
        }
        ws = v + i;
        while (i < n && mime__wsp(v[i]))
            i++;
        ws_len = (size_t)(v + i - ws);
    }
    return 0;
}

static void mime__trim(const char **s, size_t *n)
{
    while (*n && mime__wsp(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && mime__wsp((*s)[*n - 1]))
        (*n)--;
}

int mime_header_write(struct buf *out, const char *name, const char *value, const char **err)
{
    struct mime_hw w;
    size_t n = strlen(value);
    mime__trim(&value, &n);
    mime_hw_begin(&w, out, name);
    int rc = mime_is_address_header(name) ? mime__write_addresses(&w, value, n)
                                          : mime__write_text(&w, name, value, n);
    if (rc || mime_hw_end(&w)) {
        *err = w.err;
        return -1;
    }
    return 0;
}

static int mime__check_name(const char *name, const char **err)
{
    size_t n = name ? strlen(name) : 0;
    if (n > MIME_MAX_HEADER_NAME_BYTES) {
        *err = "header name too long";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (name[i] < 33 || name[i] > 126 || name[i] == ':') {
            *err = "bad header name";
            return -1;
        }
    }
    if (n == 0) {
        *err = "bad header name";
        return -1;
    }
    if (mime_header_is_owned(name)) {
        *err = "MIME-Version, Content-Type and Content-Transfer-Encoding are set by Salvo";
        return -1;
    }
    /* Each copy goes to its envelope recipient as written: a Bcc field would be shown. */
    if (strcasecmp(name, "Bcc") == 0) {
        *err = "Bcc header would be visible to the recipient";
        return -1;
    }
    return 0;
}

static bool mime__msgid_ok(const char *v, size_t n)
{
    if (n < 5 || v[0] != '<' || v[n - 1] != '>')
        return false;
    const char *at = memchr(v, '@', n);
    if (!at || at == v + 1 || at == v + n - 2)
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if ((unsigned char)v[i] <= ' ' || v[i] == '<' || v[i] == '>')
            return false;
    return true;
}

/* The longest ASCII "whitespace + word" piece must fit one line after the field name. */
static bool mime__words_fit(const char *name, const char *v, size_t n)
{
    size_t name_len = strlen(name), i = 0;
    bool free_text = mime__is_free_text(name);
    while (i < n) {
        size_t start = i;
        while (i < n && mime__wsp(v[i]))
            i++;
        size_t word = i;
        while (i < n && !mime__wsp(v[i]))
            i++;
        if (!mime_is_ascii((const uint8_t *)v + word, i - word) || free_text)
            continue;
        if (name_len + 2 + (i - start) > MIME_MAX_LINE_BYTES)
            return false;
    }
    return true;
}

int mime_header_check_value(const char *name, const char *value, const char *bad_addr,
                            const char **err)
{
    if (!value) {
        *err = "missing header value";
        return -1;
    }
    size_t n = strlen(value);
    for (size_t i = 0; i < n; i++) {
        if (value[i] == '\r' || value[i] == '\n') {
            *err = "header injection";
            return -1;
        }
    }
    if (n > MIME_MAX_HEADER_VALUE_BYTES) {
        *err = "header value too long";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *err = "control character in header value";
            return -1;
        }
    }
    if (!mime_utf8_valid((const uint8_t *)value, n)) {
        *err = "header value is not valid UTF-8";
        return -1;
    }
    mime__trim(&value, &n);
    if (mime_is_address_header(name)) {
        struct mime_mailbox mb;
        size_t pos = 0;
        int r, k = 0;
        while ((r = mime_mailbox_next(value, n, &pos, &mb)) == 1) {
            k++;
            char raw[MIME_MAX_DISPLAY_NAME_BYTES];
            size_t rl;
            if (mb.display && mime_display_unquote(&mb, raw, sizeof raw, &rl)) {
                *err = "display name too long";
                return -1;
            }
        }
        if (r < 0 || k == 0) {
            *err = bad_addr;
            return -1;
        }
        return 0;
    }
    if (strcasecmp(name, "Message-ID") == 0 && !mime__msgid_ok(value, n)) {
        *err = "invalid Message-ID";
        return -1;
    }
    if (!mime__words_fit(name, value, n)) {
        *err = mime__too_long;
        return -1;
    }
    return 0;
}

int mime_check_header(const char *name, const char *value, const char **err)
{
    if (mime__check_name(name, err))
        return -1;
    return mime_header_check_value(name, value, "invalid address in address header", err);
}
