/* engine/util/base64.c — base64 encoder; small enough that pulling OpenSSL's BIO chain into
 * non-TLS code would cost more than it gives. */
#include "engine/util/base64.h"

static const char b64__alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64__alphabet[v >> 18 & 63];
        out[o++] = b64__alphabet[v >> 12 & 63];
        out[o++] = b64__alphabet[v >> 6 & 63];
        out[o++] = b64__alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64__alphabet[v >> 18 & 63];
        out[o++] = b64__alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64__alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
