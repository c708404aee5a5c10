"""Stage `rate_limit` through the harness: burst then 429, headers, tenant keys only, tokens, store failure."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from proxy.pipeline.chain import Chain
from proxy.stages.rate_limit import RateLimitStage
from tests.harness import make_exchange, make_policy, make_services, make_stage
from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

MSG = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CFG = {"type": "rate_limit", "store": "memory",
       "routes": {"chat": {"requests_per_minute": 10}, "embeddings": {"requests_per_minute": 100, "tokens_per_minute": 1000}},
       "tenants": {"globex": {"chat": {"requests_per_minute": 2}}}}


async def make(tmp_path, **over) -> RateLimitStage:
    s = make_stage(RateLimitStage, {**CFG, **over}, make_policy(), make_services(tmp_path))
    await s.start()
    return s


@pytest.mark.parametrize("store", ["memory", "embedded", "redis"])
async def test_exactly_the_burst_then_429_with_retry_after(tmp_path, store, request):
    url = request.getfixturevalue("redis_server").url if store == "redis" else store
    stage = await make(tmp_path, store=url, store_timeout_s=5)  # slack for a loaded CI box
    if store == "redis":
        stage.store.ns = f"rl{uuid.uuid4().hex[:8]}"
    exs = [make_exchange(stage.policy, MSG) for _ in range(30)]
    denies = await asyncio.gather(*(stage.on_request(ex) for ex in exs))
    admitted = [ex for ex, d in zip(exs, denies) if d is None]
    refused = [d for d in denies if d is not None]
    assert len(admitted) == 10
    assert all(d.status == 429 and d.type == "rate_limit_error" and d.headers["Retry-After"] == "6" for d in refused)
    assert refused[0].headers["X-RateLimit-Limit-Requests"] == "10" and refused[0].headers["X-RateLimit-Remaining-Requests"] == "0"
    remaining = sorted(int(ex.extra_response_headers["X-RateLimit-Remaining-Requests"]) for ex in admitted)
    assert remaining == list(range(10))
    await stage.stop()


async def test_keyed_by_verified_tenant_and_route_only(tmp_path):
    stage = await make(tmp_path)
    spoof = {"X-Forwarded-For": "10.0.0.9", "X-Real-IP": "10.0.0.9"}
    for i in range(2):
        assert await stage.on_request(make_exchange(stage.policy, {**MSG, "user": f"u{i}"}, tenant="globex", headers=spoof)) is None
    # other users, other IPs, same tenant: the same bucket
    deny = await stage.on_request(make_exchange(stage.policy, {**MSG, "user": "someone-else"}, tenant="globex",
                                                headers={"X-Forwarded-For": "1.2.3.4"}))
    assert deny is not None and deny.status == 429 and "2 requests per minute" in deny.message
    assert await stage.on_request(make_exchange(stage.policy, MSG, tenant="acme")) is None  # acme has its own
    emb = make_exchange(stage.policy, {"model": "text-embedding-3-small", "input": "x"}, tenant="globex", route="embeddings")
    assert await stage.on_request(emb) is None  # another route, another bucket
    await stage.stop()


async def test_tokens_per_minute_debited_at_completion(tmp_path):
    stage = await make(tmp_path)
    ex = make_exchange(stage.policy, {"model": "text-embedding-3-small", "input": "x"}, route="embeddings")
    assert await stage.on_request(ex) is None
    assert ex.extra_response_headers["X-RateLimit-Remaining-Tokens"] == "1000"
    ex.usage.prompt_tokens, ex.usage.reported = 1500, True  # one request overshoots the minute
    await Chain([stage]).run_complete(ex)
    deny = await stage.on_request(make_exchange(stage.policy, {"model": "text-embedding-3-small", "input": "x"}, route="embeddings"))
    assert deny.status == 429 and deny.code == "rate_limit_tokens" and 30 <= int(deny.headers["Retry-After"]) <= 31
    await stage.stop()


async def test_unlimited_routes_pass_untouched(tmp_path):
    stage = await make(tmp_path)
    ex = make_exchange(stage.policy, {"model": "gpt-4o-mini", "prompt": "x"}, route="completions")
    assert await stage.on_request(ex) is None and ex.extra_response_headers == {}
    await stage.stop()


async def test_store_down_fails_closed_or_falls_back_to_a_local_limit(tmp_path):
    srv = RedisServer().start()
    closed = await make(tmp_path, store=srv.url)
    local = await make(tmp_path, store=srv.url, on_error="local")
    srv.stop()
    try:
        deny = await closed.on_request(make_exchange(closed.policy, MSG, tenant="globex"))
        assert deny.status == 503 and deny.headers["Retry-After"] == "1"
        results = [await local.on_request(make_exchange(local.policy, MSG, tenant="globex")) for _ in range(3)]
        assert results[0] is None and results[1] is None and results[2].status == 429  # still limited, never unlimited
    finally:
        await closed.stop()
        await local.stop()
        srv.__exit__(None, None, None)


def test_config_errors():
    with pytest.raises(ValueError):
        RateLimitStage.Config.model_validate({"type": "rate_limit", "routes": {"chats": {"requests_per_minute": 1}}})
    with pytest.raises(ValueError):
        RateLimitStage.Config.model_validate({"type": "rate_limit", "on_error": "open"})
    with pytest.raises(ValueError):
        make_stage(RateLimitStage, {"type": "rate_limit", "tenants": {"nobody": {}}}, make_policy())
