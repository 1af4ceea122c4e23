/* tests/fuzz/fuzz_shaping.c — shaping_parse over arbitrary bytes. A file that parses must
 * resolve, for any destination and source, to limits inside every field's range with a
 * provenance for each field; one that does not must say why and return nothing. The same
 * bytes, split into lines, exercise the MX-rollup site key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/shaping.h"

static void fuzz__check(const struct shaping_rules *r, const char *domain, const char *const *mx,
                        unsigned nmx, const char *source)
{
    struct shaping_limits l;
    struct shaping_provenance p;
    shaping_resolve(r, domain, mx, nmx, source, &l, &p);
    for (unsigned f = 0; f < SHAPING_F__COUNT; f++) {
        char v[512];
        if (!p.from[f] || !p.from[f][0] ||
            shaping_value_to_text(&l, (enum shaping_field)f, v, sizeof v) >= sizeof v)
            abort();
    }
    if (l.max_connections < 1 || l.max_connections > 10000 || l.nretry < 1 ||
        l.nretry > SHAPING_RETRY_MAX || l.max_rcpts_per_txn < 1 || l.max_rcpts_per_txn > 1000 ||
        l.max_msgs_per_connection < 1 || l.max_age_s < 1 || l.timeouts.connect_ms < 1 ||
        l.max_msgs_per_second < 0 || l.max_msgs_per_hour < 0 ||
        (unsigned)l.tls > SHAPING_TLS_VERIFY)
        abort();
    for (unsigned i = 0; i < l.nretry; i++)
        if (l.retry_schedule_s[i] < 1)
            abort();
    struct gcra_rate m[SHAPING_MSG_BUCKETS], c;
    shaping_msg_rates(&l, m);
    shaping_conn_rate(&l, &c);
    struct gcra g[SHAPING_MSG_BUCKETS] = {{0}};
    (void)gcra_take_all(g, m, SHAPING_MSG_BUCKETS, 1000, 1, NULL);
    const char *pv = shaping_provider_of(r, domain, mx, nmx);
    if (pv && !pv[0])
        abort();
}

static void fuzz__site_key(const char *text, size_t size)
{
    /* Up to 16 lines as MX host names; the key must not depend on their order. */
    char *copy = malloc(size + 1);
    if (!copy)
        return;
    memcpy(copy, text, size);
    copy[size] = '\0';
    const char *hosts[16], *rev[16];
    unsigned n = 0;
    for (char *s = copy, *nl; n < 16 && s; s = nl) {
        nl = strchr(s, '\n');
        if (nl)
            *nl++ = '\0';
        hosts[n++] = s;
    }
    for (unsigned i = 0; i < n; i++)
        rev[i] = hosts[n - 1 - i];
    char a[256], b[256];
    size_t la = shaping_site_key(hosts, n, a, sizeof a);
    size_t lb = shaping_site_key(rev, n, b, sizeof b);
    if (la != lb || strcmp(a, b) != 0 || (la < sizeof a && strlen(a) != la))
        abort();
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct shaping_rules *r = (struct shaping_rules *)1;
    char err[256] = "";
    int rc = shaping_parse(text, size, &r, err, sizeof err);
    if (rc != 0) {
        if (r || !err[0])
            abort();
    } else {
        static const char *const domains[] = {"gmail.com", "example.com", "EXAMPLE.COM.",
                                              "me.com", "x.org", "", NULL};
        static const char *const mx[] = {"aspmx.l.google.com.", "mta5.am0.yahoodns.net",
                                         "a.mail.protection.outlook.com", "mx01.mail.icloud.com"};
        static const char *const sources[] = {"ip-a", "ip-b", "s", NULL};
        for (unsigned d = 0; d < sizeof domains / sizeof *domains; d++)
            for (unsigned s = 0; s < sizeof sources / sizeof *sources; s++)
                for (unsigned m = 0; m <= 4; m++)
                    fuzz__check(r, domains[d], m < 4 ? &mx[m] : NULL, m < 4 ? 1 : 0, sources[s]);
        shaping_free(r);
    }
    fuzz__site_key(text, size);
    free(text);
    return 0;
}
