/* engine/smtp/smtp_data.h — message body to wire form: CRLF normalisation and dot-stuffing
 * (RFC 5321 §4.5.2), streaming into a caller's buffer; and the message scan that decides
 * which extensions (8BITMIME, SMTPUTF8) a message needs.
 * Never emits a bare CR or LF (no SMTP smuggling): every CR, LF or CRLF in the input
 * becomes exactly one CRLF. Pure, allocates nothing. */
#ifndef SALVO_ENGINE_SMTP_SMTP_DATA_H
#define SALVO_ENGINE_SMTP_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smtp_stuffer {
    bool dot;               /* dot-stuff (DATA) or only normalise line endings (BDAT) */
    bool at_line_start;
    bool prev_cr;           /* last input byte was CR (its CRLF already emitted) */
    uint8_t pend[3];        /* output bytes that did not fit last time */
    uint8_t npend;
};

/* dot = true for DATA, false for BDAT. */
void smtp_stuffer_init(struct smtp_stuffer *s, bool dot);
/* Converts as much of in[0..in_len) as fits in out[0..out_cap). Sets *consumed; returns bytes
 * written. Call again with the rest when out fills. */
size_t smtp_stuff(struct smtp_stuffer *s, const uint8_t *in, size_t in_len, size_t *consumed,
                  uint8_t *out, size_t out_cap);
/* Ends the body: a final CRLF if the content did not end with a line break and, for DATA, the
 * terminating ".\r\n". Needs out_cap >= 5 plus any pending bytes; returns bytes written. */
size_t smtp_stuff_finish(struct smtp_stuffer *s, uint8_t *out, size_t out_cap);
/* Exact wire size the stuffer would produce for this content (finish included). */
size_t smtp_stuffed_size(const uint8_t *in, size_t len, bool dot);

struct smtp_msg_info {
    bool has_8bit;          /* any byte >= 0x80: needs 8BITMIME (or SMTPUTF8) */
    bool has_nul;           /* NUL bytes: not transportable as text */
    size_t max_line_bytes;  /* longest line, line break excluded */
};
void smtp_msg_scan(const uint8_t *in, size_t len, struct smtp_msg_info *out);
/* True when the address has any non-ASCII byte (needs SMTPUTF8). */
bool smtp_addr_needs_utf8(const char *addr);

#endif
