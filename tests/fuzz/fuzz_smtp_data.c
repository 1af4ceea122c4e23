/* tests/fuzz/fuzz_smtp_data.c — the body stuffer over arbitrary bodies, input chunk sizes
 * and output windows. Byte 0: bit 0 = dot (DATA), the rest seeds the chunk and window sizes.
 * Checks: no bare CR or LF on the wire, no end mark before the end, the size promised by
 * smtp_stuffed_size, the same bytes whatever the chunking, and that un-stuffing the wire
 * gives back the body with normalised line endings. Also runs the message scan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/smtp/smtp_data.h"

#define FUZZ_MAX_BODY 65536
#define FUZZ_MAX_WIRE (2 * FUZZ_MAX_BODY + 8)

static uint8_t wire_a[FUZZ_MAX_WIRE], wire_b[FUZZ_MAX_WIRE];

static uint32_t fuzz__rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static size_t fuzz__stuff(const uint8_t *in, size_t len, bool dot, uint32_t seed, uint8_t *out)
{
    struct smtp_stuffer s;
    size_t pos = 0, w = 0, idle = 0;
    smtp_stuffer_init(&s, dot);
    while (pos < len || s.npend) {
        size_t chunk = seed ? fuzz__rand(&seed) % 13 : len - pos;
        size_t cap = seed ? fuzz__rand(&seed) % 7 : FUZZ_MAX_WIRE - w;
        size_t used = 0;
        if (chunk > len - pos)
            chunk = len - pos;
        if (cap > FUZZ_MAX_WIRE - w)
            abort();
        size_t n = smtp_stuff(&s, in + pos, chunk, &used, out + w, cap);
        if (used > chunk || n > cap || s.npend > sizeof s.pend)
            abort();
        idle = n || used ? 0 : idle + 1;
        if (idle > 64)      /* 0-sized windows or chunks must not stall it for ever */
            abort();
        pos += used;
        w += n;
    }
    do {
        size_t cap = seed ? fuzz__rand(&seed) % 7 : FUZZ_MAX_WIRE - w;
        w += smtp_stuff_finish(&s, out + w, cap);
        if (++idle > 200)
            abort();
    } while (s.npend);
    return w;
}

static void fuzz__check_wire(const uint8_t *in, size_t len, const uint8_t *w, size_t n, bool dot)
{
    for (size_t i = 0; i < n; i++) {
        if (w[i] == '\r' && (i + 1 == n || w[i + 1] != '\n'))
            abort();
        if (w[i] == '\n' && (i == 0 || w[i - 1] != '\r'))
            abort();
    }
    size_t end = n;
    if (dot) {
        if (n < 3 || memcmp(w + n - 3, ".\r\n", 3) != 0)
            abort();
        end = n - 3;
        if (end > 0 && (end < 2 || memcmp(w + end - 2, "\r\n", 2) != 0))
            abort();
    }
    /* Walk input and wire together: the wire is the input, re-lined and dot-stuffed. */
    size_t j = 0;
    bool bol = true;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == '\n' && i > 0 && in[i - 1] == '\r')
            continue;
        if (c == '\r' || c == '\n') {
            if (j + 2 > end || w[j] != '\r' || w[j + 1] != '\n')
                abort();
            j += 2;
            bol = true;
            continue;
        }
        if (dot && bol && c == '.' && (j >= end || w[j++] != '.'))
            abort();
        if (j >= end || w[j++] != c)
            abort();
        bol = false;
    }
    if (!bol) {
        if (j + 2 > end || w[j] != '\r' || w[j + 1] != '\n')
            abort();
        j += 2;
    }
    if (j != end)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > FUZZ_MAX_BODY)
        return 0;
    bool dot = data[0] & 1;
    uint32_t seed = (uint32_t)data[0] * 2654435761u | 1;
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    size_t na = fuzz__stuff(in, len, dot, 0, wire_a);
    size_t nb = fuzz__stuff(in, len, dot, seed, wire_b);
    if (na != smtp_stuffed_size(in, len, dot) || nb != na || memcmp(wire_a, wire_b, na) != 0)
        abort();
    fuzz__check_wire(in, len, wire_a, na, dot);

    struct smtp_msg_info mi;
    smtp_msg_scan(in, len, &mi);
    if (mi.max_line_bytes > len || mi.has_nul != (memchr(in, 0, len) != NULL))
        abort();
    return 0;
}
