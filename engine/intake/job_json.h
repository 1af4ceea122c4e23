/* engine/intake/job_json.h — field readers shared by the job and campaign parsers: each takes
 * one JSON value, checks it against the job format's rules and copies it into the arena,
 * reporting failures as a job_error that names the field. Internal to intake; jansson's
 * json_t is only forward-declared here, so including this pulls in no jansson header. */
#ifndef SALVO_ENGINE_INTAKE_JOB_JSON_H
#define SALVO_ENGINE_INTAKE_JOB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/intake/job.h"

struct json_t;
struct job_arena;

/* job_json_string flags. */
#define JOB_STR_HEADER 1u      /* goes into a header: CR/LF/NUL are "header_injection" */
#define JOB_STR_NO_CTL 2u      /* no control characters other than tab */
#define JOB_STR_NONEMPTY 4u

/* Sets err and returns -1, so a failure is one line: return job_json_fail(...). */
int job_json_fail(struct job_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a field path ("message.attachments[2].filename") for details; truncates quietly,
 * as a detail is for people and must never fail. */
void job_json_path(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Out of memory while copying path: -1 with err->code == job_json_nomem_code. */
extern const char job_json_nomem_code[];
int job_json_nomem(struct job_error *err, const char *path);

/* Rejects members of obj not named in keys (NULL-terminated); path prefixes the detail. */
int job_json_known_keys(struct json_t *obj, const char *path, const char *const *keys,
                        struct job_error *err);

/* Member key of obj, or NULL when absent or JSON null (an optional field left out). */
struct json_t *job_json_member(struct json_t *obj, const char *key);

/* A string of at most max bytes (0 = no cap besides the job's size), copied. */
int job_json_string(struct json_t *v, const char *path, unsigned flags, size_t max,
                    struct job_arena *a, const char **out, size_t *len, struct job_error *err);
/* An identifier used in Redis keys and events: [A-Za-z0-9._-], 1..JOB_MAX_NAME_BYTES. */
int job_json_name(struct json_t *v, const char *path, struct job_arena *a, const char **out,
                  struct job_error *err);
/* An integer in [min, max]. */
int job_json_uint(struct json_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out,
                  struct job_error *err);
/* "transactional" | "bulk". */
int job_json_lane(struct json_t *v, const char *path, enum job_lane *out, struct job_error *err);
/* An RFC 3339 string or epoch milliseconds (0 = none). */
int job_json_time(struct json_t *v, const char *path, int64_t *ms, struct job_error *err);
/* An object, stored as compact JSON of at most JOB_MAX_META_BYTES. */
int job_json_meta(struct json_t *v, const char *path, struct job_arena *a, const char **out,
                  struct job_error *err);

/* The "message" object of a job or campaign into parts. With templates set (campaigns),
 * text fields are merge templates: checked with tmpl_check, addresses checked at render. */
int job_json_message(struct json_t *msg, const char *path, bool templates,
                     size_t max_attachment_bytes, struct job_arena *a, struct mime_parts *out,
                     struct job_error *err);

#endif
