/* bench/sink/sink_smtp.c — SMTP server side of the benchmark sink (RFC 5321 with
 * PIPELINING, RFC 3030 CHUNKING). Pure: bytes in, replies out, counts in a tally.
 * Does not own sockets, buffers' lifetimes or any counters beyond its own error totals. */
#include "bench/sink/sink_smtp.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fixed replies: enum value, text (CRLF included). */
#define SINK_SMTP_REPLIES(X)                                                         \
    X(NONE, "")                                                                      \
    X(OK, "250 2.0.0 Ok\r\n")                                                        \
    X(MAIL_OK, "250 2.1.0 Ok\r\n")                                                   \
    X(RCPT_OK, "250 2.1.5 Ok\r\n")                                                   \
    X(RCPT_REJECTED, "550 5.1.1 Recipient address rejected: User unknown\r\n")       \
    X(DATA_GO, "354 End data with <CR><LF>.<CR><LF>\r\n")                            \
    X(BYE, "221 2.0.0 Bye\r\n")                                                      \
    X(VRFY, "252 2.0.0 Cannot VRFY user\r\n")                                        \
    X(NEED_HELO, "503 5.5.1 Error: send HELO/EHLO first\r\n")                        \
    X(NESTED_MAIL, "503 5.5.1 Error: nested MAIL command\r\n")                       \
    X(NEED_MAIL, "503 5.5.1 Error: need MAIL command\r\n")                           \
    X(NEED_RCPT, "554 5.5.1 Error: no valid recipients\r\n")                         \
    X(DATA_AFTER_BDAT, "503 5.5.1 Error: DATA after BDAT\r\n")                       \
    X(MAIL_SYNTAX, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n")                      \
    X(RCPT_SYNTAX, "501 5.5.4 Syntax: RCPT TO:<address>\r\n")                        \
    X(HELO_SYNTAX, "501 5.5.4 Syntax: EHLO hostname\r\n")                            \
    X(BDAT_SYNTAX, "501 5.5.4 Syntax: BDAT size [LAST]\r\n")                         \
    X(NOT_IMPLEMENTED, "502 5.5.1 Error: command not implemented\r\n")               \
    X(UNRECOGNIZED, "500 5.5.2 Error: command not recognized\r\n")                   \
    X(LINE_TOO_LONG, "500 5.5.0 Error: line too long\r\n")

enum sink_smtp_reply {
#define SINK_SMTP__REPLY_ENUM(name, text) SINK_SMTP_REPLY_##name,
    SINK_SMTP_REPLIES(SINK_SMTP__REPLY_ENUM)
#undef SINK_SMTP__REPLY_ENUM
};

static const struct {
    const char *text;
    uint32_t len;
} sink_smtp__replies[] = {
#define SINK_SMTP__REPLY_TEXT(name, text) {text, sizeof(text) - 1},
    SINK_SMTP_REPLIES(SINK_SMTP__REPLY_TEXT)
#undef SINK_SMTP__REPLY_TEXT
};

static const char *const sink_smtp__state_names[] = {
#define SINK_SMTP__STATE_NAME(name, text) text,
    SINK_SMTP_STATES(SINK_SMTP__STATE_NAME)
#undef SINK_SMTP__STATE_NAME
};

const char *sink_smtp_state_to_text(enum sink_smtp_state st)
{
    return (unsigned)st < SINK_SMTP_STATE_COUNT ? sink_smtp__state_names[st] : "?";
}

/* ---- output buffer ---- */

void sink_outbuf_init(struct sink_outbuf *o)
{
    o->data = o->inline_data;
    o->len = 0;
    o->cap = sizeof(o->inline_data);
}

void sink_outbuf_fini(struct sink_outbuf *o)
{
    if (o->data != o->inline_data)
        free(o->data);
    sink_outbuf_init(o);
}

int sink_outbuf_grow_put(struct sink_outbuf *o, const char *p, size_t n, uint32_t max_bytes)
{
    size_t need = (size_t)o->len + n;
    if (need > max_bytes)
        return -ENOBUFS;
    size_t cap = o->cap;
    while (cap < need)
        cap *= 2;
    if (cap > max_bytes)
        cap = max_bytes;
    char *d;
    if (o->data == o->inline_data) {
        d = malloc(cap);
        if (d)
            memcpy(d, o->data, o->len);
    } else {
        d = realloc(o->data, cap);
    }
    if (!d)
        return -ENOMEM;
    o->data = d;
    o->cap = (uint32_t)cap;
    memcpy(o->data + o->len, p, n);
    o->len += (uint32_t)n;
    return 0;
}

/* ---- server ---- */

void sink_smtp_server_init(struct sink_smtp_server *srv, const char *hostname)
{
    int n = snprintf(srv->greeting, sizeof(srv->greeting), "220 %s ESMTP Salvo sink\r\n",
                     hostname);
    srv->greeting_len = (size_t)n < sizeof(srv->greeting) ? (size_t)n : 0;
    n = snprintf(srv->helo_reply, sizeof(srv->helo_reply), "250 %s\r\n", hostname);
    srv->helo_reply_len = (size_t)n < sizeof(srv->helo_reply) ? (size_t)n : 0;
    n = snprintf(srv->ehlo_reply, sizeof(srv->ehlo_reply),
                 "250-%s\r\n"
                 "250-PIPELINING\r\n"
                 "250-SIZE %llu\r\n"
                 "250-8BITMIME\r\n"
                 "250-ENHANCEDSTATUSCODES\r\n"
                 "%s"
                 "250 SMTPUTF8\r\n",
                 hostname, (unsigned long long)srv->lim.max_message_bytes,
                 srv->chunking ? "250-CHUNKING\r\n" : "");
    srv->ehlo_reply_len = (size_t)n < sizeof(srv->ehlo_reply) ? (size_t)n : 0;
}

/* ---- session ---- */

static void sink_smtp__trace_lines(const struct sink_smtp_session *s, const char *dir,
                                   const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        size_t show = take;
        while (show > 0 && (p[show - 1] == '\n' || p[show - 1] == '\r'))
            show--;
        fprintf(stderr, "sink[%u] %s %.*s\n", s->conn_id, dir, (int)show, p);
        p += take;
        n -= take;
    }
}

/* The only writer of s->state. */
static void sink_smtp__enter(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                             enum sink_smtp_state next)
{
    if (srv->trace)
        fprintf(stderr, "sink[%u] %s -> %s\n", s->conn_id, sink_smtp_state_to_text(s->state),
                sink_smtp_state_to_text(next));
    switch (next) {
    case SINK_SMTP_STATE_COMMAND:
    case SINK_SMTP_STATE_CLOSING:
        break;
    case SINK_SMTP_STATE_DATA:
        s->eod_matched = 2; /* the CRLF ending the DATA line starts the "\r\n.\r\n" match */
        break;
    case SINK_SMTP_STATE_BDAT:
        break;
    default:
        assert(!"unexpected sink_smtp state");
    }
    s->state = next;
}

/* Queues raw reply bytes; on overflow the session is closed (the client is not reading). */
static void sink_smtp__put(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                           struct sink_outbuf *out, const char *p, size_t n)
{
    if (srv->trace)
        sink_smtp__trace_lines(s, ">", p, n);
    if (sink_outbuf_put(out, p, n, srv->lim.max_out_bytes) != 0) {
        srv->out_overflow++;
        sink_smtp__enter(srv, s, SINK_SMTP_STATE_CLOSING);
    }
}

static void sink_smtp__reply(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                             struct sink_outbuf *out, enum sink_smtp_reply r)
{
    if (sink_smtp__replies[r].text[0] == '5' && r != SINK_SMTP_REPLY_RCPT_REJECTED)
        srv->bad_commands++;
    sink_smtp__put(srv, s, out, sink_smtp__replies[r].text, sink_smtp__replies[r].len);
}

static size_t sink_smtp__u64_to_text(char *dst, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789ABCDEF"[v % base];
        v /= base;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

static void sink_smtp__reset_transaction(struct sink_smtp_session *s)
{
    s->in_mail = false;
    s->bdat_used = false;
    s->rcpts = 0;
}

/* A message was accepted: count it, reply with its queue id, close the transaction. */
static void sink_smtp__accept_message(struct sink_smtp_server *srv,
                                      struct sink_smtp_session *s, struct sink_outbuf *out,
                                      struct sink_smtp_tally *tally)
{
    static const char prefix[] = "250 2.0.0 Ok: queued as ";
    char buf[sizeof(prefix) + 24];
    memcpy(buf, prefix, sizeof(prefix) - 1);
    size_t n = sizeof(prefix) - 1;
    n += sink_smtp__u64_to_text(buf + n, ++srv->next_queue_id, 16);
    buf[n++] = '\r';
    buf[n++] = '\n';
    tally->messages++;
    tally->recipients += s->rcpts;
    sink_smtp__reset_transaction(s);
    sink_smtp__put(srv, s, out, buf, n);
}

static bool sink_smtp__prefix_ci(const char *line, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(line, prefix, n) == 0;
}

static bool sink_smtp__verb_ends(const char *line, size_t len, size_t verb_len)
{
    return len == verb_len || line[verb_len] == ' ';
}

/* BDAT <size> [LAST]; 0 on success, -1 on bad syntax. */
static int sink_smtp__parse_bdat(const char *line, size_t len, uint64_t *size, bool *last)
{
    size_t i = 4;
    if (i >= len || line[i] != ' ')
        return -1;
    while (i < len && line[i] == ' ')
        i++;
    size_t digits = 0;
    uint64_t v = 0;
    while (i < len && line[i] >= '0' && line[i] <= '9') {
        if (++digits > 15) /* way beyond anything a benchmark sends */
            return -1;
        v = v * 10 + (uint64_t)(line[i] - '0');
        i++;
    }
    if (digits == 0)
        return -1;
    while (i < len && line[i] == ' ')
        i++;
    *last = false;
    if (i < len) {
        if (len - i != 4 || strncasecmp(line + i, "LAST", 4) != 0)
            return -1;
        *last = true;
    }
    *size = v;
    return 0;
}

/* A BDAT chunk has been fully consumed: reply for it. */
static void sink_smtp__finish_chunk(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                    struct sink_outbuf *out, struct sink_smtp_tally *tally)
{
    if (s->state == SINK_SMTP_STATE_BDAT)
        sink_smtp__enter(srv, s, SINK_SMTP_STATE_COMMAND);
    if (s->bdat_error != SINK_SMTP_REPLY_NONE) {
        enum sink_smtp_reply r = (enum sink_smtp_reply)s->bdat_error;
        s->bdat_error = SINK_SMTP_REPLY_NONE;
        if (s->bdat_last)
            sink_smtp__reset_transaction(s);
        sink_smtp__reply(srv, s, out, r);
        return;
    }
    if (s->bdat_last) {
        sink_smtp__accept_message(srv, s, out, tally);
        return;
    }
    static const char prefix[] = "250 2.0.0 Ok: ";
    static const char suffix[] = " octets received\r\n";
    char buf[sizeof(prefix) + sizeof(suffix) + 24];
    memcpy(buf, prefix, sizeof(prefix) - 1);
    size_t n = sizeof(prefix) - 1;
    n += sink_smtp__u64_to_text(buf + n, s->bdat_size, 10);
    memcpy(buf + n, suffix, sizeof(suffix) - 1);
    n += sizeof(suffix) - 1;
    sink_smtp__put(srv, s, out, buf, n);
}

static void sink_smtp__bdat_command(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                    const char *line, size_t len, struct sink_outbuf *out,
                                    struct sink_smtp_tally *tally)
{
    if (!srv->chunking) {
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NOT_IMPLEMENTED);
        return;
    }
    uint64_t size;
    bool last;
    if (sink_smtp__parse_bdat(line, len, &size, &last) != 0) {
        /* The chunk length is unknown, so the stream cannot be resynchronised. */
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_BDAT_SYNTAX);
        sink_smtp__enter(srv, s, SINK_SMTP_STATE_CLOSING);
        return;
    }
    /* RFC 3030: the chunk's octets are consumed even when the command fails. */
    s->bdat_error = !s->in_mail ? SINK_SMTP_REPLY_NEED_MAIL
                  : s->rcpts == 0 ? SINK_SMTP_REPLY_NEED_RCPT
                  : SINK_SMTP_REPLY_NONE;
    if (s->bdat_error == SINK_SMTP_REPLY_NONE)
        s->bdat_used = true;
    s->bdat_size = size;
    s->bdat_left = size;
    s->bdat_last = last;
    if (size == 0)
        sink_smtp__finish_chunk(srv, s, out, tally);
    else
        sink_smtp__enter(srv, s, SINK_SMTP_STATE_BDAT);
}

#define SINK_SMTP__VERB(a, b, c, d)                                                   \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* One complete command line, CRLF stripped. */
static void sink_smtp__command(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                               const char *line, size_t len, struct sink_outbuf *out,
                               struct sink_smtp_tally *tally)
{
    if (srv->trace)
        fprintf(stderr, "sink[%u] < %.*s\n", s->conn_id, (int)len, line);
    if (len < 4) {
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_UNRECOGNIZED);
        return;
    }
    const unsigned char *u = (const unsigned char *)line;
    uint32_t verb = SINK_SMTP__VERB(u[0] | 0x20, u[1] | 0x20, u[2] | 0x20, u[3] | 0x20);
    bool ends = sink_smtp__verb_ends(line, len, 4);

    switch (verb) {
    case SINK_SMTP__VERB('m', 'a', 'i', 'l'):
        if (!sink_smtp__prefix_ci(line, len, "MAIL FROM:"))
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_MAIL_SYNTAX);
        else if (!s->greeted)
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NEED_HELO);
        else if (s->in_mail)
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NESTED_MAIL);
        else {
            s->in_mail = true;
            s->rcpts = 0;
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_MAIL_OK);
        }
        return;
    case SINK_SMTP__VERB('r', 'c', 'p', 't'):
        if (!sink_smtp__prefix_ci(line, len, "RCPT TO:"))
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_RCPT_SYNTAX);
        else if (!s->in_mail)
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NEED_MAIL);
        else if (srv->reject_rcpt &&
                 memmem(line + 8, len - 8, srv->reject_rcpt, srv->reject_rcpt_len)) {
            tally->rcpt_rejected++;
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_RCPT_REJECTED);
        } else {
            s->rcpts++;
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_RCPT_OK);
        }
        return;
    case SINK_SMTP__VERB('d', 'a', 't', 'a'):
        if (!ends)
            break;
        if (!s->in_mail)
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NEED_MAIL);
        else if (s->bdat_used)
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_DATA_AFTER_BDAT);
        else if (s->rcpts == 0)
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NEED_RCPT);
        else {
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_DATA_GO);
            sink_smtp__enter(srv, s, SINK_SMTP_STATE_DATA);
        }
        return;
    case SINK_SMTP__VERB('b', 'd', 'a', 't'):
        if (!ends)
            break;
        sink_smtp__bdat_command(srv, s, line, len, out, tally);
        return;
    case SINK_SMTP__VERB('e', 'h', 'l', 'o'):
    case SINK_SMTP__VERB('h', 'e', 'l', 'o'):
        if (!ends)
            break;
        if (len < 6) {
            sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_HELO_SYNTAX);
            return;
        }
        s->greeted = true;
        sink_smtp__reset_transaction(s);
        if (verb == SINK_SMTP__VERB('e', 'h', 'l', 'o'))
            sink_smtp__put(srv, s, out, srv->ehlo_reply, srv->ehlo_reply_len);
        else
            sink_smtp__put(srv, s, out, srv->helo_reply, srv->helo_reply_len);
        return;
    case SINK_SMTP__VERB('r', 's', 'e', 't'):
        if (!ends)
            break;
        sink_smtp__reset_transaction(s);
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_OK);
        return;
    case SINK_SMTP__VERB('n', 'o', 'o', 'p'):
        if (!ends)
            break;
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_OK);
        return;
    case SINK_SMTP__VERB('q', 'u', 'i', 't'):
        if (!ends)
            break;
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_BYE);
        sink_smtp__enter(srv, s, SINK_SMTP_STATE_CLOSING);
        return;
    case SINK_SMTP__VERB('v', 'r', 'f', 'y'):
        if (!ends)
            break;
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_VRFY);
        return;
    case SINK_SMTP__VERB('s', 't', 'a', 'r'): /* STARTTLS: not advertised */
    case SINK_SMTP__VERB('a', 'u', 't', 'h'):
    case SINK_SMTP__VERB('e', 'x', 'p', 'n'):
    case SINK_SMTP__VERB('h', 'e', 'l', 'p'):
    case SINK_SMTP__VERB('e', 't', 'r', 'n'):
        sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_NOT_IMPLEMENTED);
        return;
    default:
        break;
    }
    sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_UNRECOGNIZED);
}

static void sink_smtp__line_too_long(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                     struct sink_outbuf *out)
{
    srv->line_too_long++;
    s->line_len = 0;
    sink_smtp__reply(srv, s, out, SINK_SMTP_REPLY_LINE_TOO_LONG);
    sink_smtp__enter(srv, s, SINK_SMTP_STATE_CLOSING);
}

/* COMMAND state: handles at most one line; returns bytes consumed. */
static size_t sink_smtp__command_bytes(struct sink_smtp_server *srv,
                                       struct sink_smtp_session *s, const char *p, size_t len,
                                       struct sink_outbuf *out, struct sink_smtp_tally *tally)
{
    const char *nl = memchr(p, '\n', len);
    size_t take = nl ? (size_t)(nl - p) + 1 : len;
    if ((size_t)s->line_len + take > srv->lim.max_line_bytes) {
        sink_smtp__line_too_long(srv, s, out);
        return len;
    }
    if (!nl) { /* partial line: carry it to the next read */
        memcpy(s->line + s->line_len, p, len);
        s->line_len += (uint32_t)len;
        return len;
    }
    const char *line = p;
    size_t line_len = take;
    if (s->line_len > 0) {
        memcpy(s->line + s->line_len, p, take);
        line = s->line;
        line_len = s->line_len + take;
        s->line_len = 0;
    }
    line_len--; /* '\n' */
    if (line_len > 0 && line[line_len - 1] == '\r')
        line_len--;
    sink_smtp__command(srv, s, line, line_len, out, tally);
    return take;
}

/* DATA state: scans for CRLF.CRLF (the match may span reads); returns bytes consumed. */
static size_t sink_smtp__data_bytes(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                    const char *buf, size_t len, struct sink_outbuf *out,
                                    struct sink_smtp_tally *tally)
{
    const char *p = buf;
    const char *end = buf + len;
    unsigned k = s->eod_matched;
    while (p < end) {
        if (k == 0) {
            p = memchr(p, '\r', (size_t)(end - p));
            if (!p) {
                p = end;
                break;
            }
            p++;
            k = 1;
            continue;
        }
        char c = *p++;
        switch (k) {
        case 1: k = c == '\n' ? 2 : c == '\r' ? 1 : 0; break;
        case 2: k = c == '.' ? 3 : c == '\r' ? 1 : 0; break;
        case 3: k = c == '\r' ? 4 : 0; break;
        case 4:
            if (c == '\n') {
                size_t used = (size_t)(p - buf);
                tally->message_bytes += used;
                s->eod_matched = 0;
                sink_smtp__enter(srv, s, SINK_SMTP_STATE_COMMAND);
                sink_smtp__accept_message(srv, s, out, tally);
                return used;
            }
            k = c == '\r' ? 1 : 0;
            break;
        default:
            assert(!"bad end-of-data match state");
        }
    }
    s->eod_matched = (uint8_t)k;
    tally->message_bytes += len;
    return len;
}

/* BDAT state: consumes chunk octets; returns bytes consumed. */
static size_t sink_smtp__bdat_bytes(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                    size_t len, struct sink_outbuf *out,
                                    struct sink_smtp_tally *tally)
{
    size_t take = s->bdat_left < len ? (size_t)s->bdat_left : len;
    s->bdat_left -= take;
    tally->message_bytes += take;
    if (s->bdat_left == 0)
        sink_smtp__finish_chunk(srv, s, out, tally);
    return take;
}

enum sink_smtp_step sink_smtp_start(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                    uint32_t conn_id, char *line_storage,
                                    struct sink_outbuf *out)
{
    memset(s, 0, sizeof(*s));
    s->state = SINK_SMTP_STATE_COMMAND;
    s->conn_id = conn_id;
    s->line = line_storage;
    if (srv->trace)
        fprintf(stderr, "sink[%u] connected\n", conn_id);
    sink_smtp__put(srv, s, out, srv->greeting, srv->greeting_len);
    return s->state == SINK_SMTP_STATE_CLOSING ? SINK_SMTP_CLOSE : SINK_SMTP_OK;
}

enum sink_smtp_step sink_smtp_feed(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                   const char *buf, size_t len, struct sink_outbuf *out,
                                   struct sink_smtp_tally *tally)
{
    size_t off = 0;
    while (off < len) {
        switch (s->state) {
        case SINK_SMTP_STATE_COMMAND:
            off += sink_smtp__command_bytes(srv, s, buf + off, len - off, out, tally);
            break;
        case SINK_SMTP_STATE_DATA:
            off += sink_smtp__data_bytes(srv, s, buf + off, len - off, out, tally);
            break;
        case SINK_SMTP_STATE_BDAT:
            off += sink_smtp__bdat_bytes(srv, s, len - off, out, tally);
            break;
        case SINK_SMTP_STATE_CLOSING:
            return SINK_SMTP_CLOSE; /* anything after QUIT or a fatal error is dropped */
        default:
            assert(!"unexpected sink_smtp state");
            return SINK_SMTP_CLOSE;
        }
    }
    return s->state == SINK_SMTP_STATE_CLOSING ? SINK_SMTP_CLOSE : SINK_SMTP_OK;
}
