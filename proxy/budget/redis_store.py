"""The Redis ledger: several proxy replicas share one budget. Each step is one Lua script.

Keys are namespaced per tenant and share a hash tag, so one tenant's keys live in
one slot (Redis Cluster) and a script only touches its own tenant:

    {ns}:{tenant}:holds          hash  hold id -> "period amount interactions"
    {ns}:{tenant}:deadlines      zset  hold id -> deadline (Redis TIME, seconds)
    {ns}:{tenant}:u:{period}     hash  spent, used, held, heldi
    {ns}:{tenant}:done:{hold}    string, set once a hold is settled or released (6 hours)

Clocks come from Redis `TIME`, never from the replicas, so skewed pods agree on
deadlines. Every script first reclaims the tenant's expired holds (bounded per call).
"""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxy.budget.ledger import Balance, Grant, Hold, Limits, StoreUnavailable

DONE_TTL_S = 6 * 3600  # duplicate settles come seconds later; ~100 bytes per request while kept
PERIOD_TTL_S = 400 * 86400  # a month's totals outlive the month (usage endpoint, reports)

_RECLAIM = """
local function int(x) return string.format('%d', x) end  -- '%.14g' would turn big sums into 1e+14
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function reclaim(holds, deadlines, prefix, now)
  local expired = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, 256)
  for _, id in ipairs(expired) do
    local h = redis.call('HGET', holds, id)
    if h then
      local per, amt, n = string.match(h, '^(%S+) (%d+) (%d+)$')
      local uk = prefix .. ':u:' .. per
      redis.call('HINCRBY', uk, 'held', '-' .. amt)
      redis.call('HINCRBY', uk, 'heldi', '-' .. n)
      redis.call('HDEL', holds, id)
    end
    redis.call('ZREM', deadlines, id)
  end
  return #expired
end
local function totals(uk)
  local u = redis.call('HMGET', uk, 'spent', 'used', 'held', 'heldi')
  return tonumber(u[1] or 0), tonumber(u[2] or 0), tonumber(u[3] or 0), tonumber(u[4] or 0)
end
"""

# KEYS: holds, deadlines, usage; ARGV: prefix, period, want, least, interactions, budget(-1), ilimit(-1), ttl, id
RESERVE = _RECLAIM + """
local now = now_s()
reclaim(KEYS[1], KEYS[2], ARGV[1], now)
local spent, used, held, heldi = totals(KEYS[3])
local want, least, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local budget, ilimit = tonumber(ARGV[6]), tonumber(ARGV[7])
if ilimit >= 0 and n > 0 and used + heldi + n > ilimit then
  return {0, 'interactions', spent, held, used, heldi, 0}
end
local granted = want
if budget >= 0 then granted = math.min(want, budget - spent - held) end
if granted < least then
  return {0, 'budget', spent, held, used, heldi, 0}
end
local deadline = now + tonumber(ARGV[8])
redis.call('HSET', KEYS[1], ARGV[9], ARGV[2] .. ' ' .. int(granted) .. ' ' .. int(n))
redis.call('ZADD', KEYS[2], deadline, ARGV[9])
redis.call('HINCRBY', KEYS[3], 'held', int(granted))
redis.call('HINCRBY', KEYS[3], 'heldi', int(n))
redis.call('EXPIRE', KEYS[3], PERIOD_TTL)
return {1, int(granted), spent, held + granted, used, heldi + n, tostring(deadline)}
""".replace("PERIOD_TTL", str(PERIOD_TTL_S))

# KEYS: holds, deadlines, usage(hold's period), done; ARGV: id, actual (-1 = release), interactions
FINISH = """
if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', DONE_TTL) then return 0 end
local h = redis.call('HGET', KEYS[1], ARGV[1])
if h then
  local per, amt, n = string.match(h, '^(%S+) (%d+) (%d+)$')
  redis.call('HINCRBY', KEYS[3], 'held', '-' .. amt)
  redis.call('HINCRBY', KEYS[3], 'heldi', '-' .. n)
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local actual = tonumber(ARGV[2])
if actual >= 0 then
  -- a reclaimed hold is still charged: the tokens were spent
  redis.call('HINCRBY', KEYS[3], 'spent', ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'used', tonumber(ARGV[3]))
  redis.call('EXPIRE', KEYS[3], PERIOD_TTL)
end
return 1
""".replace("DONE_TTL", str(DONE_TTL_S)).replace("PERIOD_TTL", str(PERIOD_TTL_S))

# KEYS: holds, deadlines; ARGV: id, ttl
EXTEND = _RECLAIM + """
local now = now_s()
local d = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not d or tonumber(d) <= now then return 0 end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: holds, deadlines, usage; ARGV: prefix
BALANCE = _RECLAIM + """
local n = reclaim(KEYS[1], KEYS[2], ARGV[1], now_s())
local spent, used, held, heldi = totals(KEYS[3])
return {spent, held, used, heldi, n}
"""


class RedisLedger:
    def __init__(self, client: aioredis.Redis, namespace: str = "ramparts:budget", op_timeout: float = 1.0,
                 known_tenants: tuple[str, ...] = ()) -> None:
        self.redis = client
        self.ns = namespace
        self.op_timeout = op_timeout
        self._tenants = known_tenants  # reclaim() sweeps these (the policy's tenants)
        self._reserve = client.register_script(RESERVE)
        self._finish = client.register_script(FINISH)
        self._extend = client.register_script(EXTEND)
        self._balance = client.register_script(BALANCE)

    def prefix(self, tenant: str) -> str:
        return f"{self.ns}:{{{tenant}}}"

    async def start(self) -> None:
        await self._call(self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()

    async def _call(self, coro):
        try:
            async with asyncio.timeout(self.op_timeout):
                return await coro
        except (RedisError, OSError, TimeoutError) as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e

    async def reserve(self, tenant: str, period: str, want: int, least: int, interactions: int,
                      limits: Limits, ttl: float) -> Grant:
        p = self.prefix(tenant)
        hold_id = secrets.token_hex(12)
        r = await self._call(self._reserve(
            keys=[f"{p}:holds", f"{p}:deadlines", f"{p}:u:{period}"],
            args=[p, period, want, least, interactions, -1 if limits.budget is None else limits.budget,
                  -1 if limits.interactions is None else limits.interactions, ttl, hold_id]))
        ok, what, spent, held, used, heldi, deadline = r
        bal = Balance(int(spent), int(held), int(used), int(heldi))
        if int(ok) != 1:
            return Grant(None, what.decode() if isinstance(what, bytes) else str(what), bal)
        return Grant(Hold(hold_id, tenant, period, int(what), interactions, float(deadline)), None, bal)

    async def _done(self, hold: Hold, actual: int) -> bool:
        p = self.prefix(hold.tenant)
        r = await self._call(self._finish(
            keys=[f"{p}:holds", f"{p}:deadlines", f"{p}:u:{hold.period}", f"{p}:done:{hold.id}"],
            args=[hold.id, actual, hold.interactions]))
        return int(r) == 1

    async def settle(self, hold: Hold, actual: int) -> bool:
        return await self._done(hold, max(0, actual))

    async def release(self, hold: Hold) -> bool:
        return await self._done(hold, -1)

    async def extend(self, hold: Hold, ttl: float) -> bool:
        p = self.prefix(hold.tenant)
        return int(await self._call(self._extend(keys=[f"{p}:holds", f"{p}:deadlines"], args=[hold.id, ttl]))) == 1

    async def balance(self, tenant: str, period: str) -> Balance:
        p = self.prefix(tenant)
        spent, held, used, heldi, _ = await self._call(self._balance(
            keys=[f"{p}:holds", f"{p}:deadlines", f"{p}:u:{period}"], args=[p]))
        return Balance(int(spent), int(held), int(used), int(heldi))

    async def reclaim(self) -> int:
        """Sweep the known tenants (any tenant is also reclaimed lazily on its next reserve)."""
        total = 0
        for tenant in self._tenants:
            p = self.prefix(tenant)
            # the period key is irrelevant to reclaiming; the script touches each hold's own period
            r = await self._call(self._balance(keys=[f"{p}:holds", f"{p}:deadlines", f"{p}:u:-"], args=[p]))
            total += int(r[4])
        return total
