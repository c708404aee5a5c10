"""GCRA (generic cell rate algorithm): a token bucket kept as one number per key.

State is the theoretical arrival time `tat` (seconds). A limit of `rate` units
per minute with a burst of `burst` units has emission interval T = 60 / rate and
tolerance burst x T: a cost fits when max(tat, now) + cost x T - now <= burst x T.

Three modes:
- take:  admit and debit when the cost fits (requests per minute);
- check: admit while the bucket is not empty, debit nothing (tokens per minute
         before the call, when the real count is not known yet);
- force: always debit (tokens per minute after the call, with the real count), so
         a stream can overshoot by at most one request and the next one waits.

The Redis Lua script in proxy/ratelimit/redis_store.py is a line-by-line copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MODES = ("take", "check", "force")
_EPS = 1e-9  # float slack so that exactly `burst` units fit


@dataclass(frozen=True, slots=True)
class Limit:
    per_minute: int
    burst: int

    @property
    def interval(self) -> float:
        return 60.0 / self.per_minute


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int  # the per-minute rate
    remaining: int  # units that would still fit now
    retry_after: float  # seconds until this request would fit (0 when allowed)
    reset_after: float  # seconds until the bucket is full again


def step(tat: float, now: float, limit: Limit, cost: int, mode: str) -> tuple[float, Verdict]:
    """One decision: (tat to store, verdict). A refusal stores the old tat (nothing debited)."""
    t = limit.interval
    tolerance = limit.burst * t
    base = max(tat, now)
    if mode == "check":
        new = base
        allowed = base - now < tolerance - _EPS
        need = base - now - tolerance + t  # until one unit fits
    else:
        new = base + cost * t
        allowed = mode == "force" or new - now <= tolerance + _EPS
        need = new - now - tolerance
    if not allowed:
        remaining = max(0, math.floor((tolerance - (base - now)) / t + _EPS))
        return tat, Verdict(False, limit.per_minute, remaining, max(need, 0.0), max(base - now, 0.0))
    remaining = max(0, math.floor((tolerance - (new - now)) / t + _EPS))
    return new, Verdict(True, limit.per_minute, remaining, 0.0, max(new - now, 0.0))
