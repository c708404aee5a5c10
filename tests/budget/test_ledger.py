"""One contract suite, run against both ledgers (embedded SQLite and Redis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Balance, Limits, decide
from proxy.budget.redis_client import make_redis
from proxy.budget.redis_store import RedisLedger
from tests.redis_server import redis_server  # noqa: F401  (fixture)

P = "2026-11"


@pytest.fixture(params=["embedded", "redis"])
async def ledger(request, tmp_path):
    if request.param == "embedded":
        led = EmbeddedLedger(tmp_path / "budget.sqlite3", timeout=10)
    else:
        srv = request.getfixturevalue("redis_server")
        # generous deadlines: a loaded CI box must not turn a burst of 200 into fail-closed refusals here
        led = RedisLedger(make_redis(srv.url, pool_timeout=5, socket_timeout=5), namespace=f"t{uuid.uuid4().hex[:8]}",
                          op_timeout=10, known_tenants=("acme", "globex"))
    await led.start()
    yield led
    await led.close()


def test_decide_rule():
    lim = Limits(budget=100, interactions=2)
    assert decide(Balance(), 60, 10, 1, lim) == (None, 60)
    assert decide(Balance(spent=50, held=20), 60, 10, 1, lim) == (None, 30)  # clamped to what is left
    assert decide(Balance(spent=95), 60, 10, 1, lim) == ("budget", 0)  # nothing useful fits
    assert decide(Balance(used=1, held_interactions=1), 1, 1, 1, lim) == ("interactions", 0)
    assert decide(Balance(used=5), 1, 1, 0, lim) == (None, 1)  # tool-call continuation: no new interaction
    assert decide(Balance(spent=10**12), 7, 7, 1, Limits(None, None)) == (None, 7)
    assert decide(Balance(spent=120), 1, 0, 1, lim) == ("budget", 0)  # overspent: negative left


async def test_reserve_settle_release(ledger):
    lim = Limits(budget=1000, interactions=10)
    g = await ledger.reserve("acme", P, 400, 100, 1, lim, 60)
    assert g.hold and g.hold.amount == 400 and g.refused is None
    assert g.balance == Balance(0, 400, 0, 1)
    assert await ledger.balance("acme", P) == Balance(0, 400, 0, 1)
    assert await ledger.settle(g.hold, 250) is True
    assert await ledger.settle(g.hold, 250) is False  # idempotent
    assert await ledger.release(g.hold) is False  # already finished
    assert await ledger.balance("acme", P) == Balance(250, 0, 1, 0)
    g2 = await ledger.reserve("acme", P, 900, 100, 1, lim, 60)
    assert g2.hold.amount == 750  # clamped to what is left
    assert await ledger.release(g2.hold) is True
    assert await ledger.release(g2.hold) is False
    assert await ledger.balance("acme", P) == Balance(250, 0, 1, 0)


async def test_refusals_and_tenant_isolation(ledger):
    lim = Limits(budget=100, interactions=1)
    g = await ledger.reserve("acme", P, 100, 10, 1, lim, 60)
    assert g.hold is not None
    assert (await ledger.reserve("acme", P, 10, 10, 1, lim, 60)).refused == "interactions"
    assert (await ledger.reserve("acme", P, 10, 10, 0, lim, 60)).refused == "budget"
    # another tenant has its own totals
    assert (await ledger.reserve("globex", P, 100, 10, 1, lim, 60)).hold is not None
    # another period starts fresh; the hold settles into the period it was reserved in
    assert (await ledger.reserve("acme", "2026-12", 50, 10, 1, lim, 60)).hold is not None
    await ledger.settle(g.hold, 130)  # actual above the hold is charged in full
    assert (await ledger.balance("acme", P)) == Balance(130, 0, 1, 0)
    assert (await ledger.balance("acme", "2026-12")).held == 50


async def test_expired_hold_is_reclaimed_and_late_settle_charges_once(ledger):
    lim = Limits(budget=100, interactions=None)
    g = await ledger.reserve("acme", P, 100, 10, 1, lim, 1.0)
    assert (await ledger.reserve("acme", P, 10, 10, 1, lim, 60)).refused == "budget"
    await asyncio.sleep(1.1)
    assert await ledger.balance("acme", P) == Balance(0, 0, 0, 0)  # reclaimed, nothing leaked
    g2 = await ledger.reserve("acme", P, 60, 10, 1, lim, 60)
    assert g2.hold.amount == 60
    assert await ledger.extend(g.hold, 60) is False  # gone
    assert await ledger.extend(g2.hold, 60) is True
    assert await ledger.settle(g.hold, 30) is True  # the slow pod's tokens were still spent
    assert await ledger.settle(g.hold, 30) is False
    assert await ledger.balance("acme", P) == Balance(30, 60, 1, 1)


async def test_reclaim_sweeps_all_tenants(ledger):
    lim = Limits(budget=None, interactions=None)
    await ledger.reserve("acme", P, 5, 5, 1, lim, 0.1)
    await ledger.reserve("globex", P, 5, 5, 1, lim, 0.1)
    await asyncio.sleep(0.2)
    assert await ledger.reclaim() == 2


async def test_concurrent_reserves_never_overspend(ledger):
    cap = 10_000
    lim = Limits(budget=cap, interactions=None)

    async def one(i: int) -> int:
        g = await ledger.reserve("acme", P, 1000, 1000, 1, lim, 60)
        if g.hold is None:
            return 0
        await asyncio.sleep(0)
        await ledger.settle(g.hold, 1000)
        return 1

    admitted = sum(await asyncio.gather(*(one(i) for i in range(200))))
    bal = await ledger.balance("acme", P)
    assert admitted == 10 and bal.spent == cap and bal.held == 0 and bal.held_interactions == 0
