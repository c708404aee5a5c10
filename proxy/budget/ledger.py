"""The ledger protocol: reserve before the provider call, settle or release after.

    grant = await ledger.reserve(tenant, period, want, least, interactions, limits, ttl)
    ... call the provider ...
    await ledger.settle(grant.hold, actual)   # idempotent: a second settle is a no-op
    await ledger.release(grant.hold)          # nothing was produced: give it all back

`reserve` is one atomic step: it first reclaims the tenant's expired holds (their
pod died), then grants min(want, what is left) if that is at least `least`, and
records a hold with a deadline. Money is integer nano-USD; interactions are counted
per hold and become "used" only when settled.

Every method raises StoreUnavailable when the backend cannot answer in time: the
caller fails closed. Two backends implement it (proxy/budget/embedded_store.py,
proxy/budget/redis_store.py) and one contract suite tests both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StoreUnavailable(Exception):
    """The store did not answer (down, locked, slow, pool exhausted)."""


@dataclass(frozen=True, slots=True)
class Limits:
    budget: int | None  # nano-USD per period; None = unlimited
    interactions: int | None  # per period; None = unlimited


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    tenant: str
    period: str
    amount: int  # nano-USD reserved
    interactions: int  # 0 or 1
    deadline: float  # store clock (Unix seconds) after which the hold is reclaimed


@dataclass(frozen=True, slots=True)
class Balance:
    spent: int = 0  # settled nano-USD
    held: int = 0  # nano-USD in live holds
    used: int = 0  # settled interactions
    held_interactions: int = 0

    def budget_left(self, limits: Limits) -> int | None:
        return None if limits.budget is None else limits.budget - self.spent - self.held

    def interactions_left(self, limits: Limits) -> int | None:
        return None if limits.interactions is None else limits.interactions - self.used - self.held_interactions


@dataclass(frozen=True, slots=True)
class Grant:
    hold: Hold | None  # None when refused
    refused: str | None  # "budget" | "interactions" | None
    balance: Balance  # after this reservation (or at refusal)


def decide(balance: Balance, want: int, least: int, interactions: int, limits: Limits) -> tuple[str | None, int]:
    """The admission rule both backends implement (the Redis Lua mirrors it): (refused, granted)."""
    if limits.interactions is not None and interactions and balance.used + balance.held_interactions + interactions > limits.interactions:
        return "interactions", 0
    left = balance.budget_left(limits)
    granted = want if left is None else min(want, left)
    if granted < least:
        return "budget", 0
    return None, granted


class Ledger(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def reserve(self, tenant: str, period: str, want: int, least: int, interactions: int,
                      limits: Limits, ttl: float) -> Grant: ...

    async def settle(self, hold: Hold, actual: int) -> bool:
        """Charge `actual` to hold.period and drop the hold; False if already settled/released."""
        ...

    async def release(self, hold: Hold) -> bool:
        """Drop the hold, charging nothing; False if already settled/released."""
        ...

    async def extend(self, hold: Hold, ttl: float) -> bool:
        """Push a live hold's deadline to now + ttl (long streams); False if it is gone."""
        ...

    async def balance(self, tenant: str, period: str) -> Balance:
        """The tenant's period totals, after reclaiming its expired holds."""
        ...

    async def reclaim(self) -> int:
        """Reclaim expired holds of every tenant; returns how many."""
        ...
