/* schedulers/concurrency.h — how many connections a site may have open now: its limit, cut
 * by concurrency feedback the way Postfix's scheduler does it. A 421, a refused connection or
 * a connection timeout halves the window (never below 1); every delivered transaction grows
 * it by 1/window (so by about one connection per window's worth of deliveries), up to the
 * limit. Pure: no clock, no I/O. */
#ifndef SALVO_SCHEDULERS_CONCURRENCY_H
#define SALVO_SCHEDULERS_CONCURRENCY_H

#include <stdbool.h>

struct conc_window {
    double w;          /* connections allowed now; 0 = untouched (the full limit) */
};

/* Connections allowed now under limit max (at least 1). */
unsigned conc_allowed(const struct conc_window *c, unsigned max);
/* One outcome: ok (a delivered transaction) grows the window, !ok (pushback) halves it. */
void conc_feedback(struct conc_window *c, unsigned max, bool ok);
/* Whether one more connection may open with open connections already. */
bool conc_may_open(const struct conc_window *c, unsigned max, unsigned open);

#endif
