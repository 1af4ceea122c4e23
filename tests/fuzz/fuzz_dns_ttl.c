/* tests/fuzz/fuzz_dns_ttl.c — feeds arbitrary bytes to dns_ttl_parse as a DNS response and
 * checks it stays in bounds and its results keep their invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dns/dns_ttl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so any overread is past a heap allocation, where ASan sees it. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct dns_ttl_info info;
    const char *err = NULL;
    int rc = dns_ttl_parse(buf, size, &info, &err);
    if (rc == 0) {
        if (info.has_answer_ttl != (info.answers > 0))
            abort();
        if (info.answer_ttl_s > 0x7FFFFFFFu || info.negative_ttl_s > 0x7FFFFFFFu)
            abort();
        if (!info.has_soa && info.negative_ttl_s != 0)
            abort();
    } else if (rc != -1 || !err) {
        abort();
    }
    free(buf);
    return 0;
}
