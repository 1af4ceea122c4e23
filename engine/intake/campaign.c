/* engine/intake/campaign.c — campaign_parse: a stored campaign's JSON (docs/jobs.md) into
 * struct campaign, every template checked once here rather than per recipient. The message
 * object is read by job_message.c, the same reader jobs use, in template mode. */
#include "engine/intake/campaign.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/intake/addr.h"
#include "engine/intake/job_arena.h"
#include "engine/intake/job_json.h"
#include "engine/msg/tmpl.h"

static const char *const campaign__keys[] = {
    "id", "from", "message", "list_unsubscribe", "list_unsubscribe_post", "lane", "pool",
    "max_age_s", "max_attempts", "meta", NULL,
};

/* RFC 2369: a comma-separated list of <URI>. Returns whether an https URI is among them,
 * since RFC 8058 one-click unsubscribe needs one. */
static int campaign__unsub(const char *s, bool *https, struct job_error *err)
{
    const char *p = s;
    *https = false;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '<')
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "list_unsubscribe: expected <URI>[, <URI>...]");
        const char *uri = ++p;
        while (*p && *p != '>' && *p != '<')
            p++;
        if (*p != '>')
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "list_unsubscribe: expected <URI>[, <URI>...]");
        size_t n = (size_t)(p - uri);
        if (n > 8 && strncasecmp(uri, "https://", 8) == 0)
            *https = true;
        else if (!(n > 7 && strncasecmp(uri, "http://", 7) == 0) &&
                 !(n > 7 && strncasecmp(uri, "mailto:", 7) == 0))
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "list_unsubscribe: URIs must be https:, http: or mailto:");
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return 0;
        if (*p++ != ',')
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "list_unsubscribe: expected <URI>[, <URI>...]");
    }
}

static int campaign__fields(json_t *root, struct job_arena *a, struct campaign *c,
                            struct job_error *err)
{
    json_t *v;
    uint64_t x;
    const char *why;
    size_t n;
    if (job_json_known_keys(root, "", campaign__keys, err))
        return -1;
    if (!(v = job_json_member(root, "id")))
        return job_json_fail(err, JOB_ERR_MISSING_FIELD, "id: required");
    if (job_json_name(v, "id", a, &c->id, err))
        return -1;
    if (!(v = job_json_member(root, "from")))
        return job_json_fail(err, JOB_ERR_MISSING_FIELD,
                             "from: required (the envelope sender; \"\" for the null sender)");
    if (job_json_string(v, "from", JOB_STR_HEADER, 0, a, &c->from, &n, err))
        return -1;
    if (!addr_valid_sender(c->from, n, &why))
        return job_json_fail(err, JOB_ERR_INVALID_ADDRESS, "from: invalid address: %s", why);
    if (!(v = job_json_member(root, "message")))
        return job_json_fail(err, JOB_ERR_MISSING_FIELD, "message: required");
    if (job_json_message(v, "message", true, JOB_DEFAULT_MAX_ATTACHMENT_BYTES, a, &c->parts,
                         err))
        return -1;

    bool https = false;
    if ((v = job_json_member(root, "list_unsubscribe"))) {
        if (job_json_string(v, "list_unsubscribe",
                            JOB_STR_HEADER | JOB_STR_NO_CTL | JOB_STR_NONEMPTY,
                            MIME_MAX_HEADER_VALUE_BYTES, a, &c->list_unsubscribe, &n, err))
            return -1;
        if (tmpl_check(c->list_unsubscribe, n, &why) != 0)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD, "list_unsubscribe: template: %s",
                                 why);
        if (campaign__unsub(c->list_unsubscribe, &https, err))
            return -1;
    }
    if ((v = job_json_member(root, "list_unsubscribe_post"))) {
        if (!json_is_boolean(v))
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "list_unsubscribe_post: must be true or false");
        c->list_unsubscribe_post = json_is_true(v);
        if (c->list_unsubscribe_post && !https)
            return job_json_fail(err, JOB_ERR_INVALID_FIELD,
                                 "list_unsubscribe_post: needs an https URI in "
                                 "list_unsubscribe (RFC 8058)");
    }
    c->lane = JOB_LANE_BULK;
    if ((v = job_json_member(root, "lane")) && job_json_lane(v, "lane", &c->lane, err))
        return -1;
    if ((v = job_json_member(root, "pool")) && job_json_name(v, "pool", a, &c->pool, err))
        return -1;
    if ((v = job_json_member(root, "max_age_s"))) {
        if (job_json_uint(v, "max_age_s", 0, JOB_MAX_AGE_S, &x, err))
            return -1;
        c->max_age_ms = x * 1000;
    }
    if ((v = job_json_member(root, "max_attempts"))) {
        if (job_json_uint(v, "max_attempts", 0, JOB_MAX_ATTEMPTS, &x, err))
            return -1;
        c->max_attempts = (unsigned)x;
    }
    if ((v = job_json_member(root, "meta")) && job_json_meta(v, "meta", a, &c->meta_json, err))
        return -1;
    return 0;
}

int campaign_parse(const char *json, size_t len, struct campaign *out, struct job_error *err)
{
    memset(out, 0, sizeof *out);
    err->code = NULL;
    err->detail[0] = '\0';
    if (len > CAMPAIGN_MAX_BYTES)
        return job_json_fail(err, JOB_ERR_OVERSIZED, "campaign: %zu bytes, limit %zu", len,
                             CAMPAIGN_MAX_BYTES);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        return job_json_fail(err, JOB_ERR_BAD_JSON, "campaign: line %d column %d: %s",
                             je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return job_json_fail(err, JOB_ERR_BAD_JSON, "campaign: must be a JSON object");
    }
    struct job_arena *a = malloc(sizeof *a);
    if (!a) {
        json_decref(root);
        job_json_nomem(err, "campaign");
        return -ENOMEM;
    }
    job_arena_init(a, len + len / 4);
    out->priv = a;
    int rc = campaign__fields(root, a, out, err);
    json_decref(root);
    if (rc) {
        bool nomem = err->code == job_json_nomem_code;
        campaign_free(out);
        return nomem ? -ENOMEM : -1;
    }
    return 0;
}

void campaign_free(struct campaign *c)
{
    if (c->priv) {
        job_arena_fini(c->priv);
        free(c->priv);
    }
    memset(c, 0, sizeof *c);
}
