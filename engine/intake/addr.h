/* engine/intake/addr.h — syntax checks for mail addresses arriving from producers: envelope
 * mailboxes (RFC 5321, with RFC 6531 UTF-8) and the address lists of From/To/Reply-To header
 * values. Syntax only: nothing here resolves a domain or knows whether a mailbox exists. */
#ifndef SALVO_ENGINE_INTAKE_ADDR_H
#define SALVO_ENGINE_INTAKE_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Limits from RFC 5321 §4.5.3.1 (path 256 including the angle brackets). */
#define ADDR_MAX_BYTES 254
#define ADDR_MAX_LOCAL_BYTES 64
#define ADDR_MAX_LABEL_BYTES 63
#define ADDR_MAX_DOMAIN_BYTES 253

/* True when s[0..len) is an envelope mailbox: local@domain, local a dot-atom or quoted-string,
 * domain LDH (or UTF-8) labels or an address literal [1.2.3.4] / [IPv6:...]. On false, *why
 * (if non-NULL) is a static reason such as "domain label too long". The empty string is
 * not a mailbox; see addr_valid_sender. */
bool addr_valid(const char *s, size_t len, const char **why);

/* As addr_valid, but also accepts "" — the null reverse-path (MAIL FROM:<>) used by bounces. */
bool addr_valid_sender(const char *s, size_t len, const char **why);

/* True when a header value is a mailbox ("a@b.example" or "Display Name <a@b.example>"), or,
 * with list set, a comma-separated list of them. Quoted display names and comments may
 * contain commas and angle brackets; groups ("name: a@b;") are not accepted. */
bool addr_header_valid(const char *s, size_t len, bool list, const char **why);

#endif
