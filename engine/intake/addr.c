/* engine/intake/addr.c — mailbox syntax for envelopes (RFC 5321 §4.1.2, widened to UTF-8 by
 * RFC 6531) and the light From/To/Reply-To header check. It rejects what would break an SMTP
 * command or a header; it does not try to accept every obsolete RFC 5322 form. */
#include "engine/intake/addr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define WHY(msg) (why ? (*why = (msg), false) : false)

/* Length of the well-formed UTF-8 sequence starting at p (lead byte >= 0x80), or 0. Strict
 * per RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t addr__utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++)
        if (p[k] < 0x80 || p[k] > 0xbf)
            return 0;
    return need;
}

/* RFC 5322 atext: the characters a dot-atom may hold besides the dots. */
static bool addr__atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* The reason for an ASCII byte that may not appear where it was found. */
static const char *addr__bad_byte(unsigned char c, const char *where)
{
    if (c == ' ' || c == '\t')
        return "space in address";
    if (c < 0x20 || c == 0x7f)
        return "control character in address";
    if (c >= 0x80)
        return "invalid UTF-8 in address";
    return where;
}

/* Parses the local part at the start of s; returns its length or 0 with *why set. */
static size_t addr__local(const unsigned char *s, size_t len, const char **why)
{
    size_t i = 0;
    if (s[0] == '"') {
        for (i = 1;; i++) {
            if (i >= len) {
                *why = "unterminated quoted local part";
                return 0;
            }
            unsigned char c = s[i];
            if (c == '"')
                return i + 1;
            if (c == '\\') {
                if (i + 1 >= len || s[i + 1] < 0x20 || s[i + 1] > 0x7e) {
                    *why = "bad escape in quoted local part";
                    return 0;
                }
                i++;
            } else if (c >= 0x80) {
                size_t n = addr__utf8_seq(s + i, len - i);
                if (!n) {
                    *why = "invalid UTF-8 in address";
                    return 0;
                }
                i += n - 1;
            } else if (c < 0x20 || c == 0x7f) {
                *why = "control character in address";
                return 0;
            }
        }
    }
    for (; i < len && s[i] != '@'; i++) {
        unsigned char c = s[i];
        if (c == '.') {
            if (i == 0 || s[i - 1] == '.') {
                *why = i == 0 ? "local part starts with a dot" : "local part has consecutive dots";
                return 0;
            }
        } else if (c >= 0x80) {
            size_t n = addr__utf8_seq(s + i, len - i);
            if (!n) {
                *why = "invalid UTF-8 in address";
                return 0;
            }
            i += n - 1;
        } else if (!addr__atext(c)) {
            *why = addr__bad_byte(c, "invalid character in local part");
            return 0;
        }
    }
    if (i == 0) {
        *why = "local part empty";
        return 0;
    }
    if (s[i - 1] == '.') {
        *why = "local part ends with a dot";
        return 0;
    }
    return i;
}

static bool addr__literal(const char *d, size_t n, const char **why)
{
    char tmp[64];
    if (n < 3 || d[n - 1] != ']')
        return WHY("unterminated address literal");
    const char *in = d + 1;
    size_t inlen = n - 2;
    int af = AF_INET;
    if (inlen >= 5 && strncasecmp(in, "IPv6:", 5) == 0) {
        af = AF_INET6;
        in += 5;
        inlen -= 5;
    } else if (memchr(in, ':', inlen))
        return WHY("unsupported address literal (only IPv4 and IPv6:)");
    if (inlen == 0 || inlen >= sizeof tmp)
        return WHY("invalid address literal");
    memcpy(tmp, in, inlen);
    tmp[inlen] = '\0';
    if (strlen(tmp) != inlen)
        return WHY("control character in address");
    unsigned char out[16];
    if (inet_pton(af, tmp, out) != 1)
        return WHY(af == AF_INET ? "invalid IPv4 address literal" : "invalid IPv6 address literal");
    return true;
}

static bool addr__domain(const char *d, size_t n, const char **why)
{
    if (n == 0)
        return WHY("domain empty");
    if (d[0] == '[')
        return addr__literal(d, n, why);
    if (n > ADDR_MAX_DOMAIN_BYTES)
        return WHY("domain too long (over 253 octets)");
    const unsigned char *s = (const unsigned char *)d;
    size_t start = 0;
    bool numeric = true;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t l = i - start;
            if (l == 0)
                return WHY("empty domain label");
            if (l > ADDR_MAX_LABEL_BYTES)
                return WHY("domain label too long");
            if (s[start] == '-' || s[i - 1] == '-')
                return WHY("domain label starts or ends with a hyphen");
            if (i == n && numeric)
                return WHY("numeric top-level label (write an IP as a literal: [192.0.2.1])");
            start = i + 1;
            numeric = true;
            continue;
        }
        unsigned char c = s[i];
        if (c >= '0' && c <= '9')
            continue;
        numeric = false;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-')
            continue;
        if (c >= 0x80) {
            size_t k = addr__utf8_seq(s + i, n - i);
            if (!k)
                return WHY("invalid UTF-8 in address");
            i += k - 1;
            continue;
        }
        return WHY(addr__bad_byte(c, "invalid character in domain"));
    }
    return true;
}

bool addr_valid(const char *s, size_t len, const char **why)
{
    const char *r = NULL;
    if (len == 0)
        return WHY("empty address");
    if (len > ADDR_MAX_BYTES)
        return WHY("address too long (over 254 octets)");
    size_t l = addr__local((const unsigned char *)s, len, &r);
    if (!l)
        return WHY(r);
    if (l > ADDR_MAX_LOCAL_BYTES)
        return WHY("local part too long (over 64 octets)");
    if (l == len)
        return WHY("missing @");
    if (s[l] != '@')
        return WHY(addr__bad_byte((unsigned char)s[l], "text after quoted local part"));
    return addr__domain(s + l + 1, len - l - 1, why);
}

bool addr_valid_sender(const char *s, size_t len, const char **why)
{
    return len == 0 || addr_valid(s, len, why);
}

static bool addr__ws(char c)
{
    return c == ' ' || c == '\t';
}

/* One mailbox of a header list, s[0..n) with no top-level comma: "addr" or "phrase <addr>". */
static bool addr__header_item(const char *s, size_t n, const char **why)
{
    size_t lt = SIZE_MAX, gt = SIZE_MAX;
    bool inq = false;
    unsigned comment = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (inq || comment) {
            if (c == '\\')
                i++;
            else if (inq && c == '"')
                inq = false;
            else if (comment && c == '(')
                comment++;
            else if (comment && c == ')')
                comment--;
            continue;
        }
        if (gt != SIZE_MAX && !addr__ws(c) && c != '(')
            return WHY("text after '>'");
        if (c == '"')
            inq = true;
        else if (c == '(')
            comment = 1;
        else if (c == '<') {
            if (lt != SIZE_MAX)
                return WHY("more than one '<' in a mailbox");
            lt = i;
        } else if (c == '>') {
            if (lt == SIZE_MAX)
                return WHY("'>' without '<'");
            gt = i;
        }
    }
    if (inq)
        return WHY("unterminated quoted string");
    if (comment)
        return WHY("unterminated comment");
    if (lt != SIZE_MAX) {
        if (gt == SIZE_MAX)
            return WHY("missing '>'");
        return addr_valid(s + lt + 1, gt - lt - 1, why);
    }
    while (n && addr__ws(*s))
        s++, n--;
    while (n && addr__ws(s[n - 1]))
        n--;
    return addr_valid(s, n, why);
}

bool addr_header_valid(const char *s, size_t len, bool list, const char **why)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return WHY("control character in header value");
    }
    size_t start = 0, count = 0;
    bool inq = false, angle = false;
    unsigned comment = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : ',';
        if (i < len && (inq || comment)) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (inq && c == '"')
                inq = false;
            else if (comment && c == '(')
                comment++;
            else if (comment && c == ')')
                comment--;
            continue;
        }
        if (c == '"')
            inq = true;
        else if (c == '(')
            comment = 1;
        else if (c == '<')
            angle = true;
        else if (c == '>')
            angle = false;
        else if (c == ',' && (!angle || i == len)) {
            size_t k = start;
            while (k < i && addr__ws(s[k]))
                k++;
            if (k == i)
                return WHY(count || i < len ? "empty address in list" : "empty address");
            if (!addr__header_item(s + start, i - start, why))
                return false;
            if (++count > 1 && !list)
                return WHY("only one address allowed");
            start = i + 1;
        }
    }
    return true;
}
