"""One contract for the three rate-limit stores (memory, embedded SQLite, Redis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from proxy.budget.ledger import StoreUnavailable
from proxy.budget.redis_client import make_redis
from proxy.ratelimit.embedded_store import EmbeddedRateStore
from proxy.ratelimit.gcra import Limit
from proxy.ratelimit.redis_store import RedisRateStore
from proxy.ratelimit.store import MemoryRateStore, open_rate_store
from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)


@pytest.fixture(params=["memory", "embedded", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryRateStore()
    elif request.param == "embedded":
        s = EmbeddedRateStore(tmp_path / "rl.sqlite3", timeout=10)
    else:
        srv = request.getfixturevalue("redis_server")
        # generous deadlines: a loaded CI box must not turn a burst of 50 into fail-closed refusals here
        s = RedisRateStore(make_redis(srv.url, pool_timeout=5, socket_timeout=5), namespace=f"rl{uuid.uuid4().hex[:8]}",
                           op_timeout=10)
    await s.start()
    yield s
    await s.close()


async def test_burst_under_concurrency_admits_exactly_burst(store):
    lim = Limit(per_minute=10, burst=10)
    verdicts = await asyncio.gather(*(store.apply("acme:chat:req", lim, 1, "take") for _ in range(50)))
    assert sum(v.allowed for v in verdicts) == 10
    refused = [v for v in verdicts if not v.allowed]
    assert all(4.0 < v.retry_after <= 6.0 for v in refused)  # the next slot, 6 s apart (minus elapsed time)
    assert all(v.remaining == 0 for v in refused)


async def test_keys_are_independent(store):
    lim = Limit(per_minute=1, burst=1)
    assert (await store.apply("acme:chat:req", lim, 1, "take")).allowed
    assert not (await store.apply("acme:chat:req", lim, 1, "take")).allowed
    assert (await store.apply("globex:chat:req", lim, 1, "take")).allowed
    assert (await store.apply("acme:embeddings:req", lim, 1, "take")).allowed


async def test_tokens_checked_before_and_debited_after(store):
    lim = Limit(per_minute=1000, burst=1000)
    assert (await store.apply("acme:chat:tok", lim, 0, "check")).allowed
    await store.apply("acme:chat:tok", lim, 1500, "force")  # one request overshoots
    v = await store.apply("acme:chat:tok", lim, 0, "check")
    assert not v.allowed and 28.0 < v.retry_after <= 30.1


async def test_unreachable_redis_fails_closed():
    srv = RedisServer()  # never started: nothing listens on its port
    s = open_rate_store(srv.url, srv.dir, timeout=0.3)
    with pytest.raises(StoreUnavailable):
        await s.apply("acme:chat:req", Limit(10, 10), 1, "take")
    await s.close()


WORKER = r"""
import asyncio, sys
from proxy.budget.redis_client import make_redis
from proxy.ratelimit.gcra import Limit
from proxy.ratelimit.redis_store import RedisRateStore

async def main(url, ns):
    s = RedisRateStore(make_redis(url, pool_timeout=5, socket_timeout=5), namespace=ns, op_timeout=10)
    vs = await asyncio.gather(*(s.apply("acme:chat:req", Limit(10, 10), 1, "take") for _ in range(20)))
    await s.close()
    print(sum(v.allowed for v in vs))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_three_processes_share_one_redis_limit(redis_server):
    import subprocess
    import sys
    ns = f"rl{uuid.uuid4().hex[:8]}"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, redis_server.url, ns], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    assert sum(int(p.communicate(timeout=60)[0]) for p in procs) == 10
