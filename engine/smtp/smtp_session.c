/* engine/smtp/smtp_session.c — the SMTP client state machine. session__enter() is the only
 * writer of s->state: it logs the transition, arms the state's timeout and sends what the
 * state sends. session__on_reply() decides the next state; the ring callback only moves bytes
 * (through TLS when active) into the reply parser. Modelled on OpenSMTPD's mta_session.c. */
#include "engine/smtp/smtp_session.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/base64.h"
#include "engine/util/log.h"

static atomic_ulong session__next_id = 1;

static const char *const session__state_names[] = {
#define X(name, tmo) #name,
    SMTP_STATES(X)
#undef X
};

const char *smtp_state_to_text(enum smtp_state s) { return session__state_names[s]; }

static unsigned session__timeout_ms(const struct smtp_session *s, enum smtp_state st)
{
    const struct smtp_timeouts *t = &s->cfg->timeouts;
    (void)t;
    switch (st) {
#define X(name, tmo) case SMTP_S_##name: return session__tmo_##tmo(t);
#define session__tmo_0(t) 0u
#define session__tmo_connect_ms(t) (t)->connect_ms
#define session__tmo_greeting_ms(t) (t)->greeting_ms
#define session__tmo_ehlo_ms(t) (t)->ehlo_ms
#define session__tmo_starttls_ms(t) (t)->starttls_ms
#define session__tmo_auth_ms(t) (t)->auth_ms
#define session__tmo_idle_ms(t) (t)->idle_ms
#define session__tmo_rset_ms(t) (t)->rset_ms
#define session__tmo_mail_ms(t) (t)->mail_ms
#define session__tmo_rcpt_ms(t) (t)->rcpt_ms
#define session__tmo_data_ms(t) (t)->data_ms
#define session__tmo_data_block_ms(t) (t)->data_block_ms
#define session__tmo_end_ms(t) (t)->end_ms
#define session__tmo_quit_ms(t) (t)->quit_ms
        SMTP_STATES(X)
#undef X
    }
    return 0;
}

void smtp_timeouts_defaults(struct smtp_timeouts *t)
{
    *t = (struct smtp_timeouts){
        .connect_ms = 30000, .greeting_ms = 300000, .ehlo_ms = 300000,
        .starttls_ms = 300000, .auth_ms = 300000, .mail_ms = 300000, .rcpt_ms = 300000,
        .data_ms = 120000, .data_block_ms = 180000, .end_ms = 600000, .rset_ms = 120000,
        .quit_ms = 30000, .idle_ms = 5000,
    };
}

void smtp_timeouts_scale(struct smtp_timeouts *t, double f)
{
    unsigned *v = (unsigned *)t;
    for (size_t i = 0; i < sizeof *t / sizeof(unsigned); i++) {
        double x = v[i] * f;
        v[i] = x < 1 ? 1 : x > 4e9 ? 4000000000u : (unsigned)x;
    }
}

void smtp_session_config_defaults(struct smtp_session_config *c)
{
    memset(c, 0, sizeof *c);
    c->ehlo_name = "localhost";
    smtp_timeouts_defaults(&c->timeouts);
    c->reply_limits.max_line_bytes = 2048;
    c->reply_limits.max_lines = 128;
    c->body_chunk_bytes = 256 * 1024;
    c->use_chunking = true;
    c->use_pipelining = true;
}

static enum fail_phase session__phase(enum smtp_state st)
{
    switch (st) {
    case SMTP_S_INIT:
    case SMTP_S_CONNECT: return FAIL_PHASE_CONNECT;
    case SMTP_S_GREETING: return FAIL_PHASE_GREETING;
    case SMTP_S_EHLO: return FAIL_PHASE_EHLO;
    case SMTP_S_HELO: return FAIL_PHASE_HELO;
    case SMTP_S_STARTTLS: return FAIL_PHASE_STARTTLS;
    case SMTP_S_TLS: return FAIL_PHASE_TLS;
    case SMTP_S_AUTH: return FAIL_PHASE_AUTH;
    case SMTP_S_READY:
    case SMTP_S_QUIT:
    case SMTP_S_CLOSING: return FAIL_PHASE_QUIT;
    case SMTP_S_RSET: return FAIL_PHASE_RSET;
    case SMTP_S_MAIL: return FAIL_PHASE_MAIL;
    case SMTP_S_RCPT: return FAIL_PHASE_RCPT;
    case SMTP_S_DATA: return FAIL_PHASE_DATA;
    case SMTP_S_BODY:
    case SMTP_S_END: return FAIL_PHASE_BODY;
    case SMTP_S_BDAT: return FAIL_PHASE_BDAT;
    }
    assert(!"unknown state");
    return FAIL_PHASE_LOCAL;
}

/* ---------------------------------------------------------------- outcomes */

static void outcome__from_reply(struct smtp_outcome *o, enum fail_phase phase,
                                const struct smtp_reply *r)
{
    o->ok = r->code >= 200 && r->code < 300;
    o->phase = phase;
    o->transport = FAIL_T_NONE;
    o->code = r->code;
    o->enh_class = r->enh_class;
    o->enh_subject = r->enh_subject;
    o->enh_detail = r->enh_detail;
    snprintf(o->enhanced, sizeof o->enhanced, "%s", r->enhanced);
    size_t n = r->text_len < sizeof o->text - 1 ? r->text_len : sizeof o->text - 1;
    memcpy(o->text, r->text, n); /* long replies are truncated to the outcome's size */
    o->text[n] = '\0';
}

static void outcome__local(struct smtp_outcome *o, enum fail_phase phase, enum fail_transport t,
                           const char *enhanced, const char *text)
{
    memset(o, 0, sizeof *o);
    o->phase = phase;
    o->transport = t;
    snprintf(o->enhanced, sizeof o->enhanced, "%s", enhanced ? enhanced : "");
    if (enhanced)
        sscanf(enhanced, "%d.%d.%d", &o->enh_class, &o->enh_subject, &o->enh_detail);
    snprintf(o->text, sizeof o->text, "%s", text);
}

/* ---------------------------------------------------------------- output */

static void session__trace_out(struct smtp_session *s, const char *line, size_t len)
{
    if (LOG_TRACE > log_current_level)
        return;
    if (len >= 2 && line[len - 2] == '\r')
        len -= 2;
    log_trace("[c%lu] > %.*s", s->id, (int)len, line);
}

static void session__fail(struct smtp_session *s, enum fail_transport t, const char *text);

static void session__flush(struct smtp_session *s)
{
    if (s->closing || ring_sock_sending(&s->sock))
        return;
    if (s->tls && s->tls_active && s->out.len) {
        if (tls_conn_write(s->tls, s->out.data, s->out.len) != 0) {
            session__fail(s, FAIL_T_TLS, tls_conn_error(s->tls));
            return;
        }
        buf_clear(&s->out);
    }
    buf_clear(&s->wire);
    if (s->tls) {
        size_t n = tls_conn_out_pending(s->tls);
        if (n) {
            if (buf_reserve(&s->wire, n) != 0) {
                session__fail(s, FAIL_T_LOCAL_TEMP, "out of buffer space");
                return;
            }
            s->wire.len = tls_conn_out_take(s->tls, s->wire.data, n);
        }
    } else if (s->out.len) {
        struct buf tmp = s->wire;
        s->wire = s->out;
        s->out = tmp;
    }
    if (s->wire.len) {
        int rc = ring_sock_send(&s->sock, s->wire.data, s->wire.len);
        if (rc != 0)
            session__fail(s, FAIL_T_RESET, "send failed");
    }
}

/* Appends one command line (CRLF added) to the output. */
static int session__cmd(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int session__cmd(struct smtp_session *s, const char *fmt, ...)
{
    char line[1100];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 2)
        return -EINVAL;
    if (strncmp(line, "AUTH", 4) == 0 || s->state == SMTP_S_AUTH)
        session__trace_out(s, "AUTH ****", 9);
    else
        session__trace_out(s, line, (size_t)n);
    line[n++] = '\r';
    line[n++] = '\n';
    return buf_append(&s->out, line, (size_t)n);
}

/* ---------------------------------------------------------------- transaction helpers */

static struct smtp_rcpt *session__next_sent(struct smtp_rcpt *r)
{
    while (r && !r->sent)
        r = r->next;
    return r;
}

/* Gives every recipient not yet DONE (only ACCEPTED ones when accepted_only) outcome o. */
static void txn__settle(struct smtp_txn *txn, const struct smtp_outcome *o, bool accepted_only)
{
    for (struct smtp_rcpt *r = txn->rcpts; r; r = r->next) {
        if (r->state == SMTP_RCPT_DONE)
            continue;
        if (accepted_only && r->state != SMTP_RCPT_ACCEPTED)
            continue;
        r->outcome = *o;
        r->state = SMTP_RCPT_DONE;
    }
}

static bool txn__all_done(const struct smtp_txn *txn)
{
    for (const struct smtp_rcpt *r = txn->rcpts; r; r = r->next)
        if (r->state != SMTP_RCPT_DONE)
            return false;
    return true;
}

static void session__enter(struct smtp_session *s, enum smtp_state next);

/* The transaction is over (every recipient DONE). Hands it back, then goes on unless the
 * session failed. */
static void session__txn_complete(struct smtp_session *s)
{
    struct smtp_txn *txn = s->txn;
    if (!txn)
        return;
    struct smtp_outcome leftover;
    outcome__local(&leftover, session__phase(s->state), FAIL_T_LOCAL_TEMP, "4.3.0",
                   "transaction ended without a final reply");
    txn__settle(txn, &leftover, false);
    txn->conn = s->info;
    s->txn = NULL;
    s->txns_done++;
    s->ops->on_txn_done(s, txn);
    if (s->closing || s->failed)
        return;
    session__enter(s, s->quit_requested ? SMTP_S_QUIT : SMTP_S_READY);
}

/* ---------------------------------------------------------------- closing and failure */

static void session__close(struct smtp_session *s)
{
    if (s->closing)
        return;
    s->closing = true;
    ring_timer_cancel(s->ring, &s->timer);
    log_debug("[c%lu] %s -> CLOSING", s->id, smtp_state_to_text(s->state));
    s->state = SMTP_S_CLOSING;
    ring_sock_close(&s->sock);
}

static void session__fail_with(struct smtp_session *s, const struct smtp_outcome *o)
{
    if (s->closing)
        return;
    s->failed = true;
    s->failure = *o;
    log_debug("[c%lu] failed in %s: %s", s->id, smtp_state_to_text(s->state), o->text);
    if (s->txn) {
        txn__settle(s->txn, o, false);
        session__txn_complete(s);
    }
    session__close(s);
}

static void session__fail(struct smtp_session *s, enum fail_transport t, const char *text)
{
    struct smtp_outcome o;
    char buf[SMTP_OUTCOME_TEXT_MAX];
    snprintf(buf, sizeof buf, "%s", text);
    outcome__local(&o, session__phase(s->state), t, NULL, buf);
    session__fail_with(s, &o);
}

static void session__fail_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    struct smtp_outcome o;
    outcome__from_reply(&o, session__phase(s->state), r);
    o.ok = false;
    session__fail_with(s, &o);
}

/* ---------------------------------------------------------------- what states send */

static void session__send_mail(struct smtp_session *s)
{
    struct smtp_txn *txn = s->txn;
    bool utf8 = smtp_addr_needs_utf8(txn->mail_from);
    for (struct smtp_rcpt *r = txn->rcpts; r && !utf8; r = r->next)
        utf8 = r->state == SMTP_RCPT_PENDING && smtp_addr_needs_utf8(r->addr);
    char params[96];
    int n = 0;
    params[0] = '\0';
    if (s->caps.size)
        n += snprintf(params + n, sizeof params - (size_t)n, " SIZE=%zu", txn->body_len);
    if (txn->body_8bit && s->caps.eightbitmime)
        n += snprintf(params + n, sizeof params - (size_t)n, " BODY=8BITMIME");
    if (utf8 && s->caps.smtputf8)
        snprintf(params + n, sizeof params - (size_t)n, " SMTPUTF8");
    session__cmd(s, "MAIL FROM:<%s>%s", txn->mail_from, params);
}

static void session__send_rcpt(struct smtp_session *s, struct smtp_rcpt *r)
{
    r->sent = true;
    session__cmd(s, "RCPT TO:<%s>", r->addr);
}

/* Writes one BDAT chunk (header + normalised body bytes) to the output. */
static int session__send_bdat_chunk(struct smtp_session *s)
{
    struct smtp_txn *txn = s->txn;
    size_t chunk = s->cfg->body_chunk_bytes;
    size_t hdr_pos = s->out.len;
    const size_t hdr_room = 40;
    if (buf_reserve(&s->out, hdr_room + chunk + 8) != 0)
        return -ENOBUFS;
    uint8_t *data = s->out.data + hdr_pos + hdr_room;
    size_t n = 0;
    while (n < chunk && s->body_off < txn->body_len) {
        size_t used;
        n += smtp_stuff(&s->stuffer, txn->body + s->body_off, txn->body_len - s->body_off, &used,
                        data + n, chunk - n);
        s->body_off += used;
        if (used == 0)
            break;
    }
    if (s->body_off == txn->body_len && chunk + 8 - n >= 8) {
        n += smtp_stuff_finish(&s->stuffer, data + n, chunk + 8 - n);
        s->body_finished = true;
    }
    char hdr[48];
    int hl = snprintf(hdr, sizeof hdr, "BDAT %zu%s\r\n", n, s->body_finished ? " LAST" : "");
    session__trace_out(s, hdr, (size_t)hl);
    memmove(s->out.data + hdr_pos + (size_t)hl, data, n);
    memcpy(s->out.data + hdr_pos, hdr, (size_t)hl);
    s->out.len = hdr_pos + (size_t)hl + n;
    s->bdat_sent += n;
    s->bdat_chunks++;
    return 0;
}

/* PIPELINING: MAIL, every RCPT and DATA (or the first BDAT chunk) in one write. */
static int session__write_txn_batch(struct smtp_session *s)
{
    session__send_mail(s);
    for (struct smtp_rcpt *r = s->txn->rcpts; r; r = r->next)
        if (r->state == SMTP_RCPT_PENDING)
            session__send_rcpt(s, r);
    s->txn_written = true;
    if (s->use_bdat)
        return session__send_bdat_chunk(s);
    session__cmd(s, "DATA");
    return 0;
}

/* Queues the next piece of the DATA body; returns true when the terminating dot is queued. */
static bool session__pump_body(struct smtp_session *s)
{
    struct smtp_txn *txn = s->txn;
    size_t chunk = s->cfg->body_chunk_bytes;
    if (buf_reserve(&s->out, chunk + 8) != 0) {
        session__fail(s, FAIL_T_LOCAL_TEMP, "out of buffer space");
        return false;
    }
    size_t n = 0;
    uint8_t *out = s->out.data + s->out.len;
    while (n < chunk && s->body_off < txn->body_len) {
        size_t used;
        n += smtp_stuff(&s->stuffer, txn->body + s->body_off, txn->body_len - s->body_off, &used,
                        out + n, chunk - n);
        s->body_off += used;
        if (used == 0)
            break;
    }
    if (s->body_off == txn->body_len) {
        n += smtp_stuff_finish(&s->stuffer, out + n, chunk + 8 - n);
        s->body_finished = true;
    }
    s->out.len += n;
    return s->body_finished;
}

/* The only writer of s->state. */
static void session__enter(struct smtp_session *s, enum smtp_state next)
{
    if (s->closing)
        return;
    if (s->state != next)
        log_debug("[c%lu] %s -> %s", s->id, smtp_state_to_text(s->state), smtp_state_to_text(next));
    s->state = next;
    unsigned tmo = session__timeout_ms(s, next);
    if (tmo)
        ring_timer_arm(s->ring, &s->timer, tmo);
    else
        ring_timer_cancel(s->ring, &s->timer);

    switch (next) {
    case SMTP_S_CONNECT:
    case SMTP_S_GREETING:
    case SMTP_S_END:
        break;
    case SMTP_S_EHLO:
        session__cmd(s, "EHLO %s", s->cfg->ehlo_name);
        break;
    case SMTP_S_HELO:
        session__cmd(s, "HELO %s", s->cfg->ehlo_name);
        break;
    case SMTP_S_STARTTLS:
        session__cmd(s, "STARTTLS");
        break;
    case SMTP_S_TLS: {
        bool verify = s->tls_policy == TLS_POLICY_VERIFY;
        s->tls = tls_conn_create(s->cfg->tls_ctx, s->info.mx_host, verify);
        if (!s->tls) {
            session__fail(s, FAIL_T_TLS, "cannot create TLS connection");
            return;
        }
        if (tls_conn_handshake(s->tls) == TLS_STEP_ERROR) {
            s->tls_failed = true;
            session__fail(s, FAIL_T_TLS, tls_conn_error(s->tls));
            return;
        }
        break;
    }
    case SMTP_S_AUTH: {
        const char *u = s->cfg->auth_user, *p = s->cfg->auth_pass;
        if (s->caps.auth & SMTP_AUTH_PLAIN) {
            uint8_t raw[600];
            size_t ul = strlen(u), pl = strlen(p);
            if (ul + pl + 2 > sizeof raw) {
                session__fail(s, FAIL_T_LOCAL_PERM, "AUTH credentials too long");
                return;
            }
            raw[0] = 0;
            memcpy(raw + 1, u, ul);
            raw[1 + ul] = 0;
            memcpy(raw + 2 + ul, p, pl);
            char b64[820];
            base64_encode(raw, ul + pl + 2, b64);
            s->auth_step = 2;
            session__cmd(s, "AUTH PLAIN %s", b64);
        } else {
            s->auth_step = 0;
            session__cmd(s, "AUTH LOGIN");
        }
        break;
    }
    case SMTP_S_READY:
        s->mail_failed = false;
        s->data_discard = false;
        break;
    case SMTP_S_RSET:
        session__cmd(s, "RSET");
        if (s->txn && s->pipelined && session__write_txn_batch(s) != 0) {
            session__fail(s, FAIL_T_LOCAL_TEMP, "out of buffer space");
            return;
        }
        break;
    case SMTP_S_MAIL:
        if (!s->pipelined) {
            session__send_mail(s);
        } else if (!s->txn_written && session__write_txn_batch(s) != 0) {
            session__fail(s, FAIL_T_LOCAL_TEMP, "out of buffer space");
            return;
        }
        break;
    case SMTP_S_RCPT:
        if (!s->pipelined)
            session__send_rcpt(s, s->rcpt_cursor);
        break;
    case SMTP_S_DATA:
        if (!s->pipelined)
            session__cmd(s, "DATA");
        break;
    case SMTP_S_BDAT:
        /* next chunk only once every chunk sent so far is answered: a reply is then
         * unambiguously the answer to the chunk we just wrote */
        if (s->bdat_chunks == s->bdat_acks) {
            if (!s->body_finished && session__send_bdat_chunk(s) != 0) {
                session__fail(s, FAIL_T_LOCAL_TEMP, "out of buffer space");
                return;
            }
        }
        break;
    case SMTP_S_BODY:
        log_trace("[c%lu] > <message body, %zu bytes>", s->id, s->txn->body_len);
        if (session__pump_body(s)) {
            session__flush(s);
            session__enter(s, SMTP_S_END);
            return;
        }
        break;
    case SMTP_S_QUIT:
        session__cmd(s, "QUIT");
        break;
    case SMTP_S_INIT:
    case SMTP_S_CLOSING:
    default:
        assert(!"unexpected state to enter");
        break;
    }
    session__flush(s);
    if (next == SMTP_S_READY && !s->closing)
        s->ops->on_ready(s);
}

/* ---------------------------------------------------------------- replies */

static void session__after_ehlo(struct smtp_session *s)
{
    bool want_tls = s->tls_policy != TLS_POLICY_DISABLED && s->cfg->tls_ctx;
    bool need_tls = s->tls_policy == TLS_POLICY_REQUIRED || s->tls_policy == TLS_POLICY_VERIFY;
    if (!s->tls_active && want_tls && s->caps.starttls) {
        session__enter(s, SMTP_S_STARTTLS);
        return;
    }
    if (!s->tls_active && need_tls) {
        struct smtp_outcome o;
        outcome__local(&o, FAIL_PHASE_STARTTLS, FAIL_T_TLS, "4.7.4",
                       s->cfg->tls_ctx ? "TLS is required but the server does not offer STARTTLS"
                                       : "TLS is required but no TLS context is configured");
        session__fail_with(s, &o);
        return;
    }
    if (s->cfg->auth_user && s->cfg->auth_pass) {
        /* credentials never go over plaintext, and a smarthost that wants them gets them */
        struct smtp_outcome o;
        if (!s->tls_active) {
            outcome__local(&o, FAIL_PHASE_AUTH, FAIL_T_TLS, "4.7.4",
                           "AUTH is configured for this route but TLS is not active: credentials are never sent in plaintext");
            session__fail_with(s, &o);
            return;
        }
        if (!(s->caps.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
            outcome__local(&o, FAIL_PHASE_AUTH, FAIL_T_LOCAL_TEMP, "4.7.0",
                           "AUTH is configured for this route but the server offers neither PLAIN nor LOGIN");
            session__fail_with(s, &o);
            return;
        }
        session__enter(s, SMTP_S_AUTH);
        return;
    }
    session__enter(s, SMTP_S_READY);
}

/* Goes on after the RCPT replies: DATA/BDAT, or end the transaction if nobody was taken. */
static void session__after_rcpts(struct smtp_session *s)
{
    if (s->pipelined) {
        session__enter(s, s->use_bdat ? SMTP_S_BDAT : SMTP_S_DATA);
        return;
    }
    if (s->accepted == 0 || s->mail_failed) {
        s->needs_rset = true;
        session__txn_complete(s);
        return;
    }
    session__enter(s, s->use_bdat ? SMTP_S_BDAT : SMTP_S_DATA);
}

static void session__on_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    bool ok = r->code >= 200 && r->code < 300;
    struct smtp_outcome o;

    /* 421: the server is closing the channel, whatever we were doing. */
    if (r->code == 421 && s->state != SMTP_S_QUIT) {
        if (s->state == SMTP_S_READY) {
            session__close(s);
            return;
        }
        session__fail_reply(s, r);
        return;
    }

    switch (s->state) {
    case SMTP_S_GREETING:
        if (!ok) {
            session__fail_reply(s, r);
            return;
        }
        session__enter(s, SMTP_S_EHLO);
        return;
    case SMTP_S_EHLO:
        if (ok) {
            s->esmtp = true;
            smtp_caps_parse(&s->caps, r->text, r->text_len);
            session__after_ehlo(s);
        } else if (r->code >= 500 && !s->tls_active) {
            session__enter(s, SMTP_S_HELO);
        } else {
            session__fail_reply(s, r);
        }
        return;
    case SMTP_S_HELO:
        if (!ok) {
            session__fail_reply(s, r);
            return;
        }
        memset(&s->caps, 0, sizeof s->caps);
        session__after_ehlo(s);
        return;
    case SMTP_S_STARTTLS:
        if (r->code == 220) {
            session__enter(s, SMTP_S_TLS);
            return;
        }
        if (s->tls_policy == TLS_POLICY_OPPORTUNISTIC) {
            log_debug("[c%lu] STARTTLS refused (%d), continuing in plaintext", s->id, r->code);
            session__enter(s, SMTP_S_READY);
            return;
        }
        session__fail_reply(s, r);
        return;
    case SMTP_S_AUTH:
        if (r->code == 235) {
            session__enter(s, SMTP_S_READY);
            return;
        }
        if (r->code == 334 && s->auth_step < 2) {
            const char *v = s->auth_step == 0 ? s->cfg->auth_user : s->cfg->auth_pass;
            char b64[820];
            size_t vl = strlen(v);
            if (vl > 600) {
                session__fail(s, FAIL_T_LOCAL_PERM, "AUTH credentials too long");
                return;
            }
            base64_encode((const uint8_t *)v, vl, b64);
            s->auth_step++;
            session__cmd(s, "%s", b64);
            ring_timer_arm(s->ring, &s->timer, s->cfg->timeouts.auth_ms);
            session__flush(s);
            return;
        }
        session__fail_reply(s, r);
        return;
    case SMTP_S_RSET:
        if (!ok) {
            session__fail_reply(s, r);
            return;
        }
        if (s->txn) {
            s->needs_rset = false;
            session__enter(s, SMTP_S_MAIL); /* pipelined: MAIL etc. went with the RSET */
        } else {
            session__enter(s, SMTP_S_READY);
        }
        return;
    case SMTP_S_MAIL:
        s->rcpt_cursor = session__next_sent(s->txn->rcpts);
        if (!ok) {
            outcome__from_reply(&o, FAIL_PHASE_MAIL, r);
            txn__settle(s->txn, &o, false);
            s->mail_failed = true;
            s->needs_rset = true;
            if (!s->pipelined) {
                session__txn_complete(s);
                return;
            }
        }
        if (!s->pipelined) {
            /* the first not-yet-settled recipient gets the first RCPT */
            struct smtp_rcpt *first = s->txn->rcpts;
            while (first && first->state != SMTP_RCPT_PENDING)
                first = first->next;
            s->rcpt_cursor = first;
        }
        if (!s->rcpt_cursor) {
            session__after_rcpts(s);
            return;
        }
        session__enter(s, SMTP_S_RCPT);
        return;
    case SMTP_S_RCPT: {
        struct smtp_rcpt *rc = s->rcpt_cursor;
        if (rc && rc->state == SMTP_RCPT_PENDING) {
            if (ok) {
                rc->state = SMTP_RCPT_ACCEPTED;
                s->accepted++;
            } else {
                outcome__from_reply(&rc->outcome, FAIL_PHASE_RCPT, r);
                rc->state = SMTP_RCPT_DONE;
            }
        }
        struct smtp_rcpt *nx = rc ? rc->next : NULL;
        if (s->pipelined) {
            nx = session__next_sent(nx);
        } else {
            while (nx && nx->state != SMTP_RCPT_PENDING)
                nx = nx->next;
        }
        s->rcpt_cursor = nx;
        if (nx)
            session__enter(s, SMTP_S_RCPT);
        else
            session__after_rcpts(s);
        return;
    }
    case SMTP_S_DATA:
        if (r->code == 354) {
            if (s->accepted > 0 && !s->mail_failed) {
                session__enter(s, SMTP_S_BODY);
            } else {
                /* broken server took DATA with nobody to deliver to: end it empty */
                s->data_discard = true;
                session__cmd(s, ".");
                session__enter(s, SMTP_S_END);
            }
            return;
        }
        outcome__from_reply(&o, FAIL_PHASE_DATA, r);
        o.ok = false;
        txn__settle(s->txn, &o, true);
        s->needs_rset = true;
        session__txn_complete(s);
        return;
    case SMTP_S_BODY:
    case SMTP_S_END: {
        bool early = s->state == SMTP_S_BODY;
        if (!s->data_discard) {
            outcome__from_reply(&o, FAIL_PHASE_BODY, r);
            txn__settle(s->txn, &o, true);
        } else {
            s->needs_rset = true;
        }
        if (early) {
            /* the server answered before our end of data: the stream is out of step */
            s->failed = true;
            s->failure = o;
            session__txn_complete(s);
            session__close(s);
            return;
        }
        session__txn_complete(s);
        return;
    }
    case SMTP_S_BDAT:
        s->bdat_acks++;
        if (s->bdat_acks < s->bdat_chunks) {
            log_debug("[c%lu] BDAT reply %u of %u", s->id, s->bdat_acks, s->bdat_chunks);
            return; /* cannot happen with one chunk in flight; kept for safety */
        }
        if (!s->body_finished && ok && !s->mail_failed && s->accepted > 0) {
            session__enter(s, SMTP_S_BDAT); /* next chunk */
            return;
        }
        if (s->mail_failed || s->accepted == 0) {
            s->needs_rset = true;
        } else {
            outcome__from_reply(&o, FAIL_PHASE_BDAT, r);
            txn__settle(s->txn, &o, true);
            if (!ok)
                s->needs_rset = true;
        }
        if (!s->body_finished) {
            /* chunks remain unsent: the transaction is abandoned, RSET clears it */
            s->needs_rset = true;
        }
        session__txn_complete(s);
        return;
    case SMTP_S_QUIT:
        session__close(s);
        return;
    case SMTP_S_READY:
        /* unsolicited reply on an idle connection: drop the connection quietly */
        session__close(s);
        return;
    case SMTP_S_TLS:
    case SMTP_S_CONNECT:
    case SMTP_S_INIT:
    case SMTP_S_CLOSING:
        session__fail(s, FAIL_T_PROTOCOL, "unexpected reply");
        return;
    default:
        assert(!"unknown state");
    }
}

static void session__trace_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    if (LOG_TRACE > log_current_level)
        return;
    const char *p = r->text, *end = r->text + r->text_len;
    unsigned i = 0;
    do {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        bool last = !nl;
        if (i == 0 && r->enhanced[0])
            log_trace("[c%lu] < %d%c%s %.*s", s->id, r->code, last ? ' ' : '-', r->enhanced,
                      (int)(le - p), p);
        else
            log_trace("[c%lu] < %d%c%.*s", s->id, r->code, last ? ' ' : '-', (int)(le - p), p);
        p = nl ? nl + 1 : end;
        i++;
    } while (p < end);
}

/* Plaintext from the server: assemble replies and act on each. */
static void session__input(struct smtp_session *s, const uint8_t *data, size_t len)
{
    while (len > 0 && !s->closing) {
        ssize_t n = smtp_reply_parse(&s->parser, (const char *)data, len);
        if (n == -2)
            return;
        if (n < 0) {
            char why[200];
            snprintf(why, sizeof why, "malformed reply: %s", s->parser.error);
            session__fail(s, FAIL_T_PROTOCOL, why);
            return;
        }
        data += n;
        len -= (size_t)n;
        session__trace_reply(s, &s->parser.reply);
        if (s->state == SMTP_S_STARTTLS && s->parser.reply.code == 220 && len > 0) {
            /* anything after the 220 was sent before TLS: a command injection attempt */
            session__fail(s, FAIL_T_PROTOCOL, "unexpected data after STARTTLS reply");
            return;
        }
        session__on_reply(s, &s->parser.reply);
    }
}

static void session__tls_established(struct smtp_session *s)
{
    s->tls_active = true;
    snprintf(s->info.tls_version, sizeof s->info.tls_version, "%s", tls_conn_version(s->tls));
    snprintf(s->info.tls_cipher, sizeof s->info.tls_cipher, "%s", tls_conn_cipher(s->tls));
    s->info.tls_verified = tls_conn_verified(s->tls);
    log_debug("[c%lu] TLS established: %s %s%s", s->id, s->info.tls_version, s->info.tls_cipher,
              s->info.tls_verified ? " (verified)" : "");
    memset(&s->caps, 0, sizeof s->caps); /* RFC 3207 §4.2: forget what we learnt before */
    session__enter(s, SMTP_S_EHLO);
}

static void session__on_cipher(struct smtp_session *s, const uint8_t *data, size_t len)
{
    if (tls_conn_feed(s->tls, data, len) != 0) {
        session__fail(s, FAIL_T_TLS, tls_conn_error(s->tls));
        return;
    }
    if (s->state == SMTP_S_TLS) {
        enum tls_step st = tls_conn_handshake(s->tls);
        if (st == TLS_STEP_ERROR) {
            s->tls_failed = true;
            char why[SMTP_OUTCOME_TEXT_MAX];
            snprintf(why, sizeof why, "TLS handshake failed: %s", tls_conn_error(s->tls));
            session__fail(s, FAIL_T_TLS, why);
            return;
        }
        session__flush(s);
        if (st == TLS_STEP_AGAIN)
            return;
        session__tls_established(s);
        if (s->closing)
            return;
    }
    uint8_t plain[16384];
    for (;;) {
        ssize_t n = tls_conn_read(s->tls, plain, sizeof plain);
        if (n == 0)
            break;
        if (n < 0) {
            if (s->state == SMTP_S_QUIT || s->state == SMTP_S_READY)
                session__close(s);
            else
                session__fail(s, FAIL_T_RESET, tls_conn_error(s->tls));
            return;
        }
        session__input(s, plain, (size_t)n);
        if (s->closing)
            return;
    }
    session__flush(s); /* TLS may owe the peer records (key updates, alerts) */
}

static enum fail_transport session__errno_kind(int err)
{
    switch (-err) {
    case ECONNREFUSED: return FAIL_T_REFUSED;
    case ETIMEDOUT: return FAIL_T_TIMEOUT;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ENETDOWN:
    case EHOSTDOWN: return FAIL_T_UNREACHABLE;
    default: return FAIL_T_RESET;
    }
}

static void session__on_sock(struct ring_sock *sock, enum ring_sock_event ev,
                             const uint8_t *data, size_t len, int err)
{
    struct smtp_session *s = (struct smtp_session *)((char *)sock - offsetof(struct smtp_session, sock));
    char why[256];
    switch (ev) {
    case RING_SOCK_CONNECTED: {
        struct sockaddr_storage la;
        socklen_t ll;
        if (ring_sock_local_addr(sock, &la, &ll) == 0)
            ring_addr_to_text((struct sockaddr *)&la, s->info.source_addr, sizeof s->info.source_addr);
        log_debug("[c%lu] connected to %s[%s]:%u from %s", s->id, s->info.mx_host, s->info.mx_addr,
                  s->info.mx_port, s->info.source_addr);
        session__enter(s, SMTP_S_GREETING);
        return;
    }
    case RING_SOCK_DATA:
        if (s->tls)
            session__on_cipher(s, data, len);
        else
            session__input(s, data, len);
        return;
    case RING_SOCK_WRITTEN:
        buf_clear(&s->wire);
        if (s->state == SMTP_S_BODY && !s->body_finished) {
            ring_timer_arm(s->ring, &s->timer, s->cfg->timeouts.data_block_ms);
            if (session__pump_body(s)) {
                session__flush(s);
                session__enter(s, SMTP_S_END);
                return;
            }
        }
        session__flush(s);
        return;
    case RING_SOCK_EOF:
        if (s->state == SMTP_S_QUIT || s->state == SMTP_S_READY) {
            session__close(s);
            return;
        }
        snprintf(why, sizeof why, "connection closed by server in state %s",
                 smtp_state_to_text(s->state));
        if (s->state == SMTP_S_TLS) {
            /* a peer that hangs up mid-handshake has broken TLS, as far as we can tell */
            s->tls_failed = true;
            session__fail(s, FAIL_T_TLS, "TLS handshake failed: connection closed by server");
            return;
        }
        session__fail(s, FAIL_T_RESET, why);
        return;
    case RING_SOCK_ERROR:
        if (s->state == SMTP_S_QUIT) {
            session__close(s);
            return;
        }
        snprintf(why, sizeof why, "%s%s", s->state == SMTP_S_CONNECT ? "connect: "
                                          : s->state == SMTP_S_TLS   ? "TLS handshake failed: "
                                                                     : "",
                 strerrordesc_np(-err) ? strerrordesc_np(-err) : "socket error");
        if (s->state == SMTP_S_TLS) {
            s->tls_failed = true;
            session__fail(s, FAIL_T_TLS, why);
            return;
        }
        session__fail(s, s->state == SMTP_S_CONNECT ? session__errno_kind(err) : FAIL_T_RESET, why);
        return;
    case RING_SOCK_CLOSED:
        s->ops->on_closed(s);
        return;
    }
}

static void session__on_timer(struct ring_timer *t)
{
    struct smtp_session *s = (struct smtp_session *)((char *)t - offsetof(struct smtp_session, timer));
    if (s->state == SMTP_S_READY) {
        smtp_session_quit(s);
        return;
    }
    if (s->state == SMTP_S_QUIT) {
        session__close(s);
        return;
    }
    char why[128];
    snprintf(why, sizeof why, "timeout in state %s", smtp_state_to_text(s->state));
    if (s->state == SMTP_S_GREETING)
        snprintf(why, sizeof why, "timeout waiting for greeting");
    session__fail(s, FAIL_T_TIMEOUT, why);
}

/* ---------------------------------------------------------------- public */

void smtp_session_init(struct smtp_session *s, struct ring *ring,
                       const struct smtp_session_config *cfg,
                       const struct smtp_session_ops *ops, void *owner)
{
    memset(s, 0, sizeof *s);
    s->ring = ring;
    s->cfg = cfg;
    s->ops = ops;
    s->owner = owner;
    s->state = SMTP_S_INIT;
    s->timer.on_fire = session__on_timer;
    s->sock.on_event = session__on_sock;
    s->sock.fd = -1;
    smtp_reply_parser_init(&s->parser, &cfg->reply_limits);
    buf_init(&s->out, cfg->body_chunk_bytes + 64 * 1024);
    buf_init(&s->wire, cfg->body_chunk_bytes + 128 * 1024);
}

int smtp_session_start(struct smtp_session *s, const char *mx_host, const struct sockaddr *dst,
                       socklen_t dst_len, const struct sockaddr *src, socklen_t src_len,
                       enum tls_policy tls)
{
    s->id = atomic_fetch_add(&session__next_id, 1);
    s->tls_policy = tls;
    snprintf(s->info.mx_host, sizeof s->info.mx_host, "%s", mx_host);
    ring_addr_to_text(dst, s->info.mx_addr, sizeof s->info.mx_addr);
    s->info.mx_port = ntohs(dst->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)dst)->sin6_port
                                                      : ((const struct sockaddr_in *)dst)->sin_port);
    s->info.conn_id = s->id;
    if (src)
        ring_addr_to_text(src, s->info.source_addr, sizeof s->info.source_addr);
    int rc = ring_sock_connect(s->ring, &s->sock, dst, dst_len, src, src_len);
    if (rc != 0)
        return rc;
    session__enter(s, SMTP_S_CONNECT);
    return 0;
}

static void session__on_local_done(struct ring_defer *d)
{
    struct smtp_session *s = (struct smtp_session *)((char *)d - offsetof(struct smtp_session, local_defer));
    if (s->closing || !s->txn)
        return;
    session__txn_complete(s);
}

int smtp_session_submit(struct smtp_session *s, struct smtp_txn *txn)
{
    if (!smtp_session_ready(s) || s->txn)
        return -EBUSY;
    s->txn = txn;
    s->accepted = 0;
    s->mail_failed = false;
    s->data_discard = false;
    s->body_off = 0;
    s->bdat_sent = 0;
    s->bdat_chunks = s->bdat_acks = 0;
    s->body_finished = false;
    s->pipelined = s->caps.pipelining && s->cfg->use_pipelining;
    s->use_bdat = s->caps.chunking && s->cfg->use_chunking;
    smtp_stuffer_init(&s->stuffer, !s->use_bdat);

    /* Refuse locally what this server cannot carry, with the RFC 3463 code saying why. */
    const char *why = NULL, *enh = NULL;
    if (txn->body_8bit && !s->caps.eightbitmime) {
        why = "message has 8-bit content but the server does not support 8BITMIME";
        enh = "5.6.3";
    } else if (smtp_addr_needs_utf8(txn->mail_from) && !s->caps.smtputf8) {
        why = "sender address needs SMTPUTF8, which the server does not support";
        enh = "5.6.7";
    } else if (s->caps.size && s->caps.size_max && txn->body_len > s->caps.size_max) {
        why = "message is larger than the server's SIZE limit";
        enh = "5.3.4";
    }
    for (struct smtp_rcpt *r = txn->rcpts; r; r = r->next) {
        r->sent = false;
        r->state = SMTP_RCPT_PENDING;
        memset(&r->outcome, 0, sizeof r->outcome);
        if (why) {
            outcome__local(&r->outcome, FAIL_PHASE_LOCAL, FAIL_T_LOCAL_PERM, enh, why);
            r->state = SMTP_RCPT_DONE;
        } else if (smtp_addr_needs_utf8(r->addr) && !s->caps.smtputf8) {
            outcome__local(&r->outcome, FAIL_PHASE_LOCAL, FAIL_T_LOCAL_PERM, "5.6.7",
                           "recipient address needs SMTPUTF8, which the server does not support");
            r->state = SMTP_RCPT_DONE;
        }
    }
    if (txn__all_done(txn)) {
        s->local_defer.fn = session__on_local_done;
        ring_defer(s->ring, &s->local_defer);
        return 0;
    }
    s->txn_written = false;
    session__enter(s, s->needs_rset ? SMTP_S_RSET : SMTP_S_MAIL);
    return 0;
}

void smtp_session_quit(struct smtp_session *s)
{
    if (s->closing)
        return;
    s->quit_requested = true;
    if (s->state == SMTP_S_READY)
        session__enter(s, SMTP_S_QUIT);
    else if (s->state == SMTP_S_INIT || s->state == SMTP_S_CONNECT)
        session__close(s);
}

void smtp_session_abort(struct smtp_session *s, const char *why)
{
    if (s->closing)
        return;
    if (s->txn)
        session__fail(s, FAIL_T_LOCAL_TEMP, why);
    else
        session__close(s);
}

void smtp_session_fini(struct smtp_session *s)
{
    if (s->ring) {
        ring_defer_cancel(s->ring, &s->local_defer);
        ring_timer_cancel(s->ring, &s->timer);
    }
    if (s->tls)
        tls_conn_destroy(s->tls);
    s->tls = NULL;
    buf_fini(&s->out);
    buf_fini(&s->wire);
}
