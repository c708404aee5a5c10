"""Hostile and failing providers, and the client-side SDK's view of them (SECURITY_TESTS A8, C3, C4, D2, D4, D5, H1-H3, H5-H9).

The mock provider's fault modes (`mock:reset`, `mock:nodone`, ...) and a raw-socket
upstream (tests/integration/rawhttp.RawUpstream) stand in for the provider. The
real openai SDK must RAISE on every cut stream: it finishes silently on a stream
without [DONE], so the proxy has to turn truncation into an error event.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import time

import openai
import orjson
import pytest

from proxy.mock_provider import PROVIDER_KEY_HINT
from tests.integration.rawhttp import RawConnection, RawUpstream, build, http_head, request, sse_events
from tests.integration.servers import ProxyServer, chat, policy_for, token
from tests.integration.test_sigterm import served  # noqa: F401  (fixture: a `ramparts serve` subprocess)

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def px(bg, mock, tmp_path_factory):
    p = ProxyServer(bg, policy_for(mock.port), tmp_path_factory.mktemp("faults")).start()
    yield p
    p.stop()


@pytest.fixture
def up(mock):
    mock.clear()
    return mock


def client(proxy, max_retries: int = 0, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=token(), default_headers={"X-Tenant-ID": "acme"},
                         max_retries=max_retries, timeout=10, **kw)


def ask(c: openai.OpenAI, text: str, **kw):
    return c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **kw)


def raw_stream(proxy, text: str) -> tuple[int, bytes]:
    """POST a streaming chat over a raw socket; the status and the whole SSE body."""
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    resp, _ = request(proxy.port, build("POST", "/v1/chat/completions", headers, chat(text, stream=True)), timeout=15, close_wait=0)
    return resp.status, resp.body


def last_error(body: bytes) -> dict:
    events = sse_events(body)
    assert "[DONE]" not in events, "a cut stream must never end with [DONE]"
    assert isinstance(events[-1], dict) and "error" in events[-1], events[-3:]
    err = events[-1]["error"]
    assert set(err) >= {"message", "type", "code"}
    return err


def upstream_errors(proxy, kind: str) -> float:
    return proxy.metrics.registry.get_sample_value("ramparts_upstream_errors_total", {"provider": "openai", "kind": kind}) or 0.0


@pytest.fixture
def raw_provider(bg, mock, make_proxy):
    """raw_provider(script) -> (proxy, upstream): a proxy whose `openai` provider is a RawUpstream."""
    made = []

    def make(script, **server):
        upstream = RawUpstream(bg, script).start()
        made.append(upstream)
        proxy = make_proxy(providers={"openai": {"base_url": f"http://127.0.0.1:{upstream.port}/v1"}},
                           egress={"allow": [f"127.0.0.1:{upstream.port}", f"127.0.0.1:{mock.port}"]},
                           server={"sse_keepalive_s": 0, "drain_timeout_s": 1, **server})
        return proxy, upstream

    yield make
    for u in made:
        u.stop()


@pytest.fixture
def trap(bg):
    """A listener on 127.0.0.2 that must never see a connection."""
    async def script(req, writer):
        writer.write(http_head(200, [("Content-Length", "0")]))
    t = RawUpstream(bg, script, host="127.0.0.2").start()
    yield t
    t.stop()


def sse_frames(*payloads) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, bytes) else orjson.dumps(p)) + b"\n\n" for p in payloads)


def chunk(text: str) -> dict:
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


# ---------------------------------------------------------------- C3 C4: the client never picks the upstream

@pytest.mark.parametrize("extra", [
    {"api_base": "http://127.0.0.2:{trap}/v1"}, {"base_url": "http://127.0.0.2:{trap}/v1"},
    {"extra_body": {"api_base": "http://127.0.0.2:{trap}/v1"}}, {"extra_headers": {"Host": "127.0.0.2:{trap}"}},
    {"metadata": {"api_base": "http://127.0.0.2:{trap}/v1"}}, {"custom_llm_provider": "openai", "api_key": "sk-x"},
])
def test_c3_body_fields_that_redirect_egress_are_refused(px, up, trap, extra):
    body = orjson.loads(orjson.dumps(extra).decode().replace("{trap}", str(trap.port)))
    with pytest.raises(openai.BadRequestError) as e:
        ask(client(px), "hi", extra_body=body)
    assert e.value.status_code == 400 and e.value.body["code"] in ("upstream_override_forbidden", "invalid_value")
    assert up.log == [] and trap.connections == 0


def test_c3_sdk_extra_headers_cannot_choose_the_upstream(px, up, trap):
    r = ask(client(px), "hi", extra_headers={"X-Upstream-Base": f"http://127.0.0.2:{trap.port}", "X-Forwarded-Host": "127.0.0.2"})
    assert r.choices[0].message.content == "Echo: hi"
    assert len(up.log) == 1 and trap.connections == 0
    assert not {k.lower() for k in up.log[0]["headers"]} & {"x-upstream-base", "x-forwarded-host"}


def test_c4_redirect_from_the_provider_is_not_followed(px, up):
    with pytest.raises(openai.InternalServerError) as e:
        ask(client(px), "hi mock:redirect")
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_redirect"
    assert len(up.log) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_c4_redirect_to_an_internal_address_never_connects(raw_provider, trap, status):
    async def script(req, writer):
        writer.write(http_head(status, [("Location", f"http://127.0.0.2:{trap.port}/v1/chat/completions"), ("Content-Length", "0")], "Moved"))
    proxy, upstream = raw_provider(script)
    with pytest.raises(openai.InternalServerError):
        ask(client(proxy), "hi")
    assert upstream.connections == 1 and trap.connections == 0


# ---------------------------------------------------------------- D2 D4 D5: header and error hygiene

def test_d2_client_jwt_never_reaches_the_provider_or_the_logs(px, up, caplog):
    tok = token()
    c = openai.OpenAI(base_url=px.base_url, api_key=tok, default_headers={"X-Tenant-ID": "acme"}, max_retries=0)
    with caplog.at_level(logging.DEBUG):
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIError):
            list(c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "cut mock:reset"}], stream=True))
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x mock:http401"}])
    sent = repr(up.log)
    assert len(up.log) == 3
    assert tok not in sent and tok.split(".")[2] not in sent
    assert all(e["headers"]["Authorization"] == "Bearer sk-test-provider-key-0000" for e in up.log)
    assert tok not in caplog.text and tok.split(".")[2] not in caplog.text
    assert "sk-test-provider-key-0000" not in caplog.text


def test_d4_upstream_cookies_org_and_framing_are_not_passed_on(px, up):
    r = client(px).chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    names = {k.lower() for k in r.headers}
    assert not names & {"set-cookie", "openai-organization", "x-mock"}
    assert up.log[-1]["headers"]["Accept-Encoding"] == "identity"  # H7: never ask the provider for gzip
    assert int(r.headers["content-length"]) == len(r.http_response.content)


def test_d4_hostile_upstream_headers_are_dropped_and_framing_regenerated(raw_provider):
    body = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})

    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "application/json"), ("Server", "evil-upstream/6.6"), ("Set-Cookie", "s=1; Domain=.example"),
                                     ("openai-organization", "org-secret"), ("X-Powered-By", "evil"), ("Transfer-Encoding", "chunked"),
                                     ("Access-Control-Allow-Origin", "*"), ("Strict-Transport-Security", "max-age=0")]))
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    proxy, _ = raw_provider(script)
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    resp, _ = request(proxy.port, build("POST", "/v1/chat/completions", headers, chat("hi")), close_wait=0)
    assert resp.status == 200 and resp.json()["choices"][0]["message"]["content"] == "ok"
    names = {k.lower() for k, _ in resp.headers}
    assert not names & {"set-cookie", "openai-organization", "x-powered-by", "access-control-allow-origin", "strict-transport-security", "transfer-encoding"}
    assert "evil" not in (resp.header("Server") or "")
    assert int(resp.header("Content-Length")) == len(resp.body)


def test_d5_provider_401_echoing_a_key_fragment_is_scrubbed(px, up):
    with pytest.raises(openai.InternalServerError) as e:
        ask(client(px), "x mock:http401")
    text = orjson.dumps(e.value.body).decode()
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_auth_failed"
    assert PROVIDER_KEY_HINT not in text and "abcd" not in text and "sk-" not in text


def test_d5_provider_400_echoing_the_key_is_scrubbed(raw_provider):
    async def script(req, writer):
        err = orjson.dumps({"error": {"message": "bad request for key sk-test-provider-key-0000 (sk-test-...-0000, sk-proj-AbCd****wxyz)",
                                      "type": "invalid_request_error", "code": "bad"}})
        writer.write(http_head(400, [("Content-Type", "application/json"), ("Content-Length", str(len(err)))], "Bad Request") + err)
    proxy, _ = raw_provider(script)
    with pytest.raises(openai.BadRequestError) as e:
        ask(client(proxy), "hi")
    msg = e.value.body["message"]
    assert "sk-test-provider-key-0000" not in msg and "sk-proj" not in msg and "sk-test" not in msg and "[redacted]" in msg


# ---------------------------------------------------------------- A8: response splitting from the provider

@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\rSet-Cookie: a=b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: a=b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 40_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 99999 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
], ids=["cr-in-reason", "cr-in-value", "nul", "huge-header", "dup-cl", "bad-status", "not-http",
     "101-upgrade", "short-body", "cut-chunked", "json-array", "204", "no-content-type"])
def test_a8_h7_malformed_provider_responses_are_502_and_not_reflected(raw_provider, head):
    async def script(req, writer):
        writer.write(head)
        writer.close()
    proxy, _ = raw_provider(script)
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    resp, _ = request(proxy.port, build("POST", "/v1/chat/completions", headers, chat("hi")), close_wait=0)
    assert resp.status == 502 and resp.error["type"] == "upstream_error"
    assert resp.header("Set-Cookie") is None and not resp.all("X-A") and not resp.all("X-Big")


def test_a8_bare_lf_in_a_provider_header_is_never_reflected(raw_provider):
    """aiohttp's client reads a bare LF as a line end (lenient for responses): two headers, both dropped."""
    async def script(req, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: a=b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    proxy, _ = raw_provider(script)
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    resp, _ = request(proxy.port, build("POST", "/v1/chat/completions", headers, chat("hi")), close_wait=0)
    assert resp.status in (200, 502)
    assert resp.header("Set-Cookie") is None and not resp.all("X-A")


# ---------------------------------------------------------------- H1 H2: cut streams make the SDK raise

@pytest.mark.parametrize("mode,code,kind", [("reset", "upstream_reset", "reset"), ("nodone", "upstream_truncated", "truncated")])
def test_h1_h2_cut_stream_raises_in_the_sdk_and_never_sends_done(px, up, mode, code, kind):
    before = upstream_errors(px, kind)
    got = []
    with pytest.raises(openai.APIError) as e:
        for ch in ask(client(px), f"one two three four five six seven eight mock:{mode}", stream=True):
            got.extend(c.delta.content or "" for c in ch.choices)
    assert code in str(e.value.body) or code in str(e.value)
    assert "".join(got)  # the partial answer came through before the error
    status, body = raw_stream(px, f"again mock:{mode}")
    assert status == 200 and last_error(body)["code"] == code
    assert upstream_errors(px, kind) == before + 2


def test_h1_h2_the_audit_record_names_the_failure(make_proxy):
    proxy = make_proxy(pipeline=[{"type": "tenant"}, {"type": "egress"}, {"type": "audit", "chain_id": "faults"}],
                       server={"sse_keepalive_s": 0})
    for mode in ("reset", "nodone", "badsse"):
        with pytest.raises(openai.APIError):
            list(ask(client(proxy), f"a b c d e f mock:{mode}", stream=True))
    with pytest.raises(openai.InternalServerError):
        ask(client(proxy), "x mock:http500")
    proxy.stop()  # flushes the audit sink
    records = [orjson.loads(line) for p in sorted((proxy.tmp / "data" / "audit" / "records").rglob("*.jsonl"))
               for line in p.read_text().splitlines()]
    kinds = [next(d["detail"]["kind"] for d in r["decisions"] if d["stage"] == "upstream") for r in records if r.get("type") == "exchange"]
    assert kinds == ["reset", "truncated", "bad_sse", "http_5xx"]
    assert all(r["outcome"] == "upstream_error" for r in records if r.get("type") == "exchange")


def test_h1_async_sdk_raises_too(px, up):
    async def run():
        c = openai.AsyncOpenAI(base_url=px.base_url, api_key=token(), default_headers={"X-Tenant-ID": "acme"}, max_retries=0)
        s = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a b c d e f mock:reset"}], stream=True)
        async for _ in s:
            pass
    with pytest.raises(openai.APIError):
        asyncio.run(run())


def test_h2_healthy_stream_ends_with_done(px, up):
    status, body = raw_stream(px, "fine")
    events = sse_events(body)
    assert status == 200 and events[-1] == "[DONE]" and not any(isinstance(e, dict) and "error" in e for e in events)


# ---------------------------------------------------------------- H3: stall

def test_h3_stall_mid_stream_errors_at_the_read_deadline_and_closes_upstream(raw_provider):
    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]))
        data = sse_frames(chunk("partial "), chunk("answer"))
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        # then silence, connection open
    proxy, upstream = raw_provider(script, upstream_read_timeout_s=0.5)
    t = time.monotonic()
    status, body = raw_stream(proxy, "hi")
    took = time.monotonic() - t
    assert status == 200 and last_error(body)["code"] == "upstream_timeout"
    assert "partial" in body.decode() and 0.4 < took < 3
    deadline = time.monotonic() + 2
    while not upstream.closed_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.closed_at, "the proxy must close the stalled upstream socket"


def test_h3_stall_makes_the_sdk_raise(raw_provider):
    # a RawUpstream, not mock:stall: the mock's stalled handler would hold its runner's cleanup for 60 s
    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]))
        data = sse_frames(chunk("partial"))
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    proxy, _ = raw_provider(script, upstream_read_timeout_s=0.5)
    with pytest.raises(openai.APIError) as e:
        list(ask(client(proxy), "hi", stream=True))
    assert "upstream_timeout" in str(e.value.body)


def test_h3_stall_inside_a_non_streaming_body_is_502_not_500(raw_provider):
    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "application/json"), ("Content-Length", "500")]) + b'{"id":"x",')
    proxy, upstream = raw_provider(script, upstream_read_timeout_s=0.5)
    with pytest.raises(openai.InternalServerError) as e:
        ask(client(proxy), "hi")
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_bad_response"
    deadline = time.monotonic() + 2
    while not upstream.closed_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.closed_at


# ---------------------------------------------------------------- H5: 429 / 5xx and SDK retries

def test_h5_429_keeps_status_and_retry_after(px, up):
    r = client(px).chat.completions.with_raw_response
    with pytest.raises(openai.RateLimitError) as e:
        r.create(model=MODEL, messages=[{"role": "user", "content": "x mock:http429"}])
    assert e.value.status_code == 429 and e.value.response.headers["retry-after"] == "7"
    assert e.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError):
        ask(client(px), "x mock:http429", stream=True)  # before streaming: a plain 429, not an SSE body


def test_h5_500_maps_to_502_and_html_is_not_passed_on(px, up):
    with pytest.raises(openai.InternalServerError) as e:
        ask(client(px), "x mock:http500")
    assert e.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as e:
        ask(client(px), "x mock:html")
    assert "<html" not in e.value.response.text


def test_h5_sdk_retries_through_the_proxy_and_only_the_success_returns(px, up):
    up.queue("mock:http500", 2)
    r = ask(client(px, max_retries=2), "third time lucky")
    assert r.choices[0].message.content == "Echo: third time lucky"
    assert len(up.log) == 3


# ---------------------------------------------------------------- H6 H7: malformed streams and hostile bodies

def test_h6_malformed_sse_json_is_an_error_event_and_the_proxy_lives_on(px, up):
    with pytest.raises(openai.APIError):
        list(ask(client(px), "a b c d e f g h i j mock:badsse", stream=True))
    assert ask(client(px), "still alive").choices[0].message.content == "Echo: still alive"


def test_h6_stream_answered_with_a_non_sse_content_type_is_502(raw_provider):
    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "text/html"), ("Content-Length", "13")]) + b"<html></html>")
    proxy, _ = raw_provider(script)
    with pytest.raises(openai.InternalServerError) as e:
        list(ask(client(proxy), "hi", stream=True))
    assert e.value.status_code == 502 and "<html" not in e.value.response.text


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS"))


def test_h7_huge_sse_line_is_bounded(make_proxy):
    proxy = make_proxy(server={"sse_keepalive_s": 0, "max_upstream_line_bytes": 65536})
    status, body = raw_stream(proxy, "x mock:huge")
    assert status == 200 and last_error(body)["code"] == "upstream_bad_response"
    assert len(body) < 10_000  # nothing of the 8 MiB line reached the client


def test_h7_gzip_bomb_response_is_never_inflated(raw_provider):
    bomb = gzip.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}", compresslevel=6)  # 65 KB

    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ("Content-Length", str(len(bomb)))]) + bomb)
    proxy, _ = raw_provider(script)
    before = _rss()
    with pytest.raises(openai.InternalServerError) as e:
        ask(client(proxy), "hi")
    assert e.value.body["code"] == "upstream_bad_response"
    assert _rss() - before < 50 * 1024 * 1024


# ---------------------------------------------------------------- B7: slow reader

def test_b7_slow_reader_backpressure_bounds_what_the_proxy_pulls_from_upstream(raw_provider):
    written = [0]

    async def script(req, writer):
        writer.write(http_head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]))
        frame = sse_frames(chunk("x" * 4000))
        piece = b"%x\r\n%s\r\n" % (len(frame) * 16, frame * 16)
        while True:  # a fast provider: as much as the proxy will take
            writer.write(piece)
            await writer.drain()
            written[0] += len(piece)
    proxy, upstream = raw_provider(script)
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    with RawConnection(proxy.port, timeout=10) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(build("POST", "/v1/chat/completions", headers, chat("hi", stream=True)))
        head = c.read_head()
        assert head.status == 200
        time.sleep(0.7)  # the client reads nothing
        stalled_at = written[0]
        time.sleep(0.7)
        assert written[0] - stalled_at < 1_000_000, "the proxy kept reading from the provider while the client did not read"
        assert written[0] < 32 * 1024 * 1024
        body = c.iter_body(head)
        got = sum(len(next(body)) for _ in range(200))  # the client reads again: the provider moves again
        assert got > 0
        time.sleep(0.2)
        assert written[0] > stalled_at
    deadline = time.monotonic() + 2
    while not upstream.closed_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.closed_at  # client gone: the provider connection is closed too


# ---------------------------------------------------------------- H8: SSE split at arbitrary boundaries

GOLDEN = (
    b": keep-alive comment\r\n\r\n"
    b"retry: 1500\r\n\r\n"
    + b"".join(b"data: " + orjson.dumps(chunk(w)) + b"\r\n\r\n" for w in ["Hel", "lo, ", "wor", "ld é世"])
    + b"data: {\"id\":\"chatcmpl-raw\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\n"
      b"data: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":null}]}\n\n"
    + b"id: 7\nevent: message\ndata: " + orjson.dumps(chunk(" tail")) + b"\r\n\r\n"
    + b"data: " + orjson.dumps({**chunk(""), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"\n\n"
    + b"data: [DONE]\n\n"
)


# The proxy drops data-less frames (openai-python json-decodes a bare `retry:` frame and fails).
GOLDEN_RELAYED = GOLDEN.replace(b"retry: 1500\r\n\r\n", b"")


def _fields(body: bytes) -> list[list[tuple[str, str]]]:
    """SSE events as ordered (field, value) lists, line endings normalised, data lines joined."""
    events, cur = [], []
    for ln in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode().split("\n"):
        if ln == "":
            if cur:
                events.append(cur)
            cur = []
            continue
        name, _, value = ln.partition(":")
        cur.append((name, value[1:] if value.startswith(" ") else value))
    return events


@pytest.mark.parametrize("piece", [1, 3, 7, 50])
def test_h8_frames_split_at_any_byte_boundary_decode_the_same(raw_provider, piece):
    async def script(req, writer):
        golden = GOLDEN
        writer.write(http_head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]))
        for i in range(0, len(golden), piece):
            part = golden[i:i + piece]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"0\r\n\r\n")
    proxy, upstream = raw_provider(script)
    status, body = raw_stream(proxy, "hi")
    assert status == 200
    assert _fields(body) == _fields(GOLDEN_RELAYED)
    text = "".join(c.choices[0].delta.content or "" for c in ask(client(proxy), "hi", stream=True) if c.choices)
    assert text == "Hello, world é世! tail"


# ---------------------------------------------------------------- H9: client disconnects

def test_h9_client_disconnect_mid_stream_cancels_upstream_within_1s(px, up):
    state = up.provider.state
    before = state.disconnects
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    words = " ".join(f"w{i}" for i in range(60))
    with RawConnection(px.port) as c:
        c.send(build("POST", "/v1/chat/completions", headers, chat(f"{words} mock:stream-chunks=60 mock:delay=0.1", stream=True)))
        head = c.read_head()
        assert head.status == 200
        body = c.iter_body(head)
        next(body), next(body)  # two chunks read, then the client goes away
    closed = time.monotonic()
    while state.disconnects == before and time.monotonic() - closed < 2:
        time.sleep(0.01)
    assert state.disconnects == before + 1 and time.monotonic() - closed < 1.0


def test_h9_client_disconnect_during_a_non_streaming_call_closes_upstream_within_1s(raw_provider):
    async def script(req, writer):
        return None  # a slow provider: it has not answered yet and holds the socket
    proxy, upstream = raw_provider(script)
    headers = {"Host": "x", "Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    with RawConnection(proxy.port) as c:
        c.send(build("POST", "/v1/chat/completions", headers, chat("hi")))
        deadline = time.monotonic() + 3
        while upstream.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert upstream.connections == 1
    closed = time.monotonic()
    while not upstream.closed_at and time.monotonic() - closed < 2:
        time.sleep(0.01)
    assert upstream.closed_at and upstream.closed_at[0] - closed < 1.0


# ---------------------------------------------------------------- H11 (short soak, slow tier)

def _proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS"))


def _proc_fds(pid: int) -> int:
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_h11_short_soak_with_a_fault_mix_keeps_rss_and_fds_flat(served, mock):
    """A `ramparts serve` process under 20 concurrent streams mixing healthy, reset, truncated,
    malformed and 5xx answers for SOAK_SECONDS (default 60; the 1 h / 50-stream H11 run is this
    test with SOAK_SECONDS=3600). RSS and FDs of the proxy process stay flat; nothing is left in flight."""
    import os
    import random

    import aiohttp

    proc, port, ops = served
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    modes = ["", "", "", "mock:reset", "mock:nodone", "mock:badsse", "mock:http500", "mock:split=3"]
    mock.provider.state.log_bodies = False
    counts = {"ok": 0, "error": 0}

    async def run() -> tuple[tuple[int, int], tuple[int, int], str]:
        stop = asyncio.Event()
        c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=token(), default_headers={"X-Tenant-ID": "acme"},
                               max_retries=0, timeout=15)

        async def worker(seed: int) -> None:
            rnd = random.Random(seed)
            while not stop.is_set():
                try:
                    s = await c.chat.completions.create(model=MODEL, stream=True, messages=[
                        {"role": "user", "content": f"soak {seed} {rnd.choice(modes)} mock:stream-chunks=12"}])
                    async for _ in s:
                        pass
                    counts["ok"] += 1
                except openai.APIError:
                    counts["error"] += 1

        tasks = [asyncio.ensure_future(worker(i)) for i in range(20)]
        warm = min(10.0, seconds / 2)
        await asyncio.sleep(warm)
        first = (_proc_rss(proc.pid), _proc_fds(proc.pid))
        await asyncio.sleep(seconds - warm)
        last = (_proc_rss(proc.pid), _proc_fds(proc.pid))
        stop.set()
        await asyncio.gather(*tasks)
        await c.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{ops}/metrics") as r:
                metrics = await r.text()
        return first, last, metrics

    try:
        (rss0, fds0), (rss1, fds1), metrics = asyncio.run(run())
    finally:
        mock.provider.state.log.clear()
        mock.provider.state.log_bodies = True
    assert counts["ok"] > 100 and counts["error"] > 50, counts
    assert rss1 - rss0 < max(0.1 * rss0, 20 * 1024 * 1024), (rss0, rss1)
    assert fds1 - fds0 <= max(0.1 * fds0, 10), (fds0, fds1)
    assert "ramparts_in_flight_requests 0.0" in metrics and "ramparts_in_flight_streams 0.0" in metrics
