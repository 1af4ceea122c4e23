/* engine/util/base64.h — RFC 4648 base64 encoding (for SMTP AUTH and MIME). */
#ifndef SALVO_ENGINE_UTIL_BASE64_H
#define SALVO_ENGINE_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

static inline size_t base64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }
/* Writes base64_encoded_len(n) chars plus a NUL to out; returns the length without NUL. */
size_t base64_encode(const uint8_t *in, size_t n, char *out);

#endif
