/* bench/sink/sink_smtp.h — the server side of one SMTP session for the benchmark sink:
 * assembles pipelined command lines, scans DATA for CRLF.CRLF, consumes BDAT chunks and
 * appends the replies to an output buffer. Owns no socket and does no I/O; the ring loop
 * (sink_ring.c) feeds it whatever bytes arrive and sends what it wrote. */
#ifndef SALVO_BENCH_SINK_SINK_SMTP_H
#define SALVO_BENCH_SINK_SINK_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Session states: enum value, name for traces. */
#define SINK_SMTP_STATES(X)                                                          \
    X(COMMAND, "COMMAND") /* reading command lines */                               \
    X(DATA, "DATA")       /* after 354: scanning message text for CRLF.CRLF */      \
    X(BDAT, "BDAT")       /* consuming the octets of one BDAT chunk */              \
    X(CLOSING, "CLOSING") /* 221 or a fatal error queued; input is ignored */

enum sink_smtp_state {
#define SINK_SMTP__ENUM(name, text) SINK_SMTP_STATE_##name,
    SINK_SMTP_STATES(SINK_SMTP__ENUM)
#undef SINK_SMTP__ENUM
    SINK_SMTP_STATE_COUNT
};

/* Reply bytes queued for one connection. Starts in the inline array; grows on the heap only
 * when a client pipelines far more than it reads (bounded by max_bytes). */
#define SINK_OUTBUF_INLINE_BYTES 1024
struct sink_outbuf {
    char *data;
    uint32_t len;
    uint32_t cap;
    char inline_data[SINK_OUTBUF_INLINE_BYTES];
};

void sink_outbuf_init(struct sink_outbuf *o);
void sink_outbuf_fini(struct sink_outbuf *o);
/* Appends n bytes; 0, or -ENOBUFS when the buffer would exceed max_bytes. */
int sink_outbuf_grow_put(struct sink_outbuf *o, const char *p, size_t n, uint32_t max_bytes);

static inline int sink_outbuf_put(struct sink_outbuf *o, const char *p, size_t n,
                                  uint32_t max_bytes)
{
    if (o->len + n <= o->cap) {
        __builtin_memcpy(o->data + o->len, p, n);
        o->len += (uint32_t)n;
        return 0;
    }
    return sink_outbuf_grow_put(o, p, n, max_bytes);
}

struct sink_smtp_limits {
    uint32_t max_line_bytes;    /* one command line, CRLF included; longer = 500 and close */
    uint32_t max_out_bytes;     /* replies queued but not yet sent, per connection */
    uint64_t max_message_bytes; /* advertised in EHLO SIZE (not enforced) */
};

/* Shared by all sessions: settings, prebuilt replies, the queue-id counter, error counters. */
struct sink_smtp_server {
    struct sink_smtp_limits lim;
    bool chunking;              /* advertise and accept BDAT */
    bool trace;                 /* log every command, reply and state change to stderr */
    const char *reject_rcpt;    /* RCPT lines containing this get 550 5.1.1; NULL = none */
    size_t reject_rcpt_len;
    uint64_t next_queue_id;
    /* errors seen, for the summary */
    uint64_t line_too_long;
    uint64_t out_overflow;
    uint64_t bad_commands;      /* 5xx replies to commands other than rejected RCPTs */
    /* prebuilt replies */
    char greeting[320];
    size_t greeting_len;
    char helo_reply[320];
    size_t helo_reply_len;
    char ehlo_reply[640];
    size_t ehlo_reply_len;
};

/* One connection's protocol state. */
struct sink_smtp_session {
    enum sink_smtp_state state;
    uint32_t conn_id;           /* for traces */
    bool greeted;               /* HELO or EHLO seen */
    bool in_mail;               /* MAIL accepted, transaction open */
    bool bdat_used;             /* this transaction has sent BDAT chunks */
    bool bdat_last;             /* current chunk is the LAST one */
    uint8_t eod_matched;        /* bytes of "\r\n.\r\n" matched so far in DATA */
    uint16_t bdat_error;        /* index of the error reply owed after the chunk, 0 = none */
    uint32_t rcpts;             /* recipients accepted in this transaction */
    uint64_t bdat_left;         /* chunk octets still to consume */
    uint64_t bdat_size;         /* size of the current chunk, for its reply */
    uint32_t line_len;          /* partial command line carried between reads */
    char *line;                 /* max_line_bytes of storage, owned by the caller */
};

/* What one feed accepted, for the caller's per-address counters. */
struct sink_smtp_tally {
    uint32_t messages;
    uint32_t recipients;
    uint32_t rcpt_rejected;
    uint64_t message_bytes;     /* DATA text or BDAT octets of accepted and pending messages */
};

enum sink_smtp_step {
    SINK_SMTP_OK,               /* keep reading */
    SINK_SMTP_CLOSE,            /* send what is queued, then close (QUIT or a fatal error) */
};

/* Fills the prebuilt replies; hostname is used in the greeting and HELO/EHLO replies. */
void sink_smtp_server_init(struct sink_smtp_server *srv, const char *hostname);

/* Starts a session on line_storage (lim.max_line_bytes) and queues the 220 greeting. */
enum sink_smtp_step sink_smtp_start(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                    uint32_t conn_id, char *line_storage,
                                    struct sink_outbuf *out);

/* Consumes all len bytes of client input, queueing replies on out and adding to *tally. */
enum sink_smtp_step sink_smtp_feed(struct sink_smtp_server *srv, struct sink_smtp_session *s,
                                   const char *buf, size_t len, struct sink_outbuf *out,
                                   struct sink_smtp_tally *tally);

const char *sink_smtp_state_to_text(enum sink_smtp_state st);

#endif
