/* engine/smtp/smtp_reply.c — incremental SMTP reply parser (RFC 5321 §4.2) and the RFC 3463
 * enhanced status split. Owns line assembly one byte at a time, the continuation and
 * numbering rules and the limits; never buffers more than one enhanced code. Does not decide
 * what a reply means (schedulers/failure_policy) and does no I/O.
 *
 * Choices the RFCs leave to us:
 * - A line ends with CRLF or a bare LF: sloppy servers and proxies send LF alone, and
 *   refusing them would only turn a readable reply into a connection error.
 * - A bare CR (one not followed by LF) reads as a space: it is almost always a broken line
 *   wrap, a space keeps the words apart, and no CR reaches the text (logs, JSON).
 * - Other control bytes, NUL included, become '?' in the text (tab becomes a space).
 * - "250\r\n" (code, no separator, no text) is a valid last line, as the grammar's
 *   [ SP textstring ] allows; "250-\r\n" is a valid continuation with empty text.
 * - An enhanced code counts only at the very start of a line's text, followed by a space or
 *   the line end, and only when its class equals the reply code's first digit (RFC 3463 §2:
 *   anything else is not an enhanced code but text). It is stripped from every line that
 *   carries one, so multi-line rejections read cleanly, and stored from the first line only.
 * - The completed reply stays in p->reply until the next byte is fed: the caller copies or
 *   consumes it first. */
#include "engine/smtp/smtp_reply.h"

#include <assert.h>
#include <string.h>

#define SMTP_REPLY_DEFAULT_MAX_LINE_BYTES 2048
#define SMTP_REPLY_DEFAULT_MAX_LINES 128
#define SMTP_REPLY_ENH_MAX_CHARS 9   /* "5.123.456" */

enum {
    SMTP_REPLY__START,      /* between replies; p->reply still holds the last one */
    SMTP_REPLY__CODE,       /* reading the three digits */
    SMTP_REPLY__SEP,        /* after the digits: '-', ' ' or the line end */
    SMTP_REPLY__SEP_CR,     /* CR after the digits; the next byte says bare or CRLF */
    SMTP_REPLY__TEXT,       /* the line's text */
    SMTP_REPLY__TEXT_CR,    /* CR in the text; the next byte says bare or CRLF */
    SMTP_REPLY__FAILED,     /* malformed; stays so until reset */
};

static int smtp_reply__fail(struct smtp_reply_parser *p, const char *why)
{
    p->error = why;
    p->state = SMTP_REPLY__FAILED;
    return -1;
}

/* Appends one byte to the text, keeping it NUL-terminated; past the end it only notes it. */
static void smtp_reply__put(struct smtp_reply *r, char c)
{
    if (r->text_len >= SMTP_REPLY_TEXT_MAX - 1) {
        r->truncated = true;
        return;
    }
    r->text[r->text_len++] = c;
    r->text[r->text_len] = '\0';
}

static void smtp_reply__put_text(struct smtp_reply *r, unsigned char c)
{
    if (c == '\t')
        c = ' ';
    else if (c < 0x20 || c == 0x7f)
        c = '?';
    smtp_reply__put(r, (char)c);
}

static void smtp_reply__begin(struct smtp_reply_parser *p)
{
    struct smtp_reply *r = &p->reply;
    r->code = 0;
    r->enh_class = r->enh_subject = r->enh_detail = 0;
    r->enhanced[0] = '\0';
    r->text[0] = '\0';
    r->text_len = 0;
    r->nlines = 0;
    r->truncated = false;
    p->state = SMTP_REPLY__CODE;
}

static void smtp_reply__new_line(struct smtp_reply_parser *p)
{
    p->line_bytes = 0;
    p->line_code = 0;
    p->digit_count = 0;
    p->sep = 0;
    p->line_enh_pending = false;
    p->enh_len = 0;
}

/* Writes n (0..999) in decimal; returns the characters written. */
static size_t smtp_reply__utoa(char *out, int n)
{
    char tmp[3];
    size_t k = 0, i = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && k < sizeof tmp);
    while (k)
        out[i++] = tmp[--k];
    return i;
}

static void smtp_reply__store_enh(struct smtp_reply *r, int cls, int subject, int detail)
{
    r->enh_class = cls;
    r->enh_subject = subject;
    r->enh_detail = detail;
    size_t n = smtp_reply__utoa(r->enhanced, cls);
    r->enhanced[n++] = '.';
    n += smtp_reply__utoa(r->enhanced + n, subject);
    r->enhanced[n++] = '.';
    n += smtp_reply__utoa(r->enhanced + n, detail);
    r->enhanced[n] = '\0';
}

/* Decides whether the buffered start of the line is an enhanced code (then it is dropped
 * from the text) or ordinary text (then it is written out). at_boundary: the byte after it
 * is a space or the line end, without which "2.0.0x" would lose its "2.0.0". */
static bool smtp_reply__settle_enh(struct smtp_reply_parser *p, bool at_boundary)
{
    struct smtp_reply *r = &p->reply;
    int cls, subject, detail;
    p->line_enh_pending = false;
    size_t n = smtp_enhanced_parse(p->enh_buf, p->enh_len, &cls, &subject, &detail);
    if (at_boundary && n > 0 && n == p->enh_len && cls == p->line_code / 100) {
        if (r->nlines == 0)
            smtp_reply__store_enh(r, cls, subject, detail);
        return true;
    }
    for (size_t i = 0; i < p->enh_len; i++)
        smtp_reply__put(r, p->enh_buf[i]);
    return false;
}

static int smtp_reply__text_byte(struct smtp_reply_parser *p, unsigned char c)
{
    if (p->line_enh_pending) {
        bool digit = c >= '0' && c <= '9';
        /* Only a code whose class matches the reply's is worth buffering. */
        bool fits = p->enh_len == 0 ? c == '0' + p->line_code / 100
                                    : (digit || c == '.') && p->enh_len < SMTP_REPLY_ENH_MAX_CHARS;
        if (fits) {
            p->enh_buf[p->enh_len++] = (char)c;
            return 0;
        }
        if (smtp_reply__settle_enh(p, c == ' '))
            return 0;       /* the space after the code goes with it */
    }
    smtp_reply__put_text(&p->reply, c);
    return 0;
}

static int smtp_reply__code_digit(struct smtp_reply_parser *p, unsigned char c)
{
    /* First digit 2-5, second 0-5 (RFC 5321 §4.2.1), third any. */
    static const char hi[3] = { '5', '5', '9' };
    char lo = p->digit_count == 0 ? '2' : '0';
    if (c < '0' || c > '9')
        return smtp_reply__fail(p, "non-numeric reply code");
    if (c < lo || c > hi[p->digit_count])
        return smtp_reply__fail(p, "reply code out of range");
    p->line_code = p->line_code * 10 + (c - '0');
    if (++p->digit_count < 3)
        return 0;
    if (p->reply.nlines == 0)
        p->reply.code = p->line_code;
    else if (p->line_code != p->reply.code)
        return smtp_reply__fail(p, "mis-numbered reply");
    else
        smtp_reply__put(&p->reply, '\n');
    p->state = SMTP_REPLY__SEP;
    return 0;
}

static void smtp_reply__start_text(struct smtp_reply_parser *p, char sep)
{
    p->sep = sep;
    p->line_enh_pending = true;
    p->enh_len = 0;
    p->state = SMTP_REPLY__TEXT;
}

/* Returns 1 when the line ended the reply, 0 to go on, -1 malformed. */
static int smtp_reply__line_end(struct smtp_reply_parser *p)
{
    if (p->line_enh_pending)
        smtp_reply__settle_enh(p, true);
    if (p->sep == 0)
        p->sep = ' ';       /* "250\r\n": a last line without text */
    p->reply.nlines++;
    if (p->sep != '-') {
        smtp_reply_parser_reset(p);
        return 1;
    }
    if (p->reply.nlines >= p->lim.max_lines)
        return smtp_reply__fail(p, "too many reply lines");
    smtp_reply__new_line(p);
    p->state = SMTP_REPLY__CODE;
    return 0;
}

static int smtp_reply__feed(struct smtp_reply_parser *p, unsigned char c)
{
    switch (p->state) {
    case SMTP_REPLY__CODE:
        if (c == '\r' || c == '\n')
            return smtp_reply__fail(p, p->digit_count ? "reply line ends inside the code"
                                                      : "empty reply line");
        return smtp_reply__code_digit(p, c);
    case SMTP_REPLY__SEP:
        if (c == '\r') {
            p->state = SMTP_REPLY__SEP_CR;
            return 0;
        }
        if (c == '\n')
            return smtp_reply__line_end(p);
        if (c != '-' && c != ' ')
            return smtp_reply__fail(p, "bad separator after reply code");
        smtp_reply__start_text(p, (char)c);
        return 0;
    case SMTP_REPLY__SEP_CR:
        if (c == '\n')
            return smtp_reply__line_end(p);
        smtp_reply__start_text(p, ' ');     /* the bare CR was the separator */
        return smtp_reply__feed(p, c);
    case SMTP_REPLY__TEXT:
        if (c == '\r') {
            p->state = SMTP_REPLY__TEXT_CR;
            return 0;
        }
        if (c == '\n')
            return smtp_reply__line_end(p);
        return smtp_reply__text_byte(p, c);
    case SMTP_REPLY__TEXT_CR:
        if (c == '\n')
            return smtp_reply__line_end(p);
        p->state = SMTP_REPLY__TEXT;
        smtp_reply__text_byte(p, ' ');
        return smtp_reply__feed(p, c);
    default:
        assert(!"smtp_reply: unexpected state");
        return smtp_reply__fail(p, "reply parser in an unexpected state");
    }
}

void smtp_reply_parser_init(struct smtp_reply_parser *p, const struct smtp_reply_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim)
        p->lim = *lim;
    if (p->lim.max_line_bytes == 0)
        p->lim.max_line_bytes = SMTP_REPLY_DEFAULT_MAX_LINE_BYTES;
    if (p->lim.max_lines == 0)
        p->lim.max_lines = SMTP_REPLY_DEFAULT_MAX_LINES;
    smtp_reply_parser_reset(p);
}

/* Leaves p->reply alone: after a complete reply it is the caller's until bytes are fed. */
void smtp_reply_parser_reset(struct smtp_reply_parser *p)
{
    p->error = NULL;
    p->state = SMTP_REPLY__START;
    smtp_reply__new_line(p);
}

ssize_t smtp_reply_parse(struct smtp_reply_parser *p, const char *data, size_t len)
{
    if (p->state == SMTP_REPLY__FAILED)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p->state == SMTP_REPLY__START)
            smtp_reply__begin(p);
        /* Counted before anything else, so an endless line fails max_line_bytes + 1 in. */
        if (++p->line_bytes > p->lim.max_line_bytes)
            return smtp_reply__fail(p, "reply line too long");
        int r = smtp_reply__feed(p, (unsigned char)data[i]);
        if (r < 0)
            return -1;
        if (r > 0)
            return (ssize_t)(i + 1);
    }
    return -2;
}

/* Reads 1-3 digits at s[*i]; returns how many (0 or 4 meaning "not a field"). */
static size_t smtp_reply__enh_field(const char *s, size_t len, size_t *i, int *v)
{
    size_t n = 0;
    *v = 0;
    while (*i < len && n < 4 && s[*i] >= '0' && s[*i] <= '9') {
        *v = *v * 10 + (s[*i] - '0');
        (*i)++;
        n++;
    }
    return n;
}

/* The code must end at the end of s or at white space, so "5.1.10" is never read as
 * "5.1.1" and "2.0.0.1" or "2.0.0x" is not a code at all. */
size_t smtp_enhanced_parse(const char *s, size_t len, int *cls, int *subject, int *detail)
{
    size_t i = 2, n;
    int sub, det;
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    n = smtp_reply__enh_field(s, len, &i, &sub);
    if (n == 0 || n > 3 || i >= len || s[i] != '.')
        return 0;
    i++;
    n = smtp_reply__enh_field(s, len, &i, &det);
    if (n == 0 || n > 3)
        return 0;
    if (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
        return 0;
    if (cls)
        *cls = s[0] - '0';
    if (subject)
        *subject = sub;
    if (detail)
        *detail = det;
    return i;
}
