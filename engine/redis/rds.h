/* engine/redis/rds.h — a pipelined Redis client on the worker's ring: commands are queued as
 * RESP into one buffer and written once per loop turn; replies are parsed by hiredis's reader
 * (rds_hiredis.c is the only file that includes hiredis) and handed to callbacks in order.
 * Reconnects with backoff; while disconnected, commands fail fast (callback with NULL) so the
 * caller can hold its results and retry. Owns: the socket, the queue, the reconnect timer. */
#ifndef SALVO_ENGINE_REDIS_RDS_H
#define SALVO_ENGINE_REDIS_RDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ring/ring.h"

enum rds_type { RDS_STRING, RDS_ARRAY, RDS_INTEGER, RDS_NIL, RDS_STATUS, RDS_ERROR };

struct rds_reply;  /* a parsed reply; valid only during the callback */
enum rds_type rds_reply_type(const struct rds_reply *r);
const char *rds_reply_str(const struct rds_reply *r, size_t *len); /* STRING/STATUS/ERROR */
long long rds_reply_int(const struct rds_reply *r);
size_t rds_reply_len(const struct rds_reply *r);                  /* ARRAY elements */
const struct rds_reply *rds_reply_elem(const struct rds_reply *r, size_t i);
bool rds_reply_is_error(const struct rds_reply *r, const char *prefix); /* e.g. "NOSCRIPT" */

struct rds;
/* reply is NULL when the connection was lost before the reply came. */
typedef void (*rds_cb)(struct rds *r, const struct rds_reply *reply, void *arg);

struct rds_config {
    const char *url;            /* redis://[:password@]host[:port][/db] ; host an IP or localhost */
    unsigned connect_timeout_ms;/* default 2000 */
    unsigned reconnect_min_ms;  /* default 100 */
    unsigned reconnect_max_ms;  /* default 5000 */
    size_t max_reply_bytes;     /* guard against a runaway reply (default 64 MiB) */
    void (*on_up)(struct rds *r, void *arg);   /* connected (and authenticated) */
    void (*on_down)(struct rds *r, void *arg, const char *why);
    void *arg;
    const char *name;           /* for logs */
};

/* Parses a Redis URL; 0 or -1 with *why. */
int rds_url_parse(const char *url, char *host, size_t hostlen, uint16_t *port, char *password,
                  size_t pwlen, unsigned *db, const char **why);

int rds_create(struct rds **out, struct ring *ring, const struct rds_config *cfg, const char **why);
void rds_destroy(struct rds *r);
/* Queues one command. Returns 0, or -ENOTCONN when down (cb is not called). */
int rds_command(struct rds *r, rds_cb cb, void *arg, int argc, const char *const *argv,
                const size_t *argvlen);
/* Convenience for commands whose arguments are NUL-terminated strings. */
int rds_commandv(struct rds *r, rds_cb cb, void *arg, int argc, const char *const *argv);
bool rds_is_up(const struct rds *r);
/* Commands written but not answered yet. */
unsigned rds_pending(const struct rds *r);

struct rds_stats { uint64_t commands, replies, writes, reconnects; };
void rds_get_stats(const struct rds *r, struct rds_stats *out);

#endif
