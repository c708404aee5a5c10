"""Redis ledger specifics: 3 OS processes share one budget; kill -9; outage and pool exhaustion fail closed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import pytest
import redis

from proxy.budget.ledger import Limits, StoreUnavailable
from proxy.budget.redis_client import check_redis_url, make_redis
from proxy.budget.redis_store import RedisLedger
from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

WORKER = r"""
import asyncio, sys
from proxy.budget.redis_client import make_redis
from proxy.budget.redis_store import RedisLedger
from proxy.budget.ledger import Limits

async def main(url, ns, n):
    led = RedisLedger(make_redis(url, max_connections=8, pool_timeout=5, socket_timeout=5), namespace=ns, op_timeout=10)
    await led.start()
    async def one():
        g = await led.reserve("acme", "2026-11", 1000, 1000, 1, Limits(10_000, None), 60)
        if g.hold is None:
            return 0
        await asyncio.sleep(0.001)
        await led.settle(g.hold, 1000)
        return 1
    got = sum(await asyncio.gather(*(one() for _ in range(n))))
    await led.close()
    print(got)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

KILLED = r"""
import asyncio, os, signal, sys
from proxy.budget.redis_client import make_redis
from proxy.budget.redis_store import RedisLedger
from proxy.budget.ledger import Limits

async def main(url, ns):
    led = RedisLedger(make_redis(url), namespace=ns)
    g = await led.reserve("acme", "2026-11", 10_000, 10_000, 1, Limits(10_000, None), 2.0)
    assert g.hold is not None
    print("reserved", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _keys(url: str, ns: str) -> dict[str, object]:
    r = redis.Redis.from_url(url)
    out = {}
    for k in r.scan_iter(f"{ns}:*"):
        t = r.type(k).decode()
        out[k.decode()] = r.hgetall(k) if t == "hash" else r.zrange(k, 0, -1) if t == "zset" else r.get(k)
    r.close()
    return out


async def test_three_processes_share_one_budget(redis_server):
    ns = f"t{uuid.uuid4().hex[:8]}"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, redis_server.url, ns, "67"], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    admitted = sum(int(p.communicate(timeout=60)[0]) for p in procs)
    led = RedisLedger(make_redis(redis_server.url), namespace=ns)
    bal = await led.balance("acme", "2026-11")
    await led.close()
    assert admitted == 10 and bal.spent == 10_000 and bal.held == 0 and bal.held_interactions == 0
    keys = _keys(redis_server.url, ns)
    assert all(k.startswith(f"{ns}:{{acme}}") for k in keys)  # namespaced per tenant (G6)
    assert not any(k.endswith(":holds") and v for k, v in keys.items())  # 0 holds left


async def test_kill_9_between_reserve_and_settle_is_reclaimed(redis_server):
    ns = f"t{uuid.uuid4().hex[:8]}"
    p = subprocess.run([sys.executable, "-c", KILLED, redis_server.url, ns], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9 and "reserved" in p.stdout
    led = RedisLedger(make_redis(redis_server.url), namespace=ns, known_tenants=("acme",))
    assert (await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10_000, None), 60)).refused == "budget"
    await asyncio.sleep(2.1)
    assert await led.reclaim() == 1
    bal = await led.balance("acme", "2026-11")
    assert bal.held == 0 and bal.spent == 0
    await led.close()


async def test_redis_down_fails_closed_with_bounded_latency():
    srv = RedisServer().start()
    led = RedisLedger(make_redis(srv.url, socket_timeout=0.3), namespace="down", op_timeout=0.5)
    assert (await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)).hold is not None
    srv.stop()
    try:
        t = time.perf_counter()
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)
        assert (time.perf_counter() - t) / 3 < 1.5  # 0.5 s deadline + slack for a loaded CI box
        srv.start()  # same port: the pool reconnects
        assert (await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)).hold is not None
    finally:
        await led.close()
        srv.__exit__(None, None, None)


async def test_pool_exhaustion_waits_then_fails_closed(redis_server):
    client = make_redis(redis_server.url, max_connections=2, pool_timeout=0.1, socket_timeout=2)
    led = RedisLedger(client, namespace="pool", op_timeout=2)
    blockers = [asyncio.ensure_future(client.execute_command("BLPOP", f"nothing-{i}", 1)) for i in range(2)]
    await asyncio.sleep(0.05)
    t = time.perf_counter()
    with pytest.raises(StoreUnavailable):
        await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)
    assert time.perf_counter() - t < 2.0
    await asyncio.gather(*blockers)
    await led.close()
    # a burst larger than the pool queues for a connection instead of failing at once
    led = RedisLedger(make_redis(redis_server.url, max_connections=2, pool_timeout=5), namespace="pool", op_timeout=10)
    grants = await asyncio.gather(*(led.reserve("acme", "2026-11", 1, 1, 0, Limits(None, None), 60) for _ in range(50)))
    assert all(g.hold is not None for g in grants)
    await led.close()


def test_store_url_must_not_carry_a_password():
    with pytest.raises(ValueError):
        check_redis_url("redis://:hunter2@127.0.0.1:6379/0")
    with pytest.raises(ValueError):
        check_redis_url("http://127.0.0.1:6379")
    assert check_redis_url("redis://127.0.0.1:6379/0")
