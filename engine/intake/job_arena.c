/* engine/intake/job_arena.c — chunked bump allocator for parsed jobs and campaigns. A job is
 * freed as a whole, so per-string frees would only cost time. */
#include "engine/intake/job_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct job_arena_chunk {
    struct job_arena_chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

#define ARENA_MIN_CHUNK 4096

void job_arena_init(struct job_arena *a, size_t hint)
{
    a->head = NULL;
    a->chunk_bytes = hint < ARENA_MIN_CHUNK ? ARENA_MIN_CHUNK : hint;
}

void job_arena_fini(struct job_arena *a)
{
    struct job_arena_chunk *c = a->head;
    while (c) {
        struct job_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

void *job_arena_alloc(struct job_arena *a, size_t n)
{
    const size_t al = alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + al - 1) & ~(al - 1);
    if (n == 0)
        n = al;
    struct job_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > a->chunk_bytes ? n : a->chunk_bytes;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        /* A chunk sized for one big block goes behind the current one, so the current
         * chunk's free space keeps serving small allocations. */
        if (a->head && cap == n && a->head->cap - a->head->used >= al) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
            if (a->chunk_bytes < ((size_t)1 << 20))
                a->chunk_bytes *= 2;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *job_arena_strndup(struct job_arena *a, const char *s, size_t n)
{
    char *d = job_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
