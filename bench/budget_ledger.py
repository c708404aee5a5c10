"""What the budget adds per request: reserve + settle latency, embedded (SQLite) and Redis.

    .venv/bin/python -m bench.budget_ledger [--n 2000] [--runs 5] [--redis redis://127.0.0.1:6379/0]

Without --redis a throwaway redis-server is started on a free loopback port.
Rows:
- baseline: an asyncio round trip through a thread executor doing nothing (the
  floor any off-loop store pays), and a no-op ledger through the whole stage;
- reserve+settle on each store, sequential (latency) and 50 concurrent (throughput);
- the whole `budget` stage per request (on_request + response + on_complete)
  with each store, against the same stage over a no-op ledger;
- sustained (--sustained N, default 20000): N reserve+settle pairs on the embedded
  store, yielding to the loop between the two steps as a server does, with CPU per
  pair and the WAL's size after each quarter (the WAL must stay bounded).
Each cell is the median over --runs runs; p50/p99 are per request within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Balance, Grant, Hold, Limits
from proxy.budget.redis_client import make_redis
from proxy.budget.redis_store import RedisLedger
from proxy.pipeline.chain import Chain
from proxy.stages.budget import BudgetStage
from proxy.wire.event import Event
from tests.harness import chat_body, make_exchange, make_policy, make_services, make_stage

LIMITS = Limits(budget=10**15, interactions=None)
MSG = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise the attached quarterly report in three bullet points."}]}


class NoopLedger:
    """Grants everything at once: the stage's own cost without any store."""

    async def start(self): ...
    async def close(self): ...
    async def reserve(self, tenant, period, want, least, interactions, limits, ttl):
        return Grant(Hold(uuid.uuid4().hex, tenant, period, want, interactions, time.time() + ttl), None, Balance())
    async def settle(self, hold, actual): return True
    async def release(self, hold): return True
    async def extend(self, hold, ttl): return True
    async def balance(self, tenant, period): return Balance()
    async def reclaim(self): return 0


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def seq_ledger(led, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        g = await led.reserve("acme", "2026-11", 1000, 10, 1, LIMITS, 60)
        await led.settle(g.hold, 900)
        out.append(time.perf_counter() - t)
    return out


async def conc_ledger(led, n: int, conc: int = 50) -> float:
    async def one():
        g = await led.reserve("acme", "2026-11", 1000, 10, 1, LIMITS, 60)
        await led.settle(g.hold, 900)
    t = time.perf_counter()
    for _ in range(n // conc):
        await asyncio.gather(*(one() for _ in range(conc)))
    return (n // conc * conc) / (time.perf_counter() - t)


async def noop_executor(n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    from concurrent.futures import ThreadPoolExecutor
    ex = ThreadPoolExecutor(1)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await loop.run_in_executor(ex, int)
        await loop.run_in_executor(ex, int)
        out.append(time.perf_counter() - t)
    ex.shutdown()
    return out


async def seq_stage(stage: BudgetStage, n: int) -> list[float]:
    chain = Chain([stage])
    out = []
    for _ in range(n):
        ex = make_exchange(stage.policy, MSG)
        t = time.perf_counter()
        assert await chain.run_request(ex) is None
        ex.upstream_started = time.perf_counter()
        ex.response_status = 200
        ev = Event.body(chat_body("Revenue grew; costs fell; outlook steady."))
        ex.usage.prompt_tokens, ex.usage.completion_tokens, ex.usage.reported = 20, 9, True
        await chain.run_event(ex, ev)
        ex.outcome = "ok"
        await chain.run_complete(ex)
        out.append(time.perf_counter() - t)
    return out


async def sustained(path: Path, n: int) -> list[tuple[int, float, int]]:
    """(pairs so far, CPU µs per pair in this quarter, WAL bytes) after each quarter of n."""
    led = EmbeddedLedger(path, timeout=5)
    await led.start()
    out = []
    try:
        for q in range(4):
            t = time.process_time()
            for _ in range(n // 4):
                g = await led.reserve("acme", "2026-11", 10, 10, 1, LIMITS, 60)
                await asyncio.sleep(0)
                await led.settle(g.hold, 5)
            wal = path.with_name(path.name + "-wal")
            out.append(((q + 1) * (n // 4), (time.process_time() - t) / (n // 4) * 1e6, wal.stat().st_size if wal.exists() else 0))
    finally:
        await led.close()
    return out


async def main(args) -> None:
    from tests.redis_server import RedisServer
    srv = None
    url = args.redis
    if url is None:
        srv = RedisServer().start()
        url = srv.url
    tmp = Path(tempfile.mkdtemp(prefix="ramparts-bench-"))
    rows: dict[str, list[tuple[float, float]]] = {}
    thr: dict[str, list[float]] = {}
    pol = make_policy(plans={"pro": {"models": ["gpt-4o-mini"], "max_tokens_per_request": 1000, "monthly_budget_usd": 10**6,
                                   "monthly_interactions": None}})
    svc = make_services(tmp)
    stages = {}
    for name, store in (("noop", None), ("embedded", "embedded"), ("redis", url)):
        s = make_stage(BudgetStage, {"type": "budget", "store": store or "embedded", "store_timeout_s": 5}, pol, svc)
        await s.start()
        if store is None:
            await s.ledger.close()
            s.ledger = NoopLedger()
        stages[name] = s
    try:
        for run in range(args.runs):
            emb = EmbeddedLedger(tmp / f"ledger-{run}.sqlite3", timeout=5)
            red = RedisLedger(make_redis(url, pool_timeout=5, socket_timeout=5), namespace=f"bench{run}", op_timeout=5)
            await emb.start()
            await red.start()
            for label, coro in (("executor round trip x2 (floor)", noop_executor(args.n)),
                                ("reserve+settle embedded", seq_ledger(emb, args.n)),
                                ("reserve+settle redis", seq_ledger(red, args.n)),
                                ("stage, no-op ledger (baseline)", seq_stage(stages["noop"], args.n)),
                                ("stage, embedded", seq_stage(stages["embedded"], args.n)),
                                ("stage, redis", seq_stage(stages["redis"], args.n))):
                s = await coro
                rows.setdefault(label, []).append((pct(s, 0.5), pct(s, 0.99)))
            thr.setdefault("embedded", []).append(await conc_ledger(emb, args.n))
            thr.setdefault("redis", []).append(await conc_ledger(red, args.n))
            await emb.close()
            await red.close()
    finally:
        for s in stages.values():
            await s.stop()
        if srv is not None:
            srv.__exit__(None, None, None)
    base = statistics.median(p50 for p50, _ in rows["stage, no-op ledger (baseline)"])
    print(f"\nbudget ledger bench: n={args.n} per run, runs={args.runs}, median of runs\n")
    print(f"{'case':<34} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}")
    for label, vals in rows.items():
        p50 = statistics.median(v[0] for v in vals)
        p99 = statistics.median(v[1] for v in vals)
        extra = f"+{(p50 - base) * 1000:.3f} ms" if label.startswith("stage, ") and "baseline" not in label else ""
        print(f"{label:<34} {p50 * 1000:8.3f} {p99 * 1000:8.3f} {extra:>12}")
    for name, vals in thr.items():
        print(f"{'reserve+settle/s, 50 concurrent ' + name:<34} {statistics.median(vals):8.0f}")
    if args.sustained:
        print(f"\nsustained: {args.sustained} reserve+settle pairs on the embedded store (loop yields between steps)")
        print(f"{'pairs':>8} {'CPU µs/pair':>12} {'WAL MB':>8}")
        for done, cpu, wal in await sustained(tmp / "sustained.sqlite3", args.sustained):
            print(f"{done:8d} {cpu:12.1f} {wal / 2**20:8.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--redis", default=None)
    ap.add_argument("--sustained", type=int, default=20000, help="pairs for the sustained run (0: skip)")
    asyncio.run(main(ap.parse_args()))
