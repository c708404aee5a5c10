"""Refusals before authentication are audited, signed and chained, and bounded per window.

Unit tests of the window limiter, then real HTTP through `Server` (real sockets, the real
handler and audit stage), then the files: `verify_dir` and the `ramparts audit verify` CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from proxy.audit.keyring import Keyring
from proxy.audit.refusal import MAX_KEYS, RefusalLimiter, claimed, refusal_record
from proxy.audit.verify import OK, verify_dir
from tests.integration.rawhttp import build, request
from tests.integration.servers import BackgroundLoop, MockServer, ProxyServer, chat, policy_for, token

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limiter_writes_the_first_n_then_counts_and_summarises_per_window():
    clock = Clock()
    lim = RefusalLimiter(per_window=3, window_s=60, clock=clock)
    admitted = [lim.admit(401, "invalid_token", "chat", f"10.0.0.{i % 2}")[0] for i in range(10)]
    assert admitted == [True] * 3 + [False] * 7
    assert lim.admit(404, "not_found", "-", "10.0.0.9") == (False, [])
    clock.t += 61  # the window closes: the next refusal is admitted and the summaries come out
    ok, closed = lim.admit(401, "invalid_token", "chat", "10.0.0.1")
    assert ok
    assert [(s["type"], s["status"], s["code"], s["route"], s["count"]) for s in closed] == [
        ("refusal_summary", 401, "invalid_token", "chat", 7), ("refusal_summary", 404, "not_found", "-", 1)]
    s401 = closed[0]
    assert s401["written_individually"] == 3 and s401["distinct_clients"] == 2 and not s401["distinct_clients_capped"]
    assert {c["client"]: c["count"] for c in s401["top_clients"]} == {"10.0.0.0": 3, "10.0.0.1": 4}
    assert s401["tenant"] is None and s401["window_s"] == 60
    assert lim.roll(force=True) == []  # nothing over quota in the new window


def test_limiter_keys_and_clients_are_bounded():
    lim = RefusalLimiter(per_window=0, window_s=60, clock=Clock())
    for i in range(MAX_KEYS + 50):
        lim.admit(400, f"code_{i}", "-", f"10.1.{i // 250}.{i % 250}")
    for i in range(3000):
        lim.admit(401, "code_0", "-", f"10.2.{i // 250}.{i % 250}")
    out = lim.roll(force=True)
    assert len(out) == MAX_KEYS + 1  # the rest folded into one ("other") key
    other = next(s for s in out if s["code"] == "other")
    assert other["count"] == 50 + 3000  # 401/code_0 arrived after the key table was full: folded too
    assert sum(s["count"] for s in out) == MAX_KEYS + 50 + 3000  # nothing is lost, only folded
    assert next(s for s in out if s["code"] == "code_0")["count"] == 1
    assert other["status"] == 0 and other["route"] == "-"
    assert other["distinct_clients_capped"] and other["distinct_clients"] == 1025 and len(other["top_clients"]) == 8


def test_refusal_record_shape_keeps_no_client_text():
    r = refusal_record(request_id="r1", status=404, code="not_found", route="-", method="BREW", client="127.0.0.1",
                       claimed_tenant="Robert'); DROP TABLE")
    assert r["type"] == "refusal" and r["tenant"] is None and r["claimed_tenant"] == "<invalid>"
    assert r["method"] == "<other>" and r["code"] == "not_found" and r["client"] == "127.0.0.1"
    assert claimed("acme") == "acme" and claimed(None) is None
    assert refusal_record(request_id="r", status=400, code="x y", route="-", method=None, client=None,
                          claimed_tenant=None)["code"] == "<invalid>"


# ------------------------------------------------------------------ over HTTP

PIPELINE = [{"type": "tenant"}, {"type": "egress"}]


def audit_stage(**kw):
    return {"type": "audit", "chain_id": "refusals", **kw}


@pytest.fixture(scope="module")
def bg():
    loop = BackgroundLoop()
    mock = MockServer(loop).start()
    loop.mock = mock
    yield loop
    mock.stop()
    loop.close()


def records(proxy: ProxyServer) -> list[dict]:
    files = sorted((proxy.tmp / "data" / "audit" / "records").rglob("*.jsonl"))
    return [orjson.loads(line) for p in files for line in p.read_bytes().splitlines() if line.strip()]


def raw_files(proxy: ProxyServer) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((proxy.tmp / "data" / "audit" / "records").rglob("*.jsonl")))


def verified(proxy: ProxyServer) -> None:
    audit_dir = proxy.tmp / "data" / "audit"
    assert verify_dir(audit_dir, Keyring.from_dir(audit_dir / "keys")).status == OK
    cli = subprocess.run([sys.executable, "-m", "proxy.cli", "audit", "verify", str(audit_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_every_refusal_before_an_exchange_leaves_a_signed_record(bg, tmp_path):
    proxy = ProxyServer(bg, policy_for(bg.mock.port, pipeline=[*PIPELINE, audit_stage()],
                                       server={"max_body_bytes": 4096}), tmp_path).start()
    port = proxy.port
    good = token("acme")
    secret_query = "api_key=sk-live-AAAABBBBCCCCDDDD"
    sent = []  # (status, code) the client saw, in order

    def send(data: bytes):
        resp, _ = request(port, data, close_wait=0)
        sent.append((resp.status, resp.error.get("code") if resp.status >= 400 else None))
        return resp

    h = {"Host": "x", "Content-Type": "application/json"}
    send(build("POST", "/v1/chat/completions", h, chat("no token here")))  # 401 missing
    send(build("POST", "/v1/chat/completions", {**h, "Authorization": "Bearer not.a.jwt", "X-Tenant-ID": "acme"}, chat("x")))
    send(build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer {good}", "X-Tenant-ID": "globex"}, chat("x")))
    send(build("POST", f"/v1/nope?{secret_query}", {**h, "Authorization": f"Bearer {good}", "X-Tenant-ID": "acme"}, chat("x")))
    send(build("GET", "/v1/chat/completions", {"Host": "x", "X-Tenant-ID": "acme"}))  # 405
    send(build("POST", "/v1/chat/completions", {**h, "Expect": "100-continue", "Content-Length": "999999",
                                                "X-Tenant-ID": "acme"}))  # 413 before the body
    send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + good.encode()
         + b"\r\nBad Header Line\r\n\r\n")  # 400 malformed HTTP
    proxy.state.memory_pressure = True
    send(build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer {good}", "X-Tenant-ID": "acme"}, chat("x")))
    proxy.state.memory_pressure = False
    limit = proxy.policy.server.max_in_flight
    proxy.state.in_flight += limit  # the proxy is full (as if `limit` requests were open)
    send(build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer {good}", "X-Tenant-ID": "acme"}, chat("x")))
    proxy.state.in_flight -= limit
    proxy.state.draining = True
    send(build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer {good}", "X-Tenant-ID": "acme"}, chat("x")))
    proxy.state.draining = False
    send(build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer {good}", "X-Tenant-ID": "acme"}, b'{"model": '))
    assert [s for s, _ in sent] == [401, 401, 403, 404, 405, 413, 400, 503, 503, 503, 400], sent
    proxy.stop()

    recs = [r for r in records(proxy) if r["type"] in ("refusal", "exchange")]
    got = [(r["type"], r["status"] if r["type"] == "refusal" else None,
            r["code"] if r["type"] == "refusal" else (r["denied"] or {}).get("reason"),
            r["route"], r.get("client"), r["claimed_tenant"], r["tenant"]) for r in recs]
    assert got == [
        ("exchange", None, "missing_token", "chat", "127.0.0.1", None, None),
        ("exchange", None, "invalid_token", "chat", "127.0.0.1", "acme", None),
        ("exchange", None, "tenant_mismatch", "chat", "127.0.0.1", "globex", None),
        ("refusal", 404, "not_found", "-", "127.0.0.1", "acme", None),
        ("refusal", 405, "method_not_allowed", "chat", "127.0.0.1", "acme", None),
        ("refusal", 413, "body_too_large", "chat", "127.0.0.1", "acme", None),
        ("refusal", 400, "malformed_request", "-", "127.0.0.1", None, None),
        ("refusal", 503, "memory_pressure", "chat", "127.0.0.1", "acme", None),
        ("refusal", 503, "overloaded", "chat", "127.0.0.1", "acme", None),
        ("refusal", 503, "draining", "chat", "127.0.0.1", "acme", None),
        ("exchange", None, "invalid_json", "chat", None, None, "acme"),  # authenticated: an ordinary exchange
    ], got
    for r in recs:
        assert r["time"].endswith("Z") and r["request_id"] and r["sig"] and r["hash"]
    raw = raw_files(proxy)
    for secret in (good.encode(), good.split(".")[2].encode(), b"not.a.jwt", secret_query.encode(), b"sk-live",
                   b"no token here", b"/v1/nope"):
        assert secret not in raw, secret
    verified(proxy)


def test_an_unauthenticated_flood_is_bounded_by_the_window(bg, tmp_path):
    proxy = ProxyServer(bg, policy_for(bg.mock.port, pipeline=[*PIPELINE, audit_stage(refusals_per_window=5)]),
                        tmp_path).start()
    h = {"Host": "x", "Content-Type": "application/json", "X-Tenant-ID": "acme"}
    for i in range(120):
        resp, _ = request(proxy.port, build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer bad{i}"}, chat("x")), close_wait=0)
        assert resp.status == 401
    for i in range(80):
        resp, _ = request(proxy.port, build("GET", f"/nowhere/{i}", {"Host": "x"}), close_wait=0)
        assert resp.status == 404
    ok = request(proxy.port, build("POST", "/v1/chat/completions", {**h, "Authorization": f"Bearer {token('acme')}"}, chat("fine")), close_wait=0)[0]
    assert ok.status == 200
    proxy.stop()
    recs = records(proxy)
    individual = [r for r in recs if r["type"] == "refusal" or r["type"] == "exchange" and r["tenant"] is None]
    summaries = [r for r in recs if r["type"] == "refusal_summary"]
    answered = [r for r in recs if r["type"] == "exchange" and r["tenant"] == "acme"]
    assert len(individual) == 5 and len(answered) == 1  # the legitimate request is never sampled away
    assert {(s["status"], s["code"], s["route"]): s["count"] for s in summaries} == {
        (401, "invalid_token", "chat"): 115, (404, "not_found", "-"): 80}
    assert all(s["top_clients"] == [{"client": "127.0.0.1", "count": s["count"]}] for s in summaries)
    assert len(recs) < 20  # 200 refusals, a bounded number of records
    verified(proxy)


def test_a_closed_window_is_summarised_without_waiting_for_the_next_refusal(bg, tmp_path):
    proxy = ProxyServer(bg, policy_for(bg.mock.port, pipeline=[*PIPELINE, audit_stage(refusals_per_window=1,
                                                                                       refusal_window_s=0.4)]),
                        tmp_path).start()
    for _ in range(4):
        assert request(proxy.port, build("GET", "/nope", {"Host": "x"}), close_wait=0)[0].status == 404
    stage = next(s for s in proxy.state.chain.stages if s.type == "audit")
    deadline = time.monotonic() + 5
    summaries = []
    while time.monotonic() < deadline and not summaries:
        time.sleep(0.2)
        bg.run(stage.writer.flush())
        summaries = [r for r in records(proxy) if r["type"] == "refusal_summary"]
    assert [(s["code"], s["count"], s["written_individually"]) for s in summaries] == [("not_found", 3, 1)]
    proxy.stop()
    verified(proxy)
