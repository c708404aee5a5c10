"""Rate-limit stores: where each key's GCRA state lives.

- memory:   a dict in this process (one worker; also the `on_error: local` fallback);
- embedded: a SQLite file under the data dir, shared by the worker processes of a pod;
- redis://: shared by replicas; the decision runs in Lua with Redis TIME as the clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from proxy.ratelimit.gcra import Limit, Verdict, step


class RateStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def apply(self, key: str, limit: Limit, cost: int, mode: str) -> Verdict: ...


class MemoryRateStore:
    """Per-process state. Bounded: keys are tenant x route x kind from the policy."""

    def __init__(self, clock=time.monotonic) -> None:
        self._tat: dict[str, float] = {}
        self._clock = clock

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def apply(self, key: str, limit: Limit, cost: int, mode: str) -> Verdict:
        now = self._clock()
        tat, verdict = step(self._tat.get(key, now), now, limit, cost, mode)
        self._tat[key] = tat
        return verdict


def open_rate_store(url: str, data_dir: Path, *, password: str | None = None, timeout: float = 0.5,
                    pool_size: int = 32) -> RateStore:
    if url == "memory":
        return MemoryRateStore()
    if url == "embedded":
        from proxy.ratelimit.embedded_store import EmbeddedRateStore
        return EmbeddedRateStore(Path(data_dir) / "ratelimit.sqlite3", timeout=timeout)
    from proxy.budget.redis_client import make_redis
    from proxy.ratelimit.redis_store import RedisRateStore
    return RedisRateStore(make_redis(url, password, max_connections=pool_size, pool_timeout=min(timeout, 0.25),
                                     socket_timeout=timeout), op_timeout=timeout)
