/* engine/msg/mime_address.c — address lists as written by API callers: top-level commas
 * split mailboxes (commas inside quotes, comments or <> do not), "Name <addr>" or a bare
 * addr-spec. The checks are those a receiver's parser would trip on, not full RFC 5322. */
#include "engine/msg/mime_address.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "engine/msg/mime.h"

static bool mime__wsp(char c) { return c == ' ' || c == '\t'; }

static void mime__trim(const char **s, size_t *n)
{
    while (*n && mime__wsp(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && mime__wsp((*s)[*n - 1]))
        (*n)--;
}

/* Index of the first top-level c (outside quotes, comments and, unless c is '<', angle
 * brackets) in s, or n when none; *bad set when quoting is unbalanced. */
static size_t mime__find_top(const char *s, size_t n, char c, bool *bad)
{
    bool q = false, angle = false;
    int depth = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char ch = s[i];
        if (q || depth) {
            if (ch == '\\' && i + 1 < n)
                i++;
            else if (q && ch == '"')
                q = false;
            else if (!q && ch == '(')
                depth++;
            else if (!q && ch == ')')
                depth--;
            continue;
        }
        if (angle) {
            if (ch == '>')
                angle = false;
            continue;
        }
        if (ch == c)
            break;
        if (ch == '"')
            q = true;
        else if (ch == '(')
            depth++;
        else if (ch == '<')
            angle = true;
    }
    if (i == n && (q || depth || angle))
        *bad = true;
    return i;
}

static bool mime__addr_ok(const char *a, size_t n)
{
    if (n == 0 || n > 320)
        return false;
    bool q = false;
    size_t at = n;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)a[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (q) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '"')
                q = false;
            continue;
        }
        if (c == '"')
            q = true;
        else if (c == '@')
            at = i;
        else if (c == ' ' || strchr("<>,;:()\\", c))
            return false;
    }
    return !q && at > 0 && at + 1 < n;
}

int mime_mailbox_next(const char *s, size_t len, size_t *pos, struct mime_mailbox *mb)
{
    size_t i = *pos;
    while (i < len && mime__wsp(s[i]))
        i++;
    if (i == len) {
        *pos = len;
        return 0;
    }
    bool bad = false;
    const char *e = s + i;
    size_t en = mime__find_top(e, len - i, ',', &bad);
    if (bad)
        return -1;
    size_t next = i + en;
    if (next < len) {
        /* An empty element ("a@b,,c@d" or a trailing comma) is a caller's mistake. */
        size_t k = ++next;
        while (k < len && mime__wsp(s[k]))
            k++;
        if (k == len)
            return -1;
    }
    mime__trim(&e, &en);
    if (en == 0)
        return -1;
    size_t lt = mime__find_top(e, en, '<', &bad);
    if (bad)
        return -1;
    memset(mb, 0, sizeof *mb);
    if (lt == en) {
        mb->addr = e;
        mb->addr_len = en;
    } else {
        const char *gt = memchr(e + lt, '>', en - lt);
        if (!gt)
            return -1;
        for (const char *t = gt + 1; t < e + en; t++)
            if (!mime__wsp(*t))
                return -1;
        mb->addr = e + lt + 1;
        mb->addr_len = (size_t)(gt - mb->addr);
        mime__trim(&mb->addr, &mb->addr_len);
        mb->display = e;
        mb->display_len = lt;
        mime__trim(&mb->display, &mb->display_len);
        if (mb->display_len == 0)
            mb->display = NULL;
    }
    if (!mime__addr_ok(mb->addr, mb->addr_len))
        return -1;
    *pos = next;
    return 1;
}

int mime_display_unquote(const struct mime_mailbox *mb, char *raw, size_t cap,
                         size_t *raw_len)
{
    const char *d = mb->display;
    size_t n = mb->display_len, o = 0;
    bool quoted = n >= 2 && d[0] == '"' && d[n - 1] == '"';
    if (quoted) {
        /* Only when the whole name is one quoted-string: "a" b "c" stays as written. */
        for (size_t i = 1; i + 1 < n; i++) {
            if (d[i] == '\\')
                i++;
            else if (d[i] == '"')
                quoted = false;
        }
    }
    for (size_t i = quoted ? 1 : 0; i < (quoted ? n - 1 : n); i++) {
        if (quoted && d[i] == '\\' && i + 2 < n)
            i++;
        if (o == cap)
            return -1;
        raw[o++] = d[i];
    }
    *raw_len = o;
    return 0;
}

bool mime_is_address_header(const char *name)
{
    static const char *const names[] = { "From", "To", "Cc", "Bcc", "Reply-To", "Sender" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

int mime_parse_address(const char *s, const char **addr, size_t *addr_len)
{
    struct mime_mailbox mb;
    size_t len = strlen(s), pos = 0;
    if (mime_mailbox_next(s, len, &pos, &mb) != 1 || pos != len)
        return -1;
    *addr = mb.addr;
    *addr_len = mb.addr_len;
    return 0;
}
