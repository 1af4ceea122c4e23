/* engine/intake/job_time.h — the job format's timestamps: RFC 3339 date-times to epoch
 * milliseconds. Pure text arithmetic; never consults the clock or the time zone database. */
#ifndef SALVO_ENGINE_INTAKE_JOB_TIME_H
#define SALVO_ENGINE_INTAKE_JOB_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "2025-03-01T12:00:00Z", "2025-03-01t12:00:00.250+01:00" (a space may stand for the T;
 * digits past milliseconds are dropped) to epoch ms. 0, or -1 with *why a static reason.
 * Times before 1970 are rejected: the job format uses 0 for "none". */
int job_time_parse(const char *s, size_t len, int64_t *ms, const char **why);

#endif
