/* engine/msg/tmpl.c — `{{field}}` merging for campaign templates. One scanner serves both
 * tmpl_check and tmpl_render, so a template that checks clean cannot fail to parse later.
 * Escaping is applied to field values only: template text and defaults are the author's. */
#include "engine/msg/tmpl.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char tmpl__syntax[] = "template syntax error";
static const char tmpl__injection[] = "header injection";

struct tmpl__tag {
    const char *name, *def;
    size_t name_len, def_len;
    bool has_def;
};

static bool tmpl__is_space(char c) { return c == ' ' || c == '\t'; }

static bool tmpl__is_name(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Parses a tag at t (which starts with "{{"); returns its length or 0 when malformed. */
static size_t tmpl__parse_tag(const char *t, size_t len, struct tmpl__tag *tag)
{
    size_t i = 2;
    while (i < len && tmpl__is_space(t[i]))
        i++;
    tag->name = t + i;
    while (i < len && tmpl__is_name(t[i]))
        i++;
    tag->name_len = (size_t)(t + i - tag->name);
    if (tag->name_len == 0 || tag->name_len > TMPL_MAX_NAME_BYTES)
        return 0;
    while (i < len && tmpl__is_space(t[i]))
        i++;
    tag->has_def = i < len && t[i] == '|';
    if (tag->has_def) {
        const char *close = memmem(t + i + 1, len - i - 1, "}}", 2);
        if (!close)
            return 0;
        const char *d = t + i + 1, *e = close;
        /* A second "{{" before the close would be a nested tag, which we do not have. */
        if (memmem(d, (size_t)(e - d), "{{", 2))
            return 0;
        while (d < e && tmpl__is_space(*d))
            d++;
        while (e > d && tmpl__is_space(e[-1]))
            e--;
        tag->def = d;
        tag->def_len = (size_t)(e - d);
        return (size_t)(close - t) + 2;
    }
    if (i + 1 < len && t[i] == '}' && t[i + 1] == '}')
        return i + 2;
    return 0;
}

/* buf_append with n == 0 on a never-grown buf would memcpy to NULL (UB), so skip it. */
static int tmpl__append(struct buf *out, const char *s, size_t n)
{
    return n ? buf_append(out, s, n) : 0;
}

static int tmpl__grow_error(int rc, const char **err)
{
    *err = rc == -ENOBUFS ? "template output too large" : "out of memory";
    return -1;
}

/* Template text and defaults: copied, but in header mode they may not break the line either. */
static int tmpl__text(struct buf *out, const char *s, size_t n, enum tmpl_escape esc,
                      const char **err)
{
    if (esc == TMPL_HEADER) {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') {
                *err = tmpl__injection;
                return -1;
            }
        }
    }
    int rc = tmpl__append(out, s, n);
    return rc ? tmpl__grow_error(rc, err) : 0;
}

static int tmpl__value(struct buf *out, const char *s, size_t n, enum tmpl_escape esc,
                       const char **err)
{
    if (esc != TMPL_HTML)
        return tmpl__text(out, s, n, esc, err);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ent;
        switch (s[i]) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: continue;
        }
        int rc = tmpl__append(out, s + run, i - run);
        if (!rc)
            rc = tmpl__append(out, ent, strlen(ent));
        if (rc)
            return tmpl__grow_error(rc, err);
        run = i + 1;
    }
    int rc = tmpl__append(out, s + run, n - run);
    return rc ? tmpl__grow_error(rc, err) : 0;
}

/* Walks the template; with out == NULL it only checks syntax. */
static int tmpl__scan(const char *t, size_t len, tmpl_lookup_fn fn, void *ctx,
                      enum tmpl_escape esc, struct buf *out, const char **err)
{
    size_t i = 0;
    while (i < len) {
        const char *open = memmem(t + i, len - i, "{{", 2);
        size_t lit_end = open ? (size_t)(open - t) : len;
        if (out && tmpl__text(out, t + i, lit_end - i, esc, err))
            return -1;
        if (!open)
            break;
        struct tmpl__tag tag;
        size_t n = tmpl__parse_tag(open, len - lit_end, &tag);
        if (n == 0) {
            *err = tmpl__syntax;
            return -1;
        }
        i = lit_end + n;
        if (!out)
            continue;
        size_t vlen = 0;
        const char *v = fn ? fn(ctx, tag.name, tag.name_len, &vlen) : NULL;
        if (v && vlen > 0) {
            if (tmpl__value(out, v, vlen, esc, err))
                return -1;
        } else if (tag.has_def) {
            if (tmpl__text(out, tag.def, tag.def_len, esc, err))
                return -1;
        }
    }
    return 0;
}

int tmpl_render(const char *tmpl, size_t len, tmpl_lookup_fn fn, void *ctx,
                enum tmpl_escape esc, struct buf *out, const char **err)
{
    size_t start = out->len;
    if (tmpl__scan(tmpl, len, fn, ctx, esc, out, err)) {
        out->len = start;
        return -1;
    }
    return 0;
}

int tmpl_check(const char *tmpl, size_t len, const char **err)
{
    return tmpl__scan(tmpl, len, NULL, NULL, TMPL_RAW, NULL, err);
}
