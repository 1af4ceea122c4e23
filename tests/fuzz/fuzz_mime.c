/* tests/fuzz/fuzz_mime.c — message assembly against arbitrary parts. Input: byte 0 says
 * which optional parts are present, byte 1 is a separator, bytes 2-9 the unique id; the
 * rest, split at the separator, fills the fields in order (see FIELDS). A built message
 * must be wire-clean (CRLF only, no NUL, lines <= 998), carry Date, Message-ID and
 * MIME-Version once, have a 7-bit body whose "--=_" lines are only our delimiters, and a
 * failure must leave the output as it was. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/msg/mime.h"

enum { F_FROM, F_TO, F_REPLY_TO, F_SUBJECT, F_TEXT, F_HTML, F_HNAME, F_HVALUE, F_FILENAME,
       F_CTYPE, F_DATA, F_DOMAIN, F_RCPT, FIELDS };

static bool fuzz__ascii(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Counts header lines starting with "name:" in the header block h[0..n). */
static int fuzz__count(const uint8_t *h, size_t n, const char *name)
{
    size_t nl = strlen(name);
    int c = 0;
    for (size_t i = 0; i < n;) {
        if (n - i > nl && h[i + nl] == ':' && strncasecmp((const char *)h + i, name, nl) == 0)
            c++;
        const uint8_t *e = memmem(h + i, n - i, "\r\n", 2);
        if (!e)
            break;
        i = (size_t)(e - h) + 2;
    }
    return c;
}

static void fuzz__check(const uint8_t *m, size_t n, uint64_t unique, bool ascii_headers)
{
    size_t col = 0;
    if (n < 2 || memcmp(m + n - 2, "\r\n", 2) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (m[i] == 0 || m[i] == '\n')
            abort();
        if (m[i] == '\r') {
            if (i + 1 >= n || m[i + 1] != '\n')
                abort();
            i++;
            col = 0;
        } else if (++col > 998) {
            abort();
        }
    }
    const uint8_t *blank = memmem(m, n, "\r\n\r\n", 4);
    if (!blank)
        abort();
    size_t he = (size_t)(blank - m) + 2;
    if (fuzz__count(m, he, "Date") != 1 || fuzz__count(m, he, "Message-ID") != 1 ||
        fuzz__count(m, he, "MIME-Version") != 1 || fuzz__count(m, he, "Content-Type") != 1)
        abort();
    for (size_t i = 0; i < n; i++)
        if (m[i] >= 0x80 && (i >= he || ascii_headers))
            abort();
    char mix[64], alt[64];
    snprintf(mix, sizeof mix, "--=_salvo_mix_%016" PRIx64, unique);
    snprintf(alt, sizeof alt, "--=_salvo_alt_%016" PRIx64, unique);
    for (size_t i = he + 2; i + 4 <= n;) {
        const uint8_t *e = memmem(m + i, n - i, "\r\n", 2);
        size_t l = (size_t)(e - (m + i));
        if (l >= 4 && memcmp(m + i, "--=_", 4) == 0) {
            bool ok = false;
            for (int k = 0; k < 2 && !ok; k++) {
                const char *b = k ? alt : mix;
                size_t bl = strlen(b);
                ok = (l == bl || (l == bl + 2 && memcmp(m + i + bl, "--", 2) == 0)) &&
                     memcmp(m + i, b, bl) == 0;
            }
            if (!ok)
                abort();
        }
        i += l + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 10)
        return 0;
    uint8_t flags = data[0];
    char sep = (char)data[1];
    uint64_t unique;
    memcpy(&unique, data + 2, 8);
    /* Each field is copied NUL-terminated: string fields end at their first NUL, the bodies
     * and the attachment keep every byte. */
    static char store[1 << 17];
    char *field[FIELDS] = { 0 };
    size_t flen[FIELDS] = { 0 }, used = 0;
    const char *p = (const char *)data + 10, *end = (const char *)data + size;
    for (int f = 0; f < FIELDS && p; f++) {
        const char *e = memchr(p, sep, (size_t)(end - p));
        const char *next = e ? e + 1 : NULL;
        if (!e)
            e = end;
        size_t l = (size_t)(e - p);
        if (used + l + 1 > sizeof store)
            return 0;
        field[f] = store + used;
        memcpy(field[f], p, l);
        field[f][l] = '\0';
        flen[f] = l;
        used += l + 1;
        p = next;
    }
    if (!field[F_FROM])
        return 0;
    struct mime_header h = { field[F_HNAME], field[F_HVALUE] };
    struct mime_attachment att[2] = {
        { field[F_FILENAME], field[F_CTYPE], (const uint8_t *)field[F_DATA], flen[F_DATA] },
        { NULL, NULL, (const uint8_t *)"x", 1 },
    };
    struct mime_parts parts = {
        .from = field[F_FROM],
        .to = flags & 1 ? field[F_TO] : NULL,
        .reply_to = flags & 2 ? field[F_REPLY_TO] : NULL,
        .subject = flags & 4 ? field[F_SUBJECT] : NULL,
        .text = flags & 8 ? field[F_TEXT] : NULL,
        .text_len = flags & 8 ? flen[F_TEXT] : 0,
        .html = flags & 16 ? field[F_HTML] : NULL,
        .html_len = flags & 16 ? flen[F_HTML] : 0,
        .headers = &h,
        .nheaders = flags & 32 && field[F_HNAME] && field[F_HVALUE] ? 1 : 0,
        .attachments = att,
        .nattachments = flags & 64 && field[F_DATA] ? (flags & 128 ? 2 : 1) : 0,
        .message_id_domain = field[F_DOMAIN] && field[F_DOMAIN][0] ? field[F_DOMAIN] : NULL,
    };
    const char *rcpt = field[F_RCPT];
    bool ascii = fuzz__ascii(parts.from) && fuzz__ascii(parts.to) &&
                 fuzz__ascii(parts.reply_to) && fuzz__ascii(rcpt) &&
                 (parts.nheaders == 0 || fuzz__ascii(h.value));

    struct buf out;
    buf_init(&out, 8 << 20);
    buf_append(&out, "XY", 2);
    const char *err = NULL;
    int rc = mime_build(&parts, rcpt, 1700000000123ull, unique, &out, &err);
    if (rc == 0) {
        fuzz__check(out.data + 2, out.len - 2, unique, ascii);
        /* An extra header mime_build took must pass mime_check_header on its own. */
        const char *herr;
        if (parts.nheaders && mime_check_header(h.name, h.value, &herr) != 0)
            abort();
    } else if (rc != -1 || !err || out.len != 2 || memcmp(out.data, "XY", 2) != 0) {
        abort();
    }
    buf_fini(&out);
    return 0;
}
