/* engine/msg/mime_header.h — writing header fields: folding at whitespace to 78 columns,
 * RFC 2047 encoded-words for non-ASCII text, address lists with encoded display names and
 * RFC 2231 parameters; plus the validation of caller-supplied headers. Does not decide which
 * headers a message gets (mime_build.c). */
#ifndef SALVO_ENGINE_MSG_MIME_HEADER_H
#define SALVO_ENGINE_MSG_MIME_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/util/buf.h"

/* A header being written: tracks the current line so words can be folded onto
 * continuation lines. Functions return 0, or -1 with err set (sticky). */
struct mime_hw {
    struct buf *out;
    size_t line_start;      /* offset in out of the current physical line */
    bool has_word;          /* the line holds a word after the field name (may fold) */
    bool has_ew;            /* the line holds an encoded-word: 76 columns, not 78 */
    const char *err;
};

void mime_hw_begin(struct mime_hw *w, struct buf *out, const char *name);
/* Writes whitespace ws before a word of next_len bytes, folding first when the word would
 * pass the fold column. ws_len 0 glues the word to the previous one (no fold possible). */
int mime_hw_space(struct mime_hw *w, const char *ws, size_t ws_len, size_t next_len);
/* Appends bytes to the current line (no folding). */
int mime_hw_put(struct mime_hw *w, const void *s, size_t n);
/* Writes whitespace ws then raw as encoded-words cut on character boundaries, each fitted to
 * the line. An encoded-word has to stand alone, so ws_len 0 writes one space. */
int mime_hw_encoded(struct mime_hw *w, const char *ws, size_t ws_len, const uint8_t *raw,
                    size_t n);
/* Words of ASCII text s, folding at its whitespace; the first word goes after one space. */
int mime_hw_words(struct mime_hw *w, const char *s, size_t n);
/* "; attr=value", quoted when plain printable ASCII that fits, else RFC 2231 UTF-8 with
 * continuations (attr*0*=utf-8''..) so no line passes the fold column. */
int mime_hw_param(struct mime_hw *w, const char *attr, const uint8_t *v, size_t n);
/* Ends the header with CRLF. */
int mime_hw_end(struct mime_hw *w);

/* Checks a header value the way mime_check_header does, with bad_addr as the error for an
 * unparseable address header (so callers can say which field was wrong). */
int mime_header_check_value(const char *name, const char *value, const char *bad_addr,
                            const char **err);
/* Writes a checked header: address list, or unstructured text (encoded where non-ASCII). */
int mime_header_write(struct buf *out, const char *name, const char *value, const char **err);
/* True for the headers mime_build writes itself and callers may not give. */
bool mime_header_is_owned(const char *name);

#endif
