"""The JWT matrix (SECURITY_TESTS F1-F4, F5 kid shapes, F6 crit, F7, F8, G4) against JwtVerifier.

Tokens are crafted byte by byte where a library would refuse to make them (alg
none, duplicate claims, HS256 signed with an RSA public key). The key lookup is a
plain recording function: a malformed kid must be refused before any lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.auth.verifier import AuthFailure, JwtVerifier, WeakKey, check_hmac_key
from proxy.config.policy import AuthConfig

SECRET = b"k" * 32
ISS, AUD = "https://issuer.test", "ramparts"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUB = RSA_KEY.public_key()
PEM = RSA_PUB.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
SSH = RSA_PUB.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
JWK = json.dumps(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_PUB))).encode()


def b64(data: bytes | dict) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs(header: dict | bytes, claims: dict | bytes, key: bytes = SECRET, digest=hashlib.sha256) -> str:
    """An HMAC-signed token from raw header/claims (dicts or exact JSON bytes)."""
    signing = f"{b64(header)}.{b64(claims)}"
    return signing + "." + base64.urlsafe_b64encode(hmac.new(key, signing.encode(), digest).digest()).rstrip(b"=").decode()


def claims(**over: Any) -> dict:
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "user-1", "tenant": "acme", "scope": "ai:completion ai:embed",
         "iat": now, "nbf": now, "exp": now + 600, "jti": "j1"}
    for k, v in over.items():
        if v is _DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


_DROP = object()
HS_HEADER = {"alg": "HS256", "typ": "JWT"}


class Lookup:
    """Returns `key` for any kid and records the kids it was asked for."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.kids: list[Any] = []

    async def __call__(self, kid):
        self.kids.append(kid)
        return self.key


def verifier(key: Any = SECRET, **cfg: Any) -> tuple[JwtVerifier, Lookup]:
    base = {"issuer": ISS, "audience": AUD, "algorithms": ["HS256"], "key": {"from_env": "UNUSED"}, "leeway_s": 5}
    lookup = Lookup(key)
    return JwtVerifier(AuthConfig.model_validate({**base, **cfg}), lookup), lookup


async def refused(v: JwtVerifier, token: str, code: str = "invalid_token") -> str:
    with pytest.raises(AuthFailure) as e:
        await v.verify(token)
    assert e.value.code == code
    return str(e.value)


async def test_a_valid_token_verifies():
    v, _ = verifier()
    t = await v.verify(hs(HS_HEADER, claims()))
    assert (t.tenant, t.subject, t.scopes, t.jti) == ("acme", "user-1", frozenset({"ai:completion", "ai:embed"}), "j1")


# ---------------------------------------------------------------- F1

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
@pytest.mark.parametrize("sig", ["", "c2ln"])
async def test_f1_alg_none_in_every_spelling(alg, sig):
    v, lookup = verifier()
    await refused(v, f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.{sig}")
    assert lookup.kids == []


@pytest.mark.parametrize("public", [PEM, SSH, JWK], ids=["pem", "ssh", "jwk"])
async def test_f1_hs256_forged_with_the_rsa_public_key(public):
    v, _ = verifier(RSA_PUB, algorithms=["RS256"])
    msg = await refused(v, hs(HS_HEADER, claims(), key=public))
    assert "algorithm" in msg


async def test_f1_the_rsa_path_itself_works_and_checks_the_signature():
    v, _ = verifier(RSA_PUB, algorithms=["RS256"])
    good = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert (await v.verify(good)).tenant == "acme"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    await refused(v, jwt.encode(claims(), other, algorithm="RS256"))


@pytest.mark.parametrize("alg,digest", [("HS384", hashlib.sha384), ("HS512", hashlib.sha512)])
async def test_f1_alg_outside_the_allowlist(alg, digest):
    v, _ = verifier()
    await refused(v, hs({"alg": alg}, claims(), key=b"k" * 64, digest=digest))


@pytest.mark.parametrize("header", [{"alg": ["HS256"]}, {"alg": 256}, {}, {"alg": "HS256 "}, {"alg": "hs256"}])
async def test_f1_alg_must_be_exactly_an_allowed_string(header):
    v, _ = verifier()
    await refused(v, hs(header, claims()))


# ---------------------------------------------------------------- F2: time claims at the leeway edge (5 s here)

async def test_f2_exp_within_and_beyond_leeway():
    v, _ = verifier()
    now = time.time()
    assert await v.verify(hs(HS_HEADER, claims(exp=now - 4)))  # 1 s inside the leeway
    await refused(v, hs(HS_HEADER, claims(exp=now - 6)), "token_expired")  # 1 s beyond it


async def test_f2_nbf_within_and_beyond_leeway():
    v, _ = verifier()
    now = time.time()
    assert await v.verify(hs(HS_HEADER, claims(nbf=now + 4)))
    await refused(v, hs(HS_HEADER, claims(nbf=now + 6)))


async def test_f2_iat_in_the_future():
    v, _ = verifier()
    now = time.time()
    assert await v.verify(hs(HS_HEADER, claims(iat=now + 4)))
    await refused(v, hs(HS_HEADER, claims(iat=now + 6)))


@pytest.mark.parametrize("field,value", [("exp", "tomorrow"), ("nbf", "now"), ("iat", True), ("exp", None), ("iat", [1])])
async def test_f2_time_claims_must_be_numbers(field, value):
    v, _ = verifier()
    await refused(v, hs(HS_HEADER, claims(**{field: value})))


# ---------------------------------------------------------------- F3: required claims

@pytest.mark.parametrize("missing", ["exp", "iss", "aud", "sub", "tenant"])
async def test_f3_missing_required_claim(missing):
    v, _ = verifier()
    await refused(v, hs(HS_HEADER, claims(**{missing: _DROP})))


@pytest.mark.parametrize("sub", ["", 5, None, ["u"], "u" * 300])
async def test_f3_malformed_subject(sub):
    v, _ = verifier()
    await refused(v, hs(HS_HEADER, claims(sub=sub)))


# ---------------------------------------------------------------- F4: issuer and audience

@pytest.mark.parametrize("iss", ["https://evil.test", "https://issuer.test.evil", "https://issuer.tes", "https://issuer.test/", "HTTPS://ISSUER.TEST",
                                 ["https://issuer.test"], ""])
async def test_f4_wrong_or_substring_issuer(iss):
    v, _ = verifier()
    await refused(v, hs(HS_HEADER, claims(iss=iss)))


@pytest.mark.parametrize("aud", ["other", "ramparts2", "rampart", "", [], ["other", "x"]])
async def test_f4_wrong_audience(aud):
    v, _ = verifier()
    await refused(v, hs(HS_HEADER, claims(aud=aud)))


async def test_f4_list_audience_containing_ours_is_accepted_documented():
    """strict_aud is off: an access token for several resource servers is accepted when ours is one of them."""
    v, _ = verifier()
    assert await v.verify(hs(HS_HEADER, claims(aud=["other", AUD])))


async def test_f4_configured_audience_list():
    v, _ = verifier(audience=["ramparts", "ramparts-eu"])
    assert await v.verify(hs(HS_HEADER, claims(aud="ramparts-eu")))
    await refused(v, hs(HS_HEADER, claims(aud="ramparts-us")))


# ---------------------------------------------------------------- F5: kid shapes never reach a lookup

@pytest.mark.parametrize("kid", ["../../../../etc/passwd", "/dev/zero", "' OR 1=1 --", "k\x00id", "a" * 10_000, 7, ["k"], {"k": 1}, "", "ki d", "kid\n"])
async def test_f5_malformed_kid_is_refused_before_any_lookup(kid):
    v, lookup = verifier()
    msg = await refused(v, hs({"alg": "HS256", "kid": kid}, claims()))
    assert lookup.kids == [] and ("key id" in msg or "compact" in msg or "header" in msg)


async def test_f5_unknown_kid_is_refused():
    v, lookup = verifier(key=None)
    msg = await refused(v, hs({"alg": "HS256", "kid": "nope"}, claims()))
    assert lookup.kids == ["nope"] and "unknown key" in msg


# ---------------------------------------------------------------- F6: header parameters that point elsewhere

async def test_f6_unknown_crit_is_refused():
    v, _ = verifier()
    await refused(v, hs({"alg": "HS256", "crit": ["exp2"], "exp2": 1}, claims()))
    await refused(v, hs({"alg": "HS256", "crit": []}, claims()))


async def test_f6_embedded_jwk_is_never_used_as_the_key():
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    v, _ = verifier(RSA_PUB, algorithms=["RS256"])
    token = jwt.encode(claims(), attacker, algorithm="RS256", headers={"jwk": jwk, "jku": "http://127.0.0.1:1/jwks.json", "x5u": "http://127.0.0.1:1/x"})
    await refused(v, token)


# ---------------------------------------------------------------- F7: typ and maximum age

@pytest.mark.parametrize("typ,ok", [("at+jwt", True), ("application/at+jwt", True), ("AT+JWT", True), ("JWT", False), ("", False), (None, False), ("id+jwt", False)])
async def test_f7_required_typ(typ, ok):
    v, _ = verifier(required_typ="at+jwt")
    header = {"alg": "HS256"} if typ is None else {"alg": "HS256", "typ": typ}
    if ok:
        assert await v.verify(hs(header, claims()))
    else:
        assert "token type" in await refused(v, hs(header, claims()))


async def test_f7_max_age():
    v, _ = verifier(max_age_s=60)
    now = time.time()
    assert await v.verify(hs(HS_HEADER, claims(iat=now - 60)))
    await refused(v, hs(HS_HEADER, claims(iat=now - 67)), "token_expired")  # 60 s + 5 s leeway + 2 s
    await refused(v, hs(HS_HEADER, claims(iat=_DROP)))  # age unknown: refused


# ---------------------------------------------------------------- F8: weak HMAC secrets

@pytest.mark.parametrize("alg,n,ok", [("HS256", 31, False), ("HS256", 32, True), ("HS384", 47, False), ("HS384", 48, True), ("HS512", 63, False), ("HS512", 64, True)])
def test_f8_hmac_secret_length(alg, n, ok):
    if ok:
        check_hmac_key([alg], b"s" * n)
    else:
        with pytest.raises(WeakKey):
            check_hmac_key([alg], b"s" * n)


# ---------------------------------------------------------------- G4: the tenant claim, and one meaning per token

@pytest.mark.parametrize("tenant", [["acme"], ["acme", "globex"], 7, True, {"id": "acme"}, "", "ACME", "acme ", "acme\n", "ac me", "acme\u0435", "a" * 100])
async def test_g4_tenant_claim_must_be_one_plain_tenant_id(tenant):
    v, _ = verifier()
    assert "tenant" in await refused(v, hs(HS_HEADER, claims(tenant=tenant)))


async def test_g4_duplicate_claim_keys_are_refused():
    v, _ = verifier()
    c = claims()
    body = json.dumps(c, separators=(",", ":"))
    dup = ('{"tenant":"globex",' + body[1:]).encode()  # "tenant" twice: json keeps the last (acme)
    assert "duplicate" in await refused(v, hs(HS_HEADER, dup))


async def test_g4_duplicate_header_keys_are_refused():
    v, _ = verifier()
    assert "duplicate" in await refused(v, hs(b'{"alg":"none","alg":"HS256"}', claims()))


@pytest.mark.parametrize("token", [
    "", "a.b", "a.b.c.d", "a.b.c.d.e", " " + "x" * 20, "eyJ.eyJ.sig==", "e" * 30_000 + ".e.e", "😀.😀.😀",
])
async def test_malformed_compact_serialisations(token):
    v, lookup = verifier()
    await refused(v, token)
    assert lookup.kids == []


async def test_scopes_are_filtered_to_plain_tokens():
    v, _ = verifier()
    t = await v.verify(hs(HS_HEADER, claims(scope=["ai:completion", "bad scope", 5])))
    assert t.scopes == frozenset()  # a list with a non-string is ignored as a whole
    t = await v.verify(hs(HS_HEADER, claims(scope="ai:completion <script> ai:embed")))
    assert t.scopes == frozenset({"ai:completion", "ai:embed"})
    t = await v.verify(hs(HS_HEADER, claims(scope=["ai:completion\n", "ai:embed"])))
    assert t.scopes == frozenset({"ai:embed"})  # a trailing newline is not a plain token
