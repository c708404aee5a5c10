"""Budget and rate limit over real HTTP: the proxy, the mock provider and the openai SDK."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import orjson

from tests.integration.servers import chat, headers, token

CAP_PLAN = {"models": ["gpt-4o-mini"], "max_tokens_per_request": 1000, "monthly_budget_usd": 0.0065}  # 10 worst cases
PIPELINE = [{"type": "tenant"}, {"type": "rate_limit", "routes": {"chat": {"requests_per_minute": 1000}}},
            {"type": "egress"}, {"type": "budget"}]


def client(proxy, tenant="acme", retries=0):
    return openai.OpenAI(base_url=proxy.base_url, api_key=token(tenant), default_headers={"X-Tenant-ID": tenant},
                         max_retries=retries)


async def usage(proxy, tenant="acme") -> dict:
    async with aiohttp.ClientSession() as s:
        h = headers(tenant)
        h.pop("Content-Type")
        async with s.get(proxy.base_url + "/usage", headers=h) as r:
            assert r.status == 200
            return await r.json()


async def test_200_concurrent_requests_through_the_proxy_never_overspend(make_proxy, mock):
    proxy = make_proxy(plans={"cap": CAP_PLAN}, tenants={"acme": {"plan": "cap"}}, pipeline=PIPELINE)
    async with aiohttp.ClientSession() as s:
        async def one(i):
            async with s.post(proxy.base_url + "/chat/completions", data=chat(f"q{i}", max_tokens=1000), headers=headers()) as r:
                await r.read()
                return r.status
        statuses = await asyncio.gather(*(one(i) for i in range(200)))
    # at least the 10 worst cases fit; more once early answers settle below their reserve
    ok = statuses.count(200)
    assert ok >= 10 and ok + statuses.count(429) == 200
    assert len(mock.log) == ok  # refused requests never reached the provider
    u = await usage(proxy)
    assert u["budget_usd"]["spent"] <= 0.0065 and u["budget_usd"]["in_flight"] == 0 and u["interactions"]["in_flight"] == 0


async def test_sdk_retries_reserve_and_release_each_attempt(make_proxy, mock):
    proxy = make_proxy(pipeline=PIPELINE)
    mock.queue("mock:http500", 2)
    r = await asyncio.to_thread(client(proxy, retries=2).chat.completions.create, model="gpt-4o-mini",
                                messages=[{"role": "user", "content": "third time lucky"}])
    assert r.choices[0].message.content == "Echo: third time lucky"
    assert len(mock.log) == 3
    u = await usage(proxy)
    assert u["interactions"]["used"] == 1 and u["budget_usd"]["in_flight"] == 0
    expected = (r.usage.prompt_tokens * 0.15 + r.usage.completion_tokens * 0.6) / 1e6
    assert abs(u["budget_usd"]["spent"] - expected) < 1e-9


async def test_stream_usage_is_injected_upstream_and_hidden_unless_asked(make_proxy, mock):
    proxy = make_proxy(pipeline=PIPELINE)
    c = client(proxy)
    chunks = await asyncio.to_thread(lambda: list(c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream it"}], stream=True)))
    assert mock.log[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(ch.usage is None for ch in chunks)
    asked = await asyncio.to_thread(lambda: list(c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream it"}], stream=True,
        stream_options={"include_usage": True})))
    assert asked[-1].usage is not None and asked[-1].usage.completion_tokens > 0
    u = await usage(proxy)
    assert u["interactions"]["used"] == 2 and u["budget_usd"]["in_flight"] == 0


async def test_client_disconnect_mid_stream_is_settled(make_proxy, mock):
    proxy = make_proxy(pipeline=PIPELINE)
    body = chat("a slow answer mock:stream-chunks=20 mock:delay=0.05", stream=True)
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.base_url + "/chat/completions", data=body, headers=headers()) as r:
            assert r.status == 200
            await r.content.readline()  # first event, then hang up
    for _ in range(100):
        u = await usage(proxy)
        if u["budget_usd"]["in_flight"] == 0:
            break
        await asyncio.sleep(0.05)
    assert u["budget_usd"]["in_flight"] == 0 and u["budget_usd"]["spent"] > 0 and u["interactions"]["used"] == 1


async def test_plan_refusals_over_http(make_proxy, mock):
    proxy = make_proxy(plans={"cap": {**CAP_PLAN, "monthly_interactions": 1, "upgrade_hint": "Upgrade at /billing."}},
                       tenants={"acme": {"plan": "cap"}}, pipeline=PIPELINE)
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.base_url + "/chat/completions", data=chat("hi"), headers=headers()) as r:
            assert r.status == 200 and r.headers["X-Ramparts-Interactions-Remaining"] == "0"
            assert "X-Ramparts-Budget-Warning" in r.headers and r.headers["X-RateLimit-Limit-Requests"] == "1000"
        async with s.post(proxy.base_url + "/chat/completions", data=chat("again"), headers=headers()) as r:
            err = orjson.loads(await r.read())["error"]
            assert r.status == 429 and err["code"] == "interactions_exhausted" and "Upgrade at /billing." in err["message"]
            assert r.headers["x-should-retry"] == "false"
        async with s.post(proxy.base_url + "/chat/completions",
                          data=orjson.dumps({"model": "text-embedding-3-small", "messages": [{"role": "user", "content": "x"}]}),
                          headers=headers()) as r:
            assert r.status == 403 and "'cap'" in orjson.loads(await r.read())["error"]["message"]
    assert len(mock.log) == 1


async def test_redis_down_is_503_with_retry_after_and_recovers(make_proxy, mock):
    import time

    from tests.redis_server import RedisServer
    srv = RedisServer().start()
    try:
        pipeline = [{"type": "tenant"}, {"type": "egress"},
                    {"type": "budget", "store": srv.url, "store_timeout_s": 0.3, "retry_after_s": 3}]
        proxy = make_proxy(pipeline=pipeline)
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.base_url + "/chat/completions", data=chat("up"), headers=headers()) as r:
                assert r.status == 200
            srv.stop()
            t = time.perf_counter()
            async with s.post(proxy.base_url + "/chat/completions", data=chat("down"), headers=headers()) as r:
                body = orjson.loads(await r.read())
                assert r.status == 503 and r.headers["Retry-After"] == "3"
                assert body["error"]["code"] == "budget_store_unavailable"
            assert time.perf_counter() - t < 3.0  # 0.3 s store deadline + slack
            assert len(mock.log) == 1  # fail closed: the provider was not called
            srv.start()
            async with s.post(proxy.base_url + "/chat/completions", data=chat("back"), headers=headers()) as r:
                assert r.status == 200
    finally:
        srv.__exit__(None, None, None)


async def test_a_stream_without_provider_usage_is_settled_from_the_counted_output(make_proxy, mock):
    proxy = make_proxy(pipeline=PIPELINE)
    c = client(proxy)
    chunks = await asyncio.to_thread(lambda: list(c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count me mock:nousage"}], stream=True)))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.startswith("Echo: count me")
    u = await usage(proxy)
    assert u["budget_usd"]["in_flight"] == 0 and u["interactions"]["used"] == 1
    assert u["budget_usd"]["spent"] > 0  # prompt count + counted output, never free


async def test_usage_endpoint_needs_ai_completion_and_shows_only_the_callers_tenant(make_proxy, mock):
    proxy = make_proxy(pipeline=PIPELINE)
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.base_url + "/chat/completions", data=chat("hi"), headers=headers()) as r:
            assert r.status == 200
        for tok, status in ((None, 401), (token("acme", scopes=("ai:audit",)), 403), (token("acme", scopes=("ai:embed",)), 403)):
            h = {"X-Tenant-ID": "acme", **({"Authorization": f"Bearer {tok}"} if tok else {})}
            async with s.get(proxy.base_url + "/usage", headers=h) as r:
                err = orjson.loads(await r.read())["error"]
                assert r.status == status and err["message"] and err["type"]  # OpenAI error shape
        # another tenant's header with acme's token: refused before anything is read
        async with s.get(proxy.base_url + "/usage", headers={"Authorization": f"Bearer {token('acme')}", "X-Tenant-ID": "globex"}) as r:
            assert r.status == 403
        # a query parameter naming another tenant is ignored: the verified tenant decides
        h = {"Authorization": f"Bearer {token('globex')}", "X-Tenant-ID": "globex"}
        async with s.get(proxy.base_url + "/usage?tenant=acme", headers=h) as r:
            body = await r.json()
            assert r.status == 200 and body["tenant"] == "globex" and body["interactions"]["used"] == 0
        async with s.post(proxy.base_url + "/usage", headers=headers()) as r:
            assert r.status == 405
    u = await usage(proxy)
    assert u["tenant"] == "acme" and u["interactions"]["used"] == 1 and u["plan"] == "pro"
    assert u["interactions"]["limit"] == 5000 and u["max_tokens_per_request"] == 8000
    assert len(mock.log) == 1  # the usage endpoint never reaches the provider


async def test_a_stream_past_its_reserved_output_is_cut_cleanly_and_settled(make_proxy, mock):
    """The provider ignores max_tokens (the mock always echoes everything): the proxy cuts the stream."""
    proxy = make_proxy(pipeline=PIPELINE)
    words = " ".join(f"w{i}" for i in range(120))
    c = client(proxy)
    got: list[str] = []

    def consume():
        for ch in c.chat.completions.create(model="gpt-4o-mini", max_tokens=2, stream=True,
                                            messages=[{"role": "user", "content": f"{words} mock:stream-chunks=60 mock:delay=0.01"}]):
            if ch.choices:
                got.append(ch.choices[0].delta.content or "")

    try:
        await asyncio.to_thread(consume)
        raise AssertionError("a stream past its reserve was not cut")
    except openai.APIError as e:  # the final SSE error event: the SDK raises, never a silent [DONE]
        assert "budget" in str(e.message)
    assert mock.log[-1]["body"]["max_tokens"] == 2  # the ceiling was sent; the provider ignored it
    assert 0 < len("".join(got)) < len(words)  # what fit in the reserve reached the client, the rest did not
    u = await usage(proxy)
    assert u["budget_usd"]["in_flight"] == 0 and u["interactions"]["used"] == 1
    assert u["budget_usd"]["spent"] > 0  # what was generated up to the cut is charged


async def test_upstream_reset_mid_stream_settles_the_partial_output(make_proxy, mock):
    """SECURITY_TESTS H1: the provider drops the connection after two chunks; partial usage is settled."""
    proxy = make_proxy(pipeline=PIPELINE)
    async with aiohttp.ClientSession() as s:
        body = chat("one two three four five six seven eight mock:stream-chunks=8 mock:reset", stream=True)
        async with s.post(proxy.base_url + "/chat/completions", data=body, headers=headers()) as r:
            assert r.status == 200
            raw = await r.read()
    assert b"[DONE]" not in raw and b'"error"' in raw  # the client can tell a cut stream from a finished one
    u = await usage(proxy)
    assert u["budget_usd"]["in_flight"] == 0 and u["interactions"]["used"] == 1
    assert u["budget_usd"]["spent"] > 0  # tokens were generated before the reset: not free
