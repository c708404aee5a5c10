"""PII through the real handler over sockets: tokens out, values back, and an answer with
nothing to restore skips the stage's per-event work (Chain.touches_events_of) without changing
a byte of what the client gets."""

from __future__ import annotations

import http.client

import orjson
import pytest

from tests.integration.servers import headers

SECRET = "pii-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def pii_proxy(make_proxy, monkeypatch):
    monkeypatch.setenv("RAMPARTS_TEST_PII_SECRET", SECRET)
    proxy = make_proxy(pipeline=[{"type": "tenant"}, {"type": "egress"},
                                 {"type": "pii", "secret": {"from_env": "RAMPARTS_TEST_PII_SECRET"}}])
    stage = next(s for s in proxy.state.chain.stages if s.type == "pii")
    calls = {"event": 0, "end": 0}
    on_event, on_end = stage.on_response_event, stage.on_response_end

    async def spy_event(ex, ev):
        calls["event"] += 1
        return await on_event(ex, ev)

    async def spy_end(ex):
        calls["end"] += 1
        return await on_end(ex)

    stage.on_response_event, stage.on_response_end = spy_event, spy_end
    proxy.pii_calls = calls
    return proxy


def call(proxy, content: str, stream: bool) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers())
    resp = conn.getresponse()
    assert resp.status == 200
    data = resp.read()
    conn.close()
    return data


def text_of(data: bytes, stream: bool) -> str:
    if not stream:
        return orjson.loads(data)["choices"][0]["message"]["content"]
    chunks = [orjson.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


@pytest.mark.parametrize("stream", [False, True])
def test_pii_is_tokenized_upstream_and_restored_for_the_client(pii_proxy, mock, stream):
    data = call(pii_proxy, "write to jane.roe@example.com today mock:stream-chunks=7", stream)
    assert text_of(data, stream) == "Echo: write to jane.roe@example.com today"
    entry = mock.log[-1]["body"]
    sent = (orjson.loads(entry) if isinstance(entry, (str, bytes)) else entry)["messages"][0]["content"]
    assert "jane.roe@example.com" not in sent and "<EMAIL_ADDRESS_1>" in sent
    assert pii_proxy.pii_calls["event"] > 0 and pii_proxy.pii_calls["end"] == 1


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_with_nothing_to_restore_skips_the_stage_and_forged_tokens_stay_literal(pii_proxy, stream):
    # No PII in the request: no token was issued, so a token the model makes up is just text.
    data = call(pii_proxy, "say <EMAIL_ADDRESS_1> and EMAIL_ADDRESS_2 please mock:stream-chunks=5", stream)
    assert text_of(data, stream) == "Echo: say <EMAIL_ADDRESS_1> and EMAIL_ADDRESS_2 please"
    assert pii_proxy.pii_calls == {"event": 0, "end": 0}
    if stream:
        assert data.rstrip().endswith(b"data: [DONE]")
