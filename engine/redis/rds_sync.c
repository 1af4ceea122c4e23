/* engine/redis/rds_sync.c — a command and its reply as JSON, waited for (see rds_sync.h). */
#include "engine/redis/rds_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sync_wait {
    bool done, abandoned;
    json_t *out;
    char err[512];
};

static json_t *sync__convert(const struct rds_reply *r)
{
    size_t len = 0;
    const char *s;
    switch (rds_reply_type(r)) {
    case RDS_STRING:
    case RDS_STATUS:
        s = rds_reply_str(r, &len);
        return json_stringn_nocheck(s ? s : "", s ? len : 0);
    case RDS_INTEGER:
        return json_integer(rds_reply_int(r));
    case RDS_NIL:
        return json_null();
    case RDS_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < rds_reply_len(r); i++)
            json_array_append_new(a, sync__convert(rds_reply_elem(r, i)));
        return a;
    }
    default:
        return json_null();
    }
}

static void sync__on_reply(struct rds *r, const struct rds_reply *reply, void *arg)
{
    (void)r;
    struct sync_wait *w = arg;
    if (w->abandoned) { /* the caller timed out and left: the wait is ours to free */
        free(w);
        return;
    }
    w->done = true;
    if (!reply) {
        snprintf(w->err, sizeof w->err, "connection lost");
    } else if (rds_reply_type(reply) == RDS_ERROR) {
        snprintf(w->err, sizeof w->err, "%s", rds_reply_str(reply, NULL));
    } else {
        w->out = sync__convert(reply);
    }
}

json_t *rds_sync(struct ring *ring, struct rds *r, int argc, const char *const *argv,
                 unsigned timeout_ms, char *err, size_t errlen)
{
    struct sync_wait *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (rds_command(r, sync__on_reply, w, argc, argv, NULL) != 0) {
        free(w);
        snprintf(err, errlen, "not connected");
        return NULL;
    }
    uint64_t end = ring_now_ms(ring) + timeout_ms;
    while (!w->done && ring_now_ms(ring) < end)
        ring_run_once(ring, 50);
    if (!w->done) {
        w->abandoned = true; /* its callback frees it */
        snprintf(err, errlen, "timed out");
        return NULL;
    }
    json_t *out = w->out;
    if (!out)
        snprintf(err, errlen, "%s", w->err);
    free(w);
    return out;
}

int rds_sync_wait_up(struct ring *ring, struct rds *r, unsigned timeout_ms)
{
    uint64_t end = ring_now_ms(ring) + timeout_ms;
    while (!rds_is_up(r) && ring_now_ms(ring) < end)
        ring_run_once(ring, 50);
    return rds_is_up(r) ? 0 : -1;
}
