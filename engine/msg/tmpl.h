/* engine/msg/tmpl.h — campaign merge templates: `{{field}}` and `{{field|default}}` filled
 * from a caller's lookup, escaped for where the result goes (raw, HTML text, header value).
 * Does not know where field values come from; MIME encoding is engine/msg/mime.h's job. */
#ifndef SALVO_ENGINE_MSG_TMPL_H
#define SALVO_ENGINE_MSG_TMPL_H

#include <stddef.h>

#include "engine/util/buf.h"

#define TMPL_MAX_NAME_BYTES 64

/* Returns the field's value (value_len bytes, need not be NUL-terminated), or NULL when the
 * record has no such field. name is name_len bytes, not NUL-terminated. */
typedef const char *(*tmpl_lookup_fn)(void *ctx, const char *name, size_t name_len,
                                      size_t *value_len);

enum tmpl_escape {
    TMPL_RAW,       /* values copied as they are */
    TMPL_HTML,      /* & < > " ' in values become entities; template text is the author's HTML */
    TMPL_HEADER,    /* no CR, LF or NUL anywhere in the output: rejected, never stripped */
};

/* Appends the merged template to out. 0, or -1 with *err a static string and out as before.
 * Syntax: `{{ name }}` (name [A-Za-z0-9_.-]{1,64}, spaces/tabs allowed inside the braces),
 * `{{ name | default text }}` (default used when the field is missing or empty; the default
 * is trimmed and is template text, so it is not escaped). A missing field without default
 * renders as nothing. No other `{{` is allowed: syntax errors are "template syntax error". */
int tmpl_render(const char *tmpl, size_t len, tmpl_lookup_fn fn, void *ctx,
                enum tmpl_escape esc, struct buf *out, const char **err);
/* Validates syntax only, without values (campaigns are checked once, when stored). */
int tmpl_check(const char *tmpl, size_t len, const char **err);

#endif
