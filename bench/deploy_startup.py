"""Startup time and memory of `ramparts serve`, the numbers behind the Helm chart's startup
probe budget and resource requests.

For each pipeline (baseline: tenant + egress; full: every stage that ships) the proxy is started
as a fresh process on loopback N times, with a mock provider: time until /readyz answers 200
(what the startup probe waits for, and how long a sidecar delays its app), RSS once ready, and
RSS after a batch of calls through the whole pipeline. Medians of the runs, ratio vs baseline.

    .venv/bin/python -m bench.deploy_startup [--runs 3] [--calls 50] [--image-size]

--image-size also estimates the image's Python payload without Docker: the Dockerfile's install
step (binary wheels into a fresh virtualenv, needs the package index), then its pruning and
bytecode compilation, measuring site-packages after each step.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from proxy.devtoken import mint
from bench.ports import free_port

SECRET = "bench-secret-that-is-at-least-32-bytes-long!!"
BASELINE = [{"type": "tenant"}, {"type": "egress"}]
FULL = BASELINE + [{"type": "rate_limit"}, {"type": "budget"}, {"type": "injection"},
                   {"type": "pii", "secret": {"from_env": "BENCH_SECRET"}}, {"type": "leak"}, {"type": "audit"}]


def policy(mock_port: int, pipeline: list[dict]) -> dict:
    return {
        "version": 1,
        "server": {"sse_keepalive_s": 0, "drain_timeout_s": 2},
        "auth": {"issuer": "https://issuer.bench", "audience": "ramparts", "algorithms": ["HS256"], "key": {"from_env": "BENCH_SECRET"}},
        "providers": {"openai": {"base_url": f"http://127.0.0.1:{mock_port}/v1", "api_key": {"from_env": "BENCH_SECRET"},
                                 "models": {"gpt-4o-mini": "gpt-4o-mini"}}},
        "egress": {"allow": [f"127.0.0.1:{mock_port}"], "allow_private_ips": ["127.0.0.0/8"]},
        "models": {"gpt-4o-mini": {"input_per_1m_usd": 0.15, "output_per_1m_usd": 0.6}},
        "plans": {"pro": {"models": ["gpt-4o-mini"], "monthly_budget_usd": 1000}},
        "tenants": {"acme": {"plan": "pro"}},
        "pipeline": pipeline,
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_ready(port: int, proc: subprocess.Popen, deadline_s: float = 180) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError("not ready")


def call(port: int, token: str, i: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"model": "gpt-4o-mini", "stream": i % 2 == 0, "messages": [
        {"role": "user", "content": f"call {i}: write to jane.doe@example.com about invoice 4411 mock:stream-chunks=8"}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={
        "Authorization": f"Bearer {token}", "X-Tenant-ID": "acme", "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"call {i}: HTTP {resp.status}")


def one_run(pipeline: list[dict], mock_port: int, calls: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="ramparts-bench-") as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(yaml.safe_dump(policy(mock_port, pipeline)))
        port, ops = free_port(), free_port()
        env = dict(os.environ, BENCH_SECRET=SECRET, HOME=tmp, XDG_CACHE_HOME=f"{tmp}/.cache")
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "proxy.cli", "serve", "--policy", str(path), "--data-dir", f"{tmp}/data",
                                 "--listen", f"127.0.0.1:{port}", "--ops-listen", f"127.0.0.1:{ops}", "--log-level", "WARNING"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(ops, proc)
            ready_s = time.monotonic() - t0
            rss_ready = rss_mb(proc.pid)
            token = mint(SECRET.encode(), tenant="acme", issuer="https://issuer.bench")
            for i in range(calls):
                call(port, token, i)
            rss_busy = rss_mb(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return ready_s, rss_ready, rss_busy


def du_mb(path: Path) -> float:
    seen: set[int] = set()
    total = 0
    for p in path.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_size
    return total / 1e6


def image_size() -> None:
    """The Dockerfile's build-stage steps, measured (same flags as its RUN line)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="ramparts-image-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "-q", "--no-compile", "--only-binary=:all:", "--no-binary=ramparts", str(root)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        site = next((venv / "lib").glob("python3.*/site-packages"))
        installed = du_mb(site)
        sizes = sorted(((du_mb(d), d.name) for d in site.iterdir() if d.is_dir()), reverse=True)[:6]
        subprocess.run([*pip, "uninstall", "-q", "-y", "pip", "setuptools", "wheel"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for tests in [d for d in site.glob("*/**/tests") if d.is_dir()]:
            shutil.rmtree(tests, ignore_errors=True)
        pruned = du_mb(site)
        subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(venv / "lib")],
                       check=True, stdout=subprocess.DEVNULL)
        compiled = du_mb(site)
    print("\nimage payload (site-packages of the Dockerfile's virtualenv, MB)")
    print(f"{'step':<40}{'MB':>8}{'ratio':>7}")
    for label, mb in (("installed (baseline)", installed), ("pip/setuptools and test suites removed", pruned),
                      ("bytecode compiled (shipped)", compiled)):
        print(f"{label:<40}{mb:>8.0f}{mb / installed:>7.2f}")
    print("largest: " + ", ".join(f"{name} {mb:.0f}" for mb, name in sizes))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.deploy_startup", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--image-size", action="store_true", help="also measure the image's Python payload (uses the package index)")
    args = ap.parse_args(argv)
    mock_port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "proxy.cli", "mock-provider", "--listen", f"127.0.0.1:{mock_port}",
                             "--no-log-bodies"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "full": []}
    try:
        time.sleep(1.5)
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            results["baseline"].append(one_run(BASELINE, mock_port, args.calls))
            results["full"].append(one_run(FULL, mock_port, args.calls))
    finally:
        mock.terminate()
        mock.wait()
    med = {k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in results.items()}
    print(f"`ramparts serve` startup, {args.runs} runs each (medians), {args.calls} calls after ready")
    print(f"{'pipeline':<34}{'ready s':>9}{'ratio':>7}{'RSS ready MB':>14}{'RSS busy MB':>13}")
    for name, label in (("baseline", "baseline (tenant, egress)"), ("full", "full (all 8 stages)")):
        r = med[name]
        print(f"{label:<34}{r[0]:>9.2f}{r[0] / med['baseline'][0]:>7.1f}{r[1]:>14.0f}{r[2]:>13.0f}")
    full = med["full"]
    print(f"\nchart defaults: startup probe budget 120 s (2 s x 60) vs {full[0]:.1f} s; "
          f"memory request 320 Mi / limit 768 Mi vs {full[2]:.0f} MB busy")
    if args.image_size:
        image_size()
    return 0


if __name__ == "__main__":
    sys.exit(main())
