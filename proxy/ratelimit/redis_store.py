"""Rate-limit state in Redis: GCRA in Lua, Redis TIME as the clock (replica skew does not matter).

Keys: {ns}:{tenant}:route:kind, string holding the tat (ms), expiring once the bucket is full.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxy.budget.ledger import StoreUnavailable
from proxy.ratelimit.gcra import Limit, Verdict

# KEYS: bucket; ARGV: interval_s, burst, cost, mode. Mirrors proxy.ratelimit.gcra.step.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst, cost, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local eps = 1e-9
local tolerance = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local base = math.max(tat, now)
local new, allowed, need
if mode == 'check' then
  new = base
  allowed = base - now < tolerance - eps
  need = base - now - tolerance + interval
else
  new = base + cost * interval
  allowed = mode == 'force' or new - now <= tolerance + eps
  need = new - now - tolerance
end
if not allowed then
  local remaining = math.max(0, math.floor((tolerance - (base - now)) / interval + eps))
  return {0, remaining, tostring(math.max(need, 0)), tostring(math.max(base - now, 0))}
end
if new > now then
  redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
end
local remaining = math.max(0, math.floor((tolerance - (new - now)) / interval + eps))
return {1, remaining, '0', tostring(math.max(new - now, 0))}
"""


class RedisRateStore:
    def __init__(self, client: aioredis.Redis, namespace: str = "ramparts:rl", op_timeout: float = 0.5) -> None:
        self.redis = client
        self.ns = namespace
        self.op_timeout = op_timeout
        self._script = client.register_script(GCRA)

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self.op_timeout):
                await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        await self.redis.aclose()

    async def apply(self, key: str, limit: Limit, cost: int, mode: str) -> Verdict:
        tenant, _, rest = key.partition(":")
        try:
            async with asyncio.timeout(self.op_timeout):
                ok, remaining, retry, reset = await self._script(
                    keys=[f"{self.ns}:{{{tenant}}}:{rest}"], args=[repr(limit.interval), limit.burst, cost, mode])
        except (RedisError, OSError, TimeoutError) as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e
        return Verdict(int(ok) == 1, limit.per_minute, int(remaining), float(retry), float(reset))
