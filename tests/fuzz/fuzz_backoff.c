/* tests/fuzz/fuzz_backoff.c — backoff_parse over arbitrary bytes. Rules that parse must read
 * back inside every field's range, and matching them against fixed replies (through a small
 * tracker, into a small table of holds) must be consistent; text that does not parse must say
 * why and return nothing. The same bytes, as reply text, go through backoff_subject. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/backoff.h"

static void fuzz__check_rules(const struct backoff_rules *r)
{
    unsigned n = backoff_count(r);
    if (n > 1000)
        abort();
    for (unsigned i = 0; i < n; i++) {
        struct backoff_rule_info in;
        backoff_rule_get(r, i, &in);
        size_t nl = strlen(in.name);
        enum backoff_action back;
        if (nl == 0 || nl >= BACKOFF_NAME_MAX || !in.pattern[0] ||
            backoff_action_from_text(backoff_action_to_text(in.action), &back) != 0 ||
            back != in.action || in.duration_s < 1 || in.duration_s > 604800 ||
            in.trigger_count < 1 || in.trigger_count > 100000 ||
            (in.trigger_count == 1) != (in.trigger_window_s == 0) || in.trigger_window_s > 86400 ||
            (in.action == BACKOFF_REDUCE_RATE) != (in.rate_per_s > 0) || in.rate_per_s > 1e6)
            abort();
    }
}

static void fuzz__observe(const struct backoff_rules *r)
{
    static const struct {
        int code;
        const char *enhanced, *text;
    } replies[] = {
        {421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
                       "volume or user complaints"},
        {421, "4.7.28", "[192.0.2.1] Our system has detected an unusual rate of\r\nunsolicited "
                        "mail originating from your IP address. - gsmtp"},
        {451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to "
                         "IP reputation."},
        {550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. (S3150)"},
        {421, NULL, "too many concurrent SMTP connections"},
        {0, "", "connection refused"},
        {250, "2.0.0", "OK"},
    };
    static const char *const providers[] = {"gmail", "yahoo", "microsoft", NULL};
    static const char *const domains[] = {"gmail.com", "a.example.com", "BadExample.COM.", "", NULL};
    static const char *const keys[] = {"dest:provider:gmail", "dest:ip-a|mx:mx1.example.com", ""};

    struct backoff_tracker *t = NULL;
    struct backoff_table *tab = NULL;
    if (backoff_tracker_create(&t, 4) != 0 || backoff_table_create(&tab, 4) != 0)
        abort();
    unsigned n = backoff_count(r);
    uint64_t now = 1000;
    for (unsigned round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
            char subject[512];
            backoff_subject(subject, sizeof subject, replies[i].code, replies[i].enhanced,
                            replies[i].text);
            for (size_t p = 0; p < sizeof providers / sizeof *providers; p++)
                for (size_t d = 0; d < sizeof domains / sizeof *domains; d++) {
                    const char *key = keys[(i + p + d) % 3];
                    int m = -2;
                    int fired = backoff_observe(r, t, providers[p], domains[d], key, subject,
                                                now, &m);
                    if (m < -1 || m >= (int)n || (fired != -1 && fired != m))
                        abort();
                    now += 1 + (uint64_t)(i * 977 % 5000);
                    if (fired < 0)
                        continue;
                    struct backoff_rule_info in;
                    backoff_rule_get(r, (unsigned)fired, &in);
                    struct backoff_hold h;
                    memset(&h, 0, sizeof h);
                    strcpy(h.key, key);
                    h.action = in.action;
                    h.until_ms = now + (uint64_t)in.duration_s * 1000;
                    h.rate_per_s = in.rate_per_s;
                    strcpy(h.rule, in.name);
                    snprintf(h.reason, sizeof h.reason, "%s", subject);
                    if (backoff_table_put(tab, &h) != 0)
                        abort();            /* three keys in a table of four */
                    const struct backoff_hold *g = backoff_table_get(tab, key, now);
                    if (!g || g->action != in.action || strcmp(g->rule, in.name) != 0)
                        abort();
                }
        }
    (void)backoff_table_expire(tab, now + 3600 * 1000);
    backoff_tracker_reset(t);
    backoff_tracker_free(t);
    backoff_table_free(tab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct backoff_rules *r = (struct backoff_rules *)1;
    char err[256] = "";
    if (backoff_parse(text, size, &r, err, sizeof err) != 0) {
        if (r || !err[0])
            abort();
    } else {
        fuzz__check_rules(r);
        fuzz__observe(r);
        backoff_free(r);
    }

    /* The bytes as reply text: one line out, the length snprintf would give. */
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
        char out[128];
        size_t len = backoff_subject(out, sizeof out, 421, "4.7.0", s);
        if (len != 10 + strlen(s) || strlen(out) != (len < sizeof out ? len : sizeof out - 1) ||
            strchr(out, '\r') || strchr(out, '\n'))
            abort();
        free(s);
    }
    free(text);
    return 0;
}
