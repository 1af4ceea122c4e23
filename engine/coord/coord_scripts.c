/* engine/coord/coord_scripts.c — Lua sources (contracts in coord_scripts.h). Times inside are
 * Redis's; numbers go out through '%.0f' because tostring() would print 1.7e+15. */
#include "engine/coord/coord_scripts.h"

const char coord_lua_rate[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local grant, wait, tats = tonumber(ARGV[1]), 0, {}\n"
    "for i = 1, #KEYS do\n"
    "  local em, burst = tonumber(ARGV[2*i]), tonumber(ARGV[2*i+1])\n"
    "  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
    "  if tat < now then tat = now end\n"
    "  tats[i] = tat\n"
    "  local k = math.floor(((burst + 1) * em - (tat - now)) / em)\n"
    "  if k < grant then grant = k end\n"
    "  if k < 1 then\n"
    "    local w = tat - now - burst * em\n"
    "    if w > wait then wait = w end\n"
    "  end\n"
    "end\n"
    "if grant < 1 then return {0, string.format('%.0f', wait)} end\n"
    "for i = 1, #KEYS do\n"
    "  local nt = tats[i] + grant * tonumber(ARGV[2*i])\n"
    "  redis.call('SET', KEYS[i], string.format('%.0f', nt), 'PX', string.format('%.0f', math.ceil((nt - now) / 1000) + 1000))\n"
    "end\n"
    "return {grant, '0'}\n";

const char coord_lua_conn_take[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then\n"
    "  redis.call('ZADD', KEYS[2], string.format('%.0f', now + 1500), ARGV[4])\n"
    "  redis.call('PEXPIRE', KEYS[2], 3000)\n"
    "  return 0\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)\n"
    "return 1\n";

const char coord_lua_conn_fair[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "local holders, n, mine = {}, 0, 0\n"
    "for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  local inst = string.match(m, '^(.*):[0-9]+$') or m\n"
    "  if not holders[inst] then holders[inst] = true; n = n + 1 end\n"
    "  if inst == ARGV[1] then mine = mine + 1 end\n"
    "end\n"
    "local waiting = 0\n"
    "for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "  if not holders[w] then waiting = waiting + 1 end\n"
    "end\n"
    "if waiting == 0 then return {0, mine} end\n"
    "return {math.ceil(tonumber(ARGV[2]) / (n + waiting)), mine}\n";

const char coord_lua_conn_renew[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl, n = tonumber(ARGV[1]), 0\n"
    "for i = 2, #ARGV do\n"
    "  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%.0f', now + ttl), ARGV[i])\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl * 2)\n"
    "return n\n";

const char coord_lua_budget[] =
    "local grant, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "for i = 1, #KEYS do\n"
    "  local left = tonumber(ARGV[i+2]) - tonumber(redis.call('GET', KEYS[i]) or '0')\n"
    "  if left < grant then grant = left end\n"
    "end\n"
    "if grant <= 0 then return 0 end\n"
    "for i = 1, #KEYS do\n"
    "  redis.call('INCRBY', KEYS[i], grant)\n"
    "  redis.call('EXPIRE', KEYS[i], ttl)\n"
    "end\n"
    "return grant\n";

const char coord_lua_budget_refund[] =
    "local n = tonumber(ARGV[1])\n"
    "for i = 1, #KEYS do\n"
    "  local v = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
    "  if v > 0 then\n"
    "    if n > v then redis.call('DECRBY', KEYS[i], v) else redis.call('DECRBY', KEYS[i], n) end\n"
    "  end\n"
    "end\n"
    "return 1\n";

const char coord_lua_wu_state[] =
    "local st = redis.call('HMGET', KEYS[1], 'last_day', 'held', 'reason')\n"
    "local ld = tonumber(st[1] or '-1')\n"
    "local stats = {}\n"
    "if ld >= 0 then stats = redis.call('HGETALL', ARGV[1] .. string.format('%.0f', ld)) end\n"
    "return {string.format('%.0f', ld), tonumber(st[2] or '0'), st[3] or '', stats}\n";

const char coord_lua_wu_roll[] =
    "local ld = redis.call('HGET', KEYS[1], 'last_day') or '-1'\n"
    "if ld == ARGV[2] then\n"
    "  redis.call('HSET', KEYS[1], 'last_day', ARGV[1])\n"
    "  if ARGV[3] == '1' then\n"
    "    redis.call('HINCRBY', KEYS[1], 'held', 1)\n"
    "    redis.call('HSET', KEYS[1], 'reason', ARGV[4])\n"
    "  else\n"
    "    redis.call('HSET', KEYS[1], 'reason', '')\n"
    "  end\n"
    "end\n"
    "local st = redis.call('HMGET', KEYS[1], 'held', 'reason', 'last_day')\n"
    "return {tonumber(st[1] or '0'), st[2] or '', st[3] or '-1'}\n";

const char coord_lua_hold_put[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "return 1\n";

const char coord_lua_holds_get[] =
    "local now = tonumber(ARGV[1])\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - 600000, 'LIMIT', 0, 1000)\n"
    "if #old > 0 then\n"
    "  redis.call('HDEL', KEYS[1], unpack(old))\n"
    "  redis.call('ZREM', KEYS[2], unpack(old))\n"
    "end\n"
    "local ks = redis.call('ZRANGEBYSCORE', KEYS[2], now - 120000, '+inf', 'LIMIT', 0, 5000)\n"
    "if #ks == 0 then return {} end\n"
    "return redis.call('HMGET', KEYS[1], unpack(ks))\n";
