/* tests/fuzz/fuzz_campaign.c — campaign_parse over arbitrary bytes. A campaign that parses
 * must render: every template it accepted merges without error (fields missing, so the
 * defaults are used) with the escaping its place in the message needs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/intake/campaign.h"
#include "engine/msg/tmpl.h"

static const char *fuzz__lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    (void)ctx;
    /* One field with a value, so both the value and the default paths run. */
    if (name_len == 4 && memcmp(name, "name", 4) == 0) {
        *value_len = 7;
        return "A & <B>";
    }
    return NULL;
}

static void fuzz__render(const char *t, size_t len, enum tmpl_escape esc, struct buf *b)
{
    const char *err;
    if (!t)
        return;
    if (tmpl_check(t, len, &err) != 0)
        abort();
    buf_clear(b);
    if (tmpl_render(t, len, fuzz__lookup, NULL, esc, b, &err) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct campaign c;
    struct job_error err;
    int rc = campaign_parse(text, size, &c, &err);
    free(text);
    if (rc != 0) {
        if (!err.code || !err.detail[0] || c.priv || c.id)
            abort();
        return 0;
    }
    if (!c.id || !c.from || !c.parts.from || (c.list_unsubscribe_post && !c.list_unsubscribe))
        abort();
    struct buf b;
    buf_init(&b, 64 << 20);
    const struct mime_parts *p = &c.parts;
    fuzz__render(p->from, strlen(p->from), TMPL_HEADER, &b);
    fuzz__render(p->to, p->to ? strlen(p->to) : 0, TMPL_HEADER, &b);
    fuzz__render(p->reply_to, p->reply_to ? strlen(p->reply_to) : 0, TMPL_HEADER, &b);
    fuzz__render(p->subject, p->subject ? strlen(p->subject) : 0, TMPL_HEADER, &b);
    fuzz__render(p->text, p->text_len, TMPL_RAW, &b);
    fuzz__render(p->html, p->html_len, TMPL_HTML, &b);
    for (unsigned i = 0; i < p->nheaders; i++)
        fuzz__render(p->headers[i].value, strlen(p->headers[i].value), TMPL_HEADER, &b);
    fuzz__render(c.list_unsubscribe, c.list_unsubscribe ? strlen(c.list_unsubscribe) : 0,
                 TMPL_HEADER, &b);
    buf_fini(&b);
    campaign_free(&c);
    return 0;
}
