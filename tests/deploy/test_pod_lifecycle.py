"""The sidecar container the chart renders, run for real as a process on loopback.

What the kubelet would do: start the container's command (ENTRYPOINT + the chart's args, the
image's ENV, the chart's Secret as environment, the rendered ConfigMap as the policy file) with
the root filesystem read-only and only the chart's two volumes writable (a private mount
namespace stands in for the container runtime), wait for the startup probe, check liveness,
serve a request through every stage, then send SIGTERM while two streams are open: readiness
must turn false at once, the listener stop taking connections, the short stream finish, the one
that outlives server.drain_timeout_s end with an SSE error event at the deadline, and the process
exit within the terminationGracePeriodSeconds the chart derived from the drain budget.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfile import exec_form, final_stage, runtime_env
from tests.deploy.release import Release, render_example_app
from tests.harness import HMAC_SECRET
from tests.integration.servers import policy_for, token
from tests.redis_server import free_port

DRAIN_S = 4
PII_SECRET = "pii-test-secret-that-is-long-enough-0123456789"
# every stage that ships, in the order policies/example.yaml documents
PIPELINE = [{"type": "tenant"}, {"type": "egress"}, {"type": "rate_limit"}, {"type": "budget"},
            {"type": "injection"}, {"type": "pii", "secret": {"from_env": "RAMPARTS_PII_SECRET"}},
            {"type": "leak"}, {"type": "audit"}]


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('acme')}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}


def _wait_http(port: int, path: str, want: int, deadline_s: float, process: subprocess.Popen | None = None) -> int:
    """Poll until `path` answers `want`; stop early when `process` (the proxy) has exited."""
    end = time.monotonic() + deadline_s
    status = -1
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            return -process.returncode - 1000  # exited: not a status
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == want:
                return status
        except OSError:
            pass
        time.sleep(0.05)
    return status


def _container_command(release: Release, work: Path, ports: dict[str, int]) -> tuple[list[str], dict[str, str]]:
    """The sidecar's command and environment, in-pod paths and ports mapped into `work`, run in a
    mount namespace where everything but the two volumes is read-only."""
    spec = release.one("Deployment")["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert {p for p, m in mounts.items() if not m.get("readOnly")} == {"/var/lib/ramparts", "/tmp"}
    for d in ("policy", "data", "tmp"):
        (work / d).mkdir()
    (work / "policy" / "policy.yaml").write_text(release.policy_text())
    paths = {"/etc/ramparts/policy": str(work / "policy"), "/var/lib/ramparts": str(work / "data"), "/tmp": str(work / "tmp")}

    def mapped(value: str) -> str:
        for inside, outside in paths.items():
            if value == inside or value.startswith(inside + "/"):
                return outside + value[len(inside):]
        return {"127.0.0.1:8080": f"127.0.0.1:{ports['proxy']}",
                "0.0.0.0:9090": f"127.0.0.1:{ports['ops']}"}.get(value, value)  # tests listen on loopback only

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPARTS_TEST_")}
    env.update({k: mapped(v) for k, v in runtime_env().items() if k != "PATH"})
    (secret_ref,) = sidecar["envFrom"]
    secret = next(s for s in release.of_kind("Secret") if s["metadata"]["name"] == secret_ref["secretRef"]["name"])
    env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    (entrypoint,) = [exec_form(i.args) for i in final_stage() if i.op == "ENTRYPOINT"]
    assert entrypoint == ["ramparts", "serve"]
    command = [sys.executable, "-m", "proxy.cli", *entrypoint[1:], *(mapped(a) for a in sidecar["args"])]
    writable = [paths["/var/lib/ramparts"], paths["/tmp"]]
    script = " && ".join(
        [f"mount --bind {shlex.quote(w)} {shlex.quote(w)}" for w in writable]
        + ["mount -o remount,bind,ro /",
           f"! touch {shlex.quote(str(work / 'policy' / 'probe'))} 2>/dev/null",  # the root really is read-only
           "exec " + shlex.join(command)])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env


@pytest.mark.timeout(300)  # above the startup probe's budget, so a slow start fails with the log
def test_sidecar_starts_probes_and_drains_on_sigterm(tmp_path: Path):
    mock_port, proxy_port, ops_port = free_port(), free_port(), free_port()
    policy = policy_for(mock_port)
    policy["server"]["drain_timeout_s"] = DRAIN_S
    policy["pipeline"] = PIPELINE
    release = render_example_app(tmp_path / "chart", {"ramparts": {
        "policy": yaml.safe_dump(policy, sort_keys=False),
        "secrets": {"existingEnvSecret": "", "existingFileSecret": "",
                    "env": {"RAMPARTS_TEST_JWT_SECRET": HMAC_SECRET, "RAMPARTS_TEST_PROVIDER_KEY": "sk-test-provider-key-0000",
                            "RAMPARTS_PII_SECRET": PII_SECRET}},
        "redis": {"url": "", "singleReplica": True},
    }})
    spec = release.one("Deployment")["spec"]["template"]["spec"]
    app_values = yaml.safe_load((Path(__file__).parents[2] / "deploy/helm/example-app/values.yaml").read_text())
    sidecar_grace = spec["terminationGracePeriodSeconds"] - app_values["appShutdownSeconds"]
    assert sidecar_grace > DRAIN_S

    work = tmp_path / "pod"
    work.mkdir()
    cmd, env = _container_command(release, work, {"proxy": proxy_port, "ops": ops_port})
    mock = subprocess.Popen([sys.executable, "-m", "proxy.cli", "mock-provider", "--listen", f"127.0.0.1:{mock_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "proxy.log"
    with log.open("w") as out:
        proxy = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        (sidecar,) = spec["initContainers"]
        startup = sidecar["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert _wait_http(ops_port, startup["httpGet"]["path"], 200, budget, proxy) == 200, log.read_text()[-3000:]
        assert _wait_http(ops_port, sidecar["livenessProbe"]["httpGet"]["path"], 200, 5, proxy) == 200, log.read_text()[-3000:]
        assert _wait_http(mock_port, "/_mock/log", 200, 10, mock) == 200

        # one call through every stage: the PII is tokenized for the provider, restored for the client
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=30)
        conn.request("POST", "/v1/chat/completions", headers=_headers(), body=json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "mail jane.doe@example.com please"}]}))
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        conn.close()
        assert resp.status == 200, answer
        assert "jane.doe@example.com" in answer["choices"][0]["message"]["content"]

        # a stream of ~1.5 s that must survive the SIGTERM
        chunks: list[bytes] = []
        first = threading.Event()
        # and one of ~10 s (26 one-character pieces, 0.4 s apart) that outlives the drain budget:
        # it must be cut with an error event
        cut: list[bytes] = []
        cut_first = threading.Event()

        def stream(into: list[bytes], started: threading.Event, pacing: str) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=30)
            body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [
                {"role": "user", "content": f"a long answer please {pacing}"}]})
            conn.request("POST", "/v1/chat/completions", body=body, headers=_headers())
            resp = conn.getresponse()
            into.append(str(resp.status).encode())
            while line := resp.readline():
                into.append(line)
                started.set()
            conn.close()

        reader = threading.Thread(target=stream, args=(chunks, first, "mock:stream-chunks=10 mock:delay=0.15"))
        long_reader = threading.Thread(target=stream, args=(cut, cut_first, "mock:split=1 mock:delay=0.4"))
        long_reader.start()
        assert cut_first.wait(10)
        reader.start()
        assert first.wait(10)
        t0 = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        # readiness goes false while draining (endpoints drop the pod) ...
        assert _wait_http(ops_port, "/readyz", 503, 2, proxy) == 503, log.read_text()[-3000:]
        assert proxy.poll() is None  # ... while the open stream still runs
        # ... and the listener takes no new connections
        time.sleep(0.2)
        refused = False
        try:
            socket.create_connection(("127.0.0.1", proxy_port), timeout=1).close()
        except OSError:
            refused = True
        assert refused
        reader.join(30)
        text = b"".join(chunks).decode()
        assert chunks[0] == b"200" and text.rstrip().endswith("data: [DONE]")
        # the stream that outlived drain_timeout_s: cut at the deadline with an SSE error event,
        # never a fake [DONE]
        long_reader.join(30)
        cut_text = b"".join(cut).decode()
        assert cut[0] == b"200" and "shutting_down" in cut_text and "[DONE]" not in cut_text, cut_text[-500:]
        # gone before the kubelet's SIGKILL: terminationGracePeriodSeconds covers the drain
        assert proxy.wait(sidecar_grace) == 0
        exited_after = time.monotonic() - t0
        assert DRAIN_S - 0.5 < exited_after < sidecar_grace, exited_after  # it did wait for the drain
        # what the pod wrote: only its data volume (budget, rate limit, the audit trail)
        audit_days = list((work / "data" / "audit" / "records").glob("*/*.jsonl"))
        assert audit_days and sum(len(p.read_text().splitlines()) for p in audit_days) >= 2
        assert sorted(p.name for p in (work / "policy").iterdir()) == ["policy.yaml"]
    finally:
        for p in (proxy, mock):
            if p.poll() is None:
                p.kill()
            p.wait(5)
