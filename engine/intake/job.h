/* engine/intake/job.h — a job: one producer's request to send, parsed from the JSON job
 * format (the public contract in docs/jobs.md), validated, and written back for the retry
 * set. Pure and bounded; Redis, templates and delivery live elsewhere. */
#ifndef SALVO_ENGINE_INTAKE_JOB_H
#define SALVO_ENGINE_INTAKE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/msg/mime.h"
#include "engine/util/buf.h"

/* Dead-letter codes (job_error.code); stable, documented in docs/jobs.md. */
#define JOB_ERR_BAD_JSON "bad_json"
#define JOB_ERR_MISSING_FIELD "missing_field"
#define JOB_ERR_INVALID_FIELD "invalid_field"
#define JOB_ERR_INVALID_ADDRESS "invalid_address"
#define JOB_ERR_HEADER_INJECTION "header_injection"
#define JOB_ERR_OVERSIZED "oversized"
#define JOB_ERR_TOO_MANY_RECIPIENTS "too_many_recipients"
#define JOB_ERR_UNKNOWN_CAMPAIGN "unknown_campaign"   /* set by the caller, not job_parse */

#define JOB_DEFAULT_MAX_JOB_BYTES ((size_t)10 << 20)
#define JOB_DEFAULT_MAX_RCPTS 1000u
#define JOB_DEFAULT_MAX_ATTACHMENT_BYTES ((size_t)10 << 20)
#define JOB_MAX_META_BYTES 4096         /* "meta", compact-serialised */
#define JOB_MAX_ID_BYTES 256            /* "id", "idempotency_key" */
#define JOB_MAX_NAME_BYTES 128          /* "campaign", "pool": [A-Za-z0-9._-] */
#define JOB_MAX_MERGE_FIELDS 1000
#define JOB_MAX_HEADERS 100             /* message.headers entries */
#define JOB_MAX_ATTACHMENTS 100
#define JOB_MAX_AGE_S 31536000u         /* max_age_s: one year */
#define JOB_MAX_ATTEMPTS 1000u
#define JOB_MAX_TIME_MS INT64_C(253402300799999)   /* 9999-12-31T23:59:59.999Z */

enum job_kind { JOB_RAW, JOB_PARTS, JOB_CAMPAIGN };
enum job_lane { JOB_LANE_TRANSACTIONAL, JOB_LANE_BULK };

/* 0 in any field means its default (JOB_DEFAULT_*). */
struct job_limits {
    size_t max_job_bytes;
    unsigned max_rcpts;
    size_t max_attachment_bytes;    /* each attachment, decoded */
};

struct job_error {
    const char *code;       /* a JOB_ERR_* string, or NULL when there was no error */
    char detail[256];       /* names the field first: "to[2]: invalid address: ..." */
};

struct job {
    enum job_kind kind;
    enum job_lane lane;
    bool lane_given;                /* false: "lane" absent (lane reads transactional; the
                                       stream's or the campaign's lane applies) */
    const char *id;                 /* producer's job id, or NULL */
    const char *idempotency_key;    /* or NULL */
    const char *from;               /* envelope sender; "" = null sender; NULL only for a
                                       campaign job without "from" (the campaign's applies) */
    const char **to;                /* envelope recipients, duplicates removed, in order */
    unsigned nto;                   /* campaign jobs: exactly one */
    const char *content;            /* JOB_RAW: raw RFC 5322 message */
    size_t content_len;
    struct mime_parts parts;        /* JOB_PARTS: attachments decoded, headers in order */
    const char *campaign_id;        /* JOB_CAMPAIGN */
    int64_t not_before_ms, expires_at_ms;   /* absolute, epoch ms; 0 = none */
    uint64_t max_age_ms;            /* 0 = use the default */
    unsigned max_attempts;          /* 0 = use the default */
    const char *pool;               /* egress pool, or NULL */
    const char *meta_json;          /* compact JSON of "meta" (an object), or NULL */
    /* Engine state carried with the message across retries (the "_state" object). */
    unsigned attempt;
    int64_t created_ms;
    char last_error[512];
    char message_id[48];            /* Salvo's id for the message: the first stream entry's id */
    void *priv;                     /* owns every pointer above */
};

/* Parses and validates one job. 0 with *out filled (free with job_free); -1 with *err set
 * (the job is bad: dead-letter it); -ENOMEM (not the job's fault: retry it later). On
 * failure *out is empty and job_free on it is harmless. lim may be NULL: the defaults. */
int job_parse(const char *json, size_t len, const struct job_limits *lim, struct job *out,
              struct job_error *err);

/* Merge-field lookup for a campaign job (a tmpl_lookup_fn; job is a struct job *): the
 * value of "merge".name, numbers and booleans as their JSON text; NULL when absent or null. */
const char *job_merge_lookup(void *job, const char *name, size_t name_len, size_t *value_len);

/* Appends the job as JSON to out, for the retry set: the same job with only the remaining
 * recipients and the given state. 0, -EINVAL (no recipients, or more than one for a
 * campaign job) or the buffer's -ENOBUFS/-ENOMEM; out is as before on error. */
int job_to_payload(const struct job *j, const char *const *remaining, unsigned nremaining,
                   unsigned attempt, int64_t created_ms, const char *last_error,
                   struct buf *out);

/* Releases everything the job owns and empties *j; harmless on an empty job. */
void job_free(struct job *j);

/* Fills err: the code, and a detail formatted like printf (truncated to fit). For callers
 * that dead-letter a job for a reason of their own (JOB_ERR_UNKNOWN_CAMPAIGN). */
void job_error_set(struct job_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *job_kind_to_text(enum job_kind k);
const char *job_lane_to_text(enum job_lane l);

#endif
