/* tests/fuzz/fuzz_smtp_reply.c — the SMTP reply parser against arbitrary server output.
 * Input: byte 0 picks small limits (or defaults), bytes 1-8 are a cycle of chunk sizes, the
 * rest is what the server sent. Parsing in those chunks must give exactly what parsing in
 * one go gives, and every completed reply must satisfy the header's promises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/smtp/smtp_reply.h"

#define FUZZ_HEADER_BYTES 9

static void fuzz__check_reply(const struct smtp_reply_parser *p)
{
    const struct smtp_reply *r = &p->reply;
    if (r->code < 200 || r->code > 559 || (r->code / 10) % 10 > 5)
        abort();
    if (r->text_len >= SMTP_REPLY_TEXT_MAX || r->text[r->text_len] != '\0' ||
        strlen(r->text) != r->text_len)
        abort();
    for (size_t i = 0; i < r->text_len; i++)
        if (((unsigned char)r->text[i] < 0x20 && r->text[i] != '\n') || r->text[i] == 0x7f)
            abort();
    if (r->nlines < 1 || r->nlines > p->lim.max_lines)
        abort();
    if (r->enh_class != 0 && (r->enh_class != r->code / 100 || r->enhanced[0] == '\0' ||
                              r->enh_subject > 999 || r->enh_detail > 999))
        abort();
    if (r->enh_class == 0 && r->enhanced[0] != '\0')
        abort();
}

static bool fuzz__same(const struct smtp_reply *a, const struct smtp_reply *b)
{
    return a->code == b->code && a->enh_class == b->enh_class &&
           a->enh_subject == b->enh_subject && a->enh_detail == b->enh_detail &&
           strcmp(a->enhanced, b->enhanced) == 0 && a->text_len == b->text_len &&
           memcmp(a->text, b->text, a->text_len) == 0 && a->nlines == b->nlines &&
           a->truncated == b->truncated;
}

/* Feeds b chunk by chunk from *pos until it completes a reply, fails or runs out. */
static ssize_t fuzz__chunked(struct smtp_reply_parser *b, const char *d, size_t len,
                             size_t *pos, const uint8_t *sizes, unsigned *k)
{
    for (;;) {
        size_t want = sizes[(*k)++ % 8] % 64 + 1, rest = len - *pos;
        size_t n = want < rest ? want : rest;
        ssize_t r = smtp_reply_parse(b, d + *pos, n);
        if (r == -1)
            return -1;
        if (r > 0) {
            if ((size_t)r > n)
                abort();
            *pos += (size_t)r;
            return r;
        }
        if (r != -2)
            abort();
        *pos += n;
        if (*pos == len)
            return -2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct smtp_reply_parser a, b;
    if (size < FUZZ_HEADER_BYTES)
        return 0;
    struct smtp_reply_limits lim = { 0, 0 };
    if (data[0] & 1) {
        lim.max_line_bytes = data[0] >> 1;
        lim.max_lines = data[0] % 7 + 1;
    }
    const uint8_t *sizes = data + 1;
    const char *d = (const char *)data + FUZZ_HEADER_BYTES;
    size_t len = size - FUZZ_HEADER_BYTES, pos_a = 0, pos_b = 0;
    unsigned k = 0;
    smtp_reply_parser_init(&a, &lim);
    smtp_reply_parser_init(&b, &lim);
    while (pos_a < len) {
        ssize_t ra = smtp_reply_parse(&a, d + pos_a, len - pos_a);
        ssize_t rb = fuzz__chunked(&b, d, len, &pos_b, sizes, &k);
        if (ra == -1) {
            if (rb != -1 || a.error == NULL || b.error == NULL || strcmp(a.error, b.error))
                abort();
            return 0;
        }
        if (ra == -2) {
            if (rb != -2 || pos_b != len)
                abort();
            return 0;
        }
        if (ra <= 0 || (size_t)ra > len - pos_a || rb <= 0)
            abort();
        pos_a += (size_t)ra;
        if (pos_a != pos_b)
            abort();
        fuzz__check_reply(&a);
        if (!fuzz__same(&a.reply, &b.reply))
            abort();
    }
    return 0;
}
