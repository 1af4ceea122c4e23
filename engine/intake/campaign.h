/* engine/intake/campaign.h — a campaign: the message template stored once in Redis that
 * campaign jobs refer to, parsed and validated (every template's syntax, the unsubscribe
 * headers). Rendering with a job's merge fields is engine/msg's job, not this. */
#ifndef SALVO_ENGINE_INTAKE_CAMPAIGN_H
#define SALVO_ENGINE_INTAKE_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/intake/job.h"
#include "engine/msg/mime.h"

#define CAMPAIGN_MAX_BYTES ((size_t)16 << 20)   /* the stored JSON */

struct campaign {
    const char *id;
    const char *from;               /* envelope sender; "" = null sender */
    struct mime_parts parts;        /* from, to, reply_to, subject, text, html and header
                                       values are tmpl templates; attachments are decoded */
    const char *list_unsubscribe;   /* List-Unsubscribe template, or NULL */
    bool list_unsubscribe_post;     /* add "List-Unsubscribe-Post: List-Unsubscribe=One-Click" */
    enum job_lane lane;             /* default JOB_LANE_BULK */
    const char *pool;               /* or NULL */
    uint64_t max_age_ms;            /* 0 = use the default */
    unsigned max_attempts;          /* 0 = use the default */
    const char *meta_json;          /* compact JSON of "meta", or NULL */
    void *priv;                     /* owns every pointer above */
};

/* Parses and validates a stored campaign. 0 with *out filled (free with campaign_free),
 * -1 with *err set, or -ENOMEM; *out is empty on failure. */
int campaign_parse(const char *json, size_t len, struct campaign *out, struct job_error *err);

/* Releases everything the campaign owns and empties *c; harmless on an empty one. */
void campaign_free(struct campaign *c);

#endif
