/* engine/coord/coord_scripts.h — the Lua scripts behind cluster-wide shaping. Each runs
 * atomically in Redis and reads Redis's own clock (TIME), so replicas need no clock sync.
 *
 * rate: KEYS = one key per bucket. ARGV = want, then emission_us, burst per bucket. GCRA over
 *   all buckets: grants the most tokens (<= want) that conform in every bucket and moves each
 *   bucket's TAT by that many. Returns {granted, wait_us}.
 * conn_take: KEYS[1] = lease zset, KEYS[2] = waiting zset. ARGV = limit, member, ttl_ms,
 *   instance. Drops expired leases, adds member if fewer than limit remain. Returns 1, or 0
 *   after noting instance as waiting (for 1.5 s).
 * conn_fair: KEYS = lease zset, waiting zset. ARGV = instance, limit. Returns {fair share,
 *   leases instance holds}; fair share 0 when nobody without a lease is waiting, else
 *   ceil(limit / (instances holding + instances waiting)).
 * conn_renew: KEYS[1] = lease zset. ARGV = ttl_ms, members... Returns how many still existed.
 * budget: KEYS = counters. ARGV = want, ttl_s, then the cap of each counter. Grants
 *   min(want, cap - used) over all, adds it to each. Returns granted.
 * budget_refund: KEYS = counters. ARGV = n. Subtracts n (never below 0).
 * wu_state: KEYS[1] = state hash. ARGV = stats key prefix. Returns {last_day or -1, held,
 *   reason, HGETALL of last day's stats}.
 * wu_roll: KEYS[1] = state hash. ARGV = today, expected last_day ("-1": none), hold 0|1,
 *   reason. Rolls only if last_day is still the expected one. Returns {held, reason}.
 * hold_put: KEYS = holds hash, holds zset. ARGV = key, until wall ms, json.
 * holds_get: KEYS = holds hash, holds zset. ARGV = now wall ms. Forgets holds ended more than
 *   10 min ago; returns the JSON of those ending after now - 2 min (recently ended ones too,
 *   so a manual resume, written as a hold that ended now, reaches every replica). */
#ifndef SALVO_ENGINE_COORD_COORD_SCRIPTS_H
#define SALVO_ENGINE_COORD_COORD_SCRIPTS_H

extern const char coord_lua_rate[];
extern const char coord_lua_conn_take[];
extern const char coord_lua_conn_fair[];
extern const char coord_lua_conn_renew[];
extern const char coord_lua_budget[];
extern const char coord_lua_budget_refund[];
extern const char coord_lua_wu_state[];
extern const char coord_lua_wu_roll[];
extern const char coord_lua_hold_put[];
extern const char coord_lua_holds_get[];

#endif
