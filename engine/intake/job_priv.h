/* engine/intake/job_priv.h — what a parsed job's priv points to: the arena owning its
 * memory and the merge-field table. Shared by job.c (parse, lookup) and job_payload.c
 * (write back); internal to intake. */
#ifndef SALVO_ENGINE_INTAKE_JOB_PRIV_H
#define SALVO_ENGINE_INTAKE_JOB_PRIV_H

#include <stddef.h>

#include "engine/intake/job_arena.h"

struct job_merge_field {
    const char *name, *value;   /* values of numbers and booleans are their JSON text */
    size_t name_len, value_len;
};

struct job_priv {
    struct job_arena arena;
    struct job_merge_field *merge;     /* in the job's order; null values left out */
    unsigned nmerge;
};

#endif
