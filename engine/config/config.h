/* engine/config/config.h — Salvo's configuration: one JSON file, every field with a default,
 * validated at load with errors that name the field; the same field table serves
 * `--set path=value` and the docs. Owns: struct salvo_config and its strings. */
#ifndef SALVO_ENGINE_CONFIG_CONFIG_H
#define SALVO_ENGINE_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/delivery/delivery.h"
#include "engine/dns/dns.h"
#include "engine/intake/intake.h"
#include "engine/smtp/smtp_session.h"
#include "schedulers/shaping.h"

#define CONFIG_MAX_ROUTES 256
#define CONFIG_ERR_MAX 512

struct salvo_config {
    /* strings owned by the config (freed by config_fini) */
    char *ehlo_name;
    char *dns_servers;        /* comma-separated host:port list, NULL = system */
    char *ca_file;
    char *source_ip;
    char *tls_policy;         /* text form, validated */
    char *redis_url;
    char *instance;
    char *prefix;
    char *events_file;
    char *shaping_file;
    struct smtp_timeouts timeouts_base; /* before timeout_scale (shaping rules scale theirs) */
    double timeout_scale;
    unsigned max_message_bytes;
    unsigned max_age_s;
    unsigned shutdown_grace_s;
    unsigned progress_interval_s;
    unsigned workers;                /* salvo run: worker threads (0 = one per online CPU) */
    struct intake_config intake;
    struct dns_config dns;
    struct dlv_config dlv;    /* session timeouts/limits live in dlv.session */
    struct dlv_route routes[CONFIG_MAX_ROUTES];
    unsigned nroutes;
    struct dlv_source sources[DLV_MAX_SOURCES];
    unsigned nsources;
    struct dlv_pool pools[DLV_MAX_POOLS];
    unsigned npools;
    char *default_pool;
    bool has_source_ip_set;
};

void config_init(struct salvo_config *c);
void config_fini(struct salvo_config *c);
/* Loads and validates a JSON file over the current values. 0, or -1 with err filled. */
int config_load_file(struct salvo_config *c, const char *path, char *err, size_t errlen);
/* Sets one field by its dotted path ("delivery.max_conns_per_dest") from text. */
int config_set(struct salvo_config *c, const char *path, const char *value, char *err,
               size_t errlen);
/* Adds a static route "domain=host:port". */
int config_add_route(struct salvo_config *c, const char *spec, char *err, size_t errlen);
/* Final cross-field checks and derived values (timeout scale, policy, source address). */
int config_finish(struct salvo_config *c, char *err, size_t errlen);
/* Applies SALVO_REDIS_URL and SALVO_INSTANCE when set (containers set these). */
int config_apply_env(struct salvo_config *c, char *err, size_t errlen);
/* Loads the shaping rules (shaping.file, or none) with this configuration as their base
 * level. 0 with *out (shaping_free it), or -1 with err. */
int config_load_shaping(const struct salvo_config *c, struct shaping_rules **out, char *err,
                        size_t errlen);
/* Prints every field with its default and description (for docs and --help). */
void config_print_fields(void);

#endif
