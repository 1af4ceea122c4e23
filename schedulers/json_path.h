/* schedulers/json_path.h — what the strict JSON parsers here (shaping_rules.c, backoff.c,
 * warmup.c) share: error messages that name a field's path ("providers[2].limits.burst: ..."),
 * and the check that an object has only known fields. Not for the engine. */
#ifndef SALVO_SCHEDULERS_JSON_PATH_H
#define SALVO_SCHEDULERS_JSON_PATH_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

#define JPATH_MAX 320

/* Writes "path: message" (or just the message for an empty path) to err; returns -1. */
int jpath_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int jpath_vfail(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* parent.key into out (JPATH_MAX bytes); control and non-ASCII bytes of key become '?'. */
void jpath_key(char *out, const char *parent, const char *key);
/* path[i] into out (JPATH_MAX bytes); a long path is cut short to keep the index. */
void jpath_index(char *out, const char *path, size_t i);
/* 0 when every field of obj is one of known[] (NULL-terminated) or a string "comment";
 * else -1 with err naming the field. */
int jpath_fields(char *err, size_t errlen, json_t *obj, const char *path,
                 const char *const *known);

#endif
