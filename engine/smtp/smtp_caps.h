/* engine/smtp/smtp_caps.h — EHLO capability parsing (RFC 5321 §4.1.1.1 and extensions).
 * Owns: turning an EHLO reply's text into flags. Pure, allocates nothing. */
#ifndef SALVO_ENGINE_SMTP_SMTP_CAPS_H
#define SALVO_ENGINE_SMTP_SMTP_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_auth_mech {
    SMTP_AUTH_PLAIN = 1u << 0,
    SMTP_AUTH_LOGIN = 1u << 1,
    SMTP_AUTH_CRAM_MD5 = 1u << 2,
    SMTP_AUTH_XOAUTH2 = 1u << 3,
};

struct smtp_caps {
    bool pipelining, starttls, eightbitmime, smtputf8, enhancedstatuscodes, chunking, dsn;
    bool size;              /* SIZE offered */
    uint64_t size_max;      /* 0 = no limit given */
    unsigned auth;          /* mask of enum smtp_auth_mech */
};

/* Parses the text of a 250 EHLO reply (as in struct smtp_reply.text: lines separated by
 * '\n', the first line being the server's name/greeting, which is ignored). Keywords are
 * case-insensitive; unknown keywords are ignored; a malformed SIZE value means "no limit". */
void smtp_caps_parse(struct smtp_caps *caps, const char *text, size_t len);

#endif
