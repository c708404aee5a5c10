"""Stage `tenant`: header/token binding, scopes and refusals (SECURITY_TESTS D6, F8, F9, G1-G5).

(tests/stages/test_tenant.py covers the verified-token cache.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict

from proxy.auth.verifier import WeakKey
from proxy.devtoken import mint
from proxy.pipeline.exchange import Exchange, Identity
from proxy.stages.tenant import TenantStage
from tests.harness import HMAC_SECRET, make_policy, make_stage


def tok(tenant: str = "acme", scopes=("ai:completion", "ai:embed"), **kw) -> str:
    return mint(HMAC_SECRET.encode(), tenant=tenant, scopes=scopes, issuer="https://issuer.test", **kw)


def exchange(policy, headers, route: str = "chat", body: dict | None = None) -> Exchange:
    ex = Exchange(request_id="r", route=route, method="POST", path="/v1/chat/completions",
                  client_headers=CIMultiDict(headers), policy=policy)
    ex.body = body
    return ex


@pytest.fixture(scope="module")
def policy():
    return make_policy()


@pytest.fixture(scope="module")
def stage(policy):
    return make_stage(TenantStage, {"type": "tenant"}, policy)


async def test_bound_request_gets_the_token_identity(stage, policy):
    ex = exchange(policy, [("Authorization", f"Bearer {tok()}"), ("X-Tenant-ID", "acme")])
    assert await stage.on_request(ex) is None
    assert ex.identity.tenant == "acme" and ex.identity.subject == "dev-user" and "ai:completion" in ex.identity.scopes
    assert ex.tenant.id == "acme"
    with pytest.raises(RuntimeError):
        ex.set_identity(Identity(tenant="globex", subject="x", scopes=frozenset(), issuer="i"))  # immutable once set


async def test_g1_header_tenant_differs_from_the_token(stage, policy):
    ex = exchange(policy, [("Authorization", f"Bearer {tok('acme')}"), ("X-Tenant-ID", "globex")])
    deny = await stage.on_request(ex)
    assert (deny.status, deny.code, deny.type) == (403, "tenant_mismatch", "permission_error") and ex.identity is None


async def test_g2_missing_tenant_header_is_400_after_a_valid_token(stage, policy):
    deny = await stage.on_request(exchange(policy, [("Authorization", f"Bearer {tok()}")]))
    assert (deny.status, deny.code) == (400, "missing_tenant_header")
    deny = await stage.on_request(exchange(policy, [("X-Tenant-ID", "acme")]))
    assert (deny.status, deny.code) == (401, "missing_token")  # no token: 401 first, whatever the header says
    assert deny.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("value", ["ACME", "Acme", " acme", "acme ", "acm\u0435", "%61cme", "acme\x00", "acme,acme", "acme-", ""])
async def test_g3_variants_never_match(stage, policy, value):
    deny = await stage.on_request(exchange(policy, [("Authorization", f"Bearer {tok()}"), ("X-Tenant-ID", value)]))
    assert deny.status == 403 and deny.code == "tenant_mismatch"


async def test_g5_tenant_in_the_body_or_user_field_is_ignored(stage, policy):
    body = {"model": "gpt-4o-mini", "messages": [], "user": "globex", "metadata": {"tenant": "globex", "X-Tenant-ID": "globex"}}
    ex = exchange(policy, [("Authorization", f"Bearer {tok('acme')}"), ("X-Tenant-ID", "acme"), ("X-Forwarded-For", "globex")], body=body)
    assert await stage.on_request(ex) is None
    assert ex.tenant_id == "acme"


async def test_token_for_an_unconfigured_tenant(stage, policy):
    deny = await stage.on_request(exchange(policy, [("Authorization", f"Bearer {tok('initech')}"), ("X-Tenant-ID", "initech")]))
    assert (deny.status, deny.code) == (403, "unknown_tenant")


@pytest.mark.parametrize("route,scopes,ok", [
    ("chat", ("ai:completion",), True), ("chat", ("ai:embed",), False), ("completions", ("ai:embed",), False),
    ("embeddings", ("ai:embed",), True), ("embeddings", ("ai:completion",), False), ("models", ("ai:embed",), True),
    ("models", ("audit:read",), False), ("chat", (), False),
])
async def test_route_scopes(stage, policy, route, scopes, ok):
    deny = await stage.on_request(exchange(policy, [("Authorization", f"Bearer {tok(scopes=scopes)}"), ("X-Tenant-ID", "acme")], route=route))
    assert (deny is None) is ok
    if not ok:
        assert (deny.status, deny.code) == (403, "insufficient_scope")


async def test_local_route_scope(stage, policy):
    ex = exchange(policy, [("Authorization", f"Bearer {tok()}"), ("X-Tenant-ID", "acme")], route="local")
    ex.state["required_scope"] = "audit:read"
    deny = await stage.on_request(ex)
    assert (deny.status, deny.code) == (403, "insufficient_scope")


@pytest.mark.parametrize("headers,code", [
    ([("Authorization", "Bearer a"), ("Authorization", "Bearer b")], "duplicate_header"),
    ([("X-Tenant-ID", "acme"), ("x-tenant-id", "acme")], "duplicate_header"),
    ([("X_Tenant_ID", "globex")], "ambiguous_header"),
    ([("x_tenant-id", "globex")], "ambiguous_header"),
])
async def test_d6_duplicate_and_lookalike_headers(stage, policy, headers, code):
    base = [("Authorization", f"Bearer {tok()}"), ("X-Tenant-ID", "acme")]
    names = {h[0].lower() for h in headers}
    merged = [h for h in base if h[0].lower() not in names] + headers if code == "duplicate_header" else base + headers
    deny = await stage.on_request(exchange(policy, merged))
    assert (deny.status, deny.code) == (400, code)


@pytest.mark.parametrize("value", ["Basic YWNtZTpz", "bearer {t}", "Bearer  {t}", "Bearer {t} x", "{t}", "Bearer", "Token {t}", "Bearer {t}\t"])
async def test_f9_authorization_must_be_exactly_bearer_token(stage, policy, value):
    deny = await stage.on_request(exchange(policy, [("Authorization", value.format(t=tok())), ("X-Tenant-ID", "acme")]))
    assert deny.status == 401 and deny.code == "invalid_auth_scheme"


async def test_expired_token_is_401_token_expired(stage, policy):
    deny = await stage.on_request(exchange(policy, [("Authorization", f"Bearer {tok(ttl_s=-120)}"), ("X-Tenant-ID", "acme")]))
    assert (deny.status, deny.code) == (401, "token_expired")


def test_f8_weak_hmac_secret_refuses_to_build_the_stage(monkeypatch):
    monkeypatch.setenv("RAMPARTS_WEAK", "x" * 31)
    policy = make_policy(auth={"key": {"from_env": "RAMPARTS_WEAK"}})
    with pytest.raises(WeakKey):
        make_stage(TenantStage, {"type": "tenant"}, policy)


@pytest.mark.parametrize("algorithms", [["HS256", "RS256"], ["RS256", "HS512"]])
def test_mixing_hmac_and_public_key_algorithms_is_refused_at_load(algorithms):
    with pytest.raises(ValueError):
        make_policy(auth={"algorithms": algorithms})


async def test_rs256_with_a_pem_file_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "jwt.pem").write_bytes(pem)
    policy = make_policy(auth={"algorithms": ["RS256"], "key": {"from_env": None, "from_file": str(tmp_path / "jwt.pem")}})
    stage = make_stage(TenantStage, {"type": "tenant"}, policy)
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "ramparts", "sub": "u", "tenant": "acme", "scope": "ai:completion", "iat": now, "exp": now + 60}
    good = jwt.encode(claims, key, algorithm="RS256")
    assert await stage.on_request(exchange(policy, [("Authorization", f"Bearer {good}"), ("X-Tenant-ID", "acme")])) is None
    signing = ".".join(base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode() for p in ({"alg": "HS256"}, claims))
    forged = signing + "." + base64.urlsafe_b64encode(hmac.new(pem, signing.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    deny = await stage.on_request(exchange(policy, [("Authorization", f"Bearer {forged}"), ("X-Tenant-ID", "acme")]))
    assert deny.status == 401
