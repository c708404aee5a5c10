"""Health and metrics endpoints (SECURITY_TESTS M2): only on the ops listener, no secrets, no bypass."""

from __future__ import annotations

import openai
import pytest

from tests.integration.rawhttp import build, request
from tests.integration.servers import HMAC_SECRET, ProxyServer, chat, policy_for, token

EXPECTED_METRICS = (
    "ramparts_requests_total", "ramparts_request_duration_seconds", "ramparts_upstream_ttfb_seconds",
    "ramparts_proxy_overhead_seconds", "ramparts_upstream_errors_total", "ramparts_in_flight_streams",
    "ramparts_in_flight_requests",
)


@pytest.fixture(scope="module")
def px(bg, mock, tmp_path_factory):
    p = ProxyServer(bg, policy_for(mock.port), tmp_path_factory.mktemp("ops")).start()
    yield p
    p.stop()


def get(port: int, path: str, headers: dict | None = None):
    resp, _ = request(port, build("GET", path, {"Host": "x", **(headers or {})}), close_wait=0)
    return resp


def test_m2_ops_endpoints_answer_on_the_ops_listener(px):
    ops = px.server.ops_port
    assert get(ops, "/healthz").json() == {"status": "ok"}
    assert get(ops, "/readyz").status == 200
    m = get(ops, "/metrics")
    assert m.status == 200 and m.header("Content-Type").startswith("text/plain")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/metrics/", "/v1/../metrics"])
def test_m2_ops_endpoints_are_not_on_the_public_listener(px, mock, path):
    mock.clear()
    resp = get(px.port, path, {"Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme"})
    assert resp.status == 404 and resp.error["code"] == "not_found"
    assert b"ramparts_" not in resp.body and mock.log == []


@pytest.mark.parametrize("method,path", [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/_mock/mode"), ("GET", "/admin")])
def test_m2_ops_listener_is_no_back_door_to_the_proxy(px, mock, method, path):
    mock.clear()
    resp, _ = request(px.server.ops_port, build(method, path, {"Host": "x", "Content-Type": "application/json"}, chat("x") if method == "POST" else b""), close_wait=0)
    assert resp.status in (404, 405)
    assert mock.log == []


def test_m2_metrics_names_present_and_no_secrets(px, mock):
    tok = token()
    c = openai.OpenAI(base_url=px.base_url, api_key=tok, default_headers={"X-Tenant-ID": "acme"}, max_retries=0)
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "secret-prompt-text ACME-ACCT-0001"}])
    with pytest.raises(openai.APIError):
        list(c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c d mock:reset"}], stream=True))
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x mock:http401"}])
    text = get(px.server.ops_port, "/metrics").body.decode()
    for name in EXPECTED_METRICS:
        assert name in text, name
    assert 'ramparts_requests_total{route="chat",status="200"}' in text
    assert 'ramparts_upstream_errors_total{kind="reset",provider="openai"}' in text
    for secret in (tok, tok.split(".")[2], HMAC_SECRET, "sk-test-provider-key-0000", "secret-prompt-text", "ACME-ACCT-0001", "acme"):
        assert secret not in text, secret


def test_m2_readyz_reflects_draining(px):
    ops = px.server.ops_port
    px.state.draining = True
    try:
        r = get(ops, "/readyz")
        assert r.status == 503 and r.json() == {"status": "draining"}
        assert get(ops, "/healthz").status == 200  # alive, just not taking traffic
    finally:
        px.state.draining = False
    assert get(ops, "/readyz").status == 200


def test_b8_memory_soft_limit_sheds_new_requests_with_503_and_clears(make_proxy, mock):
    """Above server.max_rss_mib new requests get 503 memory_pressure + Retry-After, no upstream call;
    below it they pass again (the watcher re-reads RSS every rss_check_s)."""
    import http.client
    import time

    import orjson

    from proxy.app import rss_bytes
    from tests.integration.servers import headers

    proxy = make_proxy(server={"max_rss_mib": 32, "rss_check_s": 0.05})  # this process is far above 32 MiB

    def call():
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("POST", "/v1/chat/completions", headers=headers(),
                     body=orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        resp = conn.getresponse()
        out = resp.status, resp.getheader("Retry-After"), resp.read()
        conn.close()
        return out

    status, retry_after, body = call()
    assert status == 503 and retry_after == "1"
    assert orjson.loads(body)["error"]["code"] == "memory_pressure"
    assert mock.log == []
    assert b"ramparts_memory_pressure 1.0" in __import__("urllib.request").request.urlopen(proxy.ops_url + "/metrics").read()
    # the limit rises above what the process uses: the watcher clears the flag and traffic flows again
    proxy.state.policy.server.__dict__["max_rss_mib"] = rss_bytes() // 1_048_576 + 4096
    deadline = time.monotonic() + 5
    while proxy.state.memory_pressure and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call()[0] == 200 and len(mock.log) == 1
