/* engine/redis/rds_sync.h — one Redis command, waited for: for command-line tools and other
 * callers that own their ring and may block (never the delivery loop). The reply comes back
 * as JSON: strings and status replies as strings, integers as integers, arrays as arrays,
 * nil as null. */
#ifndef SALVO_ENGINE_REDIS_RDS_SYNC_H
#define SALVO_ENGINE_REDIS_RDS_SYNC_H

#include <jansson.h>

#include "engine/redis/rds.h"
#include "engine/ring/ring.h"

/* Runs the ring until the reply comes or timeout_ms passes. The reply (caller frees with
 * json_decref), or NULL with err set: Redis's error reply, "not connected" or "timed out". */
json_t *rds_sync(struct ring *ring, struct rds *r, int argc, const char *const *argv,
                 unsigned timeout_ms, char *err, size_t errlen);

/* Connects r's ring until r is up or timeout_ms passes; 0 or -1. */
int rds_sync_wait_up(struct ring *ring, struct rds *r, unsigned timeout_ms);

#endif
