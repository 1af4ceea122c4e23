/* tests/fuzz/fuzz_csv.c — csv_parse_record over arbitrary bytes, once as a whole file and once
 * record by record the way the reader walks its buffer: it consumes at most len, leaves an
 * incomplete record untouched, and every field it returns lies inside the buffer and is
 * NUL-terminated there (the one spare byte past len included). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/csv.h"

#define FUZZ_FIELDS 16

static void fuzz__check_fields(const char *buf, size_t len, char **fields, unsigned nf)
{
    if (nf == 0 || nf > FUZZ_FIELDS)
        abort();
    for (unsigned i = 0; i < nf; i++) {
        if (fields[i] < buf || fields[i] > buf + len)
            abort();
        /* NUL within the buffer plus its spare byte */
        if (!memchr(fields[i], '\0', (size_t)(buf + len + 1 - fields[i])))
            abort();
        if (i > 0 && fields[i] <= fields[i - 1])
            abort();
    }
}

/* Walks every record of buf[0..len) with at_eof set; returns how many records it found. */
static void fuzz__walk(const uint8_t *data, size_t size, int at_eof)
{
    /* exact-size copy plus the documented spare byte, so ASan sees any overrun */
    char *buf = malloc(size + 1);
    char *orig = malloc(size + 1);
    if (!buf || !orig) {
        free(buf);
        free(orig);
        return;
    }
    memcpy(buf, data, size);
    buf[size] = 'X';
    memcpy(orig, buf, size + 1);
    size_t pos = 0;
    while (pos < size) {
        char *fields[FUZZ_FIELDS];
        unsigned nf = 0;
        size_t len = size - pos;
        long rc = csv_parse_record(buf + pos, len, at_eof, fields, FUZZ_FIELDS, &nf);
        if (rc < -1 || rc > (long)len)
            abort();
        if (rc == -1)
            break;
        if (rc == 0) {
            if (at_eof)          /* at the end of the file a non-empty record always ends */
                abort();
            /* incomplete: nothing changed */
            if (memcmp(buf + pos, orig + pos, len + 1) != 0)
                abort();
            break;
        }
        fuzz__check_fields(buf + pos, len, fields, nf);
        /* the rest of the buffer is untouched */
        if (memcmp(buf + pos + rc, orig + pos + rc, len - (size_t)rc) != 0)
            abort();
        pos += (size_t)rc;
    }
    free(buf);
    free(orig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz__walk(data, size, 1);
    fuzz__walk(data, size, 0);
    return 0;
}
