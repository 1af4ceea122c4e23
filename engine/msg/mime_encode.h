/* engine/msg/mime_encode.h — byte-level MIME encoders: body transfer encodings (7bit line
 * normalisation, quoted-printable, base64 at 76 columns), RFC 2047 encoded-words and the
 * UTF-8 scans they share. Knows nothing of headers' names or the message's structure. */
#ifndef SALVO_ENGINE_MSG_MIME_ENCODE_H
#define SALVO_ENGINE_MSG_MIME_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/util/buf.h"

#define MIME_QP_LINE_BYTES 76       /* RFC 2045 §6.7 rule 5, CRLF excluded */
#define MIME_B64_LINE_BYTES 76      /* RFC 2045 §6.8 */
#define MIME_EW_MAX_BYTES 75        /* RFC 2047 §2: one encoded-word */
#define MIME_EW_LINE_BYTES 76       /* RFC 2047 §2: a header line holding encoded-words */
#define MIME_EW_OVERHEAD_BYTES 12   /* "=?UTF-8?B?" + "?=" */
#define MIME_EW_MAX_RAW_BYTES 45    /* 45 bytes -> 60 base64 chars -> 72-char word */

/* buf_append that accepts n == 0 on a never-grown buf (memcpy to NULL would be UB). */
static inline int mime_buf_put(struct buf *b, const void *p, size_t n)
{
    return n ? buf_append(b, p, n) : 0;
}

/* Length (1-4) of the valid UTF-8 sequence starting s[0], or 0 when there is none. */
size_t mime_utf8_seq_len(const uint8_t *s, size_t n);
bool mime_utf8_valid(const uint8_t *s, size_t n);
bool mime_is_ascii(const uint8_t *s, size_t n);
/* The longest prefix of s of at most max bytes that ends on a character boundary (an
 * invalid byte counts as one character). */
size_t mime_utf8_prefix(const uint8_t *s, size_t n, size_t max);

enum mime_cte { MIME_CTE_7BIT, MIME_CTE_QP };
/* 7bit when s is ASCII without NUL, every line fits 998 bytes and no line could be taken for
 * one of our boundaries ("--=_"); else quoted-printable. */
enum mime_cte mime_body_cte(const uint8_t *s, size_t n);
static inline const char *mime_cte_to_text(enum mime_cte c)
{
    return c == MIME_CTE_7BIT ? "7bit" : "quoted-printable";
}

/* The body encoders append s with every CR, LF or CRLF turned into one CRLF and add no line
 * break after the last line: the CRLF before a boundary belongs to the boundary. */
int mime_append_7bit(struct buf *out, const uint8_t *s, size_t n);
int mime_append_qp(struct buf *out, const uint8_t *s, size_t n);
/* base64 in lines of 76 chars, CRLF between lines. */
int mime_append_base64(struct buf *out, const uint8_t *s, size_t n);
/* One "=?UTF-8?B?...?=" word holding all n (<= MIME_EW_MAX_RAW_BYTES) bytes of s. */
int mime_append_encoded_word(struct buf *out, const uint8_t *s, size_t n);

#endif
