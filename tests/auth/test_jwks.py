"""JWKS key cache: refresh rate limit, rotation, outages, and keys only from the configured URL (SECURITY_TESTS F5 floods, F6, F10)."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict

from proxy.auth.jwks import JwksCache
from proxy.pipeline.exchange import Exchange
from proxy.stages.tenant import TenantStage
from tests.harness import make_policy, make_stage

KEYS = {name: rsa.generate_private_key(public_exponent=65537, key_size=2048) for name in ("k1", "k2", "evil")}


def jwk(kid: str, **extra) -> dict:
    return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEYS[kid].public_key())), "kid": kid, "use": "sig", **extra}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """The IdP's JWKS document as a fetch function: serves `keys`, or fails while `down`."""

    def __init__(self, *kids: str) -> None:
        self.doc = {"keys": [jwk(k) for k in kids]}
        self.down = False
        self.fetches = 0

    async def __call__(self) -> bytes:
        self.fetches += 1
        if self.down:
            raise ConnectionError("JWKS endpoint down")
        return json.dumps(self.doc).encode()


def cache(endpoint: Endpoint, clock: Clock, min_refresh: float = 60, max_age: float = 3600) -> JwksCache:
    return JwksCache(endpoint, min_refresh, max_age, clock=clock)


async def test_keys_load_once_and_are_served_from_cache():
    ep, clock = Endpoint("k1"), Clock()
    c = cache(ep, clock)
    assert await c.key("k1") is not None
    for _ in range(50):
        assert await c.key("k1") is not None
    assert ep.fetches == 1


async def test_f5_unknown_kid_flood_is_rate_limited():
    ep, clock = Endpoint("k1"), Clock()
    c = cache(ep, clock, min_refresh=60)
    await c.key("k1")
    results = [await c.key(f"unknown-{i}") for i in range(200)]
    assert results == [None] * 200 and ep.fetches == 1  # the load just happened: every refresh is rate limited
    clock.now += 61
    assert await c.key("unknown-x") is None and ep.fetches == 2
    assert [await c.key(f"again-{i}") for i in range(50)] == [None] * 50 and ep.fetches == 2


async def test_f5_concurrent_unknown_kids_share_one_fetch():
    ep, clock = Endpoint("k1"), Clock()
    c = cache(ep, clock)
    out = await asyncio.gather(*(c.key(f"u{i}") for i in range(50)))
    assert out == [None] * 50 and ep.fetches == 1


async def test_f10_rotation_new_key_found_old_key_dropped_after_refresh():
    ep, clock = Endpoint("k1"), Clock()
    c = cache(ep, clock, min_refresh=60)
    assert await c.key("k1") is not None
    ep.doc = {"keys": [jwk("k2")]}  # the IdP rotated
    assert await c.key("k2") is None  # within the refresh rate limit: not fetched yet
    clock.now += 61
    assert await c.key("k2") is not None
    assert await c.key("k1") is None  # no grace: a key the IdP removed is gone at the next refresh


async def test_f10_endpoint_down_keeps_cached_keys_and_never_fails_open():
    ep, clock = Endpoint("k1"), Clock()
    c = cache(ep, clock, min_refresh=1, max_age=10)
    assert await c.key("k1") is not None
    ep.down = True
    clock.now += 3600  # keys are stale and refresh fails: the cached key still verifies
    assert await c.key("k1") is not None
    clock.now += 2
    assert await c.key("k2") is None  # unknown kid while down: refused, not allowed
    ep.down = False
    ep.doc = {"keys": [jwk("k1"), jwk("k2")]}
    clock.now += 2
    assert await c.key("k2") is not None


async def test_f10_endpoint_down_from_the_start_refuses_everything():
    ep, clock = Endpoint("k1"), Clock()
    ep.down = True
    c = cache(ep, clock)
    assert await c.key("k1") is None


@pytest.mark.parametrize("doc", [b"not json", b"[]", b'{"keys": "x"}', b"", b'{"keys": [1, "a", null]}'])
async def test_garbage_documents_keep_the_previous_keys(doc):
    ep, clock = Endpoint("k1"), Clock()
    c = cache(ep, clock, min_refresh=1, max_age=10)
    assert await c.key("k1") is not None

    async def garbage() -> bytes:
        return doc
    c._fetch = garbage
    clock.now += 20
    assert await c.key("k1") is not None


async def test_unusable_entries_are_skipped():
    ep = Endpoint()
    ep.doc = {"keys": [jwk("k1", use="enc"), {**jwk("k2"), "kid": 7}, {"kty": "RSA", "kid": "broken", "n": "x", "e": "AQAB"},
                       {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, jwk("evil")]}
    c = cache(ep, Clock())
    assert await c.key("k1") is None and await c.key("broken") is None
    assert await c.key("evil") is not None


# ---------------------------------------------------------------- through the tenant stage and real HTTP

async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


class Idp:
    """A loopback JWKS endpoint that counts hits; `jwks` is what it serves, `up` whether it answers."""

    def __init__(self, *kids: str) -> None:
        self.jwks = {"keys": [jwk(k) for k in kids]}
        self.hits = 0
        self.up = True

    def app(self) -> web.Application:
        app = web.Application()

        async def jwks(request):
            self.hits += 1
            if not self.up:
                return web.Response(status=503)
            return web.json_response(self.jwks)
        app.router.add_get("/jwks.json", jwks)
        app.router.add_get("/{tail:.*}", jwks)
        return app


def rs_token(kid: str, key: str | None = None, tenant: str = "acme", headers: dict | None = None) -> str:
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "ramparts", "sub": "u1", "tenant": tenant, "scope": "ai:completion",
              "iat": now, "nbf": now, "exp": now + 600}
    return jwt.encode(claims, KEYS[key or kid], algorithm="RS256", headers={"kid": kid, **(headers or {})})


def exchange(policy, token: str) -> Exchange:
    return Exchange(request_id="r", route="chat", method="POST", path="/v1/chat/completions", policy=policy,
                    client_headers=CIMultiDict({"Authorization": f"Bearer {token}", "X-Tenant-ID": "acme"}))


@pytest.fixture
async def idp_stage():
    idp, evil = Idp("k1"), Idp("evil")
    runner, port = await _serve(idp.app())
    evil_runner, evil_port = await _serve(evil.app())
    policy = make_policy(auth={"algorithms": ["RS256"], "key": None, "jwks_url": f"http://127.0.0.1:{port}/jwks.json",
                               "jwks_min_refresh_s": 1})
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    await stage.start()
    yield stage, policy, idp, evil, evil_port
    await stage.stop()
    await runner.cleanup()
    await evil_runner.cleanup()


async def test_f6_jku_x5u_and_embedded_jwk_are_never_fetched_or_used(idp_stage):
    stage, policy, idp, evil, evil_port = idp_stage
    assert await stage.on_request(exchange(policy, rs_token("k1"))) is None
    url = f"http://127.0.0.1:{evil_port}/jwks.json"
    for headers in ({"jku": url}, {"x5u": url}, {"jwk": jwk("evil")}, {"jku": url, "x5u": url, "jwk": jwk("evil")}):
        forged = rs_token("evil", headers=headers)
        deny = await stage.on_request(exchange(policy, forged))
        assert deny is not None and deny.status == 401
        forged_kid = rs_token("k1", key="evil", headers=headers)  # a known kid, the attacker's signature
        deny = await stage.on_request(exchange(policy, forged_kid))
        assert deny is not None and deny.status == 401
    assert evil.hits == 0
    assert idp.hits <= 2  # the first load and at most one rate-limited refresh for the unknown kid


async def test_f10_idp_down_cached_key_works_unknown_kid_refused_then_rotation(idp_stage):
    stage, policy, idp, _, _ = idp_stage
    assert await stage.on_request(exchange(policy, rs_token("k1"))) is None
    idp.up = False
    await asyncio.sleep(1.1)  # past the refresh rate limit: the stage will try the IdP and fail
    assert await stage.on_request(exchange(policy, rs_token("k1"))) is None
    deny = await stage.on_request(exchange(policy, rs_token("k2")))
    assert deny is not None and deny.status == 401
    idp.up = True
    idp.jwks = {"keys": [jwk("k2")]}
    await asyncio.sleep(1.1)
    assert await stage.on_request(exchange(policy, rs_token("k2"))) is None
