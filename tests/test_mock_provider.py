"""The mock provider itself: faithful shapes and the fault modes the suite relies on."""

import aiohttp
import orjson
import pytest
from aiohttp import web

from proxy.mock_provider import MockProvider, parse_modes, say
from proxy.wire.sse import SSEDecoder


@pytest.fixture
async def mock_url():
    provider = MockProvider()
    runner = web.AppRunner(provider.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", provider
    await runner.cleanup()


def body(text, stream=False, **kw):
    return {"model": "m", "messages": [{"role": "system", "content": "SYS"}, {"role": "user", "content": text}], "stream": stream, **kw}


async def post(url, payload):
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.post(url + "/v1/chat/completions", json=payload, allow_redirects=False) as r:
            return r.status, dict(r.headers), await r.read()


def test_parse_modes_and_say():
    assert parse_modes("hi mock:reset mock:delay=0.5") == {"reset": "", "delay": "0.5"}
    assert parse_modes(say("a b"))["say"]


async def test_stream_shape_usage_and_done(mock_url):
    url, provider = mock_url
    status, headers, raw = await post(url, body("hello mock:stream-chunks=4", stream=True, stream_options={"include_usage": True}))
    evs = SSEDecoder().feed(raw)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert evs[-1].is_done and evs[-2].payload["usage"]["completion_tokens"] > 0
    text = "".join(e.payload["choices"][0]["delta"].get("content") or "" for e in evs[:-2])
    assert text == "Echo: hello"
    assert provider.state.log[-1]["body"]["messages"][1]["content"].startswith("hello")


async def test_say_system_and_faults(mock_url):
    url, _ = mock_url
    _, _, raw = await post(url, body(say("exact words")))
    assert orjson.loads(raw)["choices"][0]["message"]["content"] == "exact words"
    _, _, raw = await post(url, body("mock:system"))
    assert orjson.loads(raw)["choices"][0]["message"]["content"] == "SYS"
    status, headers, _ = await post(url, body("mock:http429"))
    assert status == 429 and headers["Retry-After"] == "7"
    status, headers, _ = await post(url, body("mock:redirect"))
    assert status == 302
    _, _, raw = await post(url, body("x mock:nodone", stream=True))
    assert b"[DONE]" not in raw
    status, headers, raw = await post(url, body("mock:bomb"))
    assert headers["Content-Encoding"] == "gzip" and len(raw) < 1_000_000


async def test_queued_mode_applies_to_the_next_requests(mock_url):
    url, provider = mock_url
    async with aiohttp.ClientSession() as s:
        await s.post(url + "/_mock/mode", json={"mode": "mock:http500", "count": 2})
    assert (await post(url, body("a")))[0] == 500
    assert (await post(url, body("b")))[0] == 500
    assert (await post(url, body("c")))[0] == 200
