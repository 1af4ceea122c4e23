/* schedulers/concurrency.c — the concurrency feedback window (see concurrency.h). */
#include "schedulers/concurrency.h"

unsigned conc_allowed(const struct conc_window *c, unsigned max)
{
    if (max < 1)
        max = 1;
    if (c->w <= 0 || c->w >= max)
        return max;
    return c->w < 1 ? 1 : (unsigned)c->w;
}

void conc_feedback(struct conc_window *c, unsigned max, bool ok)
{
    if (max < 1)
        max = 1;
    if (c->w <= 0 || c->w > max)
        c->w = max;
    if (ok) {
        c->w += 1.0 / c->w;
        if (c->w > max)
            c->w = max;
    } else {
        c->w /= 2;
        if (c->w < 1)
            c->w = 1;
    }
}

bool conc_may_open(const struct conc_window *c, unsigned max, unsigned open)
{
    return open < conc_allowed(c, max);
}
