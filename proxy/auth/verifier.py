"""JWT verification with the checks PyJWT does not do by default.

PyJWT blocks alg=none and key confusion but, unless told, does not require
exp/iss/aud, never checks typ, accepts a list-valued tenant claim and only warns
on short HMAC keys. This module makes all of that explicit and fails closed.
"""

from __future__ import annotations

import binascii
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import jwt
from jwt.utils import base64url_decode

from proxy.config.policy import TENANT_ID, AuthConfig
from proxy.wire.strict_json import JSONRejected, loads_strict

_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]{2,16384}\.[A-Za-z0-9_-]{0,2048}$")
_KID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SCOPE = re.compile(r"^[A-Za-z0-9:._/-]{1,64}$")
MIN_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}

KeyLookup = Callable[[str | None], Awaitable[Any]]


class AuthFailure(Exception):
    def __init__(self, message: str, code: str = "invalid_token"):
        super().__init__(message)
        self.code = code


class WeakKey(ValueError):
    pass


@dataclass(frozen=True)
class VerifiedToken:
    tenant: str
    subject: str
    scopes: frozenset[str]
    issuer: str
    jti: str | None
    expires_at: int | None


def check_hmac_key(algorithms: list[str], secret: bytes) -> None:
    """Refuse to start with an HMAC secret shorter than the hash (RFC 7518 §3.2)."""
    for alg in algorithms:
        need = MIN_HMAC_BYTES.get(alg)
        if need and len(secret) < need:
            raise WeakKey(f"the {alg} secret is {len(secret)} bytes; at least {need} are required")


class JwtVerifier:
    def __init__(self, cfg: AuthConfig, key_lookup: KeyLookup, clock: Callable[[], float] = time.time) -> None:
        self._cfg = cfg
        self._lookup = key_lookup
        self._clock = clock
        self._algorithms = frozenset(cfg.algorithms)
        self._require = list(dict.fromkeys(cfg.require_claims + ["exp", "iss", "aud"]))

    async def verify(self, token: str) -> VerifiedToken:
        cfg = self._cfg
        if not _COMPACT_JWS.fullmatch(token):
            raise AuthFailure("the bearer token is not a compact JWS")
        try:  # one meaning per token: PyJWT's json keeps the last of duplicate keys ("tenant" twice)
            for segment in token.split(".", 2)[:2]:
                loads_strict(base64url_decode(segment), 16)
        except (JSONRejected, binascii.Error, ValueError):
            raise AuthFailure("the token header or claims are not strict JSON (duplicate keys?)") from None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthFailure("the token header cannot be decoded") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthFailure("the token's algorithm is not allowed")
        if "crit" in header:
            raise AuthFailure("the token has critical header parameters this proxy does not understand")
        if cfg.required_typ is not None and str(header.get("typ", "")).lower() not in (cfg.required_typ.lower(), "application/" + cfg.required_typ.lower()):
            raise AuthFailure("the token type is not accepted (an ID token is not an access token)")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid)):
            raise AuthFailure("the token's key id is malformed")
        key = await self._lookup(kid)
        if key is None:
            raise AuthFailure("the token was signed with an unknown key")
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=cfg.audience, issuer=cfg.issuer, leeway=cfg.leeway_s,
                options={"require": self._require, "verify_signature": True, "verify_exp": True,
                         "verify_nbf": True, "verify_iat": True, "verify_aud": True, "verify_iss": True, "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure("the token has expired", "token_expired") from None
        except jwt.PyJWTError as e:
            raise AuthFailure(f"the token is not valid: {type(e).__name__}") from None
        now = self._clock()
        iat = claims.get("iat")
        if iat is not None:
            if not isinstance(iat, (int, float)) or isinstance(iat, bool) or iat > now + cfg.leeway_s:
                raise AuthFailure("the token was issued in the future")
            if cfg.max_age_s is not None and now - iat > cfg.max_age_s + cfg.leeway_s:
                raise AuthFailure("the token is older than the allowed maximum age", "token_expired")
        elif cfg.max_age_s is not None:
            raise AuthFailure("the token has no iat, so its age cannot be checked")
        tenant = claims.get(cfg.tenant_claim)
        if not isinstance(tenant, str) or not TENANT_ID.fullmatch(tenant):  # fullmatch: "$" would let "acme\n" in
            raise AuthFailure(f"the token's {cfg.tenant_claim!r} claim must be a single tenant id")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 256:
            raise AuthFailure("the token's subject is missing or malformed")
        jti = claims.get("jti")
        return VerifiedToken(tenant=tenant, subject=sub, scopes=_scopes(claims.get(cfg.scope_claim)),
                             issuer=claims["iss"], jti=jti if isinstance(jti, str) and len(jti) <= 256 else None,
                             expires_at=int(claims["exp"]) if isinstance(claims.get("exp"), (int, float)) else None)


def _scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list) and all(isinstance(s, str) for s in value):
        items = value
    else:
        return frozenset()
    return frozenset(s for s in items if _SCOPE.fullmatch(s))
