/* engine/events/event.c — event JSON formatting. Field names are a public contract; add
 * fields, never rename them. */
#include "engine/events/event.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/util/jsonw.h"

const char *event_type_to_text(enum event_type t)
{
    static const char *const names[] = {
#define X(id, name) name,
        EVENT_TYPES(X)
#undef X
    };
    return names[t];
}

const char *event_bounce_category(const struct smtp_outcome *o)
{
    if (!o)
        return "other";
    if (o->phase == FAIL_PHASE_DNS || o->transport == FAIL_T_NULLMX)
        return "dns";
    switch (o->enh_subject) {
    case 1: return "address";
    case 2: return "mailbox";
    case 3: return "system";
    case 4: return "network";
    case 5: return "protocol";
    case 6: return "content";
    case 7: return "policy";
    }
    if (o->transport != FAIL_T_NONE && o->transport != FAIL_T_LOCAL_PERM)
        return "network";
    return "other";
}

static void event__time(char *buf, size_t cap, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int event_format(const struct event_info *e, int64_t now_ms, uint64_t seq, struct buf *out)
{
    struct jsonw w;
    char tbuf[80], idbuf[320];
    jsonw_begin(&w, out);
    snprintf(idbuf, sizeof idbuf, "%.256s-%llx-%llx", e->instance ? e->instance : "salvo",
             (unsigned long long)now_ms, (unsigned long long)seq);
    jsonw_str(&w, "event_id", idbuf);
    jsonw_str(&w, "type", event_type_to_text(e->type));
    event__time(tbuf, sizeof tbuf, now_ms);
    jsonw_str(&w, "timestamp", tbuf);
    jsonw_str(&w, "instance", e->instance);
    jsonw_str(&w, "message_id", e->message_id);
    jsonw_str(&w, "job_id", e->job_id);
    jsonw_str(&w, "campaign_id", e->campaign_id);
    jsonw_str(&w, "lane", e->lane);
    jsonw_str(&w, "sender", e->sender);
    jsonw_str(&w, "recipient", e->recipient);
    const char *at = e->recipient ? strrchr(e->recipient, '@') : NULL;
    jsonw_str(&w, "domain", at ? at + 1 : NULL);
    /* site = the shaping site whose limits applied; before DNS, the host or the domain */
    const struct smtp_conn_info *c = e->conn;
    bool have_conn = c && c->mx_addr[0];
    jsonw_str(&w, "site", e->site ? e->site : have_conn ? c->mx_host : (at ? at + 1 : NULL));
    jsonw_str(&w, "mx_host", have_conn ? c->mx_host : NULL);
    jsonw_str(&w, "mx_ip", have_conn ? c->mx_addr : NULL);
    if (have_conn && c->mx_port)
        jsonw_int(&w, "mx_port", c->mx_port);
    else
        jsonw_null(&w, "mx_port");
    jsonw_str(&w, "egress_source", e->egress_source ? e->egress_source
                                   : have_conn && c->source_addr[0] ? "default" : NULL);
    jsonw_str(&w, "egress_ip", have_conn && c->source_addr[0] ? c->source_addr : NULL);
    jsonw_str(&w, "warmup_hold", e->warmup_hold);
    jsonw_int(&w, "attempt", e->attempt);
    const struct smtp_outcome *o = e->outcome;
    if (o && o->code)
        jsonw_int(&w, "smtp_code", o->code);
    else
        jsonw_null(&w, "smtp_code");
    jsonw_str(&w, "enhanced_code", o && o->enhanced[0] ? o->enhanced : NULL);
    jsonw_str(&w, "reply", o ? o->text : e->detail);
    jsonw_str(&w, "command", o ? fail_phase_to_text(o->phase) : NULL);
    if (e->type == EVENT_DELIVERED || !o) {
        jsonw_null(&w, "bounce_class");
        jsonw_null(&w, "bounce_category");
    } else {
        bool perm = e->verdict && e->verdict->cls == FAIL_PERMANENT;
        jsonw_str(&w, "bounce_class", perm ? "hard" : "soft");
        jsonw_str(&w, "bounce_category", event_bounce_category(o));
    }
    jsonw_str(&w, "scope", e->verdict && e->type != EVENT_DELIVERED ? fail_scope_to_text(e->verdict->scope) : NULL);
    jsonw_str(&w, "tls_version", have_conn && c->tls_version[0] ? c->tls_version : NULL);
    jsonw_str(&w, "tls_cipher", have_conn && c->tls_cipher[0] ? c->tls_cipher : NULL);
    if (have_conn)
        jsonw_int(&w, "conn_id", (long long)c->conn_id);
    else
        jsonw_null(&w, "conn_id");
    jsonw_str(&w, "reason", e->reason);
    jsonw_str(&w, "detail", e->reason ? e->detail : NULL);
    if (e->type == EVENT_DEFERRED && e->next_attempt_ms) {
        event__time(tbuf, sizeof tbuf, e->next_attempt_ms);
        jsonw_str(&w, "next_attempt_at", tbuf);
    } else {
        jsonw_null(&w, "next_attempt_at");
    }
    jsonw_int(&w, "queue_ms", e->created_ms ? (long long)(now_ms - e->created_ms) : 0);
    if (e->delivery_ms >= 0)
        jsonw_int(&w, "delivery_ms", e->delivery_ms);
    else
        jsonw_null(&w, "delivery_ms");
    jsonw_int(&w, "size", (long long)e->size);
    jsonw_raw(&w, "meta", e->meta_json);
    return jsonw_end(&w);
}
