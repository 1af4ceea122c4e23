/* engine/intake/job_peek.c — reads a few top-level strings from a job without validating it.
 * Values are copied only when they are short strings; they end up in events, which escape
 * them, so no further checks are needed here. */
#include "engine/intake/job_peek.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void peek__str(json_t *root, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(root, key);
    if (json_is_string(v) && json_string_length(v) < cap)
        snprintf(dst, cap, "%s", json_string_value(v));
}

void job_peek(const char *json, size_t len, struct job_peek *out)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    peek__str(root, "campaign", out->campaign_id, sizeof out->campaign_id);
    peek__str(root, "id", out->job_id, sizeof out->job_id);
    peek__str(root, "from", out->from, sizeof out->from);
    json_t *to = json_object_get(root, "to");
    if (json_is_string(to) && json_string_length(to) < sizeof out->to[0]) {
        snprintf(out->to[0], sizeof out->to[0], "%s", json_string_value(to));
        out->nto = 1;
    } else if (json_is_array(to)) {
        size_t i;
        json_t *e;
        json_array_foreach(to, i, e) {
            if (out->nto == JOB_PEEK_MAX_TO)
                break;
            if (json_is_string(e) && json_string_length(e) < sizeof out->to[0])
                snprintf(out->to[out->nto++], sizeof out->to[0], "%s", json_string_value(e));
        }
    }
    json_decref(root);
}
