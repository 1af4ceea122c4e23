/* tests/fuzz/fuzz_job.c — job_parse over arbitrary bytes. A job that parses must survive the
 * retry-set round trip: job_to_payload, then job_parse again, to the same job, and a second
 * payload byte-identical to the first. Merge lookups must stay inside their values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/intake/job.h"

static void fuzz__same(const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct job j, k;
    struct job_error err;
    struct job_limits lim = {.max_rcpts = 50, .max_attachment_bytes = 4096};
    int rc = job_parse(text, size, &lim, &j, &err);
    free(text);
    if (rc != 0) {
        if (!err.code || !err.detail[0] || j.priv || j.nto)
            abort();
        return 0;
    }
    if (!j.nto || j.nto > 50 || (j.kind == JOB_CAMPAIGN) != (j.campaign_id != NULL))
        abort();
    for (unsigned i = 0; i < j.nto; i++)
        if (!j.to[i] || strchr(j.to[i], '\r') || strchr(j.to[i], '\n'))
            abort();
    size_t vl;
    const char *v = job_merge_lookup(&j, "name", 4, &vl);
    if (v && memchr(v, '\0', vl))
        abort();

    struct buf b1, b2;
    buf_init(&b1, 64 << 20);
    buf_init(&b2, 64 << 20);
    unsigned n = j.kind == JOB_CAMPAIGN ? 1 : j.nto;
    if (job_to_payload(&j, j.to, n, j.attempt + 1, j.created_ms, j.last_error, &b1) != 0)
        abort();
    if (job_parse((const char *)b1.data, b1.len, &lim, &k, &err) != 0)
        abort();
    if (k.kind != j.kind || k.nto != n || k.lane != j.lane || k.lane_given != j.lane_given ||
        k.attempt != j.attempt + 1 || k.not_before_ms != j.not_before_ms ||
        k.expires_at_ms != j.expires_at_ms || k.max_age_ms != j.max_age_ms ||
        k.max_attempts != j.max_attempts || k.content_len != j.content_len ||
        k.parts.nheaders != j.parts.nheaders || k.parts.nattachments != j.parts.nattachments)
        abort();
    fuzz__same(k.from, j.from);
    fuzz__same(k.id, j.id);
    fuzz__same(k.meta_json, j.meta_json);
    fuzz__same(k.last_error, j.last_error);
    fuzz__same(k.parts.subject, j.parts.subject);
    for (unsigned i = 0; i < n; i++)
        fuzz__same(k.to[i], j.to[i]);
    if (job_to_payload(&k, k.to, k.nto, k.attempt, k.created_ms, k.last_error, &b2) != 0 ||
        b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
        abort();
    buf_fini(&b1);
    buf_fini(&b2);
    job_free(&k);
    job_free(&j);
    return 0;
}
