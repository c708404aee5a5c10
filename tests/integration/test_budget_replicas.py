"""Issue 6 'Done means' with real `ramparts serve` processes: 3 replicas share one budget, kill -9 mid-call.

Three proxy processes (python -m proxy.cli serve) share a Redis store (or, for the
embedded store, one SQLite file in a shared data dir). 200 concurrent HTTP requests
are spread over them against a cap that fits exactly 10 worst-case requests.

The test model costs nothing for input and its answers cost 99 % of the reserved
output, so a ledger that admits an 11th request overspends for real: `spent <= cap`
and `exactly 10 admitted` are both meaningful, independent of timing (a settle
returns only 1 % of a hold, never enough for another worst case).

Then a fourth replica (same store, a 2 s hold TTL) is killed with SIGKILL while its
provider call is in flight (reserved, not settled): the hold counts until its
deadline, then comes back, uncharged. (The three sharing the burst keep the default
TTL: on a loaded box a burst request may take longer than 2 s, and a hold reclaimed
before its settle would rightly free budget for an 11th request.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis
import yaml

from tests.integration.servers import chat, headers, policy_for, token
from tests.redis_server import redis_server  # noqa: F401  (fixture)
from bench.ports import free_port as _free_port

ROOT = Path(__file__).resolve().parents[2]
WORST = 1000 * 600  # nano-USD: max_tokens 1000 x $0.6/1M output; input is free for this model
CAP_USD = 0.0065  # 6,500,000 nano: 10 worst cases fit, an 11th does not (and never will: see below)
# "Echo: " + 3,954 characters = 3,960 characters: the mock reports 990 completion tokens = 99 % of the hold
PROMPT = "z" * 3954


class Replica:
    """One `ramparts serve` process."""

    def __init__(self, policy_path: Path, log: Path) -> None:
        self.port, self.ops = _free_port(), _free_port()
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(policy_path), "--listen", f"127.0.0.1:{self.port}",
             "--ops-listen", f"127.0.0.1:{self.ops}", "--log-level", "WARNING"],
            cwd=ROOT, env={**os.environ}, stdout=self.log, stderr=subprocess.STDOUT)
        self.log_path = log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def ready(self, s: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                async with s.get(f"http://127.0.0.1:{self.ops}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        self.stop()
        pytest.fail(f"replica did not become ready: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def _usage(s: aiohttp.ClientSession, replica: Replica, tenant: str = "acme") -> dict:
    h = headers(tenant)
    h.pop("Content-Type")
    async with s.get(replica.url + "/usage", headers=h) as r:
        assert r.status == 200, await r.text()
        return await r.json()


@pytest.mark.parametrize("store", ["redis", pytest.param("embedded", marks=pytest.mark.slow)])  # ~9 s each
async def test_three_proxy_processes_never_overspend_and_a_killed_one_leaks_no_hold(store, mock, tmp_path, request):
    url = "embedded"
    if store == "redis":
        srv = request.getfixturevalue("redis_server")
        srv.flush()
        url = srv.url
    policy = policy_for(
        mock.port,
        server={"sse_keepalive_s": 0, "drain_timeout_s": 2, "data_dir": str(tmp_path / "data"), "max_in_flight": 1000},
        models={"gpt-4o-mini": {"input_per_1m_usd": 0, "output_per_1m_usd": 0.6, "encoding": "bytes"}},
        plans={"cap": {"models": ["gpt-4o-mini"], "max_tokens_per_request": 1000, "monthly_budget_usd": CAP_USD},
               "pro": {"models": ["gpt-4o-mini"]}},
        tenants={"acme": {"plan": "cap"}})

    def budget(**extra):
        return [{"type": "tenant"}, {"type": "egress"},
                {"type": "budget", "store": url, "min_output_tokens": 1000, "store_timeout_s": 5, **extra}]

    path, doomed_path = tmp_path / "policy.yaml", tmp_path / "doomed.yaml"
    path.write_text(yaml.safe_dump({**policy, "pipeline": budget()}, sort_keys=False))
    doomed_path.write_text(yaml.safe_dump({**policy, "pipeline": budget(hold_ttl_s=2)}, sort_keys=False))
    mock.clear()
    replicas = [Replica(path, tmp_path / f"replica{i}.log") for i in range(3)]
    doomed = Replica(doomed_path, tmp_path / "doomed.log")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
            deadline = time.monotonic() + 60
            for r in (*replicas, doomed):
                await r.ready(s, deadline)

            async def one(i: int) -> tuple[int, dict]:
                r = replicas[i % 3]
                async with s.post(r.url + "/chat/completions", data=chat(PROMPT, max_tokens=1000), headers=headers()) as resp:
                    return resp.status, orjson.loads(await resp.read())

            results = await asyncio.gather(*(one(i) for i in range(200)))
            statuses = [st for st, _ in results]
            ok = statuses.count(200)
            refused = [body["error"]["code"] for st, body in results if st == 429]
            assert ok == 10 and refused == ["budget_exhausted"] * 190, sorted(set(statuses))
            assert len(mock.log) == 10  # refused requests never reached the provider
            served = [body["usage"]["completion_tokens"] for st, body in results if st == 200]
            assert served == [990] * 10  # each admitted request really spent 99 % of its hold
            u = await _usage(s, replicas[1])
            spent_nano = round(u["budget_usd"]["spent"] * 1e9)
            assert spent_nano == 10 * 990 * 600 <= round(CAP_USD * 1e9)
            assert u["budget_usd"]["in_flight"] == 0 and u["interactions"]["in_flight"] == 0 and u["interactions"]["used"] == 10
            if store == "redis":  # straight from the store: no hold left anywhere
                rc = redis.Redis.from_url(url)
                assert rc.hlen("ramparts:budget:{acme}:holds") == 0 and rc.zcard("ramparts:budget:{acme}:deadlines") == 0
                rc.close()

            # kill -9 of a replica between reserve and settle: globex (a fresh budget) asks, the doomed one dies mid-call
            globex = {"Authorization": f"Bearer {token('globex')}", "X-Tenant-ID": "globex",
                             "Content-Type": "application/json"}
            calls = len(mock.log)
            pending = asyncio.ensure_future(s.post(doomed.url + "/chat/completions", headers=globex,
                                                   data=chat("slow one mock:delay=4", max_tokens=1000)))
            for _ in range(200):
                if len(mock.log) > calls:
                    break
                await asyncio.sleep(0.02)
            assert len(mock.log) == calls + 1  # reserved and forwarded: the provider call is in flight
            doomed.proc.send_signal(signal.SIGKILL)
            doomed.proc.wait(10)
            with pytest.raises(aiohttp.ClientError):
                (await pending).release()
            held = await _usage(s, replicas[2], "globex")
            assert held["interactions"]["in_flight"] == 1 and held["budget_usd"]["in_flight"] > 0  # the dead pod's hold
            await asyncio.sleep(2.2)  # past its deadline (hold_ttl_s: 2)
            after = await _usage(s, replicas[2], "globex")
            assert after["budget_usd"]["in_flight"] == 0 and after["interactions"]["in_flight"] == 0
            assert after["budget_usd"]["spent"] == 0 and after["interactions"]["used"] == 0  # returned, not charged
    finally:
        for r in (*replicas, doomed):
            r.stop()
