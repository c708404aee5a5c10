"""Core benchmark: direct-to-mock vs a bare pass-through vs Ramparts (tenant + egress).

    python -m bench.core            # default run (~2.5 min): 3 interleaved repetitions
    python -m bench.core --quick    # CI smoke (~10 s): 1 short repetition, same rows
    python -m bench.core --stages pii,leak
                                    # adds a "ramparts+pii,leak" row: per-stage cost; the entries
                                    # come from bench/stages.yaml (or --stages-from POLICY_FILE)

Layout on pinned cores (taskset): the proxy under test (pass-through or Ramparts)
gets one core alone; the mock provider and this process (the load generator) share
the other. "direct" therefore runs mock and load generator on one core with the
proxy core idle. Every cell (mode x concurrency x target) runs once per
repetition, targets rotated, and the table shows the median over repetitions
with min-max. "+p50" is p50(target) - p50(direct) from the same repetition;
"% floor" is RPS(target) / RPS(pass-through); "CPU/req" is the user+system CPU
of the proxy process (of the mock for "direct") per completed request, which
is less sensitive to noise from other processes on the machine than RPS;
"proxy code ms/req" is Ramparts' own ramparts_proxy_overhead_seconds (wall time
in proxy code: total minus waiting for the provider), mean per request.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import yaml

from bench.load import LoadResult, ResponseError, build_request, run_load, smoke
from proxy.devtoken import mint
from bench.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-jwt-secret-that-is-at-least-32-bytes!"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYSTEM = "You are Acme's support assistant. Answer in one short paragraph."
USER = ("Please summarise this note in one sentence: the quarterly report is due on Friday, "
        "and the finance team needs the final figures by Wednesday noon. mock:stream-chunks=20")
TARGET_C16_SHARE = 0.60  # issue 2 item 12: Ramparts RPS at c=16 >= 60 % of the floor
TARGET_ADDED_P50_MS = 0.5  # and added p50 at c=1 <= 0.5 ms


def bench_policy(mock_port: int, extra_stages: list[dict[str, Any]], tenant_extra: dict[str, Any]) -> dict[str, Any]:
    """The policy Ramparts runs under: one tenant, one provider (the mock), core stages + extras."""
    acme = {"plan": "pro", "providers": ["openai"], **tenant_extra}
    return {
        "version": 1,
        "auth": {"issuer": "https://issuer.bench", "audience": "ramparts", "algorithms": ["HS256"],
                 "key": {"from_env": "RAMPARTS_BENCH_JWT_SECRET"}},
        "providers": {"openai": {"base_url": f"http://127.0.0.1:{mock_port}/v1",
                                 "api_key": {"from_env": "RAMPARTS_BENCH_PROVIDER_KEY"},
                                 "attributes": {"baa": False, "region": "us", "no_train": True},
                                 "models": {"gpt-4o-mini": "gpt-4o-mini"}}},
        "egress": {"allow": [f"127.0.0.1:{mock_port}"], "allow_private_ips": ["127.0.0.0/8"]},
        "models": {"gpt-4o-mini": {"input_per_1m_usd": 0.15, "output_per_1m_usd": 0.6, "max_output_tokens": 16384}},
        "plans": {"pro": {"models": ["gpt-4o-mini"], "monthly_interactions": 10_000_000,
                          "max_tokens_per_request": 8000, "monthly_budget_usd": 1_000_000}},
        "tenants": {"acme": acme},
        "pipeline": [{"type": "tenant"}, {"type": "egress"}, *extra_stages],
    }


def extra_pipeline(stages: list[str], source: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stage entries of the given types, taken from a policy file's `pipeline`, plus its tenant acme's
    settings (pii, system_prompt, identifiers, ...) so the stages have something to act on."""
    data = yaml.safe_load(source.read_text()) or {}
    entries = data.get("pipeline") if isinstance(data, dict) else data
    by_type = {e["type"]: e for e in entries or [] if isinstance(e, dict) and "type" in e}
    missing = [s for s in stages if s not in by_type]
    if missing:
        raise SystemExit(f"bench.core: {source} has no pipeline entry of type {', '.join(missing)}")
    acme = dict(((data.get("tenants") or {}).get("acme") or {}) if isinstance(data, dict) else {})
    for key in ("plan", "providers", "require", "regions"):  # keep the bench's routing
        acme.pop(key, None)
    return [copy.deepcopy(by_type[s]) for s in stages], acme


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen
    log: Path
    ops_port: int | None = None  # Ramparts: /metrics, for the time spent in proxy code
    # Starts the same child again on fresh ports; only for children whose port nothing else was
    # told about yet (see wait_listening). None: a failed bind ends the run.
    respawn: Callable[[], "Proc"] | None = None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(name: str, args: list[str], cpu: int | None, port: int, tmp: Path, env: dict[str, str]) -> Proc:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
    log = tmp / f"{name}.log"
    popen = subprocess.Popen([*pin, sys.executable, *args], cwd=ROOT, env=env, stdout=log.open("wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
    if cpu is not None and not pin:
        os.sched_setaffinity(popen.pid, {cpu})
    return Proc(name, port, popen, log)


def spawn_ramparts(name: str, mock_port: int, stages: list[dict[str, Any]], tenant_extra: dict[str, Any],
                   cpu: int | None, tmp: Path, env: dict[str, str]) -> Proc:
    """`ramparts serve` in front of the mock with the core stages plus `stages`; its ops port is kept
    (for ramparts_proxy_overhead_seconds)."""
    (tmp / name).mkdir()
    policy_file = tmp / name / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(bench_policy(mock_port, stages, tenant_extra), sort_keys=False))

    def start() -> Proc:
        port, ops_port = free_port(), free_port()
        proc = spawn(name, ["-m", "proxy.cli", "serve", "--policy", str(policy_file),
                            "--listen", f"127.0.0.1:{port}", "--ops-listen", f"127.0.0.1:{ops_port}",
                            "--data-dir", str(tmp / name / "data"), "--log-level", "WARNING"], cpu, port, tmp, env)
        proc.ops_port, proc.respawn = ops_port, start
        return proc

    return start()


def spawn_mock(cpu: int | None, tmp: Path, env: dict[str, str]) -> Proc:
    """The mock provider, waited for: its port goes into every policy spawned after it."""
    def start() -> Proc:
        port = free_port()
        proc = spawn("mock", ["-m", "proxy.cli", "mock-provider", "--listen", f"127.0.0.1:{port}", "--no-log-bodies"],
                     cpu, port, tmp, env)
        proc.respawn = start
        return proc

    proc = start()
    wait_listening(proc)
    return proc


def spawn_passthrough(mock_port: int, cpu: int | None, tmp: Path, env: dict[str, str]) -> Proc:
    """The bare aiohttp pass-through (the floor) in front of the mock."""
    def start() -> Proc:
        port = free_port()
        proc = spawn("passthrough", ["-m", "bench.passthrough", "--listen", f"127.0.0.1:{port}",
                                     "--upstream", f"http://127.0.0.1:{mock_port}"], cpu, port, tmp, env)
        proc.respawn = start
        return proc

    return start()


def wait_listening(proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    restarts = 0
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            if proc.respawn is not None and restarts < 3 and "address already in use" in proc.log.read_text():
                # Another process took the port between free_port() and the child's bind.
                restarts += 1
                fresh = proc.respawn()
                proc.port, proc.ops_port, proc.popen = fresh.port, fresh.ops_port, fresh.popen
                continue
            raise SystemExit(f"bench.core: {proc.name} exited:\n{proc.log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", proc.port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench.core: {proc.name} did not listen on {proc.port}:\n{proc.log.read_text()[-3000:]}")


@dataclass
class Sample:
    rps: float
    p50: float  # ms
    p99: float  # ms
    errors: int
    cpu_us: float  # per request, of the process under test
    own_ms: float = float("nan")  # Ramparts only: mean ramparts_proxy_overhead_seconds per request


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)
    added_p50: list[float] = field(default_factory=list)  # ms, vs direct in the same repetition
    share: list[float] = field(default_factory=list)  # RPS / floor RPS in the same repetition


def med(xs: list[float]) -> str:
    xs = [x for x in xs if x == x]
    if not xs:
        return "-"
    m = statistics.median(xs)
    fmt = (lambda v: f"{v:.0f}") if abs(m) >= 100 else (lambda v: f"{v:.2f}")
    return f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})" if len(xs) > 1 else fmt(m)


def render(cells: dict[tuple[str, int, str], Cell], modes: list[str], concs: list[int], targets: list[str]) -> str:
    head = ("| mode | c | target | RPS | p50 ms | p99 ms | +p50 vs direct ms | % of floor RPS | CPU µs/req "
            "| proxy code ms/req | errors |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [head]
    for mode in modes:
        for c in concs:
            for t in targets:
                cell = cells[(mode, c, t)]
                s = cell.samples
                rows.append("| " + " | ".join([
                    mode, str(c), t, med([x.rps for x in s]), med([x.p50 for x in s]), med([x.p99 for x in s]),
                    med(cell.added_p50) if t != "direct" else "-",
                    med([100 * x for x in cell.share]) if t not in ("direct", "passthrough") else "-",
                    med([x.cpu_us for x in s]), med([x.own_ms for x in s]), str(sum(x.errors for x in s))]) + " |")
    return "\n".join(rows)


def verdict(cells: dict[tuple[str, int, str], Cell], modes: list[str], concs: list[int]) -> list[str]:
    out = []
    for mode in modes:
        if 16 in concs:
            share = statistics.median(cells[(mode, 16, "ramparts")].share)
            ok = "PASS" if share >= TARGET_C16_SHARE else "FAIL"
            out.append(f"{mode:6} c=16: Ramparts RPS = {100 * share:.0f} % of the floor "
                       f"(target >= {100 * TARGET_C16_SHARE:.0f} %) {ok}")
        if 1 in concs:
            added = statistics.median(cells[(mode, 1, "ramparts")].added_p50)
            ok = "PASS" if added <= TARGET_ADDED_P50_MS else "FAIL"
            out.append(f"{mode:6} c=1:  Ramparts added p50 = {added:.3f} ms (target <= {TARGET_ADDED_P50_MS} ms) {ok}")
    return out


async def overhead(port: int | None) -> tuple[float, float]:
    """(sum seconds, count) of ramparts_proxy_overhead_seconds from the ops listener."""
    if port is None:
        return float("nan"), 0.0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
    text = (await reader.read()).decode("utf-8", "replace")
    writer.close()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("ramparts_proxy_overhead_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("ramparts_proxy_overhead_seconds_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


async def measure(args, procs: dict[str, Proc], requests: dict[tuple[str, str], bytes],
                  modes: list[str], concs: list[int], targets: list[str]) -> dict[tuple[str, int, str], Cell]:
    cells = {(m, c, t): Cell() for m in modes for c in concs for t in targets}
    for t in targets:  # one checked request per target and mode, then a warm-up (pools, caches, lazy loads)
        for m in modes:
            try:
                await smoke("127.0.0.1", procs[t].port, requests[(t, m)], stream=m == "stream")
            except (ResponseError, asyncio.TimeoutError, OSError) as e:
                raise SystemExit(f"bench.core: {t} {m} fails: {e}\n{procs[t].log.read_text()[-3000:]}")
            r = await run_load("127.0.0.1", procs[t].port, requests[(t, m)], concurrency=4, duration=args.warmup,
                               warmup=0.0, stream=m == "stream")
            if r.errors:
                raise SystemExit(f"bench.core: {t} {m} fails: {r.first_error}\n{procs[t].log.read_text()[-3000:]}")
    for rep in range(args.reps):
        for m in modes:
            for c in concs:
                order = targets[rep % len(targets):] + targets[:rep % len(targets)]
                got: dict[str, Sample] = {}
                for t in order:
                    proc = procs["mock" if t == "direct" else t]
                    cpu0 = proc.cpu_seconds()
                    own0 = await overhead(proc.ops_port)
                    r: LoadResult = await run_load("127.0.0.1", procs[t].port, requests[(t, m)], concurrency=c,
                                                   duration=args.duration, warmup=args.warmup, stream=m == "stream")
                    cpu = proc.cpu_seconds() - cpu0
                    own1 = await overhead(proc.ops_port)
                    own_ms = 1000 * (own1[0] - own0[0]) / (own1[1] - own0[1]) if own1[1] > own0[1] else float("nan")
                    if r.first_error:
                        print(f"  ! {t} {m} c={c}: {r.errors} errors, first: {r.first_error}", file=sys.stderr)
                    got[t] = Sample(r.rps, 1000 * r.percentile(50), 1000 * r.percentile(99), r.errors,
                                    1e6 * cpu / max(1, r.total), own_ms)
                for t, s in got.items():
                    cell = cells[(m, c, t)]
                    cell.samples.append(s)
                    cell.added_p50.append(s.p50 - got["direct"].p50)
                    cell.share.append(s.rps / got["passthrough"].rps if got["passthrough"].rps else 0.0)
                print(f"  rep {rep + 1}/{args.reps} {m:6} c={c:<3} " +
                      "  ".join(f"{t}={got[t].rps:.0f}rps/{got[t].p50:.2f}ms" for t in targets), file=sys.stderr)
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: 1 repetition of 0.2 s per cell")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 3; quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per cell (default 2.0; quick 0.3)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds before each cell (default 0.5; quick 0.1)")
    ap.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    ap.add_argument("--modes", default="json,stream", help="json (non-stream) and/or stream (20 chunks)")
    ap.add_argument("--proxy-cpu", type=int, help="core for the proxy under test (default: first allowed core)")
    ap.add_argument("--load-cpu", type=int, help="core for the mock and the load generator (default: second)")
    ap.add_argument("--stages", default="", help="extra stage types for a 'ramparts+...' row, e.g. pii,leak")
    ap.add_argument("--stages-from", default="bench/stages.yaml",
                    help="policy (or list) whose pipeline entries --stages takes; its tenant 'acme' settings apply too")
    ap.add_argument("--content", default=USER, help="the user message (keep mock:stream-chunks=20 in it)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with logs and the policy")
    args = ap.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (0.2 if args.quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.05 if args.quick else 0.5)
    concs = [int(x) for x in args.concurrency.split(",") if x]
    modes = [m for m in args.modes.split(",") if m]
    extra = [s for s in args.stages.split(",") if s]

    cpus = sorted(os.sched_getaffinity(0))
    if args.proxy_cpu is None and args.load_cpu is None and len(cpus) < 2:
        print("bench.core: fewer than 2 cores: nothing is pinned; numbers are not comparable", file=sys.stderr)
        proxy_cpu = load_cpu = None
    else:
        proxy_cpu = cpus[0] if args.proxy_cpu is None else args.proxy_cpu
        load_cpu = cpus[1 % len(cpus)] if args.load_cpu is None else args.load_cpu

    tmp = Path(tempfile.mkdtemp(prefix="ramparts-bench-"))
    env = {**os.environ, "RAMPARTS_BENCH_JWT_SECRET": SECRET, "RAMPARTS_BENCH_PROVIDER_KEY": "sk-bench-provider-key",
           "RAMPARTS_BENCH_STAGE_SECRET": os.urandom(32).hex(),  # for stage entries that need one (pii)
           "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    procs: dict[str, Proc] = {}
    targets = ["direct", "passthrough", "ramparts"]
    try:
        procs["mock"] = spawn_mock(load_cpu, tmp, env)
        mock_port = procs["mock"].port
        procs["passthrough"] = spawn_passthrough(mock_port, proxy_cpu, tmp, env)
        variants = {"ramparts": ([], {})}
        if extra:
            variants["ramparts+" + ",".join(extra)] = extra_pipeline(extra, ROOT / args.stages_from)
        for name, (stages, tenant_extra) in variants.items():
            procs[name] = spawn_ramparts(name, mock_port, stages, tenant_extra, proxy_cpu, tmp, env)
            if name != "ramparts":
                targets.append(name)
        procs["direct"] = procs["mock"]
        for p in procs.values():
            wait_listening(p)
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})

        token = mint(SECRET.encode(), tenant="acme", scopes=("ai:completion",), issuer="https://issuer.bench",
                     ttl_s=24 * 3600)
        requests = {}
        for t in targets:
            for m in modes:
                body = orjson.dumps({"model": "gpt-4o-mini", "stream": m == "stream", "messages": [
                    {"role": "system", "content": SYSTEM}, {"role": "user", "content": args.content}]})
                requests[(t, m)] = build_request("127.0.0.1", procs[t].port, "/v1/chat/completions", body,
                                                 {"Authorization": f"Bearer {token}", "X-Tenant-ID": "acme"})

        import uvloop
        print(f"bench.core: proxy on cpu {proxy_cpu}, mock + load generator on cpu {load_cpu}; "
              f"{args.reps} reps x {args.duration}s (+{args.warmup}s warm-up) per cell", file=sys.stderr)
        started = time.monotonic()
        cells = uvloop.run(measure(args, procs, requests, modes, concs, targets))
        print(render(cells, modes, concs, targets))
        print()
        for line in verdict(cells, modes, concs):
            print(line)
        print(f"\n(python {sys.version.split()[0]}, {len(cpus)} cores allowed, proxy cpu {proxy_cpu}, "
              f"load cpu {load_cpu}, {args.reps} reps x {args.duration}s, {time.monotonic() - started:.0f}s)")
    finally:
        for p in {id(p): p for p in procs.values()}.values():
            p.stop()
        if args.keep:
            print(f"bench.core: logs and policies in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
