/* engine/msg/mime.h — message assembly: a job's parts (addresses, subject, text/HTML bodies,
 * extra headers, attachments) to one RFC 5322/MIME message with CRLF line endings.
 * Does not dot-stuff or pick SMTP extensions (engine/smtp/smtp_data.h) nor merge templates
 * (engine/msg/tmpl.h). Allocates nothing besides growing the caller's output buffer. */
#ifndef SALVO_ENGINE_MSG_MIME_H
#define SALVO_ENGINE_MSG_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/buf.h"

#define MIME_FOLD_COLUMN 78             /* header lines are folded to this where possible */
#define MIME_MAX_LINE_BYTES 998         /* RFC 5322 §2.1.1 hard limit, CRLF excluded */
#define MIME_MAX_HEADER_NAME_BYTES 64
#define MIME_MAX_HEADER_VALUE_BYTES 16384
#define MIME_MAX_DISPLAY_NAME_BYTES 256
#define MIME_MAX_FILENAME_BYTES 512
#define MIME_MAX_CONTENT_TYPE_BYTES 256

struct mime_header {
    const char *name;
    const char *value;
};

/* Attachment data is already decoded; it is sent base64-encoded. */
struct mime_attachment {
    const char *filename;       /* optional; UTF-8 */
    const char *content_type;   /* optional, default application/octet-stream */
    const uint8_t *data;
    size_t len;
};

struct mime_parts {
    const char *from;           /* required; "Ann <a@b.c>" or "a@b.c", UTF-8 display name */
    const char *to;             /* optional; default: the envelope recipient */
    const char *reply_to, *subject;             /* optional */
    const char *text; size_t text_len;          /* text/plain body when text != NULL */
    const char *html; size_t html_len;          /* text/html body when html != NULL */
    const struct mime_header *headers; unsigned nheaders;   /* extra headers, in order */
    const struct mime_attachment *attachments; unsigned nattachments;
    const char *message_id_domain;  /* for the generated Message-ID; default: From's domain */
};

/* Appends the whole message to out: 0, or -1 with *err a static string and out as before.
 * Adds Date (from now_ms, UTC) and Message-ID (from unique and now_ms; the domain must be
 * plain ASCII) unless the extra headers carry them. Bodies go 7bit when they can, else
 * quoted-printable; attachments go base64. Header values are trimmed of surrounding
 * whitespace; non-ASCII text in them is sent as RFC 2047 encoded-words (display names only,
 * in address headers: addresses are copied as given, so a UTF-8 one needs SMTPUTF8). */
int mime_build(const struct mime_parts *p, const char *envelope_rcpt, uint64_t now_ms,
               uint64_t unique, struct buf *out, const char **err);

/* Validates one extra header as mime_build would: 0, or -1 with *err a static string.
 * Rejects bad names, CR/LF in the value ("header injection"), other control characters,
 * invalid UTF-8, unparseable addresses in address headers, words too long for a line, the
 * headers Salvo owns (MIME-Version, Content-Type, Content-Transfer-Encoding) and Bcc. */
int mime_check_header(const char *name, const char *value, const char **err);

/* Finds the address in one mailbox, "Name <a@b>" or "a@b": 0 with *addr pointing into s,
 * or -1 when s is not exactly one well-formed mailbox. */
int mime_parse_address(const char *s, const char **addr, size_t *addr_len);

#endif
