/* engine/util/buf.h — a growable byte buffer with a hard cap. Grows only to the largest size
 * ever needed, so reuse across messages allocates nothing in the steady state. */
#ifndef SALVO_ENGINE_UTIL_BUF_H
#define SALVO_ENGINE_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len, cap, max;
};

void buf_init(struct buf *b, size_t max);
void buf_fini(struct buf *b);
/* Ensures room for n more bytes; 0 or -ENOBUFS past max / -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void buf_clear(struct buf *b) { b->len = 0; }
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
