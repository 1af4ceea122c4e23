/* tests/fuzz/fuzz_smtp_caps.c — EHLO capability parsing over arbitrary text, both raw and
 * as it arrives through the reply parser (the way the session uses it). The parse must stay
 * inside len, be deterministic and keep its fields consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/smtp/smtp_caps.h"
#include "engine/smtp/smtp_reply.h"

static void fuzz__check(const struct smtp_caps *c)
{
    if (!c->size && c->size_max != 0)
        abort();
    if (c->auth & ~(unsigned)(SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 |
                              SMTP_AUTH_XOAUTH2))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct smtp_reply_parser p;
    struct smtp_caps c1, c2;
    /* An exact-size copy lets ASan catch any read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    smtp_caps_parse(&c1, text, size);
    fuzz__check(&c1);
    smtp_caps_parse(&c2, text, size);
    if (memcmp(&c1, &c2, sizeof c1) != 0)
        abort();
    free(text);

    smtp_reply_parser_init(&p, NULL);
    if (smtp_reply_parse(&p, (const char *)data, size) > 0) {
        smtp_caps_parse(&c1, p.reply.text, p.reply.text_len);
        fuzz__check(&c1);
    }
    return 0;
}
