"""Verifier throughput and memory: a clean log of N records verifies in < 60 s with flat memory.

    python -m bench.audit_verify              # N=100,000 (plus a 10,000 run for the memory check)
    python -m bench.audit_verify --n 20000    # quicker
    python -m bench.audit_verify --n 1000000 --runs 1 --damage   # SECURITY_TESTS L9: 1 M records,
        # 100k vs 1M peak RSS, then a malformed line and a 20 MiB newline-free "line" at 90 % of the
        # 1M log: both must be reported (exit 3, file:line) with the same flat memory

Generates realistic exchange records with the real writer (sealed, signed,
checkpointed every 1000), then runs `ramparts audit verify` in a fresh process
per run and reports the median wall time of 3 runs and the process's peak RSS.
Baseline (same run): a process that only reads and JSON-parses every line,
the floor any verifier pays. Flat memory: peak RSS at N vs at N/10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def timed(argv: list[str], out: list[str] | None = None) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) of this child alone (its own rusage from wait4, which also
    covers the signature workers it reaped), exit code. `out` gets the child's stderr lines."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if out is not None else subprocess.DEVNULL)
    err = p.stderr.read().decode(errors="replace") if out is not None else ""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if out is not None:
        out.extend(ln for ln in err.splitlines() if ln.strip())
    return wall, usage.ru_maxrss, p.returncode


def line_span(path: Path, lineno: int) -> tuple[int, int]:
    """Byte offset and length (without the newline) of line `lineno` (1-based), streaming."""
    off = 0
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            if i == lineno:
                return off, len(line) - 1
            off += len(line)
    raise ValueError(f"{path} has fewer than {lineno} lines")


def damage(log_file: Path, lineno: int, kind: str) -> None:
    """In place (the file keeps its size): line `lineno` becomes garbage, or from it on 20 MiB of
    bytes without a newline (a "line" over layout.MAX_LINE) replace whole lines."""
    off, length = line_span(log_file, lineno)
    with open(log_file, "r+b") as f:
        f.seek(off)
        if kind == "malformed":
            f.write(b"#" * length)  # not JSON
        else:
            f.write(b"x" * (20 << 20))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=RUNS, help="verifier runs per log (median wall time)")
    ap.add_argument("--damage", action="store_true", help="then damage the N log at 90 %% and check it is reported")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
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
            base = [timed([sys.executable, "-c", BASELINE, str(d)])[0] for _ in range(a.runs)]
            runs = [timed([sys.executable, "-m", "proxy.cli", "audit", "verify", str(d), "--keys", str(keys)]) for _ in range(a.runs)]
            assert all(r[2] == 0 for r in runs), "verification failed"
            rows.append((n, size, gen, statistics.median(base), statistics.median(r[0] for r in runs), max(r[1] for r in runs)))
        damaged = []
        if a.damage:  # on the N log: a file header is line 1, so record i is on line i + 2
            log_file = next(Path(tmp, f"log-{a.n}", "records").rglob("*.jsonl"))
            for kind in ("malformed", "oversized"):
                at = int(a.n * 0.9) + 2
                damage(log_file, at, kind)
                err: list[str] = []
                wall, rss, code = timed([sys.executable, "-m", "proxy.cli", "audit", "verify", str(Path(tmp, f"log-{a.n}")),
                                         "--keys", str(keys)], err)
                damaged.append((kind, at, wall, rss, code, err[-1] if err else ""))
                # no undo: the oversized span starts at the same line and covers the malformed one
    print(f"{'records':>9} {'log MB':>7} {'generate s':>11} {'baseline s':>11} {'verify s':>9} {'ratio':>6} {'rec/s':>8} {'peak RSS MB':>12}")
    for n, size, gen, base, ver, rss in rows:
        print(f"{n:>9} {size / 1e6:>7.1f} {gen:>11.1f} {base:>11.2f} {ver:>9.2f} {ver / base:>6.1f} {n / ver:>8.0f} {rss / 1024:>12.1f}")
    small, big = rows[0][5], rows[1][5]
    target = next((r for r in rows if r[0] == 100_000), None)  # the audit issue's target: 100,000 records < 60 s
    print(f"\npeak RSS {rows[1][0]} vs {rows[0][0]} records: {big / small:.2f}x (flat memory: ~1.0x)"
          + (f"; target: 100000 records < 60 s -> {'PASS' if target[4] < 60 else 'FAIL'}" if target else ""))
    ok = True
    for kind, at, wall, rss, code, msg in damaged:
        reported = code == 3 and (f":{at} " in msg or f"line {at} " in msg)
        ok = ok and reported
        print(f"damaged ({kind} at line {at}): exit {code} in {wall:.1f} s, peak RSS {rss / 1024:.1f} MB, "
              f"{'REPORTED' if reported else 'NOT REPORTED'}: {msg}")
    if a.json:
        a.json.write_text(json.dumps({
            "logs": [{"records": n, "log_mb": round(size / 1e6, 1), "generate_s": round(gen, 1), "baseline_s": round(base, 2),
                      "verify_s": round(ver, 2), "peak_rss_mb": round(rss / 1024, 1)} for n, size, gen, base, ver, rss in rows],
            "rss_ratio": round(big / small, 3),
            "damaged": [{"kind": k, "line": at, "verify_s": round(w, 2), "exit": c, "peak_rss_mb": round(r / 1024, 1), "message": m}
                        for k, at, w, r, c, m in damaged],
            "load": os.getloadavg()}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
