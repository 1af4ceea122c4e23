/* engine/tls/tls_openssl.c — the OpenSSL adapter behind tls.h: one SSL_CTX, and per connection
 * an SSL over two memory BIOs so the ring keeps doing all socket I/O.
 * Owns verification results and error texts; does not own sockets, timeouts or logging. */
#include "engine/tls/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* An empty memory BIO keeps its largest-ever buffer. Idle connections dominate memory
 * (10,000 of them), so a drained BIO bigger than this is swapped for a fresh one; refilling
 * costs one allocation per burst, as SSL_MODE_RELEASE_BUFFERS already does for records. */
#define TLS_BIO_KEEP_BYTES 4096

/* Longest DNS name (253) plus a trailing dot and the terminator. */
#define TLS_NAME_MAX_BYTES 256

#define TLS_ERR_MAX_BYTES 192

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    bool free_buffers_safe; /* see tls__free_buffers_safe() */
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio;        /* owned by ssl; ciphertext from the peer */
    BIO *wbio;        /* owned by ssl; ciphertext for the peer */
    bool has_name;    /* a host name or IP was set for the name check */
    bool established;
    bool failed;      /* sticky: every later call fails without touching OpenSSL */
    bool free_buffers_safe;
    char err[TLS_ERR_MAX_BYTES];
};

/* ---- policy names ---------------------------------------------------------------------- */

static const char *const tls__policy_names[] = {
    [TLS_POLICY_DISABLED] = "disabled",
    [TLS_POLICY_OPPORTUNISTIC] = "opportunistic",
    [TLS_POLICY_REQUIRED] = "required",
    [TLS_POLICY_VERIFY] = "verify",
};
#define TLS__POLICY_COUNT (sizeof tls__policy_names / sizeof tls__policy_names[0])

const char *tls_policy_to_text(enum tls_policy p)
{
    if ((size_t)p >= TLS__POLICY_COUNT)
        return "unknown";
    return tls__policy_names[p];
}

int tls_policy_from_text(const char *s, enum tls_policy *out)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < TLS__POLICY_COUNT; i++) {
        if (strcmp(s, tls__policy_names[i]) == 0) {
            *out = (enum tls_policy)i;
            return 0;
        }
    }
    return -1;
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Best text for the oldest queued OpenSSL error: the reason alone reads well in a log line
 * ("wrong version number"); fall back to the full code string when there is no reason text. */
static void tls__err_queue_text(char *buf, size_t cap, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        snprintf(buf, cap, "%s", fallback);
        return;
    }
    if (ERR_SYSTEM_ERROR(e)) { /* an errno from fopen() and friends, e.g. a missing file */
        char sys[128];
        snprintf(buf, cap, "%s", strerror_r(ERR_GET_REASON(e), sys, sizeof sys));
        return;
    }
    const char *reason = ERR_reason_error_string(e);
    if (reason != NULL)
        snprintf(buf, cap, "%s", reason);
    else
        ERR_error_string_n(e, buf, cap);
}

/* ctx creation has no object to hold its error yet; it runs at start-up, one thread. */
static _Thread_local char tls__ctx_err[TLS_ERR_MAX_BYTES + TLS_NAME_MAX_BYTES];

static void tls__conn_fail(struct tls_conn *c, const char *text)
{
    c->failed = true;
    snprintf(c->err, sizeof c->err, "%s", text);
    ERR_clear_error();
}

/* Turns a failed SSL call into c->err. Verification failures name the X509 reason, which
 * is what an operator needs ("hostname mismatch", "unable to get local issuer certificate"). */
static void tls__conn_fail_ssl(struct tls_conn *c, int ret)
{
    char reason[TLS_ERR_MAX_BYTES];
    int kind = SSL_get_error(c->ssl, ret);
    unsigned long e = ERR_peek_error();

    if (kind == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(c->ssl);
        snprintf(reason, sizeof reason, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    } else if (kind == SSL_ERROR_SSL) {
        tls__err_queue_text(reason, sizeof reason, "protocol error");
    } else if (kind == SSL_ERROR_ZERO_RETURN) {
        snprintf(reason, sizeof reason, "peer sent close_notify");
    } else if (kind == SSL_ERROR_SYSCALL) {
        tls__err_queue_text(reason, sizeof reason, "unexpected end of stream");
    } else {
        snprintf(reason, sizeof reason, "unexpected SSL error %d", kind);
    }
    tls__conn_fail(c, reason);
}

/* ---- context ---------------------------------------------------------------------------- */

/* SSL_free_buffers() could free a buffer still holding part of a record (CVE-2024-4741)
 * before 3.0.14, 3.1.6, 3.2.2 and 3.3.1. Older libraries keep the buffer: more memory, no
 * use-after-free. The runtime library counts, not the headers we were built against. */
static bool tls__free_buffers_safe(void)
{
    static const unsigned fixed_patch[] = {14, 6, 2, 1}; /* by 3.x minor */
    unsigned major = OPENSSL_version_major(), minor = OPENSSL_version_minor();

    if (major != 3)
        return major > 3;
    if (minor >= sizeof fixed_patch / sizeof fixed_patch[0])
        return true;
    return OPENSSL_version_patch() >= fixed_patch[minor];
}

int tls_ctx_create(struct tls_ctx **out, const char *ca_file, const char **err)
{
    char reason[TLS_ERR_MAX_BYTES];
    struct tls_ctx *ctx = NULL;
    SSL_CTX *s = NULL;

    *out = NULL;
    ERR_clear_error();
    ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        *err = "cannot create TLS context: out of memory";
        return -1;
    }
    s = SSL_CTX_new(TLS_client_method());
    if (s == NULL) {
        tls__err_queue_text(reason, sizeof reason, "out of memory");
        snprintf(tls__ctx_err, sizeof tls__ctx_err, "cannot create TLS context: %s", reason);
        goto fail;
    }
    if (SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) != 1) {
        snprintf(tls__ctx_err, sizeof tls__ctx_err, "cannot set minimum TLS version 1.2");
        goto fail;
    }
    /* Memory per idle connection matters more than the copy cost of re-allocating records. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    /* Renegotiation would let a read be needed in the middle of a write; SMTP never needs it. */
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION);
    /* One connection per handshake; resumption buys little for MX traffic and costs memory. */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);

    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_file(s, ca_file) != 1) {
            tls__err_queue_text(reason, sizeof reason, "no certificates found");
            snprintf(tls__ctx_err, sizeof tls__ctx_err, "cannot load CA file %s: %s", ca_file,
                     reason);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(s) != 1) {
        tls__err_queue_text(reason, sizeof reason, "unknown error");
        snprintf(tls__ctx_err, sizeof tls__ctx_err, "cannot load system CA paths: %s", reason);
        goto fail;
    }
    ctx->ssl_ctx = s;
    ctx->free_buffers_safe = tls__free_buffers_safe();
    *out = ctx;
    ERR_clear_error();
    return 0;

fail:
    SSL_CTX_free(s);
    free(ctx);
    *err = tls__ctx_err;
    ERR_clear_error();
    return -1;
}

void tls_ctx_destroy(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

/* ---- connection ------------------------------------------------------------------------ */

static BIO *tls__mem_bio_new(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    /* An empty BIO must read as "retry later", never as end of stream. */
    if (b != NULL)
        BIO_set_mem_eof_return(b, -1);
    return b;
}

/* Sets SNI and the name the certificate must match. IP literals get no SNI (RFC 6066) and
 * are checked against the certificate's IP addresses instead. Returns NULL or why not. */
static const char *tls__conn_set_name(struct tls_conn *c, const char *sni)
{
    char name[TLS_NAME_MAX_BYTES];
    unsigned char ip[16];
    size_t len;

    if (sni == NULL || sni[0] == '\0')
        return NULL;
    len = strlen(sni);
    if (len >= sizeof name)
        return "server name too long";
    memcpy(name, sni, len + 1);
    /* "mx.example.com." straight from DNS: the dot belongs in neither SNI nor the check. */
    if (len > 1 && name[len - 1] == '.')
        name[len - 1] = '\0';

    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
            return "cannot set the server address to check";
    } else {
        if (SSL_set_tlsext_host_name(c->ssl, name) != 1)
            return "server name rejected for SNI";
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(c->ssl, name) != 1)
            return "server name rejected for the certificate check";
    }
    c->has_name = true;
    return NULL;
}

struct tls_conn *tls_conn_create(struct tls_ctx *ctx, const char *sni, bool verify)
{
    struct tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    ERR_clear_error();
    c->free_buffers_safe = ctx->free_buffers_safe;
    c->ssl = SSL_new(ctx->ssl_ctx);
    if (c->ssl == NULL)
        goto fail;
    c->rbio = tls__mem_bio_new();
    c->wbio = tls__mem_bio_new();
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        goto fail;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    /* With VERIFY_NONE OpenSSL still verifies chain and name and records the outcome, which
     * is what tls_conn_verified() reports for opportunistic sessions. */
    SSL_set_verify(c->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    /* A name we cannot use fails the connection, not the allocation, so the caller gets a
     * reason through tls_conn_error() like any other handshake failure. */
    const char *why = tls__conn_set_name(c, sni);
    if (why != NULL)
        tls__conn_fail(c, why);
    else if (verify && !c->has_name)
        tls__conn_fail(c, "certificate verify failed: no server name to check");
    ERR_clear_error();
    return c;

fail:
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return NULL;
}

void tls_conn_destroy(struct tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl); /* frees both BIOs */
    free(c);
}

/* Swaps a drained, oversized memory BIO for an empty one (see TLS_BIO_KEEP_BYTES). Only once
 * established: during the handshake OpenSSL stacks a buffering BIO on the write side. */
static void tls__bio_shrink(struct tls_conn *c, bool read_side)
{
    BIO *old = read_side ? c->rbio : c->wbio;
    BUF_MEM *mem = NULL;
    BIO *fresh;

    if (!c->established || BIO_ctrl_pending(old) != 0)
        return;
    BIO_get_mem_ptr(old, &mem);
    if (mem == NULL || mem->max <= TLS_BIO_KEEP_BYTES)
        return;
    fresh = tls__mem_bio_new();
    if (fresh == NULL) {
        ERR_clear_error();
        return; /* keeping the big buffer is harmless */
    }
    if (read_side) {
        SSL_set0_rbio(c->ssl, fresh);
        c->rbio = fresh;
    } else {
        SSL_set0_wbio(c->ssl, fresh);
        c->wbio = fresh;
    }
}

/* Nothing left to decrypt: give back what an idle connection need not hold. OpenSSL's
 * SSL_MODE_RELEASE_BUFFERS misses the read buffer after post-handshake messages (TLS 1.3
 * session tickets: ~16.5 KB a connection); SSL_free_buffers() is a no-op while data waits. */
static void tls__conn_idle(struct tls_conn *c)
{
    if (c->free_buffers_safe)
        (void)SSL_free_buffers(c->ssl);
    tls__bio_shrink(c, true);
}

int tls_conn_feed(struct tls_conn *c, const uint8_t *data, size_t len)
{
    if (c->failed)
        return -1;
    ERR_clear_error();
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        int n = BIO_write(c->rbio, data, chunk);
        if (n <= 0) {
            tls__conn_fail(c, "cannot buffer received data: out of memory");
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

enum tls_step tls_conn_handshake(struct tls_conn *c)
{
    int ret;

    if (c->failed)
        return TLS_STEP_ERROR;
    if (c->established)
        return TLS_STEP_DONE;
    ERR_clear_error();
    ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        c->established = true;
        c->err[0] = '\0';
        tls__conn_idle(c);
        ERR_clear_error();
        return TLS_STEP_DONE;
    }
    if (SSL_get_error(c->ssl, ret) == SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return TLS_STEP_AGAIN;
    }
    tls__conn_fail_ssl(c, ret);
    return TLS_STEP_ERROR;
}

int tls_conn_write(struct tls_conn *c, const uint8_t *data, size_t len)
{
    size_t done = 0;

    if (c->failed)
        return -1;
    if (!c->established) {
        snprintf(c->err, sizeof c->err, "write before the TLS handshake completed");
        return -1;
    }
    ERR_clear_error();
    /* Without SSL_MODE_ENABLE_PARTIAL_WRITE and with a growable memory BIO, one call
     * encrypts everything; the loop only guards the int-sized record API. */
    while (done < len) {
        size_t n = 0;
        int ret = SSL_write_ex(c->ssl, data + done, len - done, &n);
        if (ret != 1) {
            tls__conn_fail_ssl(c, ret);
            return -1;
        }
        done += n;
    }
    ERR_clear_error();
    return 0;
}

ssize_t tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    int ret;

    if (c->failed)
        return -1;
    if (!c->established) {
        snprintf(c->err, sizeof c->err, "read before the TLS handshake completed");
        return -1;
    }
    if (cap == 0)
        return 0;
    if (cap > SSIZE_MAX)
        cap = SSIZE_MAX;
    ERR_clear_error();
    ret = SSL_read_ex(c->ssl, buf, cap, &n);
    if (ret == 1) {
        tls__bio_shrink(c, true);
        ERR_clear_error();
        return (ssize_t)n;
    }
    if (SSL_get_error(c->ssl, ret) == SSL_ERROR_WANT_READ) {
        tls__conn_idle(c);
        ERR_clear_error();
        return 0;
    }
    tls__conn_fail_ssl(c, ret);
    return -1;
}

void tls_conn_shutdown(struct tls_conn *c)
{
    /* Before DONE there is no session to close; after an error OpenSSL refuses anyway. */
    if (c->failed || !c->established)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl); /* 0 = close_notify queued, peer's not seen: fine for SMTP */
    ERR_clear_error();
}

size_t tls_conn_out_pending(const struct tls_conn *c)
{
    return BIO_ctrl_pending(c->wbio);
}

size_t tls_conn_out_take(struct tls_conn *c, uint8_t *buf, size_t cap)
{
    int n;

    if (cap == 0)
        return 0;
    n = BIO_read(c->wbio, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (n <= 0) {
        ERR_clear_error();
        return 0;
    }
    tls__bio_shrink(c, false);
    return (size_t)n;
}

/* ---- negotiated details ---------------------------------------------------------------- */

const char *tls_conn_version(const struct tls_conn *c)
{
    if (!c->established)
        return "";
    return SSL_get_version(c->ssl);
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
    const char *name;

    if (!c->established)
        return "";
    name = SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl));
    return name != NULL ? name : "";
}

bool tls_conn_verified(const struct tls_conn *c)
{
    /* No name set means the name was never checked, so the peer is not authenticated. */
    return c->established && c->has_name && SSL_get0_peer_certificate(c->ssl) != NULL &&
           SSL_get_verify_result(c->ssl) == X509_V_OK;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->err;
}
