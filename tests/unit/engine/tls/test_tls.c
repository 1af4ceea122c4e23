/* tests/unit/engine/tls/test_tls.c — drives the tls.h client against an in-process OpenSSL
 * server over memory BIOs, with a throwaway CA and an "mx.test" certificate made at start-up.
 * Covers handshake, verification outcomes, data both ways, garbage peers and teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "engine/tls/tls.h"

#define T_BIG_BYTES (100 * 1024)

struct t_world {
    char dir[64];
    char ca_path[96];       /* the CA that signed the server certificate */
    char other_ca_path[96]; /* an unrelated CA */
    char junk_path[96];     /* a file that holds no certificate */
    SSL_CTX *srv_ctx;
    SSL_CTX *srv12_ctx;     /* same certificate, TLS 1.2 at most */
    struct tls_ctx *ctx;       /* trusts ca_path */
    struct tls_ctx *other_ctx; /* trusts other_ca_path */
};
static struct t_world w;

struct t_server {
    SSL *ssl;
    BIO *rbio;
    BIO *wbio;
};

/* ---- certificates ---------------------------------------------------------------------- */

static void t__add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* issuer NULL makes a self-signed CA; otherwise a server certificate for dns. */
static X509 *t__cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                     const char *dns)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    if (issuer == NULL) {
        X509_set_issuer_name(x, name);
        t__add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        t__add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        t__add_ext(x, x, NID_subject_key_identifier, "hash");
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    } else {
        char san[128];
        snprintf(san, sizeof san, "DNS:%s", dns);
        X509_set_issuer_name(x, X509_get_subject_name(issuer));
        t__add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        t__add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
        t__add_ext(x, issuer, NID_subject_alt_name, san);
        t__add_ext(x, issuer, NID_authority_key_identifier, "keyid");
        assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
    }
    return x;
}

static void t__write_pem(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
}

static SSL_CTX *t__srv_ctx(X509 *cert, EVP_PKEY *key, int max_version)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    assert_non_null(s);
    assert_int_equal(SSL_CTX_use_certificate(s, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s, key), 1);
    if (max_version != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(s, max_version), 1);
    return s;
}

static int t_setup(void **state)
{
    (void)state;
    const char *err = NULL;

    snprintf(w.dir, sizeof w.dir, "/tmp/salvo_tls_XXXXXX");
    assert_non_null(mkdtemp(w.dir));
    snprintf(w.ca_path, sizeof w.ca_path, "%s/ca.pem", w.dir);
    snprintf(w.other_ca_path, sizeof w.other_ca_path, "%s/other_ca.pem", w.dir);
    snprintf(w.junk_path, sizeof w.junk_path, "%s/junk.pem", w.dir);

    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *other_key = EVP_EC_gen("P-256");
    EVP_PKEY *srv_key = EVP_EC_gen("P-256");
    assert_non_null(ca_key);
    assert_non_null(other_key);
    assert_non_null(srv_key);
    X509 *ca = t__cert(ca_key, "Salvo Test CA", NULL, NULL, NULL);
    X509 *other = t__cert(other_key, "Salvo Other CA", NULL, NULL, NULL);
    X509 *srv = t__cert(srv_key, "mx.test", ca, ca_key, "mx.test");
    t__write_pem(w.ca_path, ca);
    t__write_pem(w.other_ca_path, other);
    FILE *f = fopen(w.junk_path, "w");
    assert_non_null(f);
    fputs("this is not a certificate\n", f);
    fclose(f);

    w.srv_ctx = t__srv_ctx(srv, srv_key, 0);
    w.srv12_ctx = t__srv_ctx(srv, srv_key, TLS1_2_VERSION);
    assert_int_equal(tls_ctx_create(&w.ctx, w.ca_path, &err), 0);
    assert_int_equal(tls_ctx_create(&w.other_ctx, w.other_ca_path, &err), 0);

    X509_free(ca);
    X509_free(other);
    X509_free(srv);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(srv_key);
    return 0;
}

static int t_teardown(void **state)
{
    (void)state;
    tls_ctx_destroy(w.ctx);
    tls_ctx_destroy(w.other_ctx);
    SSL_CTX_free(w.srv_ctx);
    SSL_CTX_free(w.srv12_ctx);
    unlink(w.ca_path);
    unlink(w.other_ca_path);
    unlink(w.junk_path);
    rmdir(w.dir);
    return 0;
}

/* ---- in-process server and the byte pump ----------------------------------------------- */

static void t__srv_init(struct t_server *s, SSL_CTX *ctx)
{
    s->ssl = SSL_new(ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    assert_non_null(s->ssl);
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
}

static void t__srv_fini(struct t_server *s)
{
    SSL_free(s->ssl);
    ERR_clear_error(); /* the server's failures must not look like the client's */
}

static void t__client_to_server(struct tls_conn *c, struct t_server *s, size_t chunk)
{
    uint8_t buf[4096];
    size_t n;
    assert_true(chunk <= sizeof buf);
    while ((n = tls_conn_out_take(c, buf, chunk)) > 0)
        assert_int_equal(BIO_write(s->rbio, buf, (int)n), (int)n);
}

static void t__server_to_client(struct t_server *s, struct tls_conn *c, size_t chunk)
{
    uint8_t buf[4096];
    int n;
    assert_true(chunk <= sizeof buf);
    while ((n = BIO_read(s->wbio, buf, (int)chunk)) > 0)
        assert_int_equal(tls_conn_feed(c, buf, (size_t)n), 0);
}

/* Pumps until both sides finish or the client fails; flushes the client's last flight. */
static enum tls_step t__handshake(struct tls_conn *c, struct t_server *s)
{
    for (int i = 0; i < 20; i++) {
        enum tls_step st = tls_conn_handshake(c);
        t__client_to_server(c, s, 4096);
        int r = SSL_do_handshake(s->ssl);
        ERR_clear_error();
        if (st == TLS_STEP_ERROR)
            return st;
        t__server_to_client(s, c, 4096);
        if (st == TLS_STEP_DONE && r == 1)
            return st;
    }
    fail_msg("handshake did not converge");
    return TLS_STEP_ERROR;
}

static void t__expect_error(struct tls_conn *c, const char *needle)
{
    const char *e = tls_conn_error(c);
    if (strstr(e, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", e, needle);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_handshake_verified(void **state)
{
    (void)state;
    struct t_server s;
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_non_null(c);
    assert_string_equal(tls_conn_version(c), "");
    assert_string_equal(tls_conn_cipher(c), "");
    assert_false(tls_conn_verified(c));

    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
    assert_string_equal(tls_conn_version(c), "TLSv1.3");
    assert_true(strncmp(tls_conn_cipher(c), "TLS_", 4) == 0);
    assert_true(tls_conn_verified(c));
    assert_string_equal(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name), "mx.test");
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_DONE); /* idempotent once done */

    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_handshake_tls12(void **state)
{
    (void)state;
    struct t_server s;
    t__srv_init(&s, w.srv12_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
    assert_string_equal(tls_conn_version(c), "TLSv1.2");
    assert_true(strlen(tls_conn_cipher(c)) > 0);
    assert_true(tls_conn_verified(c));
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_trailing_dot_name(void **state)
{
    (void)state;
    struct t_server s;
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test.", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
    assert_true(tls_conn_verified(c));
    assert_string_equal(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name), "mx.test");
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_verify_unknown_issuer(void **state)
{
    (void)state;
    struct t_server s;
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.other_ctx, "mx.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_ERROR);
    t__expect_error(c, "certificate verify failed: unable to get local issuer certificate");
    assert_false(tls_conn_verified(c));
    assert_string_equal(tls_conn_version(c), "");
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_verify_hostname_mismatch(void **state)
{
    (void)state;
    struct t_server s;
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "other.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_ERROR);
    t__expect_error(c, "certificate verify failed: hostname mismatch");
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_verify_ip_literal(void **state)
{
    (void)state;
    struct t_server s;
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "127.0.2.1", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_ERROR);
    t__expect_error(c, "certificate verify failed: IP address mismatch");
    /* RFC 6066: no SNI for address literals. */
    assert_null(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name));
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_verify_without_name(void **state)
{
    (void)state;
    struct tls_conn *c = tls_conn_create(w.ctx, NULL, true);
    assert_non_null(c);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_ERROR);
    t__expect_error(c, "no server name");
    tls_conn_destroy(c);

    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    c = tls_conn_create(w.ctx, long_name, false);
    assert_non_null(c);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_ERROR);
    t__expect_error(c, "too long");
    tls_conn_destroy(c);
}

static void test_noverify_reports_verified(void **state)
{
    (void)state;
    static const struct {
        bool other_ca;
        const char *sni;
        bool verified;
    } cases[] = {
        {true, "mx.test", false},    /* unknown issuer */
        {false, "other.test", false}, /* wrong name */
        {false, "mx.test", true},
        {false, NULL, false},         /* nothing to check the name against */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct t_server s;
        t__srv_init(&s, w.srv_ctx);
        struct tls_conn *c =
            tls_conn_create(cases[i].other_ca ? w.other_ctx : w.ctx, cases[i].sni, false);
        assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
        assert_string_equal(tls_conn_version(c), "TLSv1.3");
        assert_int_equal(tls_conn_verified(c), cases[i].verified);
        tls_conn_destroy(c);
        t__srv_fini(&s);
    }
}

static void test_data_both_ways(void **state)
{
    (void)state;
    struct t_server s;
    uint8_t buf[512];
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);

    /* Small line, client to server. */
    static const char ehlo[] = "EHLO client.test\r\n";
    assert_int_equal(tls_conn_write(c, (const uint8_t *)ehlo, strlen(ehlo)), 0);
    assert_true(tls_conn_out_pending(c) > 0);
    t__client_to_server(c, &s, 4096);
    assert_int_equal(tls_conn_out_pending(c), 0);
    int n = SSL_read(s.ssl, buf, sizeof buf);
    assert_int_equal(n, (int)strlen(ehlo));
    assert_memory_equal(buf, ehlo, strlen(ehlo));

    /* Nothing fed yet: 0, not an error (session tickets are consumed silently). */
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), 0);

    /* Small reply, server to client. */
    static const char reply[] = "250 ok\r\n";
    assert_int_equal(SSL_write(s.ssl, reply, (int)strlen(reply)), (int)strlen(reply));
    t__server_to_client(&s, c, 4096);
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), (ssize_t)strlen(reply));
    assert_memory_equal(buf, reply, strlen(reply));
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), 0);

    /* The same reply one byte at a time: every read but the last sees half a record, which
     * is when the idle path must not release OpenSSL's read buffer (ASan watches). */
    assert_int_equal(SSL_write(s.ssl, reply, (int)strlen(reply)), (int)strlen(reply));
    uint8_t one;
    ssize_t got_n = 0;
    while (BIO_read(s.wbio, &one, 1) == 1) {
        assert_int_equal(got_n, 0);
        assert_int_equal(tls_conn_feed(c, &one, 1), 0);
        got_n = tls_conn_read(c, buf, sizeof buf);
        assert_true(got_n >= 0);
    }
    assert_int_equal(got_n, (ssize_t)strlen(reply));
    assert_memory_equal(buf, reply, strlen(reply));

    /* 100 KB in one write, drained in small chunks. */
    uint8_t *big = malloc(T_BIG_BYTES);
    uint8_t *got = malloc(T_BIG_BYTES);
    assert_non_null(big);
    assert_non_null(got);
    for (size_t i = 0; i < T_BIG_BYTES; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    assert_int_equal(tls_conn_write(c, big, T_BIG_BYTES), 0);
    assert_true(tls_conn_out_pending(c) > T_BIG_BYTES);
    t__client_to_server(c, &s, 1000);
    assert_int_equal(tls_conn_out_pending(c), 0);
    size_t total = 0;
    while (total < T_BIG_BYTES) {
        n = SSL_read(s.ssl, got + total, (int)(T_BIG_BYTES - total));
        assert_true(n > 0);
        total += (size_t)n;
    }
    assert_memory_equal(got, big, T_BIG_BYTES);

    /* 100 KB from the server, fed in odd-sized pieces and read into a small buffer. */
    memset(got, 0, T_BIG_BYTES);
    assert_int_equal(SSL_write(s.ssl, big, T_BIG_BYTES), T_BIG_BYTES);
    total = 0;
    uint8_t piece[517];
    int pn;
    while ((pn = BIO_read(s.wbio, piece, sizeof piece)) > 0) {
        assert_int_equal(tls_conn_feed(c, piece, (size_t)pn), 0);
        ssize_t r;
        while ((r = tls_conn_read(c, got + total, 300)) > 0)
            total += (size_t)r;
        assert_int_equal(r, 0);
    }
    assert_int_equal(total, T_BIG_BYTES);
    assert_memory_equal(got, big, T_BIG_BYTES);

    /* Still usable after the buffers were trimmed. */
    assert_int_equal(tls_conn_write(c, (const uint8_t *)ehlo, strlen(ehlo)), 0);
    t__client_to_server(c, &s, 4096);
    assert_int_equal(SSL_read(s.ssl, buf, sizeof buf), (int)strlen(ehlo));

    free(big);
    free(got);
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_peer_close_notify(void **state)
{
    (void)state;
    struct t_server s;
    uint8_t buf[64];
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
    assert_true(SSL_shutdown(s.ssl) >= 0);
    t__server_to_client(&s, c, 4096);
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), -1);
    t__expect_error(c, "close_notify");
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), -1);
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_client_shutdown(void **state)
{
    (void)state;
    struct t_server s;
    uint8_t buf[64];
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
    tls_conn_shutdown(c);
    assert_true(tls_conn_out_pending(c) > 0);
    t__client_to_server(c, &s, 4096);
    int n = SSL_read(s.ssl, buf, sizeof buf);
    assert_int_equal(SSL_get_error(s.ssl, n), SSL_ERROR_ZERO_RETURN);
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_garbage_from_server(void **state)
{
    (void)state;
    uint8_t buf[4096];
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_AGAIN);
    assert_true(tls_conn_out_take(c, buf, sizeof buf) > 0); /* the ClientHello */

    static const char junk[] = "220 hello\r\n";
    assert_int_equal(tls_conn_feed(c, (const uint8_t *)junk, strlen(junk)), 0);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_ERROR);
    assert_true(strlen(tls_conn_error(c)) > 0);
    assert_int_equal(ERR_peek_error(), 0); /* nothing left for the next connection */
    char first[256];
    snprintf(first, sizeof first, "%s", tls_conn_error(c));

    /* Everything after the error fails quietly and keeps the first reason. */
    assert_int_equal(tls_conn_feed(c, (const uint8_t *)junk, strlen(junk)), -1);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_ERROR);
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), -1);
    assert_int_equal(tls_conn_write(c, (const uint8_t *)"x", 1), -1);
    tls_conn_shutdown(c);
    (void)tls_conn_out_take(c, buf, sizeof buf); /* an alert, if any, may still go out */
    assert_string_equal(tls_conn_error(c), first);
    tls_conn_destroy(c);
}

static void test_errors_do_not_leak(void **state)
{
    (void)state;
    /* A stale error left by someone else must not fail a healthy handshake. */
    ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
    struct t_server s;
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(t__handshake(c, &s), TLS_STEP_DONE);
    assert_int_equal(ERR_peek_error(), 0);
    tls_conn_destroy(c);
    t__srv_fini(&s);

    /* A failed verification leaves the queue empty. */
    t__srv_init(&s, w.srv_ctx);
    c = tls_conn_create(w.other_ctx, "mx.test", true);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_AGAIN);
    t__client_to_server(c, &s, 4096);
    assert_true(SSL_do_handshake(s.ssl) <= 0);
    t__server_to_client(&s, c, 4096);
    ERR_clear_error();
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_ERROR);
    assert_int_equal(ERR_peek_error(), 0);
    tls_conn_destroy(c);
    t__srv_fini(&s);
}

static void test_io_before_handshake(void **state)
{
    (void)state;
    uint8_t buf[16];
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(tls_conn_write(c, (const uint8_t *)"x", 1), -1);
    assert_true(strlen(tls_conn_error(c)) > 0);
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), -1);
    assert_int_equal(tls_conn_out_pending(c), 0);
    tls_conn_shutdown(c); /* no-op */
    assert_int_equal(tls_conn_out_pending(c), 0);
    tls_conn_destroy(c);
}

static void test_destroy_mid_handshake(void **state)
{
    (void)state;
    struct t_server s;
    uint8_t buf[4096];
    t__srv_init(&s, w.srv_ctx);
    struct tls_conn *c = tls_conn_create(w.ctx, "mx.test", true);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_AGAIN);
    t__client_to_server(c, &s, 4096);
    assert_true(SSL_do_handshake(s.ssl) <= 0);
    int n = BIO_read(s.wbio, buf, 200); /* part of the server's flight only */
    assert_true(n > 0);
    assert_int_equal(tls_conn_feed(c, buf, (size_t)n), 0);
    assert_int_equal(tls_conn_handshake(c), TLS_STEP_AGAIN);
    assert_int_equal(tls_conn_feed(c, buf, 0), 0);
    tls_conn_destroy(c); /* ASan's leak checker judges this */
    tls_conn_destroy(NULL);
    t__srv_fini(&s);
}

static void test_ctx_errors(void **state)
{
    (void)state;
    struct tls_ctx *ctx = (struct tls_ctx *)&ctx;
    const char *err = NULL;
    assert_int_equal(tls_ctx_create(&ctx, "/nonexistent/salvo/ca.pem", &err), -1);
    assert_null(ctx);
    assert_non_null(err);
    if (strstr(err, "cannot load CA file /nonexistent/salvo/ca.pem: ") != err)
        fail_msg("unexpected error \"%s\"", err);
    assert_non_null(strstr(err, "No such file or directory"));

    err = NULL;
    assert_int_equal(tls_ctx_create(&ctx, w.junk_path, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, w.junk_path));
    assert_int_equal(ERR_peek_error(), 0);

    assert_int_equal(tls_ctx_create(&ctx, NULL, &err), 0); /* system paths */
    assert_non_null(ctx);
    tls_ctx_destroy(ctx);
    tls_ctx_destroy(NULL);
}

static void test_policy_text(void **state)
{
    (void)state;
    static const char *const names[] = {"disabled", "opportunistic", "required", "verify"};
    static const enum tls_policy values[] = {TLS_POLICY_DISABLED, TLS_POLICY_OPPORTUNISTIC,
                                             TLS_POLICY_REQUIRED, TLS_POLICY_VERIFY};
    for (size_t i = 0; i < 4; i++) {
        enum tls_policy p = TLS_POLICY_DISABLED;
        assert_string_equal(tls_policy_to_text(values[i]), names[i]);
        assert_int_equal(tls_policy_from_text(names[i], &p), 0);
        assert_int_equal(p, values[i]);
    }
    enum tls_policy p = TLS_POLICY_VERIFY;
    assert_int_equal(tls_policy_from_text("Verify", &p), -1);
    assert_int_equal(tls_policy_from_text("", &p), -1);
    assert_int_equal(tls_policy_from_text(NULL, &p), -1);
    assert_int_equal(p, TLS_POLICY_VERIFY);
    assert_string_equal(tls_policy_to_text((enum tls_policy)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_verified),
        cmocka_unit_test(test_handshake_tls12),
        cmocka_unit_test(test_trailing_dot_name),
        cmocka_unit_test(test_verify_unknown_issuer),
        cmocka_unit_test(test_verify_hostname_mismatch),
        cmocka_unit_test(test_verify_ip_literal),
        cmocka_unit_test(test_verify_without_name),
        cmocka_unit_test(test_noverify_reports_verified),
        cmocka_unit_test(test_data_both_ways),
        cmocka_unit_test(test_peer_close_notify),
        cmocka_unit_test(test_client_shutdown),
        cmocka_unit_test(test_garbage_from_server),
        cmocka_unit_test(test_errors_do_not_leak),
        cmocka_unit_test(test_io_before_handshake),
        cmocka_unit_test(test_destroy_mid_handshake),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_policy_text),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
