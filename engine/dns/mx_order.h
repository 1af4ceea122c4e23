/* engine/dns/mx_order.h — the order in which a domain's exchangers are tried (RFC 5321 §5.1):
 * ascending preference, equal preferences shuffled, one entry per host name.
 * Pure: no I/O, no allocation; randomness is injected so tests are deterministic. */
#ifndef SALVO_ENGINE_DNS_MX_ORDER_H
#define SALVO_ENGINE_DNS_MX_ORDER_H

#include <stdint.h>

#include "engine/dns/dns.h"

/* Returns a uniformly distributed 32-bit value; arg is the caller's state. */
typedef uint32_t (*mx_order_rand_fn)(void *arg);

/* Sorts hosts[0..n) by pref, drops later duplicates of a name (case-insensitive, trailing
 * dot ignored, so the lowest preference wins), then shuffles each run of equal preference.
 * Returns the new count (<= n). rnd may be NULL to skip the shuffle. */
unsigned mx_order(struct dns_host *hosts, unsigned n, mx_order_rand_fn rnd, void *rnd_arg);

/* Compares two host names as DNS does: ASCII case-insensitive, trailing dot ignored. */
bool mx_order_same_name(const char *a, const char *b);

#endif
