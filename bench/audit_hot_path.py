"""What the audit stage adds to one request on the event loop (target: <= 0.2 ms p50).

    python -m bench.audit_hot_path            # 5 runs x 2000 exchanges, 20-chunk streams
    python -m bench.audit_hot_path --chunks 1 # non-streaming (one JSON body)

Each exchange runs the stage's hooks exactly as the chain calls them: on_request
(prompt digest), on_response_event per chunk (response digest; the stage is
first on the way out, so it also pays the chunk's JSON parse), on_complete
(record + enqueue). The background writer runs meanwhile, in its thread, as in
production. Baseline, same run: a no-op stage with the same hooks through the
same Chain. Reported: median over runs of the per-exchange p50/p99.

Second table: event-loop lag (a 1 ms sleep's overshoot) while records of
20-chunk streams arrive at ~RATE/s: no writer (the same loop making the same
records) vs the writer sealing in its thread vs in a worker process
(`sealer: process`): the writer's cost to everything else on the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from proxy.config.policy import ProviderTarget
from proxy.metrics import Metrics
from proxy.pipeline.chain import Chain
from proxy.pipeline.stage import Stage
from proxy.stages.audit import AuditStage
from proxy.wire.event import Event
from tests.harness import chat_chunk, make_exchange, make_policy, make_services, make_stage

RUNS = 5
TARGET_MS = 0.2
PROMPT = [{"role": "system", "content": "You are Acme's support assistant. Answer in one short paragraph."},
          {"role": "user", "content": "Please summarise: the quarterly report is due on Friday, and finance needs the "
                                      "final figures by Wednesday noon. <EMAIL_ADDRESS_1> asked for a copy."}]


class Noop(Stage):
    type = "noop"

    async def on_request(self, ex):
        return None

    async def on_response_event(self, ex, event):
        return [event]

    async def on_complete(self, ex):
        return None


def _chunks(n: int) -> list[bytes]:
    words = "The report is due Friday; finance needs final figures by Wednesday noon, so plan ahead.".split()
    out = [chat_chunk(words[i % len(words)] + " ") for i in range(n - 1)] + [chat_chunk(finish="stop")]
    import orjson
    return [orjson.dumps(c) for c in out]


async def one_run(chain: Chain, policy, n: int, chunks: list[bytes]) -> list[float]:
    times = []
    provider = ProviderTarget("openai", policy.model.providers["openai"], "127.0.0.1", 9, "http", "sk-x", "gpt-4o-mini")
    for i in range(n):
        ex = make_exchange(policy, {"model": "gpt-4o-mini", "stream": True, "messages": PROMPT},
                           headers={"Authorization": "Bearer eyJhbGciOi.bench.token", "X-Tenant-ID": "acme"})
        ex.provider = provider
        events = [Event(kind="sse", data=c.decode(), raw=b"data: " + c + b"\n\n") for c in chunks]
        t0 = time.perf_counter()
        await chain.run_request(ex)
        for ev in events:
            await chain.run_event(ex, ev)
        ex.response_status, ex.outcome, ex.completion_id = 200, "ok", "chatcmpl-1"
        ex.decide("budget", "settle", cost_usd=0.0000426)
        await chain.run_complete(ex)
        times.append(time.perf_counter() - t0)
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the writer task take its batches, as between real requests
    return times


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main_async(n: int, n_chunks: int, sealer: str = "thread") -> int:
    chunks = _chunks(n_chunks)
    policy = make_policy()
    rows: dict[str, list[tuple[float, float]]] = {"baseline (no-op stage)": [], "audit stage": []}
    with tempfile.TemporaryDirectory(prefix="ramparts-bench-audit-") as tmp:
        audit = make_stage(AuditStage, {"type": "audit", "chain_id": "bench", "sealer": sealer}, policy, make_services(Path(tmp), Metrics()))
        await audit.start()
        noop = Noop(Noop.Config(type="noop"), policy, audit.services)
        chains = {"baseline (no-op stage)": Chain([noop]), "audit stage": Chain([audit])}
        await one_run(chains["audit stage"], policy, 200, chunks)  # warm-up
        for _ in range(RUNS):
            for name, chain in chains.items():  # interleaved: drift hits both
                t = await one_run(chain, policy, n, chunks)
                rows[name].append((pct(t, 0.5), pct(t, 0.99)))
        await audit.stop()
        written = sum(len(p.read_bytes().splitlines()) for p in Path(tmp, "audit", "records").rglob("*.jsonl"))
    base50 = statistics.median(r[0] for r in rows["baseline (no-op stage)"])
    print(f"{n_chunks} response event(s) per exchange, {n} exchanges x {RUNS} runs, sealer: {sealer}; "
          f"{written} audit entries written")
    print(f"{'':<24} {'p50 ms':>8} {'p99 ms':>8} {'ratio p50':>10}")
    for name, rs in rows.items():
        p50, p99 = statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)
        print(f"{name:<24} {p50 * 1e3:>8.3f} {p99 * 1e3:>8.3f} {p50 / base50:>10.1f}")
    added = statistics.median(r[0] for r in rows["audit stage"]) - base50
    print(f"\naudit adds {added * 1e3:.3f} ms p50 per exchange (target <= {TARGET_MS} ms): "
          f"{'PASS' if added * 1e3 <= TARGET_MS else 'FAIL'}")
    return 0


async def loop_lag(with_writer: bool, seconds: float, rate: int, sealer: str = "thread") -> tuple[float, float, int]:
    """(lag p50, lag p99, records) while submitting ~rate records/s (20-chunk stream captures)."""
    import functools

    from bench.audit_verify import record
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from proxy.audit.digest import Capture
    from proxy.audit.keyring import Signer
    from proxy.audit.seal import ProcessSealer
    from proxy.audit.writer import AuditWriter, WriterOptions
    chunks = [c.decode() for c in _chunks(20)]
    signer = Signer.from_private(Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory(prefix="ramparts-bench-lag-") as tmp:
        proc = ProcessSealer(signer, {}, None, None, None) if sealer == "process" else None
        w = AuditWriter(Path(tmp), "lag", signer, {}, WriterOptions(), sealer=proc)
        await w.start()
        lags: list[float] = []

        async def probe() -> None:
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - t - 0.001)

        prober = asyncio.create_task(probe())
        t0, i = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - t0) < seconds:
            while i < elapsed * rate:
                r = record(i)
                capture = Capture([p["content"] for p in PROMPT])
                capture.response.extend(chunks)
                if with_writer:
                    w.submit(r, functools.partial(capture.apply, keep_text=False))
                i += 1
            await asyncio.sleep(0.001)
        prober.cancel()
        await w.stop()
    return pct(lags, 0.5), pct(lags, 0.99), i


async def lag_table(rate: int) -> None:
    rows: dict[str, list[tuple[float, float, int]]] = {"no writer": [], "sealer: thread": [], "sealer: process": []}
    for _ in range(3):  # interleaved: drift hits all three
        rows["no writer"].append(await loop_lag(False, 3.0, rate))
        rows["sealer: thread"].append(await loop_lag(True, 3.0, rate, "thread"))
        rows["sealer: process"].append(await loop_lag(True, 3.0, rate, "process"))
    print(f"\nevent-loop lag at ~{rate} records/s of 20-chunk streams (3 runs x 3 s, medians)")
    print(f"{'':<16} {'lag p50 ms':>11} {'lag p99 ms':>11}")
    for name, rs in rows.items():
        print(f"{name:<16} {statistics.median(r[0] for r in rs) * 1e3:>11.3f} {statistics.median(r[1] for r in rs) * 1e3:>11.3f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--rate", type=int, default=500, help="records/s for the loop-lag table (0: skip it)")
    ap.add_argument("--sealer", choices=("thread", "process"), default="thread", help="for the first table")
    a = ap.parse_args()
    code = asyncio.run(main_async(a.n, a.chunks, a.sealer))
    if a.rate:
        asyncio.run(lag_table(a.rate))
    return code


if __name__ == "__main__":
    sys.exit(main())
