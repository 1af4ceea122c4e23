/* engine/tls/tls.h — TLS client over memory buffers so the ring still does all socket I/O.
 * Owns: contexts, handshakes, record encryption, verification results.
 * tls_openssl.c is the only file that includes OpenSSL headers.
 * Usage: bytes from the socket go to tls_conn_feed(); tls_conn_handshake()/tls_conn_write()
 * produce ciphertext collected with tls_conn_out_take(); tls_conn_read() yields plaintext. */
#ifndef SALVO_ENGINE_TLS_TLS_H
#define SALVO_ENGINE_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum tls_policy {
    TLS_POLICY_DISABLED,      /* never STARTTLS */
    TLS_POLICY_OPPORTUNISTIC, /* STARTTLS when offered, no verification; fall back to plain */
    TLS_POLICY_REQUIRED,      /* STARTTLS must succeed; certificate not verified */
    TLS_POLICY_VERIFY,        /* STARTTLS must succeed; chain and hostname verified */
};
const char *tls_policy_to_text(enum tls_policy p);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int tls_policy_from_text(const char *s, enum tls_policy *out);

struct tls_ctx;
struct tls_conn;

/* ca_file: PEM bundle used for TLS_POLICY_VERIFY (NULL = the system's default paths).
 * Returns 0, or -1 with *err set to a static or ctx-lifetime description. */
int tls_ctx_create(struct tls_ctx **out, const char *ca_file, const char **err);
void tls_ctx_destroy(struct tls_ctx *ctx);

/* sni: server name sent and, when verify is true, checked against the certificate. */
struct tls_conn *tls_conn_create(struct tls_ctx *ctx, const char *sni, bool verify);
void tls_conn_destroy(struct tls_conn *c);

enum tls_step { TLS_STEP_DONE, TLS_STEP_AGAIN, TLS_STEP_ERROR };

/* Ciphertext received from the peer. Returns 0 or -1. */
int tls_conn_feed(struct tls_conn *c, const uint8_t *data, size_t len);
/* Advances the handshake: DONE when established, AGAIN when it needs more input (send what
 * tls_conn_out_take() yields first), ERROR with tls_conn_error() describing why. */
enum tls_step tls_conn_handshake(struct tls_conn *c);
/* Encrypts all of data (only after DONE). Returns 0 or -1. */
int tls_conn_write(struct tls_conn *c, const uint8_t *data, size_t len);
/* Decrypted bytes: > 0 read, 0 none available now, -1 error or peer closed (see error). */
ssize_t tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t cap);
/* Sends close_notify (ciphertext to take). */
void tls_conn_shutdown(struct tls_conn *c);
/* Pending ciphertext to put on the wire. */
size_t tls_conn_out_pending(const struct tls_conn *c);
/* Moves up to cap bytes of pending ciphertext into buf; returns bytes moved. */
size_t tls_conn_out_take(struct tls_conn *c, uint8_t *buf, size_t cap);

/* Negotiated details, valid after DONE ("" before). */
const char *tls_conn_version(const struct tls_conn *c);   /* "TLSv1.3" */
const char *tls_conn_cipher(const struct tls_conn *c);    /* "TLS_AES_256_GCM_SHA384" */
/* True when the peer's chain and name verified (whether or not verification was required). */
bool tls_conn_verified(const struct tls_conn *c);
/* Why the last step failed, e.g. "certificate verify failed: unable to get local issuer
 * certificate" — valid until the next call on c. */
const char *tls_conn_error(const struct tls_conn *c);

#endif
