/* engine/util/csv.c — streaming CSV / JSON-lines recipient lists. A record is located first
 * (quote-aware) and only then unquoted in place, so an incomplete record at the end of the
 * buffer is left intact for the next read. */
#include "engine/util/csv.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct csv_reader {
    FILE *f;
    bool jsonl, eof;
    char *buf;
    size_t len, pos, cap;
    long long size, consumed;
    unsigned long line;
    char *header[CSV_MAX_FIELDS];
    unsigned nheader;
    int email_col;
    json_t *cur;
    char numbuf[CSV_MAX_FIELDS][32];
    char why[300];
};

long csv_parse_record(char *buf, size_t len, int at_eof, char **fields, unsigned max_fields,
                      unsigned *nfields)
{
    /* 1. find the end of the record without touching the bytes */
    bool inq = false;
    size_t end = 0, next = 0;
    bool found = false;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '"')
            inq = !inq;
        else if (buf[i] == '\n' && !inq) {
            end = i > 0 && buf[i - 1] == '\r' ? i - 1 : i;
            next = i + 1;
            found = true;
            break;
        }
    }
    if (!found) {
        if (!at_eof)
            return 0;
        if (inq)
            return -1; /* unterminated quote at end of file */
        end = len;
        next = len;
        if (end > 0 && buf[end - 1] == '\r')
            end--;
    }
    /* 2. split and unquote in place: the output never overtakes the input */
    size_t o = 0, i = 0;
    unsigned nf = 0;
    if (max_fields == 0)
        return -1;
    fields[nf++] = buf;
    bool field_start = true;
    inq = false;
    while (i < end) {
        char c = buf[i];
        if (inq) {
            if (c == '"') {
                if (i + 1 < end && buf[i + 1] == '"') {
                    buf[o++] = '"';
                    i += 2;
                    continue;
                }
                inq = false;
                i++;
                if (i < end && buf[i] != ',')
                    return -1; /* text after a closing quote */
                continue;
            }
            buf[o++] = c;
            i++;
            continue;
        }
        if (c == '"') {
            if (!field_start)
                return -1;
            inq = true;
            field_start = false;
            i++;
            continue;
        }
        if (c == ',') {
            buf[o++] = '\0';
            if (nf == max_fields)
                return -1;
            fields[nf++] = buf + o;
            field_start = true;
            i++;
            continue;
        }
        field_start = false;
        buf[o++] = c;
        i++;
    }
    if (inq)
        return -1;
    buf[o] = '\0'; /* o <= end < next, or the caller's extra byte at end of file */
    *nfields = nf;
    return (long)next;
}

struct csv_reader *csv_open(const char *path, const char **why)
{
    struct csv_reader *r = calloc(1, sizeof *r);
    if (!r) {
        *why = "out of memory";
        return NULL;
    }
    r->f = fopen(path, "rb");
    if (!r->f) {
        *why = strerror(errno);
        free(r);
        return NULL;
    }
    struct stat st;
    r->size = fstat(fileno(r->f), &st) == 0 ? st.st_size : 0;
    const char *dot = strrchr(path, '.');
    r->jsonl = dot && (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") || !strcasecmp(dot, ".json"));
    r->cap = CSV_MAX_ROW_BYTES + 1;
    r->buf = malloc(r->cap);
    r->email_col = -1;
    if (!r->buf) {
        *why = "out of memory";
        csv_close(r);
        return NULL;
    }
    return r;
}

/* Makes sure the buffer holds as much as fits after pos. */
static void csv__fill(struct csv_reader *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    while (!r->eof && r->len < r->cap - 1) {
        size_t n = fread(r->buf + r->len, 1, r->cap - 1 - r->len, r->f);
        if (n == 0) {
            r->eof = true;
            break;
        }
        r->len += n;
    }
}

static long csv__record(struct csv_reader *r, char **fields, unsigned *nf)
{
    for (int pass = 0; pass < 2; pass++) {
        if (r->pos >= r->len && r->eof)
            return 0;
        long n = csv_parse_record(r->buf + r->pos, r->len - r->pos, r->eof, fields, CSV_MAX_FIELDS, nf);
        if (n > 0) {
            r->pos += (size_t)n;
            r->consumed += n;
            r->line++;
            return n;
        }
        if (n < 0)
            return -1;
        csv__fill(r);
    }
    return -2; /* still incomplete with a full buffer */
}

/* line: the record the error is about (counted from 1) */
static int csv__fail(struct csv_reader *r, unsigned long line, const char **why, const char *what)
{
    snprintf(r->why, sizeof r->why, "line %lu: %s", line, what);
    *why = r->why;
    return -1;
}

static int csv__next_csv(struct csv_reader *r, struct csv_row *row, const char **why)
{
    char *fields[CSV_MAX_FIELDS];
    unsigned nf;
    for (;;) {
        long n = csv__record(r, fields, &nf);
        if (n == 0)
            return 0;
        if (n == -1)
            return csv__fail(r, r->line + 1, why, "malformed CSV (quotes or too many columns)");
        if (n == -2)
            return csv__fail(r, r->line + 1, why, "row longer than 1 MiB");
        if (nf == 1 && fields[0][0] == '\0')
            continue; /* blank line */
        if (r->email_col < 0) {
            for (unsigned i = 0; i < nf; i++) {
                r->header[i] = strdup(fields[i]);
                if (!r->header[i])
                    return csv__fail(r, r->line, why, "out of memory");
                if (strcasecmp(fields[i], "email") == 0 && r->email_col < 0)
                    r->email_col = (int)i;
            }
            r->nheader = nf;
            if (r->email_col < 0)
                return csv__fail(r, r->line, why, "the header row has no 'email' column");
            continue;
        }
        if (nf != r->nheader)
            return csv__fail(r, r->line, why, "wrong number of columns");
        row->email = fields[r->email_col];
        row->nfields = 0;
        for (unsigned i = 0; i < nf; i++)
            if ((int)i != r->email_col) {
                row->names[row->nfields] = r->header[i];
                row->values[row->nfields++] = fields[i];
            }
        row->line = r->line;
        return 1;
    }
}

static int csv__next_jsonl(struct csv_reader *r, struct csv_row *row, const char **why)
{
    if (r->cur) {
        json_decref(r->cur);
        r->cur = NULL;
    }
    for (;;) {
        if (r->pos >= r->len)
            csv__fill(r);
        if (r->pos >= r->len && r->eof)
            return 0;
        char *start = r->buf + r->pos;
        char *nl = memchr(start, '\n', r->len - r->pos);
        if (!nl) {
            csv__fill(r);
            start = r->buf + r->pos;
            nl = memchr(start, '\n', r->len - r->pos);
            if (!nl && !r->eof)
                return csv__fail(r, r->line + 1, why, "line longer than 1 MiB");
        }
        size_t ll = nl ? (size_t)(nl - start) : r->len - r->pos;
        r->pos += ll + (nl ? 1 : 0);
        r->consumed += (long long)(ll + (nl ? 1 : 0));
        r->line++;
        while (ll && (start[ll - 1] == '\r' || start[ll - 1] == ' '))
            ll--;
        if (ll == 0)
            continue;
        json_error_t je;
        json_t *o = json_loadb(start, ll, 0, &je);
        if (!o || !json_is_object(o)) {
            json_decref(o);
            return csv__fail(r, r->line, why, o ? "not a JSON object" : je.text);
        }
        r->cur = o;
        json_t *em = json_object_get(o, "email");
        if (!json_is_string(em))
            return csv__fail(r, r->line, why, "no \"email\" string");
        row->email = json_string_value(em);
        row->nfields = 0;
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
            if (strcmp(k, "email") == 0)
                continue;
            if (row->nfields == CSV_MAX_FIELDS)
                return csv__fail(r, r->line, why, "too many fields");
            const char *sv;
            if (json_is_string(v))
                sv = json_string_value(v);
            else if (json_is_integer(v)) {
                snprintf(r->numbuf[row->nfields], sizeof r->numbuf[0], "%lld", (long long)json_integer_value(v));
                sv = r->numbuf[row->nfields];
            } else if (json_is_real(v)) {
                snprintf(r->numbuf[row->nfields], sizeof r->numbuf[0], "%g", json_real_value(v));
                sv = r->numbuf[row->nfields];
            } else if (json_is_boolean(v))
                sv = json_is_true(v) ? "true" : "false";
            else if (json_is_null(v))
                sv = "";
            else
                return csv__fail(r, r->line, why, "merge field values must be strings, numbers or booleans");
            row->names[row->nfields] = k;
            row->values[row->nfields++] = sv;
        }
        row->line = r->line;
        return 1;
    }
}

int csv_next(struct csv_reader *r, struct csv_row *row, const char **why)
{
    return r->jsonl ? csv__next_jsonl(r, row, why) : csv__next_csv(r, row, why);
}

double csv_progress(const struct csv_reader *r)
{
    return r->size > 0 ? (double)r->consumed / (double)r->size : 0.0;
}

void csv_close(struct csv_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    if (r->cur)
        json_decref(r->cur);
    for (unsigned i = 0; i < r->nheader; i++)
        free(r->header[i]);
    free(r->buf);
    free(r);
}
