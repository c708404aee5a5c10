"""A JWKS key cache with a refresh rate limit (an unknown-kid flood cannot hammer the IdP).

Keys come only from the configured URL, never from a token's jku/x5u/jwk header.
When the endpoint is down, cached keys keep working; nothing ever fails open.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import jwt

Fetch = Callable[[], Awaitable[bytes]]


class JwksCache:
    def __init__(self, fetch: Fetch, min_refresh_s: float, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._min_refresh = min_refresh_s
        self._max_age = max_age_s
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> Any | None:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        if kid in self._keys and not stale:
            return self._keys[kid]
        await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
                return  # rate limited: serve from cache
            self._last_attempt = now
            self.fetches += 1
            try:
                raw = await self._fetch()
                data = json.loads(raw)
                keys = {}
                for jwk in data.get("keys", []):
                    kid = jwk.get("kid")
                    if not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
                        continue
                    try:
                        keys[kid] = jwt.PyJWK.from_dict(jwk).key
                    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                        continue
            except Exception:
                return  # endpoint down or garbage: keep the keys we have
            self._keys = keys
            self._fetched_at = now
