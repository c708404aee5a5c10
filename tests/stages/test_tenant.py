"""Stage `tenant`: the verified-token cache changes cost, never the decision."""

from __future__ import annotations

import time

from multidict import CIMultiDict

from proxy.auth.verifier import VerifiedToken
from proxy.devtoken import mint
from proxy.pipeline.exchange import Exchange
from proxy.stages.tenant import TenantStage, TokenCache
from tests.harness import HMAC_SECRET, make_policy, make_stage

VT = VerifiedToken(tenant="acme", subject="u", scopes=frozenset({"ai:completion"}), issuer="i", jti=None, expires_at=0)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exchange(policy, token: str, tenant: str = "acme") -> Exchange:
    headers = CIMultiDict({"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant})
    return Exchange(request_id="r", route="chat", method="POST", path="/v1/chat/completions",
                    client_headers=headers, policy=policy)


def tok(**kw) -> str:
    kw.setdefault("issuer", "https://issuer.test")
    return mint(HMAC_SECRET.encode(), tenant=kw.pop("tenant", "acme"), scopes=kw.pop("scopes", ("ai:completion",)), **kw)


def test_cache_entry_ends_at_not_after_and_at_ttl():
    clock = Clock()
    cache = TokenCache(ttl_s=60, clock=clock)
    cache.put("a", VT, not_after=1010)
    cache.put("b", VT, not_after=5000)
    assert cache.get("a") is VT and cache.get("b") is VT
    clock.now = 1010
    assert cache.get("a") is None  # exp reached: verify again
    assert cache.get("b") is VT
    clock.now = 1060
    assert cache.get("b") is None  # ttl reached although exp is far


def test_cache_refuses_past_or_unknown_expiry_and_is_bounded():
    cache = TokenCache(size=2, clock=Clock())
    cache.put("past", VT, not_after=999)
    cache.put("none", VT, not_after=None)
    assert len(cache) == 0
    for name in ("a", "b", "c"):
        cache.put(name, VT, not_after=2000)
    assert len(cache) == 2
    assert cache.get("a") is None and cache.get("c") is VT  # oldest evicted


async def test_stage_caches_a_verified_token_and_still_checks_each_request():
    policy = make_policy()
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    t = tok()
    first = exchange(policy, t)
    assert await stage.on_request(first) is None
    assert len(stage._verified) == 1
    second = exchange(policy, t)
    assert await stage.on_request(second) is None
    assert second.identity == first.identity
    # The per-request checks still run on a cache hit: header binding and scope.
    mismatch = await stage.on_request(exchange(policy, t, tenant="globex"))
    assert mismatch is not None and mismatch.status == 403 and mismatch.code == "tenant_mismatch"
    embed = exchange(policy, t)
    embed.route = "embeddings"
    denied = await stage.on_request(embed)
    assert denied is not None and denied.code == "insufficient_scope"


async def test_stage_never_caches_a_failure():
    policy = make_policy()
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    expired = tok(ttl_s=-120)
    bad_sig = tok()[:-4] + "AAAA"
    for t in (expired, expired, bad_sig, bad_sig):
        deny = await stage.on_request(exchange(policy, t))
        assert deny is not None and deny.status == 401
    assert len(stage._verified) == 0


async def test_stage_cache_honours_max_age():
    policy = make_policy(auth={"max_age_s": 300})
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    t = tok(ttl_s=3600)
    assert await stage.on_request(exchange(policy, t)) is None
    _, until = stage._verified._items[f"Bearer {t}"]
    assert until <= int(time.time()) + 300  # iat + max_age, not exp


async def test_expired_token_in_leeway_is_verified_each_time_not_cached():
    policy = make_policy()  # leeway_s 30
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    t = tok(ttl_s=-5)  # exp passed, still inside the leeway: accepted, but not kept
    assert await stage.on_request(exchange(policy, t)) is None
    assert len(stage._verified) == 0


async def test_bad_scheme_is_refused_and_not_cached():
    policy = make_policy()
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    t = tok()
    for value in (f"Basic {t}", f"Bearer {t} extra", f"bearer {t}", "Bearer "):
        ex = Exchange(request_id="r", route="chat", method="POST", path="/v1/chat/completions",
                      client_headers=CIMultiDict({"Authorization": value, "X-Tenant-ID": "acme"}), policy=policy)
        deny = await stage.on_request(ex)
        assert deny is not None and deny.code == "invalid_auth_scheme"
    assert len(stage._verified) == 0
