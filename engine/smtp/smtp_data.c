/* engine/smtp/smtp_data.c — message body to wire form (RFC 5321 §4.5.2): line ending
 * normalisation, dot-stuffing and the end-of-data mark, streamed into caller buffers of any
 * size; plus the scans that pick the extensions a message needs. Does not own MIME or
 * headers (message assembly) nor the BDAT chunk framing (smtp_session).
 *
 * Every CR, LF or CRLF becomes exactly one CRLF — also when the CR ends one input chunk and
 * the LF starts the next — so no bare CR or LF can reach the wire (SMTP smuggling).
 * An empty body is "at line start": DATA sends just ".\r\n", BDAT sends nothing (the
 * session sends "BDAT 0 LAST"). One byte-mapping function serves both the stuffer and
 * smtp_stuffed_size, so the announced size cannot drift from what is sent. */
#include "engine/smtp/smtp_data.h"

#include <string.h>

void smtp_stuffer_init(struct smtp_stuffer *s, bool dot)
{
    memset(s, 0, sizeof *s);
    s->dot = dot;
    s->at_line_start = true;
}

/* What input byte c becomes on the wire: 0, 1 or 2 bytes in seq. */
static size_t smtp_data__map(struct smtp_stuffer *s, uint8_t c, uint8_t seq[2])
{
    if (s->prev_cr) {
        s->prev_cr = false;
        if (c == '\n')
            return 0;       /* the CRLF went out with the CR */
    }
    if (c == '\r' || c == '\n') {
        s->prev_cr = c == '\r';
        s->at_line_start = true;
        seq[0] = '\r';
        seq[1] = '\n';
        return 2;
    }
    bool stuff = c == '.' && s->dot && s->at_line_start;
    s->at_line_start = false;
    seq[0] = c;
    seq[1] = '.';
    return stuff ? 2 : 1;
}

/* Writes what fits of seq[0..n) and keeps the rest in pend; returns bytes written. */
static size_t smtp_data__emit(struct smtp_stuffer *s, const uint8_t *seq, size_t n,
                              uint8_t *out, size_t out_cap)
{
    size_t w = n < out_cap ? n : out_cap;
    if (w)
        memcpy(out, seq, w);
    if (n > w)
        memcpy(s->pend + s->npend, seq + w, n - w);
    s->npend = (uint8_t)(s->npend + (n - w));
    return w;
}

static size_t smtp_data__flush(struct smtp_stuffer *s, uint8_t *out, size_t out_cap)
{
    size_t w = s->npend < out_cap ? s->npend : out_cap;
    if (w)
        memcpy(out, s->pend, w);
    memmove(s->pend, s->pend + w, s->npend - w);
    s->npend = (uint8_t)(s->npend - w);
    return w;
}

size_t smtp_stuff(struct smtp_stuffer *s, const uint8_t *in, size_t in_len, size_t *consumed,
                  uint8_t *out, size_t out_cap)
{
    size_t w = smtp_data__flush(s, out, out_cap);
    size_t i = 0;
    /* Only ever take a byte while there is room, so pend holds at most one byte here. */
    while (s->npend == 0 && w < out_cap && i < in_len) {
        uint8_t seq[2];
        size_t n = smtp_data__map(s, in[i++], seq);
        w += smtp_data__emit(s, seq, n, out + w, out_cap - w);
    }
    *consumed = i;
    return w;
}

/* Resumable: with less room than needed it writes what fits, keeps the rest in pend
 * (at most ".\r\n") and is complete once s->npend is 0 after a call. The stuffer is spent
 * afterwards (dot is cleared to mark the end mark as sent); init it for the next body. */
size_t smtp_stuff_finish(struct smtp_stuffer *s, uint8_t *out, size_t out_cap)
{
    static const uint8_t crlf[2] = { '\r', '\n' };
    static const uint8_t end_mark[3] = { '.', '\r', '\n' };
    size_t w = smtp_data__flush(s, out, out_cap);
    if (s->npend)
        return w;
    if (!s->at_line_start) {
        s->at_line_start = true;
        w += smtp_data__emit(s, crlf, sizeof crlf, out + w, out_cap - w);
        if (s->npend)
            return w;
    }
    if (s->dot) {
        s->dot = false;
        w += smtp_data__emit(s, end_mark, sizeof end_mark, out + w, out_cap - w);
    }
    return w;
}

size_t smtp_stuffed_size(const uint8_t *in, size_t len, bool dot)
{
    struct smtp_stuffer s;
    uint8_t seq[2];
    size_t total = 0;
    smtp_stuffer_init(&s, dot);
    for (size_t i = 0; i < len; i++)
        total += smtp_data__map(&s, in[i], seq);
    if (!s.at_line_start)
        total += 2;
    if (dot)
        total += 3;
    return total;
}

/* Line length counts as the stuffer breaks lines: CR, LF and CRLF each end one. */
void smtp_msg_scan(const uint8_t *in, size_t len, struct smtp_msg_info *out)
{
    size_t line = 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == '\r' || c == '\n') {
            line = 0;
            continue;
        }
        out->has_8bit |= c >= 0x80;
        out->has_nul |= c == 0;
        if (++line > out->max_line_bytes)
            out->max_line_bytes = line;
    }
}

bool smtp_addr_needs_utf8(const char *addr)
{
    for (const unsigned char *p = (const unsigned char *)addr; p && *p; p++)
        if (*p >= 0x80)
            return true;
    return false;
}
