/* engine/dns/dns_ttl.h — extracts cache lifetimes from a raw DNS response: the smallest answer
 * TTL, and for negative answers the SOA-derived TTL of RFC 2308 §5. c-ares 1.18 parses the
 * records but drops most TTLs, so this reads the wire format itself. Pure, bounded, fuzzed. */
#ifndef SALVO_ENGINE_DNS_DNS_TTL_H
#define SALVO_ENGINE_DNS_DNS_TTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dns_ttl_info {
    unsigned rcode;          /* header RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...) */
    bool truncated;          /* TC bit set */
    unsigned answers;        /* records in the answer section */
    bool has_answer_ttl;     /* answers > 0 */
    uint32_t answer_ttl_s;   /* smallest TTL of the answer section (CNAMEs included) */
    bool has_soa;            /* an SOA was found in the authority section */
    uint32_t negative_ttl_s; /* min(SOA TTL, SOA MINIMUM) of the first such SOA */
};

/* Parses a whole response of len bytes. Returns 0, or -1 with *err set to static text when
 * the packet is truncated or malformed (bad label, looping or forward compression pointer,
 * name over 255 bytes, record running past its end). */
int dns_ttl_parse(const uint8_t *buf, size_t len, struct dns_ttl_info *out, const char **err);

#endif
