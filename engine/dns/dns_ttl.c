/* engine/dns/dns_ttl.c — reads TTLs out of a DNS response (RFC 1035 §4.1, RFC 2308 §5).
 * Owns only the wire walk: names are validated (compression included) but never expanded,
 * and record data is skipped except for SOA. Does not decide what a TTL is used for. */
#include "engine/dns/dns_ttl.h"

#include <string.h>

#define DNS_TTL_HEADER_BYTES 12
#define DNS_TTL_NAME_MAX_BYTES 255   /* RFC 1035 §3.1, wire form including the root */
#define DNS_TTL_MAX_HOPS 64          /* compression pointers followed for one name */
#define DNS_TTL_TYPE_SOA 6

struct dns_ttl__cursor {
    const uint8_t *buf;
    size_t len;
    size_t off;
    const char *err;
};

static bool dns_ttl__fail(struct dns_ttl__cursor *c, const char *err)
{
    if (!c->err)
        c->err = err;
    return false;
}

static bool dns_ttl__u16(struct dns_ttl__cursor *c, uint16_t *v)
{
    if (c->len - c->off < 2)
        return dns_ttl__fail(c, "truncated DNS record");
    *v = (uint16_t)(c->buf[c->off] << 8 | c->buf[c->off + 1]);
    c->off += 2;
    return true;
}

static bool dns_ttl__u32(struct dns_ttl__cursor *c, uint32_t *v)
{
    if (c->len - c->off < 4)
        return dns_ttl__fail(c, "truncated DNS record");
    *v = (uint32_t)c->buf[c->off] << 24 | (uint32_t)c->buf[c->off + 1] << 16 |
         (uint32_t)c->buf[c->off + 2] << 8 | (uint32_t)c->buf[c->off + 3];
    c->off += 4;
    return true;
}

/* Validates the name at c->off and moves past it. Pointers are followed to check the name
 * they complete, but each must point before the previous one and the labels it leads to must
 * end before that pointer, so the walk strictly shrinks and cannot loop; the hop and length
 * limits bound the work on top of that. */
static bool dns_ttl__skip_name(struct dns_ttl__cursor *c)
{
    size_t pos = c->off, bound = c->len, end_of_name = 0, wire_bytes = 0;
    unsigned hops = 0;

    for (;;) {
        if (pos >= bound)
            return dns_ttl__fail(c, hops ? "DNS compression pointer loop" : "truncated DNS name");
        uint8_t b = c->buf[pos];
        if (b == 0) {
            if (!hops)
                end_of_name = pos + 1;
            break;
        }
        if ((b & 0xC0) == 0xC0) {
            if (pos + 1 >= c->len)
                return dns_ttl__fail(c, "truncated DNS name");
            size_t target = (size_t)(b & 0x3F) << 8 | c->buf[pos + 1];
            if (target >= pos)
                return dns_ttl__fail(c, "forward DNS compression pointer");
            if (++hops > DNS_TTL_MAX_HOPS)
                return dns_ttl__fail(c, "too many DNS compression pointers");
            if (hops == 1)
                end_of_name = pos + 2;
            bound = pos;
            pos = target;
            continue;
        }
        if (b & 0xC0)
            return dns_ttl__fail(c, "reserved DNS label type");
        wire_bytes += (size_t)b + 1;
        if (wire_bytes + 1 > DNS_TTL_NAME_MAX_BYTES)
            return dns_ttl__fail(c, "DNS name too long");
        pos += (size_t)b + 1;
    }
    c->off = end_of_name;
    return true;
}

/* RFC 2181 §8: a TTL with the top bit set is to be read as zero. */
static uint32_t dns_ttl__sane(uint32_t ttl)
{
    return (ttl & 0x80000000u) ? 0 : ttl;
}

struct dns_ttl__rr {
    uint16_t type, klass, rdlen;
    uint32_t ttl;
    size_t rdata;           /* offset of the record data */
};

static bool dns_ttl__rr(struct dns_ttl__cursor *c, struct dns_ttl__rr *rr)
{
    if (!dns_ttl__skip_name(c) || !dns_ttl__u16(c, &rr->type) ||
        !dns_ttl__u16(c, &rr->klass) || !dns_ttl__u32(c, &rr->ttl) ||
        !dns_ttl__u16(c, &rr->rdlen))
        return false;
    if (c->len - c->off < rr->rdlen)
        return dns_ttl__fail(c, "truncated DNS record data");
    rr->rdata = c->off;
    rr->ttl = dns_ttl__sane(rr->ttl);
    c->off += rr->rdlen;
    return true;
}

/* SOA RDATA: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM, all inside rdlen. */
static bool dns_ttl__soa_minimum(struct dns_ttl__cursor *c, const struct dns_ttl__rr *rr,
                                 uint32_t *minimum)
{
    struct dns_ttl__cursor in = { .buf = c->buf, .len = rr->rdata + rr->rdlen,
                                  .off = rr->rdata, .err = NULL };
    uint32_t fields[5];
    if (!dns_ttl__skip_name(&in) || !dns_ttl__skip_name(&in))
        return dns_ttl__fail(c, in.err ? in.err : "malformed SOA");
    for (unsigned i = 0; i < 5; i++)
        if (!dns_ttl__u32(&in, &fields[i]))
            return dns_ttl__fail(c, "truncated SOA record");
    *minimum = dns_ttl__sane(fields[4]);
    return true;
}

int dns_ttl_parse(const uint8_t *buf, size_t len, struct dns_ttl_info *out, const char **err)
{
    struct dns_ttl__cursor c = { .buf = buf, .len = len, .off = 0, .err = NULL };
    memset(out, 0, sizeof *out);
    if (!buf || len < DNS_TTL_HEADER_BYTES) {
        *err = "DNS response shorter than its header";
        return -1;
    }
    out->truncated = (buf[2] & 0x02) != 0;
    out->rcode = buf[3] & 0x0F;
    unsigned qd = (unsigned)(buf[4] << 8 | buf[5]);
    unsigned an = (unsigned)(buf[6] << 8 | buf[7]);
    unsigned ns = (unsigned)(buf[8] << 8 | buf[9]);
    c.off = DNS_TTL_HEADER_BYTES;
    out->answers = an;

    /* Counts come from the packet; each iteration consumes at least one byte, so a lying
     * count ends at "truncated" after at most len iterations. */
    for (unsigned i = 0; i < qd; i++) {
        uint16_t qtype, qclass;
        if (!dns_ttl__skip_name(&c) || !dns_ttl__u16(&c, &qtype) || !dns_ttl__u16(&c, &qclass))
            goto fail;
    }
    for (unsigned i = 0; i < an; i++) {
        struct dns_ttl__rr rr;
        if (!dns_ttl__rr(&c, &rr))
            goto fail;
        if (!out->has_answer_ttl || rr.ttl < out->answer_ttl_s)
            out->answer_ttl_s = rr.ttl;
        out->has_answer_ttl = true;
    }
    for (unsigned i = 0; i < ns; i++) {
        struct dns_ttl__rr rr;
        if (!dns_ttl__rr(&c, &rr))
            goto fail;
        if (rr.type != DNS_TTL_TYPE_SOA || out->has_soa)
            continue;
        uint32_t minimum;
        if (!dns_ttl__soa_minimum(&c, &rr, &minimum))
            goto fail;
        out->has_soa = true;
        out->negative_ttl_s = minimum < rr.ttl ? minimum : rr.ttl;
    }
    /* The additional section is not needed and c-ares has already vetted it. */
    return 0;

fail:
    *err = c.err ? c.err : "malformed DNS response";
    return -1;
}
