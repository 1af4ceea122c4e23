/* engine/msg/mime_address.h — splitting address header values ("Ann <a@b>, c@d") into
 * mailboxes and display names back into raw text. Syntax only: no DNS, no IDNA. */
#ifndef SALVO_ENGINE_MSG_MIME_ADDRESS_H
#define SALVO_ENGINE_MSG_MIME_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct mime_mailbox {
    const char *display;    /* as written (maybe a quoted-string), trimmed; NULL when none */
    size_t display_len;
    const char *addr;       /* addr-spec, without the angle brackets */
    size_t addr_len;
};

/* Parses the mailbox starting at s[*pos] in a comma-separated list and moves *pos past it and
 * its comma: 1 when one was parsed, 0 at the end of the list, -1 when malformed. */
int mime_mailbox_next(const char *s, size_t len, size_t *pos, struct mime_mailbox *mb);
/* Copies the display name's text into raw (cap bytes), undoing quoted-string quoting:
 * 0 with *raw_len set, or -1 when it does not fit. */
int mime_display_unquote(const struct mime_mailbox *mb, char *raw, size_t cap,
                         size_t *raw_len);
/* True for headers whose value is an address list (From, To, Cc, Bcc, Reply-To, Sender). */
bool mime_is_address_header(const char *name);

#endif
