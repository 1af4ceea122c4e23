/* engine/events/event.h — one JSON object per recipient per outcome, with stable field names
 * (docs/events.md). Owns the event schema; not where events are written (intake does that). */
#ifndef SALVO_ENGINE_EVENTS_EVENT_H
#define SALVO_ENGINE_EVENTS_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/smtp/smtp_session.h"
#include "engine/util/buf.h"
#include "schedulers/failure_policy.h"

#define EVENT_TYPES(X) \
    X(DELIVERED, "delivered") X(DEFERRED, "deferred") X(BOUNCED, "bounced") \
    X(EXPIRED, "expired") X(SUPPRESSED, "suppressed") X(REJECTED, "rejected")
enum event_type {
#define X(id, name) EVENT_##id,
    EVENT_TYPES(X)
#undef X
};
const char *event_type_to_text(enum event_type t);

struct event_info {
    enum event_type type;
    const char *instance;
    const char *message_id;      /* Salvo's id for the message (intake stream entry) */
    const char *job_id, *campaign_id, *lane;
    const char *sender, *recipient;
    unsigned attempt;
    const struct smtp_outcome *outcome;  /* NULL when no attempt was made */
    const struct smtp_conn_info *conn;   /* NULL when no connection was made */
    const struct fail_verdict *verdict;  /* NULL for delivered */
    const char *reason;                  /* rejected/expired/suppressed: why (machine code) */
    const char *detail;                  /* human text for reason */
    int64_t next_attempt_ms;             /* deferred: when it will be tried again (epoch ms) */
    int64_t created_ms;                  /* when Salvo first accepted the message */
    long long delivery_ms;               /* duration of this attempt, -1 unknown */
    size_t size;                         /* message bytes */
    const char *meta_json;               /* user metadata, valid JSON, or NULL */
    const char *egress_source;           /* source name used or chosen, or NULL */
    const char *warmup_hold;             /* the source's warm-up ramp is held, and why, or NULL */
    const char *site;                    /* the shaping site, or NULL (then the MX host or domain) */
};

/* Appends the event as one compact JSON object (no newline). now_ms is wall-clock epoch ms;
 * seq makes the event id unique within this process. Returns 0 or -1. */
int event_format(const struct event_info *e, int64_t now_ms, uint64_t seq, struct buf *out);
/* Provisional bounce category from an enhanced status code (replaced by the bounce
 * classifier): "address", "mailbox", "system", "network", "protocol", "content", "policy",
 * "dns", "other". */
const char *event_bounce_category(const struct smtp_outcome *o);

#endif
