"""The handler's stream loop over real sockets: keep-alive comments while the provider is
silent, a stall still reported as a stall, and shutdown cutting an open stream at once
(with and without a keep-alive deadline on the pending read)."""

from __future__ import annotations

import http.client
import threading
import time

import orjson

from tests.integration.servers import headers


def stream_body(proxy, content: str, timeout: float = 10.0) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": content}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers())
    resp = conn.getresponse()
    assert resp.status == 200
    data = resp.read()
    conn.close()
    return data


def test_keepalive_comments_while_the_provider_is_silent_and_the_answer_is_intact(make_proxy):
    proxy = make_proxy(server={"sse_keepalive_s": 0.1})
    data = stream_body(proxy, "slow words mock:stream mock:delay=0.35 mock:stream-chunks=3")
    assert data.count(b": keep-alive\n\n") >= 2
    assert data.rstrip().endswith(b"data: [DONE]")
    chunks = [orjson.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Echo: slow words"


def test_stall_with_keepalive_on_is_still_a_stall(make_proxy):
    proxy = make_proxy(server={"sse_keepalive_s": 0.1, "upstream_read_timeout_s": 0.6})
    data = stream_body(proxy, "a b c d e f g h mock:stream mock:delay=2 mock:stream-chunks=3")
    assert b": keep-alive" in data
    assert b'"code":"upstream_timeout"' in data and b"[DONE]" not in data


def _cut_on_shutdown(make_proxy, keepalive: float) -> None:
    proxy = make_proxy(server={"sse_keepalive_s": keepalive, "drain_timeout_s": 0.3})
    got: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: got.setdefault("data", stream_body(proxy, "a b c d e f g h mock:stream mock:delay=2 mock:stream-chunks=3")))
    reader.start()
    for _ in range(200):  # wait until the stream is open
        if proxy.state.in_flight:
            break
        time.sleep(0.01)
    started = time.monotonic()
    proxy.stop()  # drain: 0.3 s for in-flight requests, then open streams are cut
    reader.join(10)
    assert time.monotonic() - started < 1.5  # not when the provider next speaks (2 s)
    assert b'"code":"shutting_down"' in got["data"] and b"[DONE]" not in got["data"]


def test_shutdown_cuts_a_silent_stream_without_keepalive(make_proxy):
    _cut_on_shutdown(make_proxy, keepalive=0)


def test_shutdown_cuts_a_silent_stream_with_keepalive(make_proxy):
    _cut_on_shutdown(make_proxy, keepalive=0.1)


def test_events_cleared_in_the_same_read_as_a_bad_one_reach_the_client_before_the_error(make_proxy):
    """The mock writes two good events and a malformed one back to back (one upstream read on
    loopback): the two good ones were passed by every stage, so the client gets them, then the
    error event, and no [DONE]."""
    proxy = make_proxy()
    data = stream_body(proxy, "alpha beta gamma delta mock:stream-chunks=4 mock:badsse")
    events = [line[6:] for line in data.split(b"\n") if line.startswith(b"data: ")]
    assert b"[DONE]" not in data
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_bad_response"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert len(chunks) >= 2 and text and "Echo: alpha beta gamma delta".startswith(text)
