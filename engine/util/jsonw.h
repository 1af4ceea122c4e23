/* engine/util/jsonw.h — a tiny streaming JSON writer into a struct buf: objects, strings with
 * full escaping (control bytes, quotes, invalid UTF-8 replaced), integers, booleans, raw
 * pre-validated JSON. Hot-path events use it instead of building a jansson tree. */
#ifndef SALVO_ENGINE_UTIL_JSONW_H
#define SALVO_ENGINE_UTIL_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/util/buf.h"

struct jsonw {
    struct buf *b;
    bool need_comma;
    int err;
};

void jsonw_begin(struct jsonw *w, struct buf *b);   /* writes '{' */
int jsonw_end(struct jsonw *w);                      /* writes '}'; returns 0 or -errno */
void jsonw_str(struct jsonw *w, const char *key, const char *v);        /* NULL v -> null */
void jsonw_strn(struct jsonw *w, const char *key, const char *v, size_t n);
void jsonw_int(struct jsonw *w, const char *key, long long v);
void jsonw_bool(struct jsonw *w, const char *key, bool v);
void jsonw_null(struct jsonw *w, const char *key);
/* v must already be valid JSON (e.g. user metadata re-serialised by jansson). */
void jsonw_raw(struct jsonw *w, const char *key, const char *v);
/* Appends s as a JSON string literal (with quotes) to b. */
int jsonw_escape(struct buf *b, const char *s, size_t n);

#endif
