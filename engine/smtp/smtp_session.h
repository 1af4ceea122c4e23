/* engine/smtp/smtp_session.h — one SMTP client connection (RFC 5321) as an explicit state
 * machine: greeting, EHLO/HELO, STARTTLS (RFC 3207), AUTH, pipelined transactions
 * (RFC 2920), DATA with dot-stuffing or BDAT (RFC 3030), RSET, QUIT, per-state timeouts.
 * Owns: the socket, the TLS layer, reply parsing and per-recipient outcomes of the
 * transaction it runs. Does not own: which host to use, retries, or what a failure means
 * for the queue (engine/delivery and schedulers/failure_policy decide that). */
#ifndef SALVO_ENGINE_SMTP_SMTP_SESSION_H
#define SALVO_ENGINE_SMTP_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ring/ring.h"
#include "engine/smtp/smtp_caps.h"
#include "engine/smtp/smtp_data.h"
#include "engine/smtp/smtp_reply.h"
#include "engine/tls/tls.h"
#include "engine/util/buf.h"
#include "schedulers/failure_policy.h"

#define SMTP_OUTCOME_TEXT_MAX 1024

/* Per-state timeouts; defaults follow RFC 5321 §4.5.3.2. */
struct smtp_timeouts {
    unsigned connect_ms;     /* 30 s */
    unsigned greeting_ms;    /* 300 s */
    unsigned ehlo_ms;        /* 300 s */
    unsigned starttls_ms;    /* 300 s: STARTTLS reply and TLS handshake */
    unsigned auth_ms;        /* 300 s */
    unsigned mail_ms;        /* 300 s */
    unsigned rcpt_ms;        /* 300 s */
    unsigned data_ms;        /* 120 s: the 354 */
    unsigned data_block_ms;  /* 180 s: each body write */
    unsigned end_ms;         /* 600 s: reply to end of data / last BDAT */
    unsigned rset_ms;        /* 120 s */
    unsigned quit_ms;        /* 30 s */
    unsigned idle_ms;        /* 5 s: an unused connection waits this long, then QUIT */
};
void smtp_timeouts_defaults(struct smtp_timeouts *t);
void smtp_timeouts_scale(struct smtp_timeouts *t, double factor);

struct smtp_session_config {
    const char *ehlo_name;
    struct smtp_timeouts timeouts;
    struct smtp_reply_limits reply_limits;
    struct tls_ctx *tls_ctx;     /* NULL: TLS impossible */
    size_t body_chunk_bytes;     /* body bytes per write / per BDAT chunk (default 256 KiB) */
    bool use_chunking;           /* prefer BDAT when offered (default true) */
    bool use_pipelining;         /* pipeline when offered (default true) */
    const char *auth_user;       /* AUTH only over TLS, only when both set */
    const char *auth_pass;
};
void smtp_session_config_defaults(struct smtp_session_config *c);

/* A recipient's result for one attempt. */
struct smtp_outcome {
    bool ok;                     /* accepted for delivery (final 2xx) */
    enum fail_phase phase;       /* the command this answered */
    enum fail_transport transport;
    int code;                    /* 0 when there was no reply */
    int enh_class, enh_subject, enh_detail;
    char enhanced[16];
    char text[SMTP_OUTCOME_TEXT_MAX];
};

enum smtp_rcpt_state { SMTP_RCPT_PENDING, SMTP_RCPT_ACCEPTED, SMTP_RCPT_DONE };

struct smtp_rcpt {
    const char *addr;
    struct smtp_rcpt *next;
    enum smtp_rcpt_state state;
    bool sent;                   /* internal: RCPT was written for it */
    struct smtp_outcome outcome;
};

/* Details of the connection a transaction used; filled when it completes. */
struct smtp_conn_info {
    char mx_host[256];
    char mx_addr[64];
    uint16_t mx_port;
    char source_addr[64];
    char tls_version[16];
    char tls_cipher[64];
    bool tls_verified;
    unsigned long conn_id;
};

struct smtp_txn {
    const char *mail_from;
    struct smtp_rcpt *rcpts;     /* linked list, at least one */
    const uint8_t *body;         /* RFC 5322 message, any line endings */
    size_t body_len;
    bool body_8bit;              /* from smtp_msg_scan */
    struct smtp_conn_info conn;  /* out */
};

#define SMTP_STATES(X) \
    X(INIT, 0) \
    X(CONNECT, connect_ms) \
    X(GREETING, greeting_ms) \
    X(EHLO, ehlo_ms) \
    X(HELO, ehlo_ms) \
    X(STARTTLS, starttls_ms) \
    X(TLS, starttls_ms) \
    X(AUTH, auth_ms) \
    X(READY, idle_ms) \
    X(RSET, rset_ms) \
    X(MAIL, mail_ms) \
    X(RCPT, rcpt_ms) \
    X(DATA, data_ms) \
    X(BODY, data_block_ms) \
    X(END, end_ms) \
    X(BDAT, end_ms) \
    X(QUIT, quit_ms) \
    X(CLOSING, 0)

enum smtp_state {
#define X(name, tmo) SMTP_S_##name,
    SMTP_STATES(X)
#undef X
};
const char *smtp_state_to_text(enum smtp_state s);

struct smtp_session;

struct smtp_session_ops {
    /* The session can take a transaction (after the handshake, and after each one). */
    void (*on_ready)(struct smtp_session *s);
    /* Every recipient of txn now has state DONE. The session is READY again, unless it
     * failed (then on_closed follows). */
    void (*on_txn_done)(struct smtp_session *s, struct smtp_txn *txn);
    /* The socket is closed and the session can be reused or freed. s->failure tells why it
     * ended when it did not end with a clean QUIT (failure.code/transport set). */
    void (*on_closed)(struct smtp_session *s);
};

struct smtp_session {
    enum smtp_state state;
    const struct smtp_session_config *cfg;
    const struct smtp_session_ops *ops;
    void *owner;
    struct ring *ring;
    struct ring_sock sock;
    struct ring_timer timer;
    struct smtp_reply_parser parser;
    struct smtp_caps caps;
    struct tls_conn *tls;
    enum tls_policy tls_policy;
    bool tls_active, tls_failed;
    bool esmtp, needs_rset, pipelined, use_bdat, closing, failed, quit_requested, mail_failed;
    bool txn_written;            /* pipelined batch already queued */
    struct ring_defer local_defer;
    unsigned auth_step;
    unsigned long id;
    struct buf out;              /* plaintext waiting to be sent */
    struct buf wire;             /* bytes handed to the kernel */
    struct smtp_txn *txn;
    struct smtp_rcpt *rcpt_cursor;
    unsigned accepted, txns_done;
    struct smtp_stuffer stuffer;
    size_t body_off, bdat_total, bdat_sent;
    unsigned bdat_chunks, bdat_acks;  /* BDAT commands written / answered */
    bool body_finished, data_discard;
    struct smtp_outcome failure; /* why the session ended, when it failed */
    struct smtp_conn_info info;
};

void smtp_session_init(struct smtp_session *s, struct ring *ring,
                       const struct smtp_session_config *cfg,
                       const struct smtp_session_ops *ops, void *owner);
/* Connects and runs the handshake. mx_host is used for SNI and logs. tls: DISABLED never
 * tries STARTTLS; OPPORTUNISTIC tries it and carries on in plaintext when it is not offered
 * or refused (a failed handshake ends the session with a TLS failure: the caller may retry
 * without TLS); REQUIRED and VERIFY end the session unless TLS (and, for VERIFY, the
 * certificate) succeed. Returns 0, or -errno when the socket could not even be created
 * (no callbacks follow). */
int smtp_session_start(struct smtp_session *s, const char *mx_host,
                       const struct sockaddr *dst, socklen_t dst_len,
                       const struct sockaddr *src, socklen_t src_len,
                       enum tls_policy tls);
/* Starts a transaction; only in state READY. Returns 0 or -EBUSY. */
int smtp_session_submit(struct smtp_session *s, struct smtp_txn *txn);
/* Ends politely (QUIT) when idle, or as soon as the current transaction is done. */
void smtp_session_quit(struct smtp_session *s);
/* Closes now; a running transaction fails with a local temporary error. */
void smtp_session_abort(struct smtp_session *s, const char *why);
/* Frees buffers; only after on_closed (or when start failed). */
void smtp_session_fini(struct smtp_session *s);

static inline bool smtp_session_ready(const struct smtp_session *s)
{
    return s->state == SMTP_S_READY && !s->closing;
}

#endif
