/* engine/intake/job_peek.h — best-effort look at a job that failed validation, so that its
 * `rejected` events can still name the campaign, job id and recipients a producer gave. */
#ifndef SALVO_ENGINE_INTAKE_JOB_PEEK_H
#define SALVO_ENGINE_INTAKE_JOB_PEEK_H

#include <stddef.h>

#define JOB_PEEK_MAX_TO 16

struct job_peek {
    char campaign_id[129];
    char job_id[257];
    char from[255];
    char to[JOB_PEEK_MAX_TO][255];   /* string values of "to" as given, truncated */
    unsigned nto;
};

/* Fills what it can find (empty strings otherwise); never fails. */
void job_peek(const char *json, size_t len, struct job_peek *out);

#endif
