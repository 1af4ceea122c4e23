/* engine/intake/scripts.c — Lua sources. Each call handles a batch of messages; each
 * message's operations run together in one atomic script execution.
 *
 * settle: KEYS = tx stream, bulk stream, events stream, stats hash, delay zset, delay data,
 *   dead stream. ARGV = group, consumer, events_max, dead_max, then per message:
 *   "M" <entry id> <stream index 1|2> <op count>  followed by that many ops:
 *     "E" <event json> <type> <campaign id or "">   event + counters
 *     "D" <member> <due ms> <payload>               into the retry set (waiting)
 *     "X" <payload> <reason> <detail>               dead-letter
 *   The entry is acked and deleted last. A message whose entry is no longer pending for this
 *   consumer (already settled by a retried call, or claimed by another replica after we were
 *   presumed dead) is skipped whole: retrying a batch never duplicates its events.
 * promote: KEYS = delay zset, delay data, tx stream, bulk stream. ARGV = now ms, limit.
 *   Moves due members back to their lane's stream; several replicas may run it at once.
 * claim: KEYS = stream. ARGV = group, me, heartbeat key prefix, max. Takes over the pending
 *   entries of consumers whose heartbeat key has expired; removes such consumers once empty. */
#include "engine/intake/scripts.h"

const struct script scripts[SCRIPT__COUNT] = {
    [SCRIPT_SETTLE] = {"settle",
        "local group, me = ARGV[1], ARGV[2]\n"
        "local emax, dmax = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
        "local i, settled, skipped = 5, 0, 0\n"
        "while i <= #ARGV do\n"
        "  if ARGV[i] ~= 'M' then return redis.error_reply('settle: expected M at ' .. i) end\n"
        "  local id, sk, nops = ARGV[i+1], KEYS[tonumber(ARGV[i+2])], tonumber(ARGV[i+3])\n"
        "  i = i + 4\n"
        "  local p = redis.call('XPENDING', sk, group, id, id, 1, me)\n"
        "  local mine = #p == 1\n"
        "  for _ = 1, nops do\n"
        "    local op = ARGV[i]\n"
        "    if op == 'E' then\n"
        "      if mine then\n"
        "        redis.call('XADD', KEYS[3], 'MAXLEN', '~', emax, '*', 'e', ARGV[i+1])\n"
        "        redis.call('HINCRBY', KEYS[4], ARGV[i+2], 1)\n"
        "        if ARGV[i+3] ~= '' then redis.call('HINCRBY', KEYS[4] .. ':campaign:' .. ARGV[i+3], ARGV[i+2], 1) end\n"
        "      end\n"
        "      i = i + 4\n"
        "    elseif op == 'D' then\n"
        "      if mine then\n"
        "        redis.call('ZADD', KEYS[5], ARGV[i+2], ARGV[i+1])\n"
        "        redis.call('HSET', KEYS[6], ARGV[i+1], ARGV[i+3])\n"
        "      end\n"
        "      i = i + 4\n"
        "    elseif op == 'X' then\n"
        "      if mine then\n"
        "        redis.call('XADD', KEYS[7], 'MAXLEN', '~', dmax, '*', 'job', ARGV[i+1], 'reason', ARGV[i+2], 'detail', ARGV[i+3], 'entry', id)\n"
        "      end\n"
        "      i = i + 4\n"
        "    else\n"
        "      return redis.error_reply('settle: bad op ' .. tostring(op))\n"
        "    end\n"
        "  end\n"
        "  if mine then\n"
        "    redis.call('XACK', sk, group, id)\n"
        "    redis.call('XDEL', sk, id)\n"
        "    settled = settled + 1\n"
        "  else\n"
        "    skipped = skipped + 1\n"
        "  end\n"
        "end\n"
        "return {settled, skipped}\n"},
    [SCRIPT_PROMOTE] = {"promote",
        "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))\n"
        "for _, m in ipairs(due) do\n"
        "  local p = redis.call('HGET', KEYS[2], m)\n"
        "  if p then\n"
        "    local k = KEYS[3]\n"
        "    if string.sub(m, 1, 2) == 'b|' then k = KEYS[4] end\n"
        "    redis.call('XADD', k, '*', 'job', p)\n"
        "  end\n"
        "  redis.call('ZREM', KEYS[1], m)\n"
        "  redis.call('HDEL', KEYS[2], m)\n"
        "end\n"
        "return #due\n"},
    [SCRIPT_CLAIM] = {"claim",
        "local ok, cons = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])\n"
        "if not ok then return 0 end\n"
        "local claimed = 0\n"
        "for _, c in ipairs(cons) do\n"
        "  local name, pending\n"
        "  for j = 1, #c, 2 do\n"
        "    if c[j] == 'name' then name = c[j+1] elseif c[j] == 'pending' then pending = c[j+1] end\n"
        "  end\n"
        "  if name and name ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. name) == 0 then\n"
        "    if pending and pending > 0 then\n"
        "      local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), name)\n"
        "      local ids = {}\n"
        "      for _, e in ipairs(p) do ids[#ids+1] = e[1] end\n"
        "      local n = #ids\n"
        "      if n > 0 then\n"
        "        ids[n+1] = 'JUSTID'\n"
        "        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))\n"
        "        claimed = claimed + n\n"
        "      end\n"
        "      if n < tonumber(ARGV[4]) then\n"
        "        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)\n"
        "      end\n"
        "    else\n"
        "      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return claimed\n"},
};
