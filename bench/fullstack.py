"""Full-stack benchmark: every stage on, against direct-to-mock, the bare pass-through and the core.

    python -m bench.fullstack            # ~10 min: four tables, 3 interleaved repetitions
    python -m bench.fullstack --quick    # smoke (~1 min): one short repetition, same tables

Targets (each a separate process; proxies pinned to one core, mock + load generator on the other):
  direct       load generator -> mock provider
  passthrough  bench/passthrough.py (the floor: aiohttp server + client, no policy)
  core         ramparts serve with tenant + egress
  full         ramparts serve with tenant, rate_limit, egress, budget (embedded store), injection,
               pii, leak, audit (entries from bench/stages.yaml; injection max_chars raised so the
               prompt-size table can go to 200 KB)
  +<stage>     core + that one stage (per-stage cost)

Tables:
  1. full stack vs direct / floor / core: json and stream (20 events), c = 1, 16, 64, a 2 KB
     prompt with PII (emails, a phone number, a card) that the mock echoes back;
  2. per-stage cost: each stage alone on top of the core (c = 1 latency, c = 16 throughput);
  3. growth with prompt size (0.2, 2, 20, 200 KB), c = 1, json;
  4. growth with stream length (5 to 400 events), c = 1, 2 KB prompt;
then RSS of the full stack (idle after warm-up, and its high-water mark after all the load) and the
issue's targets with PASS/FAIL. Every cell runs once per repetition with the targets rotated; tables
show the median over repetitions (min-max in table 1). "+p50" is against direct in the same repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.core import (ROOT, SECRET, SYSTEM, Proc, extra_pipeline, med, spawn_mock, spawn_passthrough, spawn_ramparts,
                        wait_listening)
from bench.load import ResponseError, build_request, run_load, smoke
from proxy.devtoken import mint

STAGES = ["rate_limit", "budget", "injection", "pii", "leak", "audit"]
PII_LINE = ("Customer Jane Roe (jane.roe@example.com, +1 415 555 0134) paid with card 4111 1111 1111 1111; "
            "forward the receipt to billing@example.org. ")
FILLER = ("The quarterly report is due on Friday and the finance team needs the final figures by Wednesday "
          "noon, so please keep the summary short and mention the open items from the last review. ")


def prompt(size: int, chunks: int) -> str:
    """About `size` bytes of ordinary text with PII every ~1 KB, and the mock's chunk directive."""
    out, n = [], 0
    while n < size:
        part = PII_LINE if len(out) % 6 == 0 else FILLER
        out.append(part)
        n += len(part)
    return "".join(out)[:size] + f" mock:stream-chunks={chunks}"


@dataclass
class Sample:
    rps: float
    p50: float
    p99: float
    ttfb: float
    cpu_us: float


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)
    added_p50: list[float] = field(default_factory=list)
    added_p99: list[float] = field(default_factory=list)
    added_ttfb: list[float] = field(default_factory=list)
    share: list[float] = field(default_factory=list)  # RPS / reference RPS, same repetition

    def m(self, attr: str) -> float:
        xs = sorted(getattr(s, attr) for s in self.samples)
        return xs[len(xs) // 2] if xs else float("nan")


def median(xs: list[float]) -> float:
    xs = sorted(x for x in xs if x == x)
    return xs[len(xs) // 2] if xs else float("nan")


class Bench:
    def __init__(self, args, procs: dict[str, Proc], token: str) -> None:
        self.args, self.procs, self.token = args, procs, token
        self.requests: dict[tuple[str, str, int, int], bytes] = {}

    def request(self, target: str, mode: str, size: int, chunks: int) -> bytes:
        key = (target, mode, size, chunks)
        if key not in self.requests:
            body = orjson.dumps({"model": "gpt-4o-mini", "stream": mode == "stream", "messages": [
                {"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt(size, chunks)}]})
            self.requests[key] = build_request("127.0.0.1", self.procs[target].port, "/v1/chat/completions", body,
                                               {"Authorization": f"Bearer {self.token}", "X-Tenant-ID": "acme"})
        return self.requests[key]

    async def warm(self, targets: list[str], mode: str, size: int, chunks: int) -> None:
        for t in targets:
            try:
                await smoke("127.0.0.1", self.procs[t].port, self.request(t, mode, size, chunks), stream=mode == "stream")
            except (ResponseError, asyncio.TimeoutError, OSError) as e:
                raise SystemExit(f"bench.fullstack: {t} {mode} {size} B fails: {e}\n{self.procs[t].log.read_text()[-3000:]}")

    async def cell(self, targets: list[str], mode: str, c: int, size: int, chunks: int, ref: str,
                   cells: dict[str, Cell], rep: int) -> None:
        """One repetition of one cell: every target once, rotated; shares against `ref`."""
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        got: dict[str, Sample] = {}
        for t in order:
            proc = self.procs["mock" if t == "direct" else t]
            cpu0 = proc.cpu_seconds()
            r = await run_load("127.0.0.1", proc.port, self.request(t, mode, size, chunks), concurrency=c,
                               duration=self.args.duration, warmup=self.args.warmup, stream=mode == "stream")
            cpu = proc.cpu_seconds() - cpu0
            if r.errors:
                print(f"  ! {t} {mode} c={c} {size} B: {r.errors} errors, first: {r.first_error}", file=sys.stderr)
            got[t] = Sample(r.rps, 1000 * r.percentile(50), 1000 * r.percentile(99), 1000 * r.percentile(50, "ttfb"),
                            1e6 * cpu / max(1, r.total))
        for t, s in got.items():
            cell = cells.setdefault(t, Cell())
            cell.samples.append(s)
            if "direct" in got:
                cell.added_p50.append(s.p50 - got["direct"].p50)
                cell.added_p99.append(s.p99 - got["direct"].p99)
                cell.added_ttfb.append(s.ttfb - got["direct"].ttfb)
            cell.share.append(s.rps / got[ref].rps if got.get(ref) and got[ref].rps else float("nan"))

    async def sweep(self, table: str, targets: list[str], plan: dict, ref: str) -> dict:
        """Warm every request of `plan` ({key: (mode, c, size, chunks)}), then run the whole plan once
        per repetition, targets rotated: {key: {target: Cell}}."""
        for mode, size, chunks in dict.fromkeys((m, z, n) for m, _, z, n in plan.values()):
            await self.warm(targets, mode, size, chunks)
        out: dict = {}
        for rep in range(self.args.reps):
            for key, (mode, c, size, chunks) in plan.items():
                await self.cell(targets, mode, c, size, chunks, ref, out.setdefault(key, {}), rep)
            print(f"  {table}: rep {rep + 1}/{self.args.reps} done", file=sys.stderr)
        return out


def fmt(x: float, nd: int = 2) -> str:
    return "-" if x != x else f"{x:.{nd}f}"


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def run(args, b: Bench) -> list[str]:
    lines: list[str] = []
    say = lines.append
    concs = args.concurrency
    core4 = ["direct", "passthrough", "core", "full"]

    # ---------------------------------------------------------------- table 1
    for mode in ("json", "stream"):
        await b.warm(core4, mode, 2048, 20)
    full_idle = rss_mib(b.procs["full"].popen.pid)[0]
    t1 = await b.sweep("table 1", core4, {(m, c): (m, c, 2048, 20) for m in ("json", "stream") for c in concs},
                       "passthrough")
    say("## 1. Full stack, 2 KB prompt with PII, echoed back (stream: 20 events)\n")
    say("| mode | c | target | RPS | p50 ms | p99 ms | +p50 ms | +p99 ms | +TTFB p50 ms | % of floor RPS | CPU µs/req |")
    say("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (mode, c), cells in t1.items():
        for t in core4:
            cell = cells[t]
            s = cell.samples
            say(f"| {mode} | {c} | {t} | {med([x.rps for x in s])} | {med([x.p50 for x in s])} | {med([x.p99 for x in s])} | "
                + (f"{med(cell.added_p50)} | {med(cell.added_p99)} | {med(cell.added_ttfb) if mode == 'stream' else '-'} | "
                   if t != "direct" else "- | - | - | ")
                + (f"{med([100 * x for x in cell.share])} | " if t not in ("direct", "passthrough") else "- | ")
                + f"{med([x.cpu_us for x in s])} |")

    # ---------------------------------------------------------------- table 2
    per = ["core", *[f"+{s}" for s in STAGES]]
    t2 = await b.sweep("table 2", per, {(m, c): (m, c, 2048, 20) for m, c in (("json", 1), ("json", 16), ("stream", 16))},
                       "core")
    say("\n## 2. Per-stage cost: each stage alone on top of the core (tenant + egress)\n")
    say("| stage | json c=1 p50 ms (+ vs core) | json c=16 RPS (% of core) | stream c=16 RPS (% of core) | "
        "json c=16 CPU µs/req (+ vs core) |")
    say("|---|---:|---:|---:|---:|")
    core_p50 = t2[("json", 1)]["core"].m("p50")
    core_cpu = t2[("json", 16)]["core"].m("cpu_us")
    for t in per:
        j1, j16, s16 = t2[("json", 1)][t], t2[("json", 16)][t], t2[("stream", 16)][t]
        say(f"| {t} | {fmt(j1.m('p50'), 3)} (+{fmt(j1.m('p50') - core_p50, 3)}) | {fmt(j16.m('rps'), 0)} "
            f"({fmt(100 * median(j16.share), 0)} %) | {fmt(s16.m('rps'), 0)} ({fmt(100 * median(s16.share), 0)} %) | "
            f"{fmt(j16.m('cpu_us'), 0)} (+{fmt(j16.m('cpu_us') - core_cpu, 0)}) |")

    # ---------------------------------------------------------------- table 3
    sizes = [200, 2048, 20480, 204800]
    trio = ["direct", "core", "full"]
    t3 = await b.sweep("table 3", trio, {size: ("json", 1, size, 20) for size in sizes}, "core")
    say("\n## 3. Growth with prompt size (json, c=1; the mock echoes the prompt, so the answer grows too)\n")
    say("| prompt | direct p50 ms | core +p50 ms | full +p50 ms | core CPU µs/req | full CPU µs/req |")
    say("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        cells = t3[size]
        say(f"| {size / 1024:.1f} KB | {fmt(cells['direct'].m('p50'), 3)} | {fmt(median(cells['core'].added_p50), 3)} | "
            f"{fmt(median(cells['full'].added_p50), 3)} | {fmt(cells['core'].m('cpu_us'), 0)} | {fmt(cells['full'].m('cpu_us'), 0)} |")

    # ---------------------------------------------------------------- table 4
    lengths = [5, 20, 100, 400]
    t4 = await b.sweep("table 4", trio, {n: ("stream", 1, 2048, n) for n in lengths}, "core")
    say("\n## 4. Growth with stream length (stream, c=1, 2 KB prompt echoed in N events)\n")
    say("| events | direct p50 ms | core +p50 ms | full +p50 ms | full +TTFB p50 ms | full CPU µs/event |")
    say("|---:|---:|---:|---:|---:|---:|")
    for n in lengths:
        cells = t4[n]
        say(f"| {n} | {fmt(cells['direct'].m('p50'), 3)} | {fmt(median(cells['core'].added_p50), 3)} | "
            f"{fmt(median(cells['full'].added_p50), 3)} | {fmt(median(cells['full'].added_ttfb), 3)} | "
            f"{fmt(cells['full'].m('cpu_us') / n, 1)} |")

    # ---------------------------------------------------------------- RSS and targets
    _, full_hwm = rss_mib(b.procs["full"].popen.pid)
    say(f"\nRSS of the full stack: {full_idle:.0f} MiB idle after warm-up, {full_hwm:.0f} MiB high-water mark after all tables.")
    share16 = [100 * median(t1[(m, 16)]["full"].share) for m in ("json", "stream")]
    say("\nTargets (issue 9):")
    say(f"- full stack RPS at c=16 >= 40 % of the floor: json {share16[0]:.0f} %, stream {share16[1]:.0f} % "
        f"{'PASS' if min(share16) >= 40 else 'FAIL'}")
    for mode in ("json", "stream"):
        cell = t1[(mode, 1)]["full"]
        p50, p99 = median(cell.added_p50), median(cell.added_p99)
        say(f"- {mode} c=1 added p50 {p50:.3f} ms (<= 1.0) {'PASS' if p50 <= 1.0 else 'FAIL'}, "
            f"added p99 {p99:.3f} ms (<= 5.0) {'PASS' if p99 <= 5.0 else 'FAIL'}")
    ttfb = median(t1[("stream", 1)]["full"].added_ttfb)
    say(f"- stream c=1 added TTFB p50 {ttfb:.3f} ms (<= 1.0 beyond the hold-back) {'PASS' if ttfb <= 1.0 else 'FAIL'}")
    say(f"- RSS high-water mark {full_hwm:.0f} MiB (<= 150) {'PASS' if full_hwm <= 150 else 'FAIL'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fullstack", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke: 1 repetition of 0.3 s per cell")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--warmup", type=float)
    ap.add_argument("--concurrency", default="1,16,64", help="table 1 (default 1,16,64)")
    args = ap.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (0.3 if args.quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.1 if args.quick else 0.5)
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]

    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    tmp = Path(tempfile.mkdtemp(prefix="ramparts-fullstack-"))
    env = {**os.environ, "RAMPARTS_BENCH_JWT_SECRET": SECRET, "RAMPARTS_BENCH_PROVIDER_KEY": "sk-bench-provider-key",
           "RAMPARTS_BENCH_STAGE_SECRET": os.urandom(32).hex(), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    procs: dict[str, Proc] = {}
    try:
        procs["mock"] = spawn_mock(load_cpu, tmp, env)
        mock_port = procs["mock"].port
        procs["direct"] = procs["mock"]
        procs["passthrough"] = spawn_passthrough(mock_port, proxy_cpu, tmp, env)
        variants: dict[str, list[str]] = {"core": [], "full": STAGES, **{f"+{s}": [s] for s in STAGES}}
        for name, stages in variants.items():
            entries, tenant_extra = extra_pipeline(stages, ROOT / "bench/stages.yaml") if stages else ([], {})
            for e in entries:
                if e["type"] == "injection":
                    e["max_chars"] = 1_000_000  # table 3 goes to 200 KB prompts
            procs[name] = spawn_ramparts(name, mock_port, entries, tenant_extra, proxy_cpu, tmp, env)
        for p in procs.values():
            wait_listening(p, timeout=90)
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})
        token = mint(SECRET.encode(), tenant="acme", scopes=("ai:completion",), issuer="https://issuer.bench",
                     ttl_s=24 * 3600)
        import uvloop
        started = time.monotonic()
        print(f"bench.fullstack: proxies on cpu {proxy_cpu}, mock + load generator on cpu {load_cpu}; "
              f"{args.reps} reps x {args.duration}s (+{args.warmup}s warm-up) per cell", file=sys.stderr)
        lines = uvloop.run(run(args, Bench(args, procs, token)))
        print("\n".join(lines))
        load = os.getloadavg()
        print(f"\n(python {sys.version.split()[0]}, proxy cpu {proxy_cpu}, load cpu {load_cpu}, {args.reps} reps x "
              f"{args.duration}s, {time.monotonic() - started:.0f}s, load average {load[0]:.1f})")
    finally:
        for p in procs.values():
            p.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
