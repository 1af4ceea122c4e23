/* engine/worker/worker.h — one delivery worker: a ring, a resolver, a TLS context and the
 * delivery layer wired together from a configuration. One per thread.
 * Owns the lifetime of those four; callers drive it with worker_run_once(). */
#ifndef SALVO_ENGINE_WORKER_WORKER_H
#define SALVO_ENGINE_WORKER_WORKER_H

#include <stddef.h>

#include "engine/config/config.h"
#include "engine/delivery/delivery.h"
#include "engine/dns/dns.h"
#include "engine/ring/ring.h"
#include "engine/tls/tls.h"

struct worker {
    struct ring *ring;
    struct dns *dns;
    struct tls_ctx *tls;
    struct dlv *dlv;
    struct shaping_rules *shaping;
};
/* Loads the shaping rules again (SIGHUP); on error the old ones stay. 0 or -1 with err. */
int worker_reload_shaping(struct worker *w, const struct salvo_config *cfg, char *err, size_t errlen);

/* cfg must have been through config_finish() and outlive the worker. */
int worker_init(struct worker *w, struct salvo_config *cfg, char *err, size_t errlen);
void worker_fini(struct worker *w);
/* Quits idle connections and runs the loop until every connection is closed or max_wait_ms
 * passes; then cuts what is left. Must run before worker_fini. */
void worker_drain(struct worker *w, unsigned max_wait_ms);

#endif
