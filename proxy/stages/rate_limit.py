"""Stage `rate_limit`: requests and tokens per minute, per verified tenant and route (GCRA).

Keys come only from the verified identity (tenant) and the route: never from
X-Forwarded-For, the body's `user`, or any other client-controlled value.
Requests are debited on admission. Tokens are checked on admission (the bucket
must not be empty) and debited on completion with the real usage, so one
request can overshoot a tokens-per-minute limit by at most its own size and the
next request waits. Refusals are 429 with Retry-After and X-RateLimit-* headers.

When the store fails: `on_error: closed` (default) answers 503; `on_error: local`
falls back to an in-process limiter with the same limits (per replica, so the
global rate is at most replicas x limit): never unlimited.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proxy.budget.ledger import StoreUnavailable
from proxy.budget.redis_client import check_redis_url
from proxy.config.secret import SecretSource
from proxy.pipeline.deny import Deny, unavailable
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage, StageConfig
from proxy.ratelimit.gcra import Limit, Verdict
from proxy.ratelimit.store import MemoryRateStore, RateStore, open_rate_store

log = logging.getLogger("ramparts.rate_limit")

ROUTES = ("chat", "completions", "embeddings")


class RouteLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    burst: int | None = Field(None, ge=1)  # requests admitted at once; default: requests_per_minute
    token_burst: int | None = Field(None, ge=1)  # default: tokens_per_minute


class RateLimitConfig(StageConfig):
    type: str = "rate_limit"
    on_error: Literal["closed", "local"] = "closed"
    store: str = "embedded"  # memory | embedded | redis://host:port/db
    redis_password: SecretSource | None = None
    store_timeout_s: float = Field(0.5, gt=0, le=10)
    pool_size: int = Field(32, ge=1, le=1024)
    retry_after_s: int = Field(1, ge=1, le=600)  # on a store failure (closed)
    routes: dict[str, RouteLimit] = {}
    tenants: dict[str, dict[str, RouteLimit]] = {}  # per-tenant overrides, per route

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        return v if v in ("memory", "embedded") else check_redis_url(v)

    @model_validator(mode="after")
    def _routes(self):
        bad = [r for r in self.routes if r not in ROUTES] + [r for t in self.tenants.values() for r in t if r not in ROUTES]
        if bad:
            raise ValueError(f"unknown route(s) {sorted(set(bad))}; routes are {', '.join(ROUTES)}")
        return self


class _Limits:
    """One tenant x route, compiled: the request and token limits (either may be absent)."""

    __slots__ = ("requests", "tokens")

    def __init__(self, rl: RouteLimit) -> None:
        self.requests = Limit(rl.requests_per_minute, rl.burst or rl.requests_per_minute) if rl.requests_per_minute else None
        self.tokens = Limit(rl.tokens_per_minute, rl.token_burst or rl.tokens_per_minute) if rl.tokens_per_minute else None


class RateLimitStage(Stage):
    type = "rate_limit"
    Config = RateLimitConfig

    def __init__(self, config: RateLimitConfig, policy, services) -> None:
        super().__init__(config, policy, services)
        unknown = set(config.tenants) - set(policy.tenants)
        if unknown:
            raise ValueError(f"rate_limit: unknown tenant(s) {sorted(unknown)}")
        # compiled once: (tenant, route) -> limits; tenant overrides merge over the route defaults
        self._limits: dict[tuple[str, str], _Limits] = {}
        for tenant in policy.tenants:
            for route in ROUTES:
                base = config.routes.get(route)
                over = config.tenants.get(tenant, {}).get(route)
                if base is None and over is None:
                    continue
                merged = (base or RouteLimit()).model_copy(update=over.model_dump(exclude_unset=True) if over else {})
                lim = _Limits(merged)
                if lim.requests or lim.tokens:
                    self._limits[(tenant, route)] = lim
        self._password = config.redis_password.resolve(policy.base_dir) if config.redis_password else None
        self.store: RateStore | None = None
        self._fallback = MemoryRateStore()

    async def start(self) -> None:
        """Open the store (a dead store at startup is an error, not a silent fallback)."""
        c = self.config
        self.store = open_rate_store(c.store, self.services.data_dir, password=self._password,
                                     timeout=c.store_timeout_s, pool_size=c.pool_size)
        await self.store.start()

    async def stop(self) -> None:
        """Close the store."""
        if self.store is not None:
            await self.store.close()

    async def _apply(self, key: str, limit: Limit, cost: int, mode: str) -> Verdict:
        try:
            return await self.store.apply(key, limit, cost, mode)
        except StoreUnavailable as e:
            self.services.metrics.budget_store_errors.labels("ratelimit").inc()
            if self.config.on_error != "local":
                raise
            log.warning("rate-limit store unavailable, using the local limiter: %s", e)
            return await self._fallback.apply(key, limit, cost, mode)

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Check tokens (not empty) then take one request; 429 with Retry-After when either is out."""
        lim = self._limits.get((ex.tenant_id, ex.route)) if ex.identity else None
        if lim is None:
            return None
        key = f"{ex.tenant_id}:{ex.route}"
        headers: dict[str, str] = {}
        try:
            if lim.tokens:
                v = await self._apply(key + ":tok", lim.tokens, 0, "check")
                headers.update(_headers(v, "tokens"))
                if not v.allowed:
                    return self._refuse(ex, v, "tokens", headers)
            if lim.requests:
                v = await self._apply(key + ":req", lim.requests, 1, "take")
                headers.update(_headers(v, "requests"))
                if not v.allowed:
                    return self._refuse(ex, v, "requests", headers)
        except StoreUnavailable:
            return unavailable("the rate-limit store is unavailable; retry shortly", "ratelimit_store_unavailable",
                               self.config.retry_after_s)
        ex.extra_response_headers.update(headers)
        ex.state[self.type] = True
        return None

    def _refuse(self, ex: Exchange, v: Verdict, what: str, headers: dict[str, str]) -> Deny:
        self.services.metrics.rate_limited.labels(ex.route, what).inc()
        retry = max(1, math.ceil(v.retry_after))
        return Deny(429, f"rate limit reached: {v.limit} {what} per minute for {ex.route}; retry in {retry} s",
                    "rate_limit_error", f"rate_limit_{what}", {**headers, "Retry-After": str(retry)},
                    reason=f"rate_limit_{what}")

    async def on_complete(self, ex: Exchange) -> None:
        """Debit the tokens actually used (reported, or estimated at 4 characters per token)."""
        if not ex.state.get(self.type):
            return
        lim = self._limits.get((ex.tenant_id, ex.route))
        if lim is None or lim.tokens is None:
            return
        used = ex.usage.total_tokens if ex.usage.reported else math.ceil(ex.usage.streamed_chars / 4)
        if used <= 0:
            return
        try:
            await self._apply(f"{ex.tenant_id}:{ex.route}:tok", lim.tokens, used, "force")
        except StoreUnavailable:
            log.warning("could not debit %d tokens for %s (request %s)", used, ex.tenant_id, ex.request_id)


def _headers(v: Verdict, what: str) -> dict[str, str]:
    """OpenAI-style rate-limit headers (x-ratelimit-{limit,remaining,reset}-{requests,tokens})."""
    return {f"X-RateLimit-Limit-{what.title()}": str(v.limit),
            f"X-RateLimit-Remaining-{what.title()}": str(v.remaining),
            f"X-RateLimit-Reset-{what.title()}": f"{v.reset_after:.3f}s"}


STAGE = RateLimitStage
