/* tests/unit/engine/msg/test_mime.c — message assembly: each body structure, attachments
 * decoded back, quoted-printable round trips over random UTF-8, RFC 2047 words split on
 * character boundaries, folding, address display names, Date/Message-ID, rejections; every
 * built message passes the wire checks, and a few are re-read by Python's email package. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "engine/msg/mime.h"
#include "engine/msg/mime_encode.h"
#include "tests/unit/engine/msg/mime_readback.h"

#define NOW_MS 1700000000123ull     /* Tue, 14 Nov 2023 22:13:20 UTC */
#define UNIQUE 0x5a17e0ddc0ffee42ull

static struct buf OUT;
static char V[1 << 16];             /* an unfolded header value */
static uint8_t DEC[1 << 20];        /* decoded content */

static int setup(void **state)
{
    (void)state;
    buf_init(&OUT, 64 << 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    buf_fini(&OUT);
    return 0;
}

/* Builds p into OUT (cleared first), asserts success and the wire invariants. */
static void build(const struct mime_parts *p, const char *rcpt)
{
    const char *err = NULL;
    buf_clear(&OUT);
    int rc = mime_build(p, rcpt, NOW_MS, UNIQUE, &OUT, &err);
    if (rc)
        fail_msg("mime_build: %s", err);
    tm_check_wire(OUT.data, OUT.len);
    /* Bodies are always 7-bit clean (7bit, QP or base64). */
    size_t he = tm_header_end(OUT.data, OUT.len);
    assert_true(mime_is_ascii(OUT.data + he, OUT.len - he));
}

static void build_fails(const struct mime_parts *p, const char *rcpt, const char *want)
{
    const char *err = NULL;
    buf_clear(&OUT);
    buf_append(&OUT, "keep", 4);
    assert_int_equal(mime_build(p, rcpt, NOW_MS, UNIQUE, &OUT, &err), -1);
    assert_non_null(err);
    if (strcmp(err, want) != 0)
        fail_msg("error \"%s\", wanted \"%s\"", err, want);
    assert_int_equal(OUT.len, 4);
}

static size_t hdr_end(void) { return tm_header_end(OUT.data, OUT.len); }

static int header(const char *name, char *out)
{
    return tm_header(OUT.data, hdr_end(), name, out, sizeof V);
}

static void expect_header(const char *name, const char *want)
{
    assert_int_equal(header(name, V), 1);
    assert_string_equal(V, want);
}

/* The message's body (after the blank line). */
static const uint8_t *body(size_t *len)
{
    size_t he = hdr_end();
    *len = OUT.len - he - 2;
    return OUT.data + he + 2;
}

/* s with every CR, LF or CRLF made CRLF, into out. */
static size_t crlf(const char *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++;
            out[o++] = '\r';
            out[o++] = '\n';
        } else {
            out[o++] = (uint8_t)s[i];
        }
    }
    return o;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random UTF-8 text: ASCII (with '=', spaces, tabs), 2-4 byte characters, all three line
 * break styles, long lines and whitespace runs before breaks. */
static size_t random_text(char *s, size_t max)
{
    static const char *const pieces[] = { "é", "ß", "日本", "€", "🎉", "ÿ", "\xe2\x80\x8b" };
    size_t n = 0;
    while (n + 8 < max) {
        uint32_t r = rng() % 100;
        if (r < 55) {
            s[n++] = (char)(33 + rng() % 94);
        } else if (r < 65) {
            s[n++] = ' ';
        } else if (r < 68) {
            s[n++] = '\t';
        } else if (r < 72) {
            s[n++] = '=';
        } else if (r < 88) {
            const char *p = pieces[rng() % (sizeof pieces / sizeof pieces[0])];
            memcpy(s + n, p, strlen(p));
            n += strlen(p);
        } else if (r < 91) {
            s[n++] = '\n';
        } else if (r < 93) {
            s[n++] = '\r';
            s[n++] = '\n';
        } else if (r < 94) {
            s[n++] = '\r';
        } else if (r < 96) {
            memcpy(s + n, " \t \n", 4);
            n += 4;
        }
    }
    return n;
}

/* Every physical line of field name in the header block at h fits 78 columns, and 76 when
 * it holds an encoded-word (RFC 2047 §2) — but for a first line after a name so long that
 * not even one character's encoded-word fits. */
static void check_field_lines(const uint8_t *h, size_t n, const char *name)
{
    size_t nl = strlen(name), first_max = nl + 2 + 12 + 8 > 76 ? nl + 2 + 12 + 8 : 76;
    bool in = false, first = false;
    for (size_t i = 0; i < n;) {
        const uint8_t *e = memmem(h + i, n - i, "\r\n", 2);
        assert_non_null(e);
        size_t len = (size_t)(e - (h + i));
        if (len == 0)
            return;
        first = h[i] != ' ' && h[i] != '\t';
        if (first)
            in = len > nl && h[i + nl] == ':' && strncasecmp((const char *)h + i, name, nl) == 0;
        if (in && first && len > 76) {
            assert_true(memmem(h + i, len, "=?", 2) && len <= first_max);
        } else if (in) {
            assert_true(len <= 78);
            if (memmem(h + i, len, "=?", 2))
                assert_true(len <= 76);
        }
        i += len + 2;
    }
}

/* ---- structures ---- */

static void test_text_only(void **state)
{
    (void)state;
    const char *text = "Hello Ann,\nyour order shipped.\n\n-- \nShop\n";
    struct mime_parts p = { .from = "Shop <shop@example.com>", .subject = "Your order",
                            .text = text, .text_len = strlen(text),
                            .message_id_domain = "mail.example.com" };
    build(&p, "ann@example.org");
    expect_header("From", "Shop <shop@example.com>");
    expect_header("To", "ann@example.org");
    expect_header("Subject", "Your order");
    expect_header("MIME-Version", "1.0");
    expect_header("Content-Type", "text/plain; charset=utf-8");
    expect_header("Content-Transfer-Encoding", "7bit");
    expect_header("Date", "Tue, 14 Nov 2023 22:13:20 +0000");
    expect_header("Message-ID", "<5a17e0ddc0ffee42.1700000000123@mail.example.com>");
    assert_int_equal(header("Reply-To", NULL), 0);
    size_t bl;
    const uint8_t *b = body(&bl);
    size_t want = crlf(text, strlen(text), DEC);
    assert_int_equal(bl, want);
    assert_memory_equal(b, DEC, want);
    /* The header block comes first in the order readers expect. */
    assert_memory_equal(OUT.data, "Date: ", 6);
}

static void test_html_only(void **state)
{
    (void)state;
    const char *html = "<p>Grüße aus Köln</p>";
    struct mime_parts p = { .from = "a@example.com", .to = "Bob <b@example.org>",
                            .html = html, .html_len = strlen(html) };
    build(&p, "b@example.org");
    expect_header("To", "Bob <b@example.org>");
    expect_header("Content-Type", "text/html; charset=utf-8");
    expect_header("Content-Transfer-Encoding", "quoted-printable");
    assert_int_equal(header("Subject", NULL), 0);
    /* Message-ID falls back to the From domain. */
    expect_header("Message-ID", "<5a17e0ddc0ffee42.1700000000123@example.com>");
    size_t bl;
    const uint8_t *b = body(&bl);
    /* The message's final CRLF was added after the body. */
    size_t d = tm_qp_decode(b, bl - 2, DEC);
    assert_int_equal(d, strlen(html));
    assert_memory_equal(DEC, html, d);
}

static void test_alternative(void **state)
{
    (void)state;
    const char *text = "Plain version\r\nline two";
    const char *html = "<html><body><p>HTML version</p></body></html>\n";
    struct mime_parts p = { .from = "a@example.com", .subject = "Both", .text = text,
                            .text_len = strlen(text), .html = html, .html_len = strlen(html) };
    build(&p, "r@example.org");
    assert_int_equal(header("Content-Type", V), 1);
    assert_non_null(strstr(V, "multipart/alternative;"));
    assert_int_equal(header("Content-Transfer-Encoding", NULL), 0);
    char b[80];
    tm_boundary(V, b, sizeof b);
    assert_memory_equal(b, "=_", 2);
    size_t bl;
    const uint8_t *bd = body(&bl);
    struct tm_part parts[4];
    assert_int_equal(tm_split(bd, bl, b, parts, 4), 2);
    size_t pl;
    const uint8_t *pb;
    assert_int_equal(tm_header(parts[0].p, parts[0].len, "Content-Type", V, sizeof V), 1);
    assert_string_equal(V, "text/plain; charset=utf-8");
    pb = tm_part_body(&parts[0], &pl);
    assert_int_equal(pl, strlen(text));
    assert_memory_equal(pb, text, pl);
    assert_int_equal(tm_header(parts[1].p, parts[1].len, "Content-Type", V, sizeof V), 1);
    assert_string_equal(V, "text/html; charset=utf-8");
    pb = tm_part_body(&parts[1], &pl);
    size_t want = crlf(html, strlen(html), DEC);
    assert_int_equal(pl, want);
    assert_memory_equal(pb, DEC, want);
}

static void test_mixed_attachments(void **state)
{
    (void)state;
    static uint8_t bin[5000], pdf[57 * 3];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)rng();
    memset(pdf, '%', sizeof pdf);
    const char *text = "See attached.\n", *html = "<p>See attached.</p>";
    struct mime_attachment att[] = {
        { "report.bin", NULL, bin, sizeof bin },
        { "Résumé – 2024 年度.pdf", "application/pdf", pdf, sizeof pdf },
        { NULL, "text/csv; charset=utf-8", (const uint8_t *)"a,b\r\n1,2\r\n", 10 },
        { "empty.txt", "text/plain", NULL, 0 },
    };
    struct mime_parts p = { .from = "a@example.com", .subject = "Files", .text = text,
                            .text_len = strlen(text), .html = html, .html_len = strlen(html),
                            .attachments = att, .nattachments = 4 };
    build(&p, "r@example.org");
    assert_int_equal(header("Content-Type", V), 1);
    assert_non_null(strstr(V, "multipart/mixed;"));
    char mix[80], alt[80];
    tm_boundary(V, mix, sizeof mix);
    size_t bl;
    const uint8_t *bd = body(&bl);
    struct tm_part parts[8];
    assert_int_equal(tm_split(bd, bl, mix, parts, 8), 5);

    /* Part 0: the alternative body, text first. */
    assert_int_equal(tm_header(parts[0].p, parts[0].len, "Content-Type", V, sizeof V), 1);
    assert_non_null(strstr(V, "multipart/alternative;"));
    tm_boundary(V, alt, sizeof alt);
    assert_string_not_equal(alt, mix);
    size_t al;
    const uint8_t *ab = tm_part_body(&parts[0], &al);
    struct tm_part inner[4];
    assert_int_equal(tm_split(ab, al, alt, inner, 4), 2);

    /* Attachments decode back to the bytes given, in 76-char lines. */
    for (int i = 0; i < 4; i++) {
        const struct tm_part *pt = &parts[i + 1];
        assert_int_equal(tm_header(pt->p, pt->len, "Content-Transfer-Encoding", V, sizeof V), 1);
        assert_string_equal(V, "base64");
        assert_int_equal(tm_header(pt->p, pt->len, "Content-Type", V, sizeof V), 1);
        assert_string_equal(V, att[i].content_type ? att[i].content_type
                                                   : "application/octet-stream");
        size_t pl;
        const uint8_t *pb = tm_part_body(pt, &pl);
        for (size_t k = 0, col = 0; k < pl; k++) {
            if (pb[k] == '\r') {
                assert_int_equal(col, 76);
                col = 0;
                k++;
            } else {
                assert_true(++col <= 76);
            }
        }
        size_t d = tm_b64_decode(pb, pl, DEC);
        assert_int_equal(d, att[i].len);
        if (d)
            assert_memory_equal(DEC, att[i].data, d);
    }
    assert_int_equal(tm_header(parts[1].p, parts[1].len, "Content-Disposition", V, sizeof V), 1);
    assert_string_equal(V, "attachment; filename=\"report.bin\"");
    /* RFC 2231 for the non-ASCII name; the UTF-8 bytes are percent-encoded, in two
     * segments cut between characters so each line stays within 78 columns. */
    assert_int_equal(tm_header(parts[2].p, parts[2].len, "Content-Disposition", V, sizeof V), 1);
    assert_string_equal(V, "attachment; filename*0*=utf-8''R%C3%A9sum%C3%A9%20%E2%80%93%202024%20;"
                           " filename*1*=%E5%B9%B4%E5%BA%A6.pdf");
    assert_int_equal(tm_header(parts[3].p, parts[3].len, "Content-Disposition", V, sizeof V), 1);
    assert_string_equal(V, "attachment");

    /* A short non-ASCII name fits one unnumbered extended parameter. */
    struct mime_attachment short_name = { "Ä.txt", NULL, (const uint8_t *)"x", 1 };
    struct mime_parts sp = { .from = "a@example.com", .attachments = &short_name,
                             .nattachments = 1 };
    build(&sp, "r@example.org");
    const char *one = "attachment; filename*=utf-8''%C3%84.txt\r\n";
    assert_non_null(memmem(OUT.data, OUT.len, one, strlen(one)));
}

static void test_attachments_only(void **state)
{
    (void)state;
    struct mime_attachment att = { "a.txt", "text/plain", (const uint8_t *)"hi", 2 };
    struct mime_parts p = { .from = "a@example.com", .attachments = &att, .nattachments = 1 };
    build(&p, "r@example.org");
    assert_int_equal(header("Content-Type", V), 1);
    char mix[80];
    tm_boundary(V, mix, sizeof mix);
    size_t bl;
    const uint8_t *bd = body(&bl);
    struct tm_part parts[2];
    assert_int_equal(tm_split(bd, bl, mix, parts, 2), 1);
    size_t pl;
    const uint8_t *pb = tm_part_body(&parts[0], &pl);
    assert_int_equal(tm_b64_decode(pb, pl, DEC), 2);
    assert_memory_equal(DEC, "hi", 2);
}

static void test_long_filename_continuations(void **state)
{
    (void)state;
    char name[400] = "";
    for (int i = 0; i < 20; i++)
        strcat(name, "Überweisung_");
    strcat(name, ".pdf");
    struct mime_attachment att = { name, NULL, (const uint8_t *)"x", 1 };
    struct mime_parts p = { .from = "a@example.com", .text = "t", .text_len = 1,
                            .attachments = &att, .nattachments = 1 };
    build(&p, "r@example.org");
    size_t bl;
    const uint8_t *bd = body(&bl);
    const uint8_t *cd = memmem(bd, bl, "Content-Disposition:", 20);
    assert_non_null(cd);
    assert_int_equal(tm_header(cd, (size_t)(bd + bl - cd), "Content-Disposition", V, sizeof V),
                     1);
    /* Reassemble filename*N*= segments; lines stayed within 78 columns. */
    char joined[2048] = "";
    for (unsigned seg = 0;; seg++) {
        char key[32];
        snprintf(key, sizeof key, "filename*%u*=", seg);
        const char *s = strstr(V, key);
        if (!s) {
            assert_true(seg > 1);
            break;
        }
        s += strlen(key);
        if (seg == 0) {
            assert_memory_equal(s, "utf-8''", 7);
            s += 7;
        }
        size_t l = strcspn(s, ";");
        strncat(joined, s, l);
    }
    char dec[1024];
    size_t o = 0;
    for (size_t i = 0; joined[i]; i++) {
        if (joined[i] == '%') {
            dec[o++] = (char)(tm_hex((uint8_t)joined[i + 1]) << 4 | tm_hex((uint8_t)joined[i + 2]));
            i += 2;
        } else {
            dec[o++] = joined[i];
        }
    }
    dec[o] = '\0';
    assert_string_equal(dec, name);
    check_field_lines(cd, (size_t)(bd + bl - cd), "Content-Disposition");
}

/* ---- encodings ---- */

static void qp_roundtrip(const char *s, size_t n)
{
    static uint8_t want[1 << 17];
    struct buf b;
    buf_init(&b, 1 << 22);
    assert_int_equal(mime_append_qp(&b, (const uint8_t *)s, n), 0);
    size_t d = tm_qp_decode(b.data, b.len, DEC);
    size_t wl = crlf(s, n, want);
    assert_int_equal(d, wl);
    if (d)
        assert_memory_equal(DEC, want, d);
    buf_fini(&b);
}

static void test_qp(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "plain",
        "a=b",
        "trailing space \nand tab\t\r\nend ",
        " ",
        "\t",
        "\n\n\n",
        "é",
        "line\rbare cr",
        "From the start\n.dot line",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        qp_roundtrip(cases[i], strlen(cases[i]));
    /* Lines around the 76-column limit, with encoded characters at every offset. */
    char s[400];
    for (size_t len = 70; len < 160; len++) {
        for (size_t at = 0; at < len; at += 7) {
            memset(s, 'x', len);
            s[at] = '=';
            s[len - 1] = ' ';
            qp_roundtrip(s, len);
            s[len - 1] = (char)0xe9;
            qp_roundtrip(s, len);
        }
    }
    /* A NUL byte is data like any other. */
    qp_roundtrip("a\0b", 3);
}

static void test_qp_random(void **state)
{
    (void)state;
    static char s[1 << 15];
    for (int round = 0; round < 200; round++) {
        size_t n = random_text(s, 64 + rng() % (sizeof s - 64));
        qp_roundtrip(s, n);
    }
    /* And through mime_build: non-ASCII text goes quoted-printable and comes back. */
    size_t n = random_text(s, 20000);
    struct mime_parts p = { .from = "a@example.com", .text = s, .text_len = n };
    build(&p, "r@example.org");
    expect_header("Content-Transfer-Encoding", "quoted-printable");
    size_t bl;
    const uint8_t *b = body(&bl);
    static uint8_t want[1 << 16];
    size_t wl = crlf(s, n, want);
    /* mime_build ends the message with CRLF when the text did not. */
    if (wl < 2 || memcmp(want + wl - 2, "\r\n", 2) != 0)
        bl -= 2;
    size_t d = tm_qp_decode(b, bl, DEC);
    assert_int_equal(d, wl);
    assert_memory_equal(DEC, want, d);
}

static void test_7bit_choice(void **state)
{
    (void)state;
    char line[1200];
    memset(line, 'a', sizeof line);
    assert_int_equal(mime_body_cte((const uint8_t *)line, 998), MIME_CTE_7BIT);
    assert_int_equal(mime_body_cte((const uint8_t *)line, 999), MIME_CTE_QP);
    line[998] = '\n';
    assert_int_equal(mime_body_cte((const uint8_t *)line, 1200), MIME_CTE_7BIT);
    assert_int_equal(mime_body_cte((const uint8_t *)"caf\xc3\xa9", 5), MIME_CTE_QP);
    assert_int_equal(mime_body_cte((const uint8_t *)"a\0b", 3), MIME_CTE_QP);
    /* A line that could pose as one of our boundaries forces QP. */
    const char *evil = "hi\n--=_salvo_alt_5a17e0ddc0ffee42\nbye";
    assert_int_equal(mime_body_cte((const uint8_t *)evil, strlen(evil)), MIME_CTE_QP);
    assert_int_equal(mime_body_cte((const uint8_t *)"--= not ours", 12), MIME_CTE_7BIT);

    /* Built, the boundary line appears only where the structure puts it. */
    struct mime_parts p = { .from = "a@example.com", .text = evil, .text_len = strlen(evil),
                            .html = evil, .html_len = strlen(evil) };
    build(&p, "r@example.org");
    size_t bl;
    const uint8_t *b = body(&bl);
    int delims = 0;
    for (size_t i = 0; i + 4 <= bl; i++)
        if ((i == 0 || b[i - 1] == '\n') && memcmp(b + i, "--=_", 4) == 0)
            delims++;
    assert_int_equal(delims, 3);

    /* A long ASCII line goes QP, and the decoded text is unchanged. */
    memset(line, 'b', sizeof line);
    p = (struct mime_parts){ .from = "a@example.com", .text = line, .text_len = sizeof line };
    build(&p, "r@example.org");
    expect_header("Content-Transfer-Encoding", "quoted-printable");
}

static void test_subject_rfc2047(void **state)
{
    (void)state;
    static const char *const subjects[] = {
        "Grüße",
        "Ihre Bestellung ist unterwegs – Lieferung morgen zwischen 10 und 12 Uhr, "
        "Sendungsnummer 00340434161234567890 🎉🎉🎉",
        "日本語の件名はとても長いのでいくつかのエンコードされた単語に分割されます。日本語の件名は"
        "とても長いのでいくつかのエンコードされた単語に分割されます。",
        "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
        "ASCII start then ünïcödé   with  spaces\tand tab then ASCII end",
        "=?UTF-8?B?already encoded looking?= ok",
    };
    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
        struct mime_parts p = { .from = "a@example.com", .subject = subjects[i], .text = "x",
                                .text_len = 1 };
        build(&p, "r@example.org");
        assert_int_equal(header("Subject", V), 1);
        static char dec[1 << 16];
        int nwords;
        tm_2047_decode(V, dec, &nwords);
        assert_string_equal(dec, subjects[i]);
        assert_true(i == 5 ? nwords == 0 : nwords >= 1);
        if (strlen(subjects[i]) > 80)
            assert_true(nwords >= 2);
        check_field_lines(OUT.data, OUT.len, "Subject");
    }
}

static void test_folding(void **state)
{
    (void)state;
    char subj[3000] = "", list[600] = "";
    for (int i = 0; i < 40; i++)
        strcat(subj, i % 3 ? "word " : "longerword\t");
    strcat(subj, "end");
    for (int i = 0; i < 15; i++)
        strcat(list, i ? ", <list-unsub-token-abcdef@example.com>" : "<u@example.com>");
    struct mime_header h[] = { { "List-Unsubscribe", list }, { "X-Campaign", "spring  sale" } };
    struct mime_parts p = { .from = "a@example.com", .subject = subj, .text = "x",
                            .text_len = 1, .headers = h, .nheaders = 2 };
    build(&p, "r@example.org");
    /* All header lines fit 78 columns; unfolding gives back the exact values. */
    size_t he = hdr_end();
    for (size_t i = 0, col = 0; i < he; i++) {
        if (OUT.data[i] == '\r') {
            assert_true(col <= 78);
            col = 0;
            i++;
        } else {
            col++;
        }
    }
    expect_header("Subject", subj);
    expect_header("List-Unsubscribe", list);
    expect_header("X-Campaign", "spring  sale");

    /* A word no line can hold: encoded in Subject, refused elsewhere. */
    static char word[2100];
    memset(word, 'w', 2000);
    word[2000] = '\0';
    p = (struct mime_parts){ .from = "a@example.com", .subject = word, .text = "x",
                             .text_len = 1 };
    build(&p, "r@example.org");
    assert_int_equal(header("Subject", V), 1);
    static char dec[4096];
    int nwords;
    tm_2047_decode(V, dec, &nwords);
    assert_string_equal(dec, word);
    struct mime_header big = { "X-Long", word };
    p.subject = NULL;
    p.headers = &big;
    p.nheaders = 1;
    build_fails(&p, "r@example.org", "header line too long");
    /* A whitespace run next to non-ASCII text, and a field name so long that the first
     * encoded-word goes on a continuation line: both decode back exactly. */
    static char spaced[1700];
    memset(spaced, ' ', sizeof spaced);
    memcpy(spaced, "a", 1);
    memcpy(spaced + 1500, "\xc3\xa9 b", 4);
    spaced[1504] = '\0';
    struct mime_header longname = {
        "X-A-Very-Long-Header-Name-That-Leaves-Little-Room-For-Words-Xy", "Grüße und 🎉"
    };
    p = (struct mime_parts){ .from = "a@example.com", .subject = spaced, .text = "x",
                             .text_len = 1, .headers = &longname, .nheaders = 1 };
    build(&p, "r@example.org");
    assert_int_equal(header("Subject", V), 1);
    tm_2047_decode(V, dec, &nwords);
    assert_string_equal(dec, spaced);
    check_field_lines(OUT.data, OUT.len, "Subject");
    assert_int_equal(header(longname.name, V), 1);
    tm_2047_decode(V, dec, &nwords);
    assert_string_equal(dec, longname.value);
    check_field_lines(OUT.data, OUT.len, longname.name);
    struct mime_header midname = { "X-Header-Name-Of-Fifty-Eight-Characters-For-Two-Bytes-Abc",
                                   "Grüße und 🎉" };
    p.headers = &midname;
    build(&p, "r@example.org");
    assert_int_equal(header(midname.name, V), 1);
    tm_2047_decode(V, dec, &nwords);
    assert_string_equal(dec, midname.value);
    check_field_lines(OUT.data, OUT.len, midname.name);

    /* Surrounding whitespace is trimmed. */
    p = (struct mime_parts){ .from = "a@example.com", .subject = "  padded\t ", .text = "x",
                             .text_len = 1 };
    build(&p, "r@example.org");
    expect_header("Subject", "padded");
}

/* ---- addresses ---- */

static void test_addresses(void **state)
{
    (void)state;
    struct mime_parts p = { .from = "Zoë Ünicode <zoe@example.com>",
                            .to = "\"Smith, John\" <john@example.org>",
                            .reply_to = "J. Smith <js@example.org>, plain@example.org",
                            .text = "x", .text_len = 1 };
    build(&p, "john@example.org");
    assert_int_equal(header("From", V), 1);
    assert_memory_equal(V, "=?UTF-8?B?", 10);
    assert_non_null(strstr(V, "?= <zoe@example.com>"));
    char dec[512];
    int nwords;
    tm_2047_decode(V, dec, &nwords);
    assert_string_equal(dec, "Zoë Ünicode <zoe@example.com>");
    expect_header("To", "\"Smith, John\" <john@example.org>");
    expect_header("Reply-To", "\"J. Smith\" <js@example.org>, plain@example.org");

    /* A long non-ASCII display name folds into several words, the address stays whole. */
    p.from = "Ünïcödé Display Name That Is Rather Long Indeed Ünïcödé Display Name "
             "That Is Rather Long <very.long.address.for.testing@subdomain.example.com>";
    build(&p, "john@example.org");
    assert_int_equal(header("From", V), 1);
    tm_2047_decode(V, dec, &nwords);
    assert_true(nwords >= 2);
    assert_string_equal(dec, "Ünïcödé Display Name That Is Rather Long Indeed Ünïcödé Display "
                             "Name That Is Rather Long "
                             "<very.long.address.for.testing@subdomain.example.com>");
    check_field_lines(OUT.data, OUT.len, "From");

    /* Quoted names with escapes are unquoted, then re-encoded or re-quoted. */
    p.from = "\"Jöhn \\\"JJ\\\" Doe\" <j@example.com>";
    build(&p, "john@example.org");
    assert_int_equal(header("From", V), 1);
    tm_2047_decode(V, dec, &nwords);
    assert_string_equal(dec, "Jöhn \"JJ\" Doe <j@example.com>");
    p.from = "\"Back\\\\slash\" <j@example.com>";
    build(&p, "john@example.org");
    expect_header("From", "\"Back\\\\slash\" <j@example.com>");

    static const char *const bad[] = {
        "", "no-at-sign", "Ann <>", "Ann <a@b", "Ann <a@b> trailing", "a@b,", "a@b,,c@d",
        "\"unterminated <a@b>", "two words@example.com", "@example.com", "a@",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.from = bad[i];
        build_fails(&p, "john@example.org", "invalid From address");
    }
    p.from = "a@example.com";
    p.to = "not an address";
    build_fails(&p, NULL, "invalid To address");
    p.to = NULL;
    p.reply_to = "x";
    build_fails(&p, NULL, "invalid Reply-To address");

    /* No To and no envelope recipient: no To header. */
    p.reply_to = NULL;
    build(&p, NULL);
    assert_int_equal(header("To", NULL), 0);

    const char *a;
    size_t al;
    assert_int_equal(mime_parse_address("Ann <ann@example.com>", &a, &al), 0);
    assert_int_equal(al, 15);
    assert_memory_equal(a, "ann@example.com", al);
    assert_int_equal(mime_parse_address("  bob@example.com ", &a, &al), 0);
    assert_int_equal(al, 15);
    assert_memory_equal(a, "bob@example.com", al);
    assert_int_equal(mime_parse_address("\"x, <y>\" <c@d.e>", &a, &al), 0);
    assert_memory_equal(a, "c@d.e", al);
    assert_int_equal(mime_parse_address("a@b.c, d@e.f", &a, &al), -1);
    assert_int_equal(mime_parse_address("Ann", &a, &al), -1);
}

/* ---- rejections and generated headers ---- */

static void test_rejections(void **state)
{
    (void)state;
    struct mime_parts p = { .from = "a@example.com", .text = "x", .text_len = 1 };
    struct mime_parts q = p;
    q.from = NULL;
    build_fails(&q, "r@example.org", "missing From");
    q = p;
    q.text = NULL;
    build_fails(&q, "r@example.org", "message has no body");
    q = p;
    q.subject = "Hi\r\nBcc: victim@example.com";
    build_fails(&q, "r@example.org", "header injection");
    q.subject = "Hi\nthere";
    build_fails(&q, "r@example.org", "header injection");
    q.subject = "bell\a";
    build_fails(&q, "r@example.org", "control character in header value");
    q.subject = "bad \xc3\x28 utf8";
    build_fails(&q, "r@example.org", "header value is not valid UTF-8");
    q = p;
    q.from = "Ann <a@example.com>\r\nBcc: v@example.com";
    build_fails(&q, "r@example.org", "header injection");
    build_fails(&p, "r@example.org\r\nX: y", "header injection");

    struct {
        const char *name, *value, *err;
    } hs[] = {
        { "X-Ok", "a\r\nb", "header injection" },
        { "X-Ok", "a\rb", "header injection" },
        { "X Bad", "v", "bad header name" },
        { "X:Bad", "v", "bad header name" },
        { "", "v", "bad header name" },
        { "X-Bäd", "v", "bad header name" },
        { "X-Ok", NULL, "missing header value" },
        { "Content-Type", "text/plain", "MIME-Version, Content-Type and "
                                        "Content-Transfer-Encoding are set by Salvo" },
        { "mime-version", "1.0", "MIME-Version, Content-Type and "
                                 "Content-Transfer-Encoding are set by Salvo" },
        { "CONTENT-TRANSFER-ENCODING", "8bit", "MIME-Version, Content-Type and "
                                               "Content-Transfer-Encoding are set by Salvo" },
        { "bcc", "x@example.com", "Bcc header would be visible to the recipient" },
        { "From", "x@example.com", "duplicate header" },
        { "To", "x@example.com", "duplicate header" },
        { "Cc", "not an address", "invalid address in address header" },
        { "Message-ID", "no-brackets@example.com", "invalid Message-ID" },
        { "X-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "v",
          "header name too long" },
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        struct mime_header h = { hs[i].name, hs[i].value };
        q = p;
        q.headers = &h;
        q.nheaders = 1;
        build_fails(&q, "r@example.org", hs[i].err);
        const char *err = NULL;
        if (strcmp(hs[i].err, "duplicate header") != 0) {
            assert_int_equal(mime_check_header(hs[i].name, hs[i].value, &err), -1);
            assert_string_equal(err, hs[i].err);
        }
    }
    /* Once-only fields given twice among the extra headers. */
    struct mime_header two[] = { { "References", "<a@b>" }, { "references", "<c@d>" } };
    q = p;
    q.headers = two;
    q.nheaders = 2;
    build_fails(&q, "r@example.org", "duplicate header");
    /* Repeatable fields are fine. */
    struct mime_header rep[] = { { "X-Tag", "a" }, { "X-Tag", "b" }, { "Keywords", "k" } };
    q.headers = rep;
    q.nheaders = 3;
    build(&q, "r@example.org");
    assert_int_equal(header("X-Tag", V), 2);

    struct mime_attachment bad_att[] = {
        { "a\r\nb.txt", NULL, (const uint8_t *)"x", 1 },
        { "a\x01.txt", NULL, (const uint8_t *)"x", 1 },
        { "\xff.txt", NULL, (const uint8_t *)"x", 1 },
        { "a.txt", "text", (const uint8_t *)"x", 1 },
        { "a.txt", "text/plain; charset", (const uint8_t *)"x", 1 },
        { "a.txt", "text/plain\r\nX: y", (const uint8_t *)"x", 1 },
        { "a.txt", "multipart/mixed", (const uint8_t *)"x", 1 },
        { "a.txt", "Message/rfc822", (const uint8_t *)"x", 1 },
        { "a.txt", NULL, NULL, 5 },
    };
    const char *att_err[] = {
        "header injection", "control character in attachment filename",
        "attachment filename is not valid UTF-8", "invalid attachment content type",
        "invalid attachment content type", "invalid attachment content type",
        "attachment content type cannot be multipart or message",
        "attachment content type cannot be multipart or message", "attachment has no data",
    };
    for (size_t i = 0; i < sizeof bad_att / sizeof bad_att[0]; i++) {
        q = p;
        q.attachments = &bad_att[i];
        q.nattachments = 1;
        build_fails(&q, "r@example.org", att_err[i]);
    }
    struct mime_attachment ok_att = { "a.txt", "text/plain; charset=\"utf-8\"; format=flowed",
                                      (const uint8_t *)"x", 1 };
    q.attachments = &ok_att;
    build(&q, "r@example.org");

    q = p;
    q.message_id_domain = "bad domain";
    build_fails(&q, "r@example.org", "invalid Message-ID domain");

    /* The output cap is honoured and reported. */
    struct buf small;
    buf_init(&small, 100);
    const char *err = NULL;
    assert_int_equal(mime_build(&p, "r@example.org", NOW_MS, UNIQUE, &small, &err), -1);
    assert_string_equal(err, "message too large");
    assert_int_equal(small.len, 0);
    buf_fini(&small);

    assert_int_equal(mime_check_header("List-Unsubscribe", "<https://x.example/u>", &err), 0);
    assert_int_equal(mime_check_header("Reply-To", "Ann <a@b.c>, d@e.f", &err), 0);
    assert_int_equal(mime_check_header("X-Note", "Grüße", &err), 0);
}

static void test_date_and_message_id(void **state)
{
    (void)state;
    struct { uint64_t ms; const char *want; } dates[] = {
        { 0, "Thu, 1 Jan 1970 00:00:00 +0000" },
        { 951782400000ull, "Tue, 29 Feb 2000 00:00:00 +0000" },
        { 4102444799999ull, "Thu, 31 Dec 2099 23:59:59 +0000" },
        { NOW_MS, "Tue, 14 Nov 2023 22:13:20 +0000" },
    };
    struct mime_parts p = { .from = "a@example.com", .text = "x", .text_len = 1 };
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        const char *err;
        buf_clear(&OUT);
        assert_int_equal(mime_build(&p, "r@example.org", dates[i].ms, 255, &OUT, &err), 0);
        expect_header("Date", dates[i].want);
        char want[128];
        snprintf(want, sizeof want, "<ff.%llu@example.com>", (unsigned long long)dates[i].ms);
        expect_header("Message-ID", want);
    }
    /* Given by the caller: used once, not generated. */
    struct mime_header h[] = { { "date", "Mon, 2 Jan 2023 10:00:00 +0100" },
                               { "Message-Id", "<given@example.net>" } };
    p.headers = h;
    p.nheaders = 2;
    build(&p, "r@example.org");
    expect_header("Date", "Mon, 2 Jan 2023 10:00:00 +0100");
    expect_header("Message-ID", "<given@example.net>");
    p.nheaders = 1;
    build(&p, "r@example.org");
    expect_header("Date", "Mon, 2 Jan 2023 10:00:00 +0100");
    expect_header("Message-ID", "<5a17e0ddc0ffee42.1700000000123@example.com>");
}

/* Every output cap below the message's size fails cleanly; at its size the same bytes. */
static void test_output_caps(void **state)
{
    (void)state;
    static uint8_t bin[300];
    memset(bin, 0xab, sizeof bin);
    struct mime_attachment att[] = { { "Résumé.pdf", "application/pdf", bin, sizeof bin },
                                     { "a.txt", NULL, (const uint8_t *)"x", 1 } };
    struct mime_header h = { "X-Campaign", "Frühling" };
    struct mime_parts p = { .from = "Zoë <z@example.com>", .subject = "Grüße 🎉 hello",
                            .text = "tëxt\n", .text_len = 6, .html = "<p>x</p>",
                            .html_len = 8, .headers = &h, .nheaders = 1, .attachments = att,
                            .nattachments = 2 };
    build(&p, "r@example.org");
    size_t full = OUT.len;
    static uint8_t want[1 << 14];
    memcpy(want, OUT.data, full);
    for (size_t cap = 0; cap <= full; cap++) {
        struct buf b;
        buf_init(&b, cap);
        const char *err = NULL;
        int rc = mime_build(&p, "r@example.org", NOW_MS, UNIQUE, &b, &err);
        if (cap < full) {
            assert_int_equal(rc, -1);
            assert_string_equal(err, "message too large");
            assert_int_equal(b.len, 0);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(b.len, full);
            assert_memory_equal(b.data, want, full);
        }
        buf_fini(&b);
    }
}

/* ---- cross-check with Python's email package ---- */

static const char PY[] =
    "import email, email.policy, sys, json, base64\n"
    "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n"
    "defects = []\n"
    "def note(p):\n"
    "    defects.extend(type(d).__name__ for d in p.defects)\n"
    "    for k, v in p.items():\n"
    "        defects.extend(k + ':' + type(d).__name__ for d in getattr(v, 'defects', ()))\n"
    "out = {'subject': str(m['subject']), 'to': str(m['to']), 'parts': []}\n"
    "out['headers'] = {k: str(v) for k, v in m.items()}\n"
    "a = m['from'].addresses[0]\n"
    "out['from_name'], out['from_addr'] = a.display_name, a.addr_spec\n"
    "for p in m.walk():\n"
    "    note(p)\n"
    "    d = {'type': p.get_content_type()}\n"
    "    if not p.is_multipart():\n"
    "        d['filename'] = p.get_filename()\n"
    "        c = p.get_content()\n"
    "        if isinstance(c, str): d['text'] = c.replace('\\r\\n', '\\n')\n"
    "        else: d['b64'] = base64.b64encode(c).decode()\n"
    "    out['parts'].append(d)\n"
    "out['defects'] = defects\n"
    "print(json.dumps(out))\n";

/* Runs PY over OUT; returns the parsed summary, or NULL when python3 is not installed. */
static json_t *python_read(void)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        return NULL;
    char msg[] = "/tmp/salvo_mime_XXXXXX", py[] = "/tmp/salvo_mime_py_XXXXXX";
    int fd = mkstemp(msg), pfd = mkstemp(py);
    assert_true(fd >= 0 && pfd >= 0);
    assert_int_equal(write(fd, OUT.data, OUT.len), (ssize_t)OUT.len);
    assert_int_equal(write(pfd, PY, strlen(PY)), (ssize_t)strlen(PY));
    close(fd);
    close(pfd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", py, msg);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    static char res[1 << 20];
    size_t n = fread(res, 1, sizeof res - 1, f);
    res[n] = '\0';
    assert_int_equal(pclose(f), 0);
    unlink(msg);
    unlink(py);
    json_error_t je;
    json_t *j = json_loads(res, 0, &je);
    if (!j)
        fail_msg("python output: %s", res);
    assert_int_equal(json_array_size(json_object_get(j, "defects")), 0);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_python_email(void **state)
{
    (void)state;
    static uint8_t bin[3000];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)rng();
    char fname[300] = "";
    for (int i = 0; i < 8; i++)
        strcat(fname, "Überweisung_Ärger_");
    strcat(fname, ".bin");
    static char text[8000];
    size_t tn = random_text(text, sizeof text);
    /* Python reads lone CRs differently; keep to LF and CRLF for the comparison. */
    for (size_t i = 0; i < tn; i++)
        if (text[i] == '\r' && (i + 1 == tn || text[i + 1] != '\n'))
            text[i] = 'r';
    const char *html = "<p>Hallo Zoë — \"quotes\" & <b>bold</b></p>\n";
    const char *subject = "Grüße aus Köln: 日本語のテスト 🎉 with a long ASCII tail to force "
                          "folding across several lines of the header block";
    struct mime_attachment att[] = { { fname, "application/octet-stream", bin, sizeof bin },
                                     { "notes.txt", "text/plain", (const uint8_t *)"n\r\n", 3 } };
    struct mime_header h[] = { { "X-Campaign", "Frühling 2024" },
                               { "List-Unsubscribe", "<mailto:u@example.com>" } };
    struct mime_parts p = { .from = "Zoë Ünicode <zoe@example.com>",
                            .to = "\"Smith, John\" <john@example.org>", .subject = subject,
                            .text = text, .text_len = tn, .html = html,
                            .html_len = strlen(html), .headers = h, .nheaders = 2,
                            .attachments = att, .nattachments = 2 };
    build(&p, "john@example.org");
    json_t *j = python_read();
    if (!j)
        skip();
    assert_string_equal(jstr(j, "subject"), subject);
    assert_string_equal(jstr(j, "from_name"), "Zoë Ünicode");
    assert_string_equal(jstr(j, "from_addr"), "zoe@example.com");
    assert_string_equal(jstr(j, "to"), "\"Smith, John\" <john@example.org>");
    json_t *parts = json_object_get(j, "parts");
    assert_int_equal(json_array_size(parts), 6);
    assert_string_equal(jstr(json_array_get(parts, 0), "type"), "multipart/mixed");
    assert_string_equal(jstr(json_array_get(parts, 1), "type"), "multipart/alternative");
    assert_string_equal(jstr(json_array_get(parts, 2), "type"), "text/plain");
    static char want[16000];
    size_t w = 0;
    for (size_t i = 0; i < tn; i++)
        if (!(text[i] == '\r' && i + 1 < tn && text[i + 1] == '\n'))
            want[w++] = text[i];
    want[w] = '\0';
    assert_string_equal(jstr(json_array_get(parts, 2), "text"), want);
    assert_string_equal(jstr(json_array_get(parts, 3), "type"), "text/html");
    assert_string_equal(jstr(json_array_get(parts, 3), "text"), html);
    json_t *a0 = json_array_get(parts, 4);
    assert_string_equal(jstr(a0, "filename"), fname);
    size_t d = tm_b64_decode((const uint8_t *)jstr(a0, "b64"), strlen(jstr(a0, "b64")), DEC);
    assert_int_equal(d, sizeof bin);
    assert_memory_equal(DEC, bin, d);
    assert_string_equal(jstr(json_array_get(parts, 5), "filename"), "notes.txt");
    assert_string_equal(jstr(json_array_get(parts, 5), "text"), "n\n");
    json_decref(j);

    /* Whitespace runs beside encoded-words, a fold right after a long field name. */
    char spaced[200];
    memset(spaced, ' ', sizeof spaced);
    memcpy(spaced, "a", 1);
    memcpy(spaced + 120, "\xc3\xa9 b  \xc3\xa9", 9);
    spaced[129] = '\0';
    struct mime_header longname = {
        "X-A-Very-Long-Header-Name-That-Leaves-Little-Room-For-Words-Xy", "Grüße und 🎉"
    };
    struct mime_parts l = { .from = "a@example.com", .subject = spaced, .text = "x",
                            .text_len = 1, .headers = &longname, .nheaders = 1 };
    build(&l, "r@example.org");
    j = python_read();
    assert_non_null(j);
    assert_string_equal(jstr(j, "subject"), spaced);
    assert_string_equal(jstr(json_object_get(j, "headers"), longname.name), longname.value);
    json_decref(j);

    /* A simple 7bit message too. */
    struct mime_parts s = { .from = "a@example.com", .subject = "plain", .text = "hi\n",
                            .text_len = 3 };
    build(&s, "r@example.org");
    j = python_read();
    assert_non_null(j);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "parts"), 0), "text"), "hi\n");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_only),
        cmocka_unit_test(test_html_only),
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_mixed_attachments),
        cmocka_unit_test(test_attachments_only),
        cmocka_unit_test(test_long_filename_continuations),
        cmocka_unit_test(test_qp),
        cmocka_unit_test(test_qp_random),
        cmocka_unit_test(test_7bit_choice),
        cmocka_unit_test(test_subject_rfc2047),
        cmocka_unit_test(test_folding),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_date_and_message_id),
        cmocka_unit_test(test_output_caps),
        cmocka_unit_test(test_python_email),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
