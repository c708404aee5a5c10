"""Stage `tenant`: who is calling. JWT required; the tenant header must equal the token's tenant.

Runs first (the loader enforces it) and before the body is read. Identity comes
only from the verified token: never from the body (`user`, `metadata`), a query
parameter, a forwarded-for header, or the model.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from proxy.auth.jwks import JwksCache
from proxy.auth.verifier import AuthFailure, JwtVerifier, check_hmac_key
from proxy.config.policy import TENANT_ID
from proxy.pipeline.deny import Deny, bad_request, forbidden, unauthorized
from proxy.pipeline.exchange import Exchange, Identity
from proxy.pipeline.stage import Stage, StageConfig

ROUTE_SCOPES = {"chat": "ai:completion", "completions": "ai:completion", "embeddings": "ai:embed"}
_BEARER = re.compile(r"^Bearer ([^\s]+)$")


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

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Before the body is read: verify the JWT, bind the tenant header, check the route's scope."""
        headers = ex.client_headers
        auths = headers.getall("Authorization", [])
        if len(auths) > 1:
            return bad_request("send exactly one Authorization header", "duplicate_header")
        tenants = headers.getall(self._header, [])
        if len(tenants) > 1:
            return bad_request(f"send exactly one {self._header} header", "duplicate_header")
        for name in headers:
            if name.lower() != self._header.lower() and name.lower().replace("_", "-") == self._header.lower():
                return bad_request(f"header {name!r} looks like {self._header} but is not it", "ambiguous_header")
        if not auths:
            return unauthorized("an Authorization: Bearer <JWT> header is required", "missing_token")
        m = _BEARER.match(auths[0])
        if not m:
            return unauthorized("the Authorization header must be exactly 'Bearer <JWT>'", "invalid_auth_scheme")
        try:
            token = await self._verifier.verify(m.group(1))
        except AuthFailure as e:
            return unauthorized(str(e), e.code)
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
        ex.set_identity(Identity(tenant=token.tenant, subject=token.subject, scopes=token.scopes,
                                 issuer=token.issuer, jti=token.jti, expires_at=token.expires_at))
        ex.decide(self.type, "allow")
        return None


STAGE = TenantStage
