"""Verifier throughput and memory: a clean log of N records verifies in < 60 s with flat memory.

    python -m bench.audit_verify              # N=100,000 (plus a 10,000 run for the memory check)
    python -m bench.audit_verify --n 20000    # quicker

Generates realistic exchange records with the real writer (sealed, signed,
checkpointed every 1000), then runs `ramparts audit verify` in a fresh process
per run and reports the median wall time of 3 runs and the process's peak RSS.
Baseline (same run): a process that only reads and JSON-parses every line,
the floor any verifier pays. Flat memory: peak RSS at N vs at N/10.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.audit.keyring import Signer
from proxy.audit.writer import AuditWriter, WriterOptions, _Pending

RUNS = 3
BASELINE = """
import sys, orjson
from pathlib import Path
from proxy.audit.layout import iter_lines, record_files
n = 0
for chain in sorted(Path(sys.argv[1], "records").iterdir()):
    for f in record_files(chain):
        for _, line, _ in iter_lines(f):
            orjson.loads(line); n += 1
print(n)
"""


def record(i: int) -> dict:
    return {"v": 1, "type": "exchange", "time": f"2026-11-22T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000000:06d}Z",
            "request_id": f"{i:032x}", "completion_id": f"chatcmpl-{i:020d}", "tenant": "acme", "claimed_tenant": None,
            "subject": f"user-{i % 500}", "jti": f"jti-{i:016x}", "route": "chat", "method": "POST", "model": "gpt-4o-mini",
            "stream": True, "provider": "openai", "status": 200, "outcome": "ok", "denied": None,
            "usage": {"prompt_tokens": 120 + i % 50, "completion_tokens": 40 + i % 30, "reported": True, "streamed_chars": 180},
            "decisions": [{"stage": "budget", "decision": "reserve", "detail": {"cost_usd": 0.0098304, "tokens": 16384}},
                          {"stage": "pii", "decision": "tokenized", "detail": {"counts": {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}}},
                          {"stage": "injection", "decision": "allow", "detail": {"score": 0.07}},
                          {"stage": "budget", "decision": "settle", "detail": {"cost_usd": 0.0000426}}],
            "policy": "ab" * 32, "prompt_digest": "cd" * 32, "response_digest": "ef" * 32, "response_chars": 180,
            "duration_us": 81234}


async def generate(directory: Path, n: int, signer: Signer) -> float:
    t0 = time.perf_counter()
    w = AuditWriter(directory, "bench", signer, {}, WriterOptions(checkpoint_every=1000, fsync="off"))
    await w.start()
    w._task.cancel()  # write synchronously in big batches: this is set-up, not the measurement
    for start in range(0, n, 1000):
        w._write_batch([_Pending(record(i)) for i in range(start, min(n, start + 1000))])
        w._checkpoint()
    w._final()
    return time.perf_counter() - t0


def timed(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) of the child, exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    # ru_maxrss of children is the max over all waited-for children: run the smaller log first
    return wall, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before), p.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    a = ap.parse_args()
    signer = Signer.from_private(Ed25519PrivateKey.generate())
    rows = []
    with tempfile.TemporaryDirectory(prefix="ramparts-bench-audit-") as tmp:
        keys = Path(tmp, "keys")
        keys.mkdir()
        (keys / "bench.pub").write_bytes(signer.public_pem())
        for n in (a.n // 10, a.n):
            d = Path(tmp, f"log-{n}")
            gen = asyncio.run(generate(d, n, signer))
            size = sum(p.stat().st_size for p in d.rglob("*.jsonl"))
            base = [timed([sys.executable, "-c", BASELINE, str(d)])[0] for _ in range(RUNS)]
            runs = [timed([sys.executable, "-m", "proxy.cli", "audit", "verify", str(d), "--keys", str(keys)]) for _ in range(RUNS)]
            assert all(r[2] == 0 for r in runs), "verification failed"
            rows.append((n, size, gen, statistics.median(base), statistics.median(r[0] for r in runs), max(r[1] for r in runs)))
    print(f"{'records':>9} {'log MB':>7} {'generate s':>11} {'baseline s':>11} {'verify s':>9} {'ratio':>6} {'rec/s':>8} {'peak RSS MB':>12}")
    for n, size, gen, base, ver, rss in rows:
        print(f"{n:>9} {size / 1e6:>7.1f} {gen:>11.1f} {base:>11.2f} {ver:>9.2f} {ver / base:>6.1f} {n / ver:>8.0f} {rss / 1024:>12.1f}")
    small, big = rows[0][5], rows[1][5]
    print(f"\npeak RSS {rows[1][0]} vs {rows[0][0]} records: {big / small:.2f}x (flat memory: ~1.0x); "
          f"target: {rows[1][0]} records < 60 s -> {'PASS' if rows[1][4] < 60 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
