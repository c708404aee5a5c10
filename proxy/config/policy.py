"""The policy file's schema (pydantic) and its compiled, immutable form.

Stage-specific settings live in each stage's own `<Name>Config`
(proxy/stages/<type>.py); this module holds what several stages share:
server limits, auth, providers, egress, models and prices, plans, tenants.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proxy.config.secret import SecretSource

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
HOST_PORT = re.compile(r"^(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\]):(?P<port>[0-9]{1,5})$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    listen: str = "127.0.0.1:8080"
    ops_listen: str = "0.0.0.0:9090"
    data_dir: str = "./data"
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    max_json_depth: int = Field(64, ge=4, le=512)
    max_line_size: int = Field(8190, ge=1024, le=65536)
    max_field_size: int = Field(16384, ge=4096, le=65536)  # real JWTs with many claims exceed 8 KB
    max_headers: int = Field(100, ge=16, le=256)
    keepalive_timeout_s: float = Field(15.0, gt=0, le=600)  # idle keep-alive AND the slow-header deadline (aiohttp arms it at connect)
    body_timeout_s: float = Field(30.0, gt=0, le=600)
    upstream_connect_timeout_s: float = Field(10.0, gt=0, le=120)
    upstream_read_timeout_s: float = Field(120.0, gt=0, le=3600)  # per read: a healthy slow stream lives on
    sse_keepalive_s: float = Field(15.0, ge=0, le=300)  # comment lines while the upstream is silent; 0 = off
    max_upstream_line_bytes: int = Field(1_048_576, ge=4096, le=16 * 1_048_576)
    max_upstream_body_bytes: int = Field(32 * 1_048_576, ge=65536)
    drain_timeout_s: float = Field(25.0, ge=0, le=600)
    max_in_flight: int = Field(1024, ge=1)
    # Memory soft limit (Envoy's overload manager, one action): while the process's RSS is above it,
    # new requests get 503 + Retry-After before any work; requests in flight finish. None = off.
    max_rss_mib: int | None = Field(None, ge=32)
    rss_check_s: float = Field(1.0, gt=0, le=60)


class AuthConfig(Strict):
    issuer: str
    audience: str | list[str]
    algorithms: list[Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]]
    key: SecretSource | None = None  # HMAC secret or PEM public key
    jwks_url: str | None = None
    jwks_min_refresh_s: float = Field(60.0, ge=1)
    jwks_cache_s: float = Field(3600.0, ge=10)
    leeway_s: int = Field(30, ge=0, le=300)
    max_age_s: int | None = Field(None, ge=1)  # reject tokens issued longer ago than this
    tenant_claim: str = "tenant"
    scope_claim: str = "scope"
    tenant_header: str = "X-Tenant-ID"
    required_typ: str | None = None  # e.g. "at+jwt" to refuse ID tokens
    require_claims: list[str] = ["exp", "iss", "aud", "sub"]

    @model_validator(mode="after")
    def _one_key_source(self):
        if (self.key is None) == (self.jwks_url is None):
            raise ValueError("auth needs exactly one of key or jwks_url")
        hmac = {a for a in self.algorithms if a.startswith("HS")}
        if hmac and len(hmac) != len(self.algorithms):
            raise ValueError("do not mix HMAC (HS*) and public-key algorithms: that invites key confusion")
        if hmac and self.jwks_url:
            raise ValueError("HS* algorithms need a shared secret key, not a JWKS URL")
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self.tenant_header):
            raise ValueError("tenant_header must be a plain header name")
        return self


class ProviderAttributes(Strict):
    baa: bool = False
    region: str | None = None
    no_train: bool = False


class ProviderConfig(Strict):
    base_url: str
    kind: Literal["openai", "azure", "anthropic_compat"] = "openai"
    api_key: SecretSource | None = None
    api_version: str | None = None  # azure
    attributes: ProviderAttributes = ProviderAttributes()
    models: dict[str, str] = {}  # public model name -> provider's model/deployment name

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("base_url may not carry credentials, a query or a fragment")
        return v.rstrip("/")


class EgressConfig(Strict):
    allow: list[str] = []  # host:port, exact
    allow_private_ips: list[str] = []  # CIDRs the resolved IP may be in (tests: 127.0.0.0/8)

    @field_validator("allow")
    @classmethod
    def _host_ports(cls, v: list[str]) -> list[str]:
        for item in v:
            if not HOST_PORT.match(item):
                raise ValueError(f"{item!r} is not host:port (lowercase host, explicit port)")
        return v

    @field_validator("allow_private_ips")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for item in v:
            ipaddress.ip_network(item, strict=False)
        return v


class ModelConfig(Strict):
    provider: str | None = None  # None: any provider that lists the model
    input_per_1m_usd: float = Field(ge=0)
    output_per_1m_usd: float = Field(ge=0)
    max_output_tokens: int = Field(4096, ge=1)
    context_tokens: int = Field(128_000, ge=1)
    encoding: Literal["o200k_base", "cl100k_base", "bytes"] = "o200k_base"
    kind: Literal["chat", "embedding", "completion"] = "chat"


class PlanConfig(Strict):
    models: list[str]
    monthly_interactions: int | None = Field(None, ge=0)  # None = unlimited
    max_tokens_per_request: int = Field(4000, ge=1)
    monthly_budget_usd: float | None = Field(None, ge=0)
    over_cap: Literal["clamp", "reject"] = "clamp"  # a request asking above max_tokens_per_request
    upgrade_hint: str = ""


class TenantConfig(Strict):
    plan: str
    require: list[Literal["baa", "no_train"]] = []
    regions: list[str] = []  # allowed provider regions; empty = any
    pii: Literal["redact", "block"] = "redact"
    providers: list[str] = []  # preference order; empty = policy order
    system_prompt: str | None = None  # the tenant's configured system prompt (leak fingerprint)
    identifiers: list[str] = []  # account numbers, domains: other tenants must never see these


class MetricsConfig(Strict):
    tenant_label: bool = False  # per-tenant labels only when asked: bounded cardinality


class PolicyModel(Strict):
    version: Literal[1]
    server: ServerConfig = ServerConfig()
    auth: AuthConfig
    providers: dict[str, ProviderConfig]
    egress: EgressConfig = EgressConfig()
    models: dict[str, ModelConfig]
    plans: dict[str, PlanConfig]
    tenants: dict[str, TenantConfig]
    metrics: MetricsConfig = MetricsConfig()
    pipeline: list[dict[str, Any]]


def reference_errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-references between sections, checked on the raw data so they are reported
    together with the field errors (each with the location of the bad reference)."""
    out: list[tuple[tuple[Any, ...], str]] = []

    def names(section: str) -> set[str]:
        value = data.get(section)
        return set(value) if isinstance(value, dict) else set()

    plans, providers, models = names("plans"), names("providers"), names("models")
    for tid, t in (data.get("tenants") or {}).items() if isinstance(data.get("tenants"), dict) else ():
        if not isinstance(tid, str) or not TENANT_ID.match(tid):
            out.append((("tenants", tid), f"tenant id {tid!r} must match {TENANT_ID.pattern}"))
        if not isinstance(t, dict):
            continue
        if isinstance(t.get("plan"), str) and t["plan"] not in plans:
            out.append((("tenants", tid, "plan"), f"unknown plan {t['plan']!r}"))
        for i, p in enumerate(t.get("providers") or []):
            if p not in providers:
                out.append((("tenants", tid, "providers", i), f"unknown provider {p!r}"))
    for pname, plan in (data.get("plans") or {}).items() if isinstance(data.get("plans"), dict) else ():
        for i, m in enumerate(plan.get("models") or [] if isinstance(plan, dict) else []):
            if m not in models:
                out.append((("plans", pname, "models", i), f"unknown model {m!r}"))
    for mname, m in (data.get("models") or {}).items() if isinstance(data.get("models"), dict) else ():
        if isinstance(m, dict) and m.get("provider") is not None and m["provider"] not in providers:
            out.append((("models", mname, "provider"), f"unknown provider {m['provider']!r}"))
    for i, s in enumerate(data.get("pipeline") or []):
        if not isinstance(s, dict) or not isinstance(s.get("type"), str):
            out.append((("pipeline", i), "every pipeline entry needs a string `type`"))
    return out


# ------------------------------------------------------------- compiled form


@dataclass(frozen=True)
class ProviderTarget:
    """A provider resolved for one call: where to send it and with which key."""

    name: str
    config: ProviderConfig
    host: str
    port: int
    scheme: str
    api_key: str | None
    upstream_model: str


@dataclass(frozen=True)
class TenantPolicy:
    id: str
    config: TenantConfig
    plan_name: str
    plan: PlanConfig

    def may_use(self, model: str) -> bool:
        return model in self.plan.models


@dataclass(frozen=True)
class CompiledPolicy:
    model: PolicyModel
    source_path: Path | None
    digest: str  # sha256 of the policy file bytes: the audit record's policy version
    tenants: dict[str, TenantPolicy]
    provider_keys: dict[str, str | None]
    stage_configs: tuple[Any, ...] = field(default=())

    @property
    def server(self) -> ServerConfig:
        return self.model.server

    @property
    def base_dir(self) -> Path:
        return self.source_path.parent if self.source_path else Path.cwd()


def provider_endpoint(cfg: ProviderConfig) -> tuple[str, str, int]:
    parts = urlsplit(cfg.base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname.lower(), port


def policy_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
