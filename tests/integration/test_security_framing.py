"""HTTP framing, limits, routing and header hygiene through raw sockets (SECURITY_TESTS A, B, C1/C2/C7, D1/D3/D6, F9, G3).

Every request here carries a valid JWT and tenant header and a valid body, so a
refusal can only come from the framing check under test; every refusal asserts
zero upstream calls and an OpenAI-shaped error.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time

import orjson
import pytest

from tests.integration.rawhttp import RawConnection, RawUpstream, chunked, request
from tests.integration.servers import ProxyServer, chat, policy_for, token

ROUTE = "/v1/chat/completions"
PURE_PYTHON_PARSER = os.environ.get("AIOHTTP_NO_EXTENSIONS") == "1"  # the A6 rerun
BODY = chat("hello")


@pytest.fixture(scope="module")
def px(bg, mock, tmp_path_factory):
    p = ProxyServer(bg, policy_for(mock.port, server={"sse_keepalive_s": 0, "drain_timeout_s": 1, "body_timeout_s": 1.0}),
                    tmp_path_factory.mktemp("framing")).start()
    yield p
    p.stop()


@pytest.fixture
def up(mock):
    mock.clear()
    return mock


def auth(tenant: str = "acme") -> bytes:
    return (f"Host: 127.0.0.1\r\nAuthorization: Bearer {token(tenant)}\r\nX-Tenant-ID: {tenant}\r\n"
            "Content-Type: application/json\r\n").encode()


def line(target: str = ROUTE, method: str = "POST", version: str = "HTTP/1.1") -> bytes:
    return f"{method} {target} {version}\r\n".encode()


def cl(body: bytes = BODY) -> bytes:
    return b"Content-Length: %d\r\n" % len(body)


def refused(px, up, raw: bytes, statuses=(400,), closed: bool = True):
    resp, was_closed = request(px.port, raw, close_wait=2.5 if closed else 0)  # lingering close is 1 s
    assert resp is not None, "no response at all"
    assert resp.status in statuses, (resp.status, resp.body[:200])
    err = resp.error
    if closed:
        assert was_closed, "the connection must be closed after a framing error"
    assert up.log == [], "a refused request reached the provider"
    return resp, err


def test_baseline_valid_raw_request_is_forwarded(px, up):
    resp, _ = request(px.port, line() + auth() + cl() + b"\r\n" + BODY, close_wait=0)
    assert resp.status == 200 and resp.json()["choices"][0]["message"]["content"] == "Echo: hello"
    assert len(up.log) == 1


# ---------------------------------------------------------------- A1 A2 A3: smuggling corpus

N = len(BODY)
A1 = {
    "cl+te": b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % N + chunked(BODY),
    "te+cl": b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunked(BODY),
    "duplicate-differing-cl": b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (N, N + 5) + BODY + b"GET /",
    "duplicate-equal-cl": b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (N, N) + BODY,
    "cl-list": b"Content-Length: %d, %d\r\n\r\n" % (N, N) + BODY,
    "plus-cl": b"Content-Length: +%d\r\n\r\n" % N + BODY,
    "negative-cl": b"Content-Length: -1\r\n\r\n" + BODY,
    "hex-cl": b"Content-Length: 0x%x\r\n\r\n" % N + BODY,
    "space-in-cl": b"Content-Length: %d 0\r\n\r\n" % N + BODY,
}
A2 = {
    "chunked-identity": b"Transfer-Encoding: chunked, identity\r\n\r\n",
    "identity-chunked": b"Transfer-Encoding: identity, chunked\r\n\r\n",
    "xchunked": b"Transfer-Encoding: xchunked\r\n\r\n",
    "space-before-colon": b"Transfer-Encoding : chunked\r\n\r\n",
    "leading-space": b" Transfer-Encoding: chunked\r\n\r\n",
    "leading-tab": b"\tTransfer-Encoding: chunked\r\n\r\n",
    "duplicate-te": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    "identity-then-chunked": b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n",
    "vertical-tab": b"Transfer-Encoding: chunked\x0b\r\n\r\n",
}
A3 = {
    "bare-lf-header": None,  # built below from the auth block
    "bare-lf-request-line": None,
    "obs-fold": b"X-A: a\r\n b\r\n" + cl() + b"\r\n" + BODY,
    "cr-in-value": b"X-A: a\rX-Tenant-ID: globex\r\n" + cl() + b"\r\n" + BODY,
    "nul-in-value": b"X-A: a\x00b\r\n" + cl() + b"\r\n" + BODY,
    "lf-in-chunk-extension": b"Transfer-Encoding: chunked\r\n\r\n" + b"%x;a=b\nc\r\n" % N + BODY + b"\r\n0\r\n\r\n",
    "chunk-size-overflow": b"Transfer-Encoding: chunked\r\n\r\n" + b"1" + b"0" * 20 + b"\r\n" + BODY + b"\r\n0\r\n\r\n",
    "chunk-size-garbage": b"Transfer-Encoding: chunked\r\n\r\n" + b"5x\r\n" + BODY + b"\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(A1))
def test_a1_content_length_and_transfer_encoding_conflicts(px, up, name):
    refused(px, up, line() + auth() + A1[name])


@pytest.mark.parametrize("name", list(A2))
def test_a2_transfer_encoding_obfuscation(px, up, name):
    refused(px, up, line() + auth() + A2[name] + chunked(BODY))


@pytest.mark.parametrize("name", list(A3))
def test_a3_bare_lf_obs_fold_ctl_and_chunk_abuse(px, up, name):
    if name == "bare-lf-header":
        raw = line() + auth().replace(b"\r\nX-Tenant-ID", b"\nX-Tenant-ID") + cl() + b"\r\n" + BODY
    elif name == "bare-lf-request-line":
        raw = line().replace(b"\r\n", b"\n") + auth() + cl() + b"\r\n" + BODY
    else:
        raw = line() + auth() + A3[name]
    statuses = (400,)
    if PURE_PYTHON_PARSER and name == "chunk-size-overflow":
        statuses = (400, 408)  # known parity gap: the Python parser waits for 2**80 bytes; fails closed at the body deadline
    _, err = refused(px, up, raw, statuses)
    assert "globex" not in err["message"] and "Bearer" not in err["message"]  # the offending bytes are not echoed


def test_a3_parse_errors_never_log_the_token(px, up, caplog):
    tok = token()
    raw = line() + f"Host: x\r\nAuthorization: Bearer {tok}\nX-Tenant-ID: acme\r\n".encode() + cl() + b"\r\n" + BODY
    with caplog.at_level("DEBUG"):
        refused(px, up, raw)
    assert tok not in caplog.text and tok.split(".")[1] not in caplog.text


# ---------------------------------------------------------------- A4 A5: pipelining

def test_a4_pipelined_requests_one_upstream_call_each_in_order(px, up):
    with RawConnection(px.port) as c:
        bodies = [chat(f"first {i}") for i in range(3)]
        c.send(b"".join(line() + auth() + cl(b) + b"\r\n" + b for b in bodies))
        answers = [c.read_response() for _ in bodies]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.json()["choices"][0]["message"]["content"] for a in answers] == [f"Echo: first {i}" for i in range(3)]
    assert len(up.log) == 3


def test_a4_request_hidden_in_a_body_is_just_text(px, up):
    hidden = (line("/v1/embeddings") + auth("globex") + b"Content-Length: 2\r\n\r\n{}").decode()
    body = chat(hidden)
    with RawConnection(px.port) as c:
        c.send(line() + auth() + cl(body) + b"\r\n" + body)
        resp = c.read_response()
        assert resp.status == 200
        assert c.peer_closed(0.5) is False  # nothing else is answered on the connection
    assert len(up.log) == 1 and up.log[0]["path"] == "/v1/chat/completions"


def test_a5_max_length_line_dribbled_byte_by_byte(px, up):
    with RawConnection(px.port, timeout=10) as c:
        c.dribble(line() + b"X-Long: " + b"a" * 17_000 + b"\r\n", size=1, pause=0.001, every=512)
        resp = c.read_response()
    assert resp.status == 400 and resp.error["code"] == "malformed_request"
    assert up.log == []


def test_a5_many_requests_pipelined_behind_a_slow_one(px, up):
    slow = chat("slow mock:delay=0.5")
    rest = [chat(f"n{i}") for i in range(40)]
    before = _rss()
    with RawConnection(px.port, timeout=15) as c:
        c.send(b"".join(line() + auth() + cl(b) + b"\r\n" + b for b in [slow] + rest))
        answers = [c.read_response() for _ in range(41)]
    texts = [a.json()["choices"][0]["message"]["content"] for a in answers]
    assert texts[0] == "Echo: slow" and texts[1:] == [f"Echo: n{i}" for i in range(40)]
    assert len(up.log) == 41
    assert _rss() - before < 50 * 1024 * 1024


# ---------------------------------------------------------------- A6: parser backend parity

def test_a6_c_parser_is_in_use():
    import aiohttp.http_parser as hp
    from aiohttp import _http_parser  # noqa: F401  the C extension must import

    assert hp.HttpRequestParser is _http_parser.HttpRequestParser


@pytest.mark.slow
def test_a6_pure_python_parser_gives_the_same_answers():
    """Rerun A1-A3 with AIOHTTP_NO_EXTENSIONS=1 in a child pytest: same expectations."""
    env = {**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", __file__, "-k", "test_a1_ or test_a2_ or test_a3_"],
                          env=env, capture_output=True, text=True, timeout=110, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


# ---------------------------------------------------------------- A7 A8 A9 A10

@pytest.mark.parametrize("field,value", [
    ("model", "gpt-4o-mini\r\nX-Evil: 1"), ("user", "u\r\nX-Evil: 1"), ("model", "gpt-4o-mini\x00"),
    ("service_tier", "auto\nX-Evil: 1"),
])
def test_a7_ctl_characters_in_strings_that_could_reach_headers(px, up, field, value):
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], field: value})
    _, err = refused(px, up, line() + auth() + cl(body) + b"\r\n" + body, closed=False)
    assert err["code"] == "invalid_value"


def test_a7_crlf_in_body_text_never_becomes_an_upstream_header(px, up):
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x\r\nX-Evil: 1"}],
                         "metadata": {"k": "v\r\nX-Evil2: 1"}})
    resp, _ = request(px.port, line() + auth() + cl(body) + b"\r\n" + body, close_wait=0)
    assert resp.status == 200
    sent = {k.lower() for k in up.log[0]["headers"]}
    assert "x-evil" not in sent and "x-evil2" not in sent


@pytest.mark.parametrize("upgrade", [
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
    b"Upgrade: websocket\r\n",
])
def test_a9_upgrade_is_refused_and_never_tunnelled(px, up, upgrade):
    raw = line() + auth() + upgrade + cl() + b"\r\n" + BODY
    resp, err = refused(px, up, raw)
    assert resp.status != 101 and err["code"] == "upgrade_refused"


def test_a9_connect_is_refused(px, up, mock):
    resp, err = refused(px, up, f"CONNECT 127.0.0.1:{mock.port} HTTP/1.1\r\nHost: 127.0.0.1:{mock.port}\r\n\r\n".encode())
    assert err["code"] == "bad_request_target"


def test_a10_expect_continue_with_oversized_length_is_413_before_the_body(px, up):
    with RawConnection(px.port) as c:
        c.send(line() + auth() + b"Expect: 100-continue\r\nContent-Length: 50000000\r\n\r\n")  # no body sent
        resp = c.read_response()
        assert resp.status == 413 and resp.error["code"] == "body_too_large"
        assert c.peer_closed(2.5)
    assert up.log == []


def test_a10_expect_continue_with_a_normal_body_works(px, up):
    with RawConnection(px.port) as c:
        c.send(line() + auth() + b"Expect: 100-continue\r\n" + cl() + b"\r\n")
        interim = c.read_head()
        assert interim.status == 100
        c.send(BODY)
        assert c.read_response().status == 200
    assert len(up.log) == 1


@pytest.mark.parametrize("raw", [
    b"GET /v1/models\r\n\r\n",  # HTTP/0.9
    line(version="HTTP/2.0") + auth() + cl() + b"\r\n" + BODY,
    line(version="HTTP/1.2") + auth() + cl() + b"\r\n" + BODY,
    line(method="post") + auth() + cl() + b"\r\n" + BODY,
    line(method="P0ST") + auth() + cl() + b"\r\n" + BODY,
], ids=["http0.9", "http2.0", "http1.2", "lowercase-method", "odd-method"])
def test_a10_bad_request_lines(px, up, raw):
    refused(px, up, raw, statuses=(400, 405, 505))


def test_a10_wrong_method_on_a_proxied_route_is_405(px, up):
    resp, err = refused(px, up, line(method="PUT") + auth() + cl() + b"\r\n" + BODY, statuses=(405,))
    assert resp.header("Allow") == "POST"


# ---------------------------------------------------------------- B: limits

def test_b1_limits_header_line_count(px, up):
    refused(px, up, line() + auth() + b"X-Big: " + b"a" * 17_000 + b"\r\n" + cl() + b"\r\n" + BODY, statuses=(400, 431))
    refused(px, up, line(ROUTE + "?" + "a" * 9000) + auth() + cl() + b"\r\n" + BODY, statuses=(400, 414))
    refused(px, up, line() + auth() + b"".join(b"X-H%d: 1\r\n" % i for i in range(120)) + cl() + b"\r\n" + BODY, statuses=(400, 431))


def test_b1_a_large_real_jwt_fits_the_limits(px, up):
    tok = token(extra={"groups": [f"group-{i:05d}" for i in range(700)]})
    assert 10_000 < len(tok) < 16_000
    raw = line() + f"Host: x\r\nAuthorization: Bearer {tok}\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n".encode() + cl() + b"\r\n" + BODY
    resp, _ = request(px.port, raw, close_wait=0)
    assert resp.status == 200 and len(up.log) == 1


def test_b2_body_over_the_cap_by_content_length(px, up):
    refused(px, up, line() + auth() + b"Content-Length: 2097152\r\n\r\n" + b"{" + b" " * 1000, statuses=(413,))


def test_b2_body_over_the_cap_chunked(px, up):
    big = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a" * (2 * 1024 * 1024)}]})
    with RawConnection(px.port, timeout=10) as c:
        c.send(line() + auth() + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            c.send(chunked(big, 16384))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy may close before the whole body is sent
        resp = c.read_response()
    assert resp.status == 413 and resp.error["code"] == "body_too_large"
    assert up.log == []


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS"))


def test_b3_gzip_bomb_request_is_refused_without_inflating(px, up):
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]", compresslevel=6)
    assert len(bomb) < 100_000
    before = _rss()
    for enc in ("gzip", "deflate", "br", "gzip, identity"):
        resp, err = refused(px, up, line() + auth() + f"Content-Encoding: {enc}\r\n".encode() + cl(bomb) + b"\r\n" + bomb, statuses=(415,))
        assert err["code"] == "unsupported_encoding"
    assert _rss() - before < 50 * 1024 * 1024


def test_b4_json_depth_bomb_is_400_not_500(px, up):
    for body in (b"[" * 100_000, b'{"model":"gpt-4o-mini","messages":' + b"[" * 100 + b"]" * 100 + b"}"):
        _, err = refused(px, up, line() + auth() + cl(body) + b"\r\n" + body, closed=False)
        assert err["code"] in ("invalid_json", "json_too_deep")


def _slowloris(proxy, n: int, seconds: float) -> tuple[int, float, int]:
    """n connections dribbling one header byte each per 0.25 s, plus a legit request in the middle.
    Returns (connections still open at the end, the legit request's status, seconds until the last close)."""
    import socket as _socket
    conns = []
    for _ in range(n):
        s = _socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        conns.append(s)
    start, last_close, legit = time.monotonic(), 0.0, None
    open_ = set(range(n))
    while time.monotonic() - start < seconds and open_:
        for i in list(open_):
            try:
                conns[i].sendall(b"X")
            except OSError:
                open_.discard(i)
                last_close = time.monotonic() - start
        if legit is None and time.monotonic() - start > 0.5:
            resp, _ = request(proxy.port, line() + auth() + cl() + b"\r\n" + BODY, close_wait=0)
            legit = resp.status
        time.sleep(0.25)
    for s in conns:
        s.close()
    return len(open_), legit, last_close


def test_b5_slowloris_header_dribble_is_cut_at_the_deadline(make_proxy):
    proxy = make_proxy(server={"keepalive_timeout_s": 1.0, "sse_keepalive_s": 0})
    still_open, legit, last_close = _slowloris(proxy, 50, 4.0)
    assert still_open == 0 and legit == 200 and last_close < 3.0


def test_b5_idle_keepalive_connections_are_closed(make_proxy):
    proxy = make_proxy(server={"keepalive_timeout_s": 1.0, "sse_keepalive_s": 0})
    with RawConnection(proxy.port) as c:
        c.send(line() + auth() + cl() + b"\r\n" + BODY)
        assert c.read_response().status == 200
        t = time.monotonic()
        assert c.peer_closed(3.0) and time.monotonic() - t < 2.0


@pytest.mark.slow
def test_b5_slowloris_many_connections(make_proxy):
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = max(50, min(800, (soft - 256) // 2))  # client and server ends live in this process
    proxy = make_proxy(server={"keepalive_timeout_s": 2.0, "sse_keepalive_s": 0})
    still_open, legit, last_close = _slowloris(proxy, n, 8.0)
    assert still_open == 0 and legit == 200 and last_close < 5.0


def test_b8_concurrency_cap_sheds_load_with_503_and_retry_after(make_proxy, mock):
    proxy = make_proxy(server={"max_in_flight": 2, "sse_keepalive_s": 0})
    slow = chat("slow mock:delay=1.0")
    with RawConnection(proxy.port) as a, RawConnection(proxy.port) as b:
        a.send(line() + auth() + cl(slow) + b"\r\n" + slow)
        b.send(line() + auth() + cl(slow) + b"\r\n" + slow)
        deadline = time.monotonic() + 3
        while len(mock.log) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        resp, _ = request(proxy.port, line() + auth() + cl() + b"\r\n" + BODY, close_wait=0)
        assert resp.status == 503 and resp.error["code"] == "overloaded" and resp.header("Retry-After") == "1"
        assert len(mock.log) == 2  # the shed request never reached the provider
        assert a.read_response().status == 200 and b.read_response().status == 200
    resp, _ = request(proxy.port, line() + auth() + cl() + b"\r\n" + BODY, close_wait=0)
    assert resp.status == 200


def test_b6_slow_post_body_gets_408_and_is_closed(px, up):
    with RawConnection(px.port, timeout=10) as c:
        c.send(line() + auth() + cl() + b"\r\n" + BODY[:10])
        t = time.monotonic()
        resp = c.read_response()
        waited = time.monotonic() - t
        assert resp.status == 408 and resp.error["code"] == "body_timeout"
        assert c.peer_closed(2.5)
    assert 0.8 < waited < 5
    assert up.log == []


# ---------------------------------------------------------------- C1 C2 C7: routing

@pytest.fixture
def trap(bg):
    """A listener on 127.0.0.2 that must never see a connection."""
    async def script(req, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    t = RawUpstream(bg, script, host="127.0.0.2").start()
    yield t
    t.stop()


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/v1/chat/completions", "http://127.0.0.2:{trap}/v1/chat/completions",
    "https://127.0.0.2:{trap}/v1/chat/completions", "127.0.0.2:{trap}", "*",
])
def test_c1_absolute_form_targets_are_refused(px, up, trap, target):
    _, err = refused(px, up, line(target.format(trap=trap.port)) + auth() + cl() + b"\r\n" + BODY, statuses=(400,))
    assert trap.connections == 0


@pytest.mark.parametrize("host", [
    "api.openai.com@evil.example", "127.0.0.2:{trap}", "evil:443", "api.openai.com.", "a" * 4000,
    "127.0.0.1:{mock}@127.0.0.2:{trap}",
])
def test_c2_host_header_never_routes(px, up, trap, mock, host):
    h = host.format(trap=trap.port, mock=mock.port)
    raw = line() + auth().replace(b"Host: 127.0.0.1", f"Host: {h}".encode()) + cl() + b"\r\n" + BODY
    resp, _ = request(px.port, raw, close_wait=0)
    assert resp.status == 200
    assert len(up.log) == 1 and up.log[0]["headers"]["Host"] == f"127.0.0.1:{mock.port}"
    assert trap.connections == 0


@pytest.mark.parametrize("path", [
    "/v1/../admin", "//evil.example/v1/chat/completions", "/v1/%2e%2e/admin", "/v1/chat/completions/../../admin",
    "/v1/chat/%2e%2e/chat/completions", "/v1/chat/completions/", "/V1/chat/completions", "/v1/files",
    "/v1/fine_tuning/jobs", "/v1/chat/completions%00", "/v1//chat/completions", "/_mock/log", "/metrics", "/healthz",
])
def test_c7_only_allowlisted_routes(px, up, path):
    resp, err = refused(px, up, line(path) + auth() + cl() + b"\r\n" + BODY, statuses=(404,), closed=False)
    assert err["code"] == "not_found"


def test_c7_query_string_is_not_forwarded(px, up):
    resp, _ = request(px.port, line(ROUTE + "?api-version=x&url=http://127.0.0.2/") + auth() + cl() + b"\r\n" + BODY, close_wait=0)
    assert resp.status == 200 and up.log[0]["path"] == "/v1/chat/completions"


# ---------------------------------------------------------------- D1 D3 D6

def test_d1_hop_by_hop_headers_are_not_forwarded_and_cannot_drop_auth(px, up):
    hop = (b"Connection: keep-alive, X-Tenant-ID, Authorization, X-Request-ID\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
           b"Trailer: X-Foo\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nX-Custom: leak\r\n")
    resp, _ = request(px.port, line() + auth() + hop + cl() + b"\r\n" + BODY, close_wait=0)
    assert resp.status == 200
    sent = {k.lower(): v for k, v in up.log[0]["headers"].items()}
    for name in ("keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection", "x-custom", "x-tenant-id"):
        assert name not in sent, name
    assert sent["authorization"] == "Bearer sk-test-provider-key-0000"
    assert "x-request-id" in sent and sent.get("connection", "keep-alive").lower() != "x-tenant-id"


def test_d1_connection_header_naming_auth_does_not_bypass_auth(px, up):
    raw = line() + b"Host: x\r\nConnection: Authorization\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n" + cl() + b"\r\n" + BODY
    _, err = refused(px, up, raw, statuses=(401,), closed=False)
    assert err["code"] == "missing_token"


def test_d3_forwarded_headers_are_ignored_and_not_forwarded(px, up):
    spoof = (b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nForwarded: for=10.0.0.1;host=evil.example;proto=https\r\n"
             b"X-Real-IP: 10.0.0.1\r\nX-Forwarded-Host: evil.example\r\nX-Original-URL: /admin\r\n")
    resp, _ = request(px.port, line() + auth() + spoof + cl() + b"\r\n" + BODY, close_wait=0)
    assert resp.status == 200 and up.log[0]["path"] == "/v1/chat/completions"
    sent = {k.lower() for k in up.log[0]["headers"]}
    assert not sent & {"x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host", "x-original-url"}
    # spoofed forwarding headers cannot stand in for authentication either
    up.clear()
    raw = line() + b"Host: x\r\nX-Forwarded-For: 127.0.0.1\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n" + cl() + b"\r\n" + BODY
    refused(px, up, raw, statuses=(401,), closed=False)


@pytest.mark.parametrize("extra,status,code", [
    (lambda: f"Authorization: Bearer {token()}\r\n", 400, "duplicate_header"),
    (lambda: "Authorization: Bearer x\r\n", 400, "duplicate_header"),
    (lambda: "X-Tenant-ID: acme\r\n", 400, "duplicate_header"),
    (lambda: "X-Tenant-ID: globex\r\n", 400, "duplicate_header"),
    (lambda: "X_Tenant_ID: globex\r\n", 400, "ambiguous_header"),
    (lambda: "x_tenant_id: acme\r\n", 400, "ambiguous_header"),
    (lambda: "X-Tenant-\u0406D: globex\r\n", 400, "malformed_request"),  # Cyrillic I in the name
])
def test_d6_duplicate_and_lookalike_auth_and_tenant_headers(px, up, extra, status, code):
    raw = line() + auth() + extra().encode() + cl() + b"\r\n" + BODY
    _, err = refused(px, up, raw, statuses=(status,), closed=code == "malformed_request")
    assert err["code"] == code


# ---------------------------------------------------------------- F1 F9 G3 through raw sockets

def _b64(obj) -> str:
    import base64
    return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_f1_alg_none_through_http(px, up, alg):
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "ramparts", "sub": "u", "tenant": "acme", "scope": "ai:completion", "iat": now, "exp": now + 60}
    forged = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."
    raw = line() + f"Host: x\r\nAuthorization: Bearer {forged}\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n".encode() + cl() + b"\r\n" + BODY
    _, err = refused(px, up, raw, statuses=(401,), closed=False)
    assert err["type"] == "authentication_error"


def test_f1_duplicate_tenant_claim_through_http(px, up):
    import hashlib
    import hmac as _hmac
    from tests.harness import HMAC_SECRET
    now = int(time.time())
    payload = ('{"tenant":"globex","iss":"https://issuer.test","aud":"ramparts","sub":"u","tenant":"acme","scope":"ai:completion",'
               f'"iat":{now},"exp":{now + 60}}}').encode()
    import base64
    signing = _b64({"alg": "HS256"}) + "." + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(_hmac.new(HMAC_SECRET.encode(), signing.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    raw = line() + f"Host: x\r\nAuthorization: Bearer {signing}.{sig}\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n".encode() + cl() + b"\r\n" + BODY
    refused(px, up, raw, statuses=(401,), closed=False)


# F9

@pytest.mark.parametrize("value", [
    "Basic YWNtZTpzZWNyZXQ=", "{tok}", "Bearer  {tok}", "Bearer {tok} {tok}", "Token {tok}",
    "Bearer", "Bearer ", "Bearer\t{tok}", "Bearer {tok},Bearer {tok}", "Bearer not.a.jwt",
])
def test_f9_only_a_single_bearer_token_in_authorization(px, up, value):
    tok = token()
    raw = line() + f"Host: x\r\nAuthorization: {value.format(tok=tok)}\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n".encode() + cl() + b"\r\n" + BODY
    resp, err = refused(px, up, raw, statuses=(401,), closed=False)
    assert resp.header("WWW-Authenticate", ) is not None


def test_f9_token_in_the_query_string_is_not_accepted(px, up):
    tok = token()
    raw = line(f"{ROUTE}?access_token={tok}&api_key={tok}") + b"Host: x\r\nX-Tenant-ID: acme\r\nContent-Type: application/json\r\n" + cl() + b"\r\n" + BODY
    _, err = refused(px, up, raw, statuses=(401,), closed=False)
    assert err["code"] == "missing_token"


@pytest.mark.parametrize("value", ["ACME", "Acme", "ac me", "acme%00", "%61cme", "acm\u0435", "acme,globex", "globex", "acme."])
def test_g3_tenant_header_variants_are_an_exact_mismatch(px, up, value):
    raw = line() + auth().replace(b"X-Tenant-ID: acme", f"X-Tenant-ID: {value}".encode()) + cl() + b"\r\n" + BODY
    _, err = refused(px, up, raw, statuses=(403,), closed=False)
    assert err["code"] == "tenant_mismatch"
