/* schedulers/json_path.c — field paths in parse errors (see json_path.h). */
#include "schedulers/json_path.h"

#include <stdio.h>
#include <string.h>

int jpath_vfail(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
{
    if (!err || !errlen)
        return -1;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    snprintf(err, errlen, "%s%s%s", path, *path ? ": " : "", msg);
    return -1;
}

int jpath_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jpath_vfail(err, errlen, path, fmt, ap);
    va_end(ap);
    return -1;
}

void jpath_key(char *out, const char *parent, const char *key)
{
    int n = snprintf(out, JPATH_MAX, "%s%s", parent, *parent ? "." : "");
    size_t len = n > 0 && n < JPATH_MAX ? (size_t)n : 0;
    for (; *key && len + 1 < JPATH_MAX; key++, len++) {
        unsigned char ch = (unsigned char)*key;
        out[len] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    out[len] = '\0';
}

void jpath_index(char *out, const char *path, size_t i)
{
    snprintf(out, JPATH_MAX, "%.280s[%zu]", path, i);
}

int jpath_fields(char *err, size_t errlen, json_t *obj, const char *path, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char p[JPATH_MAX];
        jpath_key(p, path, key);
        if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return jpath_fail(err, errlen, p, "expected a string");
            continue;
        }
        const char *const *k = known;
        while (*k && strcmp(*k, key) != 0)
            k++;
        if (!*k)
            return jpath_fail(err, errlen, p, "unknown field");
    }
    return 0;
}
