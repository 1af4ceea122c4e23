/* schedulers/backoff.h — adaptive backoff: rules that react to what providers say. A rule is a
 * regular expression over "code enhanced-code text" of a reply, a scope (providers and/or
 * domains), an action and a trigger. Also the table of actions in force ("holds"), which the
 * engine fills from its own matches and from other replicas' (via Redis).
 * Pure: time is passed in (milliseconds, any monotonic or wall base the caller keeps
 * consistent); nothing here reads a clock or does I/O. */
#ifndef SALVO_SCHEDULERS_BACKOFF_H
#define SALVO_SCHEDULERS_BACKOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum backoff_action {
    BACKOFF_SUSPEND,          /* no new transactions to the destination (every source) */
    BACKOFF_SUSPEND_SOURCE,   /* no new transactions to the destination from the source that
                                 got the reply */
    BACKOFF_REDUCE_RATE,      /* the destination's message rate is at most rate_per_s */
    BACKOFF_BOUNCE,           /* queued and new mail for the destination bounces */
};
const char *backoff_action_to_text(enum backoff_action a);     /* "suspend", "suspend_source",
                                                                  "reduce_rate", "bounce" */
int backoff_action_from_text(const char *s, enum backoff_action *out);   /* 0 or -1 */

#define BACKOFF_NAME_MAX 64

/* One rule, as parsed. Scope: a rule applies to a destination when (no providers are listed or
 * the destination's provider is one of them) and (no domains are listed or the recipient domain
 * matches one of them as a suffix on a label boundary, like shaping's domain_suffixes). */
struct backoff_rule_info {
    const char *name;
    const char *pattern;           /* POSIX extended regex, case-insensitive */
    enum backoff_action action;
    unsigned duration_s;           /* how long the action holds */
    double rate_per_s;             /* BACKOFF_REDUCE_RATE only (> 0) */
    unsigned trigger_count;        /* matches needed (1 = immediately) */
    unsigned trigger_window_s;     /* ... within this many seconds (0 when trigger_count == 1) */
    const char *const *providers;  /* scope: provider names (nproviders of them; 0 = any) */
    unsigned nproviders;
};

struct backoff_rules;

/* Parses the "backoff_rules" array of the shaping file: json is the array's text
 * (len bytes, no NUL needed). 0 and *out, or -1 with err naming the path
 * ("backoff_rules[2].match: invalid regular expression: ..."). Unknown fields are errors;
 * "comment" strings are allowed. Rule names are unique. Format (see docs/shaping.md):
 *   {"name": "gmail-rate", "match": "^421 4\\.7\\.28 ", "providers": ["gmail"],
 *    "domains": ["example.com"], "action": "suspend", "duration_s": 900,
 *    "rate_per_s": 1.5, "trigger": {"count": 5, "within_s": 60}}
 * "trigger" is optional (immediately); "rate_per_s" only with reduce_rate, where it is
 * required. duration_s 1..604800, count 1..100000, within_s 1..86400. */
int backoff_parse(const char *json, size_t len, struct backoff_rules **out, char *err,
                  size_t errlen);
void backoff_free(struct backoff_rules *r);
unsigned backoff_count(const struct backoff_rules *r);     /* r may be NULL: 0 */
void backoff_rule_get(const struct backoff_rules *r, unsigned i, struct backoff_rule_info *out);

/* The text rules match: "421 4.7.28 text" — code, a space, the enhanced code and a space when
 * there is one, then the reply text with CR/LF turned into spaces. code 0 (no reply, e.g. a
 * refused connection) gives "000 text". Returns the length, like snprintf. */
size_t backoff_subject(char *out, size_t cap, int code, const char *enhanced, const char *text);

/* Trigger counting: per (rule, scope key) match times inside the rule's window. Bounded:
 * at most max_keys keys are tracked; the least recently used is forgotten first. */
struct backoff_tracker;
int backoff_tracker_create(struct backoff_tracker **out, unsigned max_keys);
void backoff_tracker_free(struct backoff_tracker *t);
/* Forget every count (the rules changed). */
void backoff_tracker_reset(struct backoff_tracker *t);

/* Finds the first rule (file order) in scope for (provider, domain) whose pattern matches
 * subject; provider may be NULL. Counts the match for (that rule, key) at now_ms. Returns the
 * rule's index when its trigger fires (trigger_count matches within trigger_window_s; the
 * count for that key then starts again from zero), -1 otherwise (no match, or not enough
 * matches yet). *matched (may be NULL) is set to the index of the rule that matched, or -1. */
int backoff_observe(const struct backoff_rules *r, struct backoff_tracker *t, const char *provider,
                    const char *domain, const char *key, const char *subject, uint64_t now_ms,
                    int *matched);

/* Actions in force, keyed by a scope string chosen by the engine ("dest:provider:gmail",
 * "dest:ip-a|mx:mx1.example.com"). One hold per key: a newer put replaces it. Bounded by
 * max_holds (a put beyond it fails). */
struct backoff_hold {
    char key[720];
    enum backoff_action action;
    uint64_t until_ms;
    double rate_per_s;                   /* BACKOFF_REDUCE_RATE */
    char rule[BACKOFF_NAME_MAX];         /* rule name, or "manual" */
    char reason[512];                    /* the reply that triggered it */
};
struct backoff_table;
int backoff_table_create(struct backoff_table **out, unsigned max_holds);
void backoff_table_free(struct backoff_table *t);
/* 0, or -1 when full or key too long. */
int backoff_table_put(struct backoff_table *t, const struct backoff_hold *h);
/* The hold for key in force at now_ms (until_ms > now_ms), or NULL. */
const struct backoff_hold *backoff_table_get(const struct backoff_table *t, const char *key,
                                             uint64_t now_ms);
/* A pointer from backoff_table_get stays valid across a put to the same key (replaced in
 * place), not across remove, expire or free. */
void backoff_table_remove(struct backoff_table *t, const char *key);
/* Drops holds that ended at or before now_ms; returns how many. */
unsigned backoff_table_expire(struct backoff_table *t, uint64_t now_ms);
/* Calls fn for every hold in force at now_ms (any order). */
void backoff_table_each(const struct backoff_table *t, uint64_t now_ms,
                        void (*fn)(const struct backoff_hold *h, void *arg), void *arg);

#endif
