/* engine/intake/job_json.c — scalar field readers shared by the job and campaign parsers
 * (strings, names, integers, lanes, times, meta). One of the intake files allowed to see
 * jansson; the message object has its own file, job_message.c. */
#include "engine/intake/job_json.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/intake/job_arena.h"
#include "engine/intake/job_time.h"

int job_json_fail(struct job_error *err, const char *code, const char *fmt, ...)
{
    char detail[sizeof err->detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    job_error_set(err, code, "%s", detail);
    return -1;
}

void job_json_path(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* A distinct object holding the "oversized" text, so job_parse can tell memory exhaustion
 * (not the job's fault: -ENOMEM, retry later) from a job that is really too big. */
const char job_json_nomem_code[] = JOB_ERR_OVERSIZED;

int job_json_nomem(struct job_error *err, const char *path)
{
    return job_json_fail(err, job_json_nomem_code, "%s: out of memory", path);
}

int job_json_known_keys(json_t *obj, const char *path, const char *const *keys,
                        struct job_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        const char *const *p = keys;
        while (*p && strcmp(*p, k) != 0)
            p++;
        if (!*p)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s%.64s: unknown field", path, k);
    }
    return 0;
}

json_t *job_json_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

int job_json_string(json_t *v, const char *path, unsigned flags, size_t max,
                    struct job_arena *a, const char **out, size_t *len, struct job_error *err)
{
    if (!json_is_string(v))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be a string", path);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (max && n > max)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: longer than %zu bytes", path, max);
    if ((flags & JOB_STR_NONEMPTY) && n == 0)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must not be empty", path);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((flags & JOB_STR_HEADER) && (c == '\r' || c == '\n' || c == '\0'))
            return job_json_fail(err, JOB_ERR_HEADER_INJECTION,
                                 "%s: CR, LF or NUL in a header field", path);
        if (c == '\0')
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: contains a NUL character",
                                 path);
        if ((flags & JOB_STR_NO_CTL) && ((c < 0x20 && c != '\t') || c == 0x7f))
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: contains a control character",
                                 path);
    }
    char *copy = job_arena_strndup(a, s, n);
    if (!copy)
        return job_json_nomem(err, path);
    *out = copy;
    if (len)
        *len = n;
    return 0;
}

int job_json_name(json_t *v, const char *path, struct job_arena *a, const char **out,
                  struct job_error *err)
{
    size_t n = 0;
    if (job_json_string(v, path, JOB_STR_NONEMPTY, 0, a, out, &n, err))
        return -1;
    if (n > JOB_MAX_NAME_BYTES)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: longer than %d bytes", path,
                             JOB_MAX_NAME_BYTES);
    for (const char *p = *out; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "%s: only letters, digits, '.', '_' and '-' are allowed", path);
    }
    return 0;
}

int job_json_uint(json_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out,
                  struct job_error *err)
{
    json_int_t x;
    if (!json_is_integer(v) || (x = json_integer_value(v)) < 0 || (uint64_t)x < min ||
        (uint64_t)x > max)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "%s: must be an integer from %llu to %llu", path,
                             (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)x;
    return 0;
}

int job_json_lane(json_t *v, const char *path, enum job_lane *out, struct job_error *err)
{
    const char *s = json_string_value(v);
    if (s && strcmp(s, "transactional") == 0)
        *out = JOB_LANE_TRANSACTIONAL;
    else if (s && strcmp(s, "bulk") == 0)
        *out = JOB_LANE_BULK;
    else
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "%s: must be \"transactional\" or \"bulk\"", path);
    return 0;
}

int job_json_time(json_t *v, const char *path, int64_t *ms, struct job_error *err)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0 || x > JOB_MAX_TIME_MS)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "%s: epoch milliseconds out of range", path);
        *ms = x;
        return 0;
    }
    if (!json_is_string(v))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                             "%s: must be an RFC 3339 string or epoch milliseconds", path);
    const char *why;
    int64_t t;
    if (job_time_parse(json_string_value(v), json_string_length(v), &t, &why))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: %s", path, why);
    if (t > JOB_MAX_TIME_MS)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: after the year 9999", path);
    *ms = t;
    return 0;
}

int job_json_meta(json_t *v, const char *path, struct job_arena *a, const char **out,
                  struct job_error *err)
{
    if (!json_is_object(v))
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: must be an object", path);
    /* Dump into a fixed buffer: a meta past the cap costs no allocation to reject. */
    char tmp[JOB_MAX_META_BYTES + 1];
    size_t n = json_dumpb(v, tmp, sizeof tmp, JSON_COMPACT);
    if (n == 0)
        return job_json_fail(err, JOB_ERR_INVALID_FIELD, "%s: cannot be serialised", path);
    if (n > JOB_MAX_META_BYTES)
        return job_json_fail(err, JOB_ERR_OVERSIZED, "%s: over %d bytes serialised", path,
                             JOB_MAX_META_BYTES);
    char *copy = job_arena_strndup(a, tmp, n);
    if (!copy)
        return job_json_nomem(err, path);
    *out = copy;
    return 0;
}
