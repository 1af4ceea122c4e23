/* engine/worker/worker.c — wiring of ring, DNS, TLS and delivery for one thread. */
#include "engine/worker/worker.h"

#include <stdio.h>
#include <string.h>

#include "schedulers/warmup.h"

/* Every source's warm-up plan must be in the rules file. */
static int worker__check_plans(const struct salvo_config *cfg, const struct shaping_rules *r,
                               char *err, size_t errlen)
{
    for (unsigned i = 0; i < cfg->dlv.nsources; i++) {
        const struct dlv_source *s = &cfg->dlv.sources[i];
        if (s->warmup_plan[0] && !warmup_plan_find(shaping_warmup(r), s->warmup_plan)) {
            snprintf(err, errlen, "egress.sources.%s.warmup.plan: no plan '%s' in the shaping "
                     "rules' warmup_plans", s->name, s->warmup_plan);
            return -1;
        }
    }
    return 0;
}

int worker_init(struct worker *w, struct salvo_config *cfg, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    struct ring_config rc = {.entries = 4096, .recv_buffers = 4096, .recv_buf_bytes = 4096};
    int rc_ = ring_create(&w->ring, &rc);
    if (rc_ != 0) {
        snprintf(err, errlen, "cannot create io_uring: %s", strerrordesc_np(-rc_));
        return -1;
    }
    const char *e = NULL;
    if (dns_create(&w->dns, w->ring, &cfg->dns, &e) != 0) {
        snprintf(err, errlen, "cannot start the resolver: %s", e ? e : "error");
        worker_fini(w);
        return -1;
    }
    /* always: shaping rules may ask for TLS at some destinations even when the default is off */
    if (tls_ctx_create(&w->tls, cfg->ca_file, &e) != 0) {
        if (cfg->dlv.tls_policy != TLS_POLICY_DISABLED) {
            snprintf(err, errlen, "TLS: %s", e ? e : "error");
            worker_fini(w);
            return -1;
        }
        w->tls = NULL;
    }
    cfg->dlv.session.tls_ctx = w->tls;
    if (config_load_shaping(cfg, &w->shaping, err, errlen) != 0 ||
        worker__check_plans(cfg, w->shaping, err, errlen) != 0) {
        worker_fini(w);
        return -1;
    }
    cfg->dlv.shaping = w->shaping;
    if (dlv_create(&w->dlv, w->ring, w->dns, &cfg->dlv) != 0) {
        snprintf(err, errlen, "cannot create the delivery layer");
        worker_fini(w);
        return -1;
    }
    return 0;
}

void worker_fini(struct worker *w)
{
    dlv_destroy(w->dlv);
    dns_destroy(w->dns);
    if (w->tls)
        tls_ctx_destroy(w->tls);
    /* the resolver's stopped polls need a turn or two before the ring may go */
    for (int i = 0; i < 20 && w->ring && ring_pending(w->ring) > 0; i++)
        ring_run_once(w->ring, 5);
    ring_destroy(w->ring);
    if (w->shaping)
        shaping_free(w->shaping);
    memset(w, 0, sizeof *w);
}

int worker_reload_shaping(struct worker *w, const struct salvo_config *cfg, char *err, size_t errlen)
{
    struct shaping_rules *r = NULL;
    if (config_load_shaping(cfg, &r, err, errlen) != 0)
        return -1;
    if (worker__check_plans(cfg, r, err, errlen) != 0) {
        shaping_free(r);
        return -1;
    }
    dlv_set_shaping(w->dlv, r);
    if (w->shaping)
        shaping_free(w->shaping);
    w->shaping = r;
    return 0;
}

void worker_drain(struct worker *w, unsigned max_wait_ms)
{
    dlv_shutdown(w->dlv);
    uint64_t end = ring_now_ms(w->ring) + max_wait_ms;
    while (dlv_open_conns(w->dlv) > 0 && ring_now_ms(w->ring) < end)
        ring_run_once(w->ring, 50);
    /* whatever is still talking is cut: sessions must not outlive the delivery layer */
    dlv_abort_all(w->dlv);
    end = ring_now_ms(w->ring) + 2000;
    while (dlv_open_conns(w->dlv) > 0 && ring_now_ms(w->ring) < end)
        ring_run_once(w->ring, 50);
}
