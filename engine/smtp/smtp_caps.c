/* engine/smtp/smtp_caps.c — EHLO reply text to capability flags (RFC 5321 §4.1.1.1, with
 * RFC 2920, 3207, 6152, 6531, 2034, 3030, 3461, 1870, 4954). Owns keyword matching only;
 * what the session does with a capability is smtp_session's business. */
#include "engine/smtp/smtp_caps.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

struct smtp_caps__word {
    const char *s;
    size_t len;
};

static const struct {
    const char *keyword;
    size_t offset;
} smtp_caps__flags[] = {
    { "PIPELINING", offsetof(struct smtp_caps, pipelining) },
    { "STARTTLS", offsetof(struct smtp_caps, starttls) },
    { "8BITMIME", offsetof(struct smtp_caps, eightbitmime) },
    { "SMTPUTF8", offsetof(struct smtp_caps, smtputf8) },
    { "ENHANCEDSTATUSCODES", offsetof(struct smtp_caps, enhancedstatuscodes) },
    { "CHUNKING", offsetof(struct smtp_caps, chunking) },
    { "DSN", offsetof(struct smtp_caps, dsn) },
};

static const struct {
    const char *name;
    unsigned bit;
} smtp_caps__mechs[] = {
    { "PLAIN", SMTP_AUTH_PLAIN },
    { "LOGIN", SMTP_AUTH_LOGIN },
    { "CRAM-MD5", SMTP_AUTH_CRAM_MD5 },
    { "XOAUTH2", SMTP_AUTH_XOAUTH2 },
};

static bool smtp_caps__is(struct smtp_caps__word w, const char *keyword)
{
    return strlen(keyword) == w.len && strncasecmp(w.s, keyword, w.len) == 0;
}

static bool smtp_caps__space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Takes the next word of s[*i..len) ending at white space or at one of stops. */
static struct smtp_caps__word smtp_caps__next(const char *s, size_t len, size_t *i,
                                              const char *stops)
{
    while (*i < len && smtp_caps__space(s[*i]))
        (*i)++;
    struct smtp_caps__word w = { s + *i, 0 };
    while (*i < len && !smtp_caps__space(s[*i]) && !strchr(stops, s[*i])) {
        (*i)++;
        w.len++;
    }
    return w;
}

/* SIZE's argument (RFC 1870): digits only; anything else or an overflow means "no limit"
 * rather than a guess, and the server will still say 552 if the message is too big. */
static uint64_t smtp_caps__size(struct smtp_caps__word w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w.len; i++) {
        unsigned d = (unsigned)(w.s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static void smtp_caps__auth(struct smtp_caps *caps, const char *s, size_t len, size_t i)
{
    for (;;) {
        struct smtp_caps__word w = smtp_caps__next(s, len, &i, "");
        if (w.len == 0)
            return;
        for (size_t m = 0; m < sizeof smtp_caps__mechs / sizeof smtp_caps__mechs[0]; m++)
            if (smtp_caps__is(w, smtp_caps__mechs[m].name))
                caps->auth |= smtp_caps__mechs[m].bit;
    }
}

static void smtp_caps__line(struct smtp_caps *caps, const char *s, size_t len)
{
    size_t i = 0;
    /* "AUTH=PLAIN LOGIN" is what pre-RFC 2554 Outlook clients needed; servers still send it. */
    struct smtp_caps__word kw = smtp_caps__next(s, len, &i, "=");
    if (i < len && s[i] == '=')
        i++;
    for (size_t f = 0; f < sizeof smtp_caps__flags / sizeof smtp_caps__flags[0]; f++) {
        if (smtp_caps__is(kw, smtp_caps__flags[f].keyword)) {
            *(bool *)((char *)caps + smtp_caps__flags[f].offset) = true;
            return;
        }
    }
    if (smtp_caps__is(kw, "SIZE")) {
        caps->size = true;
        caps->size_max = smtp_caps__size(smtp_caps__next(s, len, &i, ""));
    } else if (smtp_caps__is(kw, "AUTH")) {
        smtp_caps__auth(caps, s, len, i);
    }
}

void smtp_caps_parse(struct smtp_caps *caps, const char *text, size_t len)
{
    memset(caps, 0, sizeof *caps);
    const char *nl = len ? memchr(text, '\n', len) : NULL;
    /* The first line is the server's name and greeting, never a keyword. */
    while (nl) {
        size_t start = (size_t)(nl - text) + 1;
        nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        smtp_caps__line(caps, text + start, end - start);
    }
}
