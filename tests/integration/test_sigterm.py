"""SIGTERM with open streams against a real `ramparts serve` process (SECURITY_TESTS H10).

Kubernetes sends SIGTERM and keeps routing for a moment: readiness must go 503,
the listener must stop accepting, streams that finish within the drain window
finish with [DONE], the others end with an SSE error event (never a silent
[DONE]), the audit sink is flushed (every stream recorded, the chain verifies),
and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml

from proxy.audit.keyring import Keyring
from proxy.audit.verify import OK, verify_dir

from tests.integration.rawhttp import RawConnection, build, request, sse_events
from tests.integration.servers import chat, policy_for, token
from bench.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def get(port: int, path: str) -> tuple[int, bytes]:
    resp, _ = request(port, build("GET", path, {"Host": "x"}), timeout=3, close_wait=0)
    return resp.status, resp.body


@pytest.fixture
def served(mock, tmp_path):
    """A `ramparts serve` subprocess in front of the mock provider."""
    port, ops = free_port(), free_port()
    policy = policy_for(mock.port, server={"sse_keepalive_s": 0, "drain_timeout_s": 1.5, "data_dir": str(tmp_path / "data")},
                        pipeline=[{"type": "tenant"}, {"type": "egress"}, {"type": "audit", "chain_id": "sigterm"}])
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    proc = subprocess.Popen([sys.executable, "-m", "proxy.cli", "serve", "--policy", str(path), "--listen", f"127.0.0.1:{port}",
                             "--ops-listen", f"127.0.0.1:{ops}", "--log-level", "WARNING"],
                            cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if get(ops, "/readyz")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("ramparts serve did not become ready: " + proc.communicate()[1][-2000:])
    proc.audit_dir = tmp_path / "data" / "audit"
    yield proc, port, ops
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def open_stream(port: int, text: str) -> RawConnection:
    c = RawConnection(port, timeout=15)
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    c.send(build("POST", "/v1/chat/completions", headers, chat(text, stream=True)))
    c.head = c.read_head()
    assert c.head.status == 200
    return c


def test_h10_sigterm_drains_streams_and_exits_zero(served, mock):
    proc, port, ops = served
    words = " ".join(f"w{i}" for i in range(40))
    long_streams = [open_stream(port, f"{words} mock:stream-chunks=40 mock:delay=0.25") for _ in range(3)]  # ~10 s each
    short_streams = [open_stream(port, "short one mock:stream-chunks=4 mock:delay=0.2") for _ in range(2)]  # ~0.8 s
    mock.clear()
    proc.send_signal(signal.SIGTERM)

    # draining: readiness is 503 while the ops listener stays up, the proxy port takes no new work
    deadline, status = time.monotonic() + 1.0, None
    while time.monotonic() < deadline:
        status, body = get(ops, "/readyz")
        if status == 503:
            break
    assert status == 503 and b"draining" in body
    refused = False
    try:
        with RawConnection(port, timeout=2) as c:
            c.send(build("POST", "/v1/chat/completions", {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme",
                                                          "Content-Type": "application/json"}, chat("late")))
            late = c.read_response()
            refused = late is None or late.status == 503
    except OSError:
        refused = True
    assert refused, "a new request during the drain must be refused"
    assert mock.log == []

    for c in short_streams:
        events = sse_events(b"".join(c.iter_body(c.head)))
        assert events[-1] == "[DONE]"  # finished inside the drain window
    for c in long_streams:
        events = sse_events(b"".join(c.iter_body(c.head)))
        assert "[DONE]" not in events
        assert events[-1]["error"]["code"] == "shutting_down"
    for c in long_streams + short_streams:
        c.close()
    assert proc.wait(timeout=15) == 0
    assert "draining" in proc.stdout.read()

    # the audit sink was flushed on the way out: one record per stream, the cut ones say so, the chain verifies
    records = [orjson.loads(line) for p in sorted((proc.audit_dir / "records").rglob("*.jsonl")) for line in p.read_text().splitlines()]
    outcomes = sorted(r["outcome"] for r in records if "outcome" in r)
    assert outcomes == ["cut_stream"] * 3 + ["ok"] * 2
    rep = verify_dir(proc.audit_dir, Keyring.from_dir(proc.audit_dir / "keys"))
    assert rep.status == OK


def test_m1_weak_hmac_secret_refuses_to_start(tmp_path, mock, monkeypatch, capsys):
    from proxy.serve import main as serve_main

    policy = policy_for(mock.port)
    policy["auth"]["key"] = {"from_env": "RAMPARTS_WEAK_SECRET"}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    monkeypatch.setenv("RAMPARTS_WEAK_SECRET", "weak-s3cr3t")
    assert serve_main(["--policy", str(path), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]) == 2
    out = capsys.readouterr()
    assert "at least 32" in out.err and "weak-s3cr3t" not in out.err + out.out
