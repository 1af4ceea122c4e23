/* engine/intake/job_arena.h — the allocator behind a parsed job or campaign: everything it
 * points to is carved from a few large chunks and released in one go. Internal to intake. */
#ifndef SALVO_ENGINE_INTAKE_JOB_ARENA_H
#define SALVO_ENGINE_INTAKE_JOB_ARENA_H

#include <stddef.h>

struct job_arena_chunk;

struct job_arena {
    struct job_arena_chunk *head;
    size_t chunk_bytes;     /* size of the next ordinary chunk */
};

/* hint: the bytes the first chunk should hold (e.g. the input's size). */
void job_arena_init(struct job_arena *a, size_t hint);
void job_arena_fini(struct job_arena *a);
/* n bytes aligned for any type, or NULL when out of memory. */
void *job_arena_alloc(struct job_arena *a, size_t n);
/* A NUL-terminated copy of s[0..n), or NULL. */
char *job_arena_strndup(struct job_arena *a, const char *s, size_t n);

#endif
