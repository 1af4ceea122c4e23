/* engine/dns/mx_order.c — sorting, de-duplication and shuffling of MX hosts.
 * Owns only the order of an array it is handed; resolution and caching live elsewhere. */
#include "engine/dns/mx_order.h"

#include <string.h>

static char mx_order__lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool mx_order_same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    if (la != lb)
        return false;
    for (size_t i = 0; i < la; i++)
        if (mx_order__lower(a[i]) != mx_order__lower(b[i]))
            return false;
    return true;
}

static void mx_order__swap(struct dns_host *a, struct dns_host *b)
{
    struct dns_host t;
    memcpy(&t, a, sizeof t);
    memcpy(a, b, sizeof t);
    memcpy(b, &t, sizeof t);
}

/* Fisher-Yates over one run. The modulo bias is irrelevant for runs of at most
 * DNS_MAX_HOSTS elements and a 32-bit source. */
static void mx_order__shuffle(struct dns_host *run, unsigned len, mx_order_rand_fn rnd,
                              void *rnd_arg)
{
    for (unsigned i = len; i > 1; i--) {
        unsigned j = rnd(rnd_arg) % i;
        if (j != i - 1)
            mx_order__swap(&run[j], &run[i - 1]);
    }
}

unsigned mx_order(struct dns_host *hosts, unsigned n, mx_order_rand_fn rnd, void *rnd_arg)
{
    /* Insertion sort: stable, so a duplicate's first (lowest-preference) copy is kept, and
     * n is at most a few dozen. */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && hosts[j - 1].pref > hosts[j].pref; j--)
            mx_order__swap(&hosts[j - 1], &hosts[j]);

    unsigned kept = 0;
    for (unsigned i = 0; i < n; i++) {
        bool dup = false;
        for (unsigned k = 0; k < kept && !dup; k++)
            dup = mx_order_same_name(hosts[k].name, hosts[i].name);
        if (dup)
            continue;
        if (kept != i)
            memcpy(&hosts[kept], &hosts[i], sizeof hosts[0]);
        kept++;
    }

    if (rnd) {
        for (unsigned start = 0; start < kept;) {
            unsigned end = start + 1;
            while (end < kept && hosts[end].pref == hosts[start].pref)
                end++;
            mx_order__shuffle(&hosts[start], end - start, rnd, rnd_arg);
            start = end;
        }
    }
    return kept;
}
