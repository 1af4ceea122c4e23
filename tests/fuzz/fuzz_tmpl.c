/* tests/fuzz/fuzz_tmpl.c — merge templates against arbitrary templates and field values.
 * Input: byte 0 picks the escape mode, byte 1 is a separator; the rest, split at the
 * separator, is the template then "name=value" fields. Checks the header's promises: errors
 * leave the output alone, tmpl_check agrees with tmpl_render on syntax, header mode never
 * emits CR/LF/NUL, HTML mode adds no markup the template did not have. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/msg/tmpl.h"

#define FUZZ_MAX_FIELDS 16

struct fuzz_field {
    const char *name, *value;
    size_t name_len, value_len;
};

struct fuzz_record {
    struct fuzz_field f[FUZZ_MAX_FIELDS];
    unsigned n;
};

static const char *fuzz__lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    const struct fuzz_record *r = ctx;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->f[i].name_len == name_len && memcmp(r->f[i].name, name, name_len) == 0) {
            *value_len = r->f[i].value_len;
            return r->f[i].value;
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum tmpl_escape esc = (enum tmpl_escape)(data[0] % 3);
    char sep = (char)data[1];
    const char *d = (const char *)data + 2, *end = (const char *)data + size;
    const char *t = d, *te = memchr(d, sep, (size_t)(end - d));
    if (!te)
        te = end;
    struct fuzz_record rec = { .n = 0 };
    for (const char *p = te; p < end && rec.n < FUZZ_MAX_FIELDS;) {
        p++;
        const char *e = memchr(p, sep, (size_t)(end - p));
        if (!e)
            e = end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq) {
            struct fuzz_field *f = &rec.f[rec.n++];
            f->name = p;
            f->name_len = (size_t)(eq - p);
            f->value = eq + 1;
            f->value_len = (size_t)(e - eq - 1);
        }
        p = e;
    }
    size_t tl = (size_t)(te - t);

    struct buf out;
    buf_init(&out, 1 << 20);
    buf_append(&out, "XY", 2);
    const char *err = NULL, *cerr = NULL;
    int rc = tmpl_render(t, tl, fuzz__lookup, &rec, esc, &out, &err);
    int crc = tmpl_check(t, tl, &cerr);
    if (rc != 0 && rc != -1)
        abort();
    if (out.len < 2 || memcmp(out.data, "XY", 2) != 0)
        abort();
    /* A syntax error fails the render too, unless the render stopped earlier at an
     * injection (it reports the first problem it meets). */
    if (crc == -1 && (rc != -1 || !cerr || !err ||
                      (strcmp(err, cerr) != 0 && strcmp(err, "header injection") != 0)))
        abort();
    if (rc == -1) {
        if (!err || out.len != 2)
            abort();
        if (crc == 0 && strcmp(err, "header injection") != 0 &&
            strcmp(err, "template output too large") != 0)
            abort();
        if (strcmp(err, "header injection") == 0 && esc != TMPL_HEADER)
            abort();
    } else {
        const uint8_t *o = out.data + 2;
        size_t ol = out.len - 2;
        if (esc == TMPL_HEADER)
            for (size_t i = 0; i < ol; i++)
                if (o[i] == '\r' || o[i] == '\n' || o[i] == '\0')
                    abort();
        if (esc == TMPL_HTML) {
            static const char markup[] = "<>\"'";
            for (const char *m = markup; *m; m++)
                if (!memchr(t, *m, tl) && memchr(o, *m, ol))
                    abort();
        }
        if (esc == TMPL_RAW && !memmem(t, tl, "{{", 2) && (ol != tl || memcmp(o, t, tl) != 0))
            abort();
    }
    buf_fini(&out);
    return 0;
}
