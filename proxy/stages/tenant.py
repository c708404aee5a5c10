"""Stage `tenant`: who is calling. JWT required; the tenant header must equal the token's tenant.

Runs first (the loader enforces it) and before the body is read. Identity comes
only from the verified token: never from the body (`user`, `metadata`), a query
parameter, a forwarded-for header, or the model.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

import aiohttp
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from proxy.auth.jwks import JwksCache
from proxy.auth.verifier import AuthFailure, JwtVerifier, VerifiedToken, check_hmac_key
from proxy.config.policy import TENANT_ID
from proxy.pipeline.deny import Deny, bad_request, forbidden, unauthorized
from proxy.pipeline.exchange import Exchange, Identity
from proxy.pipeline.stage import Stage, StageConfig

ROUTE_SCOPES = {"chat": "ai:completion", "completions": "ai:completion", "embeddings": "ai:embed"}
_BEARER = re.compile(r"^Bearer ([^\s]+)$")


class TokenCache:
    """Tokens that verified, by the exact Authorization value that carried them: a repeat
    caller skips the JWT checks (and the Bearer parse).

    Signature checks cost more than the rest of the request path together, and a
    client reuses its token for many calls. Only successes are kept. An entry ends
    at the token's exp (and at iat + max_age_s when configured), so an expired token
    is verified again and refused exactly as without the cache; and at most `ttl_s`
    after it was verified, so a key removed from the JWKS stops working within ttl_s.
    Bounded: when full, the oldest entry goes.
    """

    def __init__(self, size: int = 4096, ttl_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self._items: dict[str, tuple[Any, float]] = {}
        self._size = size
        self._ttl = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Any:
        hit = self._items.get(key)
        if hit is None:
            return None
        if self._clock() >= hit[1]:
            del self._items[key]
            return None
        return hit[0]

    def put(self, key: str, verified: Any, not_after: float | None) -> None:
        """Keep `verified` until `not_after` (epoch seconds), capped at ttl_s from now."""
        now = self._clock()
        if not_after is None or not_after <= now or self._size <= 0:
            return
        if len(self._items) >= self._size:
            del self._items[next(iter(self._items))]
        self._items[key] = (verified, min(not_after, now + self._ttl))


class TenantConfig(StageConfig):
    type: str = "tenant"


class TenantStage(Stage):
    type = "tenant"
    Config = TenantConfig

    def __init__(self, config, policy, services) -> None:
        super().__init__(config, policy, services)
        auth = policy.model.auth
        self._auth = auth
        self._header = auth.tenant_header
        self._header_variants = {auth.tenant_header.lower(), auth.tenant_header.lower().replace("-", "_")}
        self._header_lower = auth.tenant_header.lower()
        self._jwks: JwksCache | None = None
        self._session: aiohttp.ClientSession | None = None
        if auth.key is not None:
            raw = auth.key.resolve_bytes(policy.base_dir)
            if auth.algorithms[0].startswith("HS"):
                check_hmac_key(auth.algorithms, raw)
                static_key: Any = raw
            else:
                static_key = load_pem_public_key(raw)

            async def lookup(kid: str | None) -> Any:
                return static_key
        else:
            self._jwks = JwksCache(self._fetch_jwks, auth.jwks_min_refresh_s, auth.jwks_cache_s)

            async def lookup(kid: str | None) -> Any:
                return await self._jwks.key(kid) if kid else None
        self._verifier = JwtVerifier(auth, lookup)
        self._verified = TokenCache()

    async def start(self) -> None:
        if self._jwks is not None:
            self._session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch_jwks(self) -> bytes:
        assert self._session is not None
        async with self._session.get(self._auth.jwks_url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise RuntimeError(f"JWKS endpoint answered {resp.status}")
            return await resp.content.read(1_048_576)

    async def _verify(self, header: str) -> tuple[VerifiedToken, Identity] | Deny:
        """The Authorization header's token, verified (or from the cache, keyed by the header
        value, which maps one to one to the token) with the Identity it proves."""
        hit = self._verified.get(header)
        if hit is not None:
            return hit
        m = _BEARER.match(header)
        if not m:
            return unauthorized("the Authorization header must be exactly 'Bearer <JWT>'", "invalid_auth_scheme")
        raw = m.group(1)
        try:
            token = await self._verifier.verify(raw)
        except AuthFailure as e:
            return unauthorized(str(e), e.code)
        identity = Identity(tenant=token.tenant, subject=token.subject, scopes=token.scopes,
                            issuer=token.issuer, jti=token.jti, expires_at=token.expires_at)
        self._verified.put(header, (token, identity), self._not_after(raw, token))
        return token, identity

    def _not_after(self, raw: str, token: VerifiedToken) -> float | None:
        """When a cached verification must end: exp, and iat + max_age_s when a maximum age is set."""
        limit = token.expires_at
        if limit is not None and self._auth.max_age_s is not None:
            iat = jwt.decode(raw, options={"verify_signature": False}).get("iat")  # signature already verified
            if not isinstance(iat, (int, float)) or isinstance(iat, bool):
                return None
            limit = min(limit, iat + self._auth.max_age_s)
        return limit

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Before the body is read: verify the JWT, bind the tenant header, check the route's scope."""
        headers = ex.client_headers
        auths = headers.getall("Authorization", [])
        if len(auths) > 1:
            return bad_request("send exactly one Authorization header", "duplicate_header")
        tenants = headers.getall(self._header, [])
        if len(tenants) > 1:
            return bad_request(f"send exactly one {self._header} header", "duplicate_header")
        wanted = self._header_lower
        for name in headers:
            low = name.lower()
            if low != wanted and low.replace("_", "-") == wanted:
                return bad_request(f"header {name!r} looks like {self._header} but is not it", "ambiguous_header")
        if not auths:
            return unauthorized("an Authorization: Bearer <JWT> header is required", "missing_token")
        verified = await self._verify(auths[0])
        if isinstance(verified, Deny):
            return verified
        token, identity = verified
        if not tenants:
            return bad_request(f"the {self._header} header is required", "missing_tenant_header")
        claimed = tenants[0]
        if not TENANT_ID.match(claimed) or claimed != token.tenant:
            return forbidden(f"the {self._header} header does not match the token's tenant", "tenant_mismatch")
        if token.tenant not in self.policy.tenants:
            return forbidden("this tenant is not configured on the proxy", "unknown_tenant")
        required = ex.state.get("required_scope") or ROUTE_SCOPES.get(ex.route)
        if required and required not in token.scopes:
            return forbidden(f"the token lacks the scope {required}", "insufficient_scope")
        if ex.route == "models" and not token.scopes & {"ai:completion", "ai:embed"}:
            return forbidden("the token lacks ai:completion or ai:embed", "insufficient_scope")
        ex.set_identity(identity)  # immutable: one object serves every request with this token
        ex.decide(self.type, "allow")
        return None


STAGE = TenantStage
