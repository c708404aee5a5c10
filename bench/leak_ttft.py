"""Time to the first content byte over real sockets: Ramparts' core stack vs the same with `leak`.

    .venv/bin/python -m bench.leak_ttft [--requests 300] [--stages leak]

Spawns the mock provider and two `ramparts serve` processes (tenant + egress, and the same
plus the stage entries of bench/stages.yaml, like bench.core), pinned like bench.core (the
proxies on one core, the mock and this client on the other). Then sends streamed chat
requests one at a time (concurrency 1), alternating the two targets, and measures from the
request's first byte written to the first SSE event whose delta has non-empty content. The
answer is a clean stream (the core bench's request: 20 content chunks, no leak in it).
Prints p50/p90 per target and the difference of the p50s: the TTFT the stage adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

from bench.core import (ROOT, SECRET, SYSTEM, USER, bench_policy, extra_pipeline, free_port, spawn, wait_listening)
from proxy.devtoken import mint


async def first_content(port: int, body: bytes, token: str) -> float:
    """Seconds from the request written to the first content byte read (keep-alive off: one request per connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nX-Tenant-ID: acme\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    t0 = time.perf_counter()
    writer.write(head + body)
    try:
        buf = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                raise RuntimeError("the stream ended before any content")
            buf += chunk
            for line in buf.split(b"\n")[:-1]:  # complete lines only
                if line.startswith(b"data: {"):
                    choices = orjson.loads(line[6:]).get("choices") or [{}]
                    if (choices[0].get("delta") or {}).get("content"):
                        return time.perf_counter() - t0
    finally:
        writer.close()


async def measure(ports: dict[str, int], n: int, token: str) -> dict[str, list[float]]:
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]})
    out: dict[str, list[float]] = {name: [] for name in ports}
    for name, port in ports.items():  # warm-up
        for _ in range(20):
            await first_content(port, body, token)
    for _ in range(n):
        for name, port in ports.items():
            out[name].append(await first_content(port, body, token))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="streamed requests per target (default 300)")
    ap.add_argument("--stages", default="leak", help="stage types of bench/stages.yaml for the second target")
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    tmp = Path(tempfile.mkdtemp(prefix="ramparts-ttft-"))
    env = {**os.environ, "RAMPARTS_BENCH_JWT_SECRET": SECRET, "RAMPARTS_BENCH_PROVIDER_KEY": "sk-bench-provider-key",
           "RAMPARTS_BENCH_STAGE_SECRET": os.urandom(32).hex(), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    stages = [s for s in args.stages.split(",") if s]
    procs = {}
    try:
        mock_port = free_port()
        procs["mock"] = spawn("mock", ["-m", "proxy.cli", "mock-provider", "--listen", f"127.0.0.1:{mock_port}",
                                       "--no-log-bodies"], load_cpu, mock_port, tmp, env)
        variants = {"ramparts": ([], {}), "ramparts+" + ",".join(stages): extra_pipeline(stages, ROOT / "bench/stages.yaml")}
        for name, (extra, tenant_extra) in variants.items():
            (tmp / name).mkdir()
            policy_file = tmp / name / "policy.yaml"
            policy_file.write_text(yaml.safe_dump(bench_policy(mock_port, extra, tenant_extra), sort_keys=False))
            port = free_port()
            procs[name] = spawn(name, ["-m", "proxy.cli", "serve", "--policy", str(policy_file), "--listen",
                                       f"127.0.0.1:{port}", "--ops-listen", f"127.0.0.1:{free_port()}",
                                       "--data-dir", str(tmp / name / "data"), "--log-level", "WARNING"],
                                proxy_cpu, port, tmp, env)
        for p in procs.values():
            wait_listening(p)
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})
        token = mint(SECRET.encode(), tenant="acme", scopes=("ai:completion",), issuer="https://issuer.bench", ttl_s=3600)
        got = asyncio.run(measure({name: procs[name].port for name in variants}, args.requests, token))
    finally:
        for p in procs.values():
            p.stop()
    base, staged = list(variants)
    print(f"Time to the first content byte, streamed clean answer, concurrency 1, {args.requests} requests per target")
    print(f"{'target':<22}{'p50 ms':>9}{'p90 ms':>9}")
    p50 = {}
    for name, xs in got.items():
        xs.sort()
        p50[name] = statistics.median(xs) * 1e3
        print(f"{name:<22}{p50[name]:>9.3f}{xs[int(len(xs) * 0.9)] * 1e3:>9.3f}")
    print(f"added TTFT p50 ({staged} - {base}): {p50[staged] - p50[base]:.3f} ms (target <= 1 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
