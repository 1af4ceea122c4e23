/* engine/util/csv.h — streaming recipient-list reader for `salvo inject`: CSV (RFC 4180, a
 * header row, column "email" is the address, the others are merge fields) or JSON lines
 * (one object per line, "email" plus fields). One row in memory at a time. */
#ifndef SALVO_ENGINE_UTIL_CSV_H
#define SALVO_ENGINE_UTIL_CSV_H

#include <stddef.h>

#define CSV_MAX_FIELDS 256
#define CSV_MAX_ROW_BYTES (1u << 20)

struct csv_row {
    const char *email;
    const char *names[CSV_MAX_FIELDS];   /* merge fields (email excluded) */
    const char *values[CSV_MAX_FIELDS];
    unsigned nfields;
    unsigned long line;
};

struct csv_reader;

/* Format by extension: .jsonl/.ndjson/.json = JSON lines, anything else CSV. */
struct csv_reader *csv_open(const char *path, const char **why);
/* 1 with *row (valid until the next call), 0 at the end, -1 with *why (names the line). */
int csv_next(struct csv_reader *r, struct csv_row *row, const char **why);
/* Fraction of the file read so far. */
double csv_progress(const struct csv_reader *r);
void csv_close(struct csv_reader *r);

/* Parses one CSV record from buf[0..len) into fields (NUL-terminated in place, quotes
 * removed). Returns bytes consumed, 0 when the record is incomplete, -1 when malformed.
 * at_eof: the buffer ends the file. Exposed for tests and fuzzing. */
long csv_parse_record(char *buf, size_t len, int at_eof, char **fields, unsigned max_fields,
                      unsigned *nfields);

#endif
