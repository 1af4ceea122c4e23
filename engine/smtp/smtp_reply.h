/* engine/smtp/smtp_reply.h — incremental, bounded parser for SMTP server replies
 * (RFC 5321 §4.2) with RFC 3463 enhanced status extraction.
 * Owns: line assembly, continuation rules, limits. Does not own: what a reply means
 * (schedulers/failure_policy) or any I/O. Allocates nothing. */
#ifndef SALVO_ENGINE_SMTP_SMTP_REPLY_H
#define SALVO_ENGINE_SMTP_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Storage for the reply text kept per connection; longer text is truncated, not an error. */
#define SMTP_REPLY_TEXT_MAX 2048

struct smtp_reply_limits {
    size_t max_line_bytes;  /* one reply line, CRLF included; longer = malformed (default 2048) */
    unsigned max_lines;     /* lines in one multi-line reply; more = malformed (default 128) */
};

struct smtp_reply {
    int code;               /* 200..599 */
    int enh_class, enh_subject, enh_detail; /* RFC 3463; enh_class == 0 when absent */
    char enhanced[16];      /* "5.1.1", or "" when absent */
    /* Text of every line without the "250-"/"250 " prefix (nor a leading enhanced code
     * whose class matches the reply code), lines joined by '\n', NUL-terminated. */
    char text[SMTP_REPLY_TEXT_MAX];
    size_t text_len;
    unsigned nlines;
    bool truncated;         /* text did not fit SMTP_REPLY_TEXT_MAX */
};

struct smtp_reply_parser {
    struct smtp_reply_limits lim;
    struct smtp_reply reply; /* the reply being assembled; complete after a parse returns > 0 */
    const char *error;       /* static text, set when parse returns -1 */
    /* internal */
    int state;
    size_t line_bytes;
    int line_code;
    int digit_count;
    char sep;
    bool line_enh_pending;
    char enh_buf[16];
    size_t enh_len;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p, const struct smtp_reply_limits *lim);
/* Resets for the next reply (keeps limits). Called internally after a complete reply. */
void smtp_reply_parser_reset(struct smtp_reply_parser *p);
/* Feeds bytes. Returns n > 0 when a complete reply ends after data[n-1] (p->reply holds it
 * until the next call that feeds a byte, so copy or act on it first; the caller feeds
 * data + n next); -2 when all len bytes were consumed and more are needed;
 * -1 when the input is malformed (p->error says why; the connection must be dropped).
 * A line ends with CRLF or a bare LF. */
ssize_t smtp_reply_parse(struct smtp_reply_parser *p, const char *data, size_t len);

/* Parses an enhanced status code "c.sss.ddd" at the start of s (class 2, 4 or 5).
 * Returns the number of characters used (0 when none). */
size_t smtp_enhanced_parse(const char *s, size_t len, int *cls, int *subject, int *detail);

#endif
