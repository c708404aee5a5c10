"""One request/response pair as it moves through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from proxy.config.policy import CompiledPolicy, ProviderTarget, TenantPolicy


@dataclass(frozen=True)
class Identity:
    """Who is calling, as proven by the JWT. Immutable once set on the exchange."""

    tenant: str
    subject: str
    scopes: frozenset[str]
    issuer: str
    jti: str | None = None
    expires_at: int | None = None


@dataclass(frozen=True)
class Decision:
    """What a stage decided, for metrics and the audit record (never secret values)."""

    stage: str
    decision: str  # e.g. allow, deny, flag, reinforce, redact, block, tokenized
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False  # True when the provider sent a usage object
    streamed_chars: int = 0  # output characters seen (estimate when no usage arrives)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Exchange:
    """State of one call. Stages keep their own scratch in `state[stage.type]`."""

    __slots__ = (
        "request_id", "route", "method", "path", "client_headers", "body", "stream",
        "policy", "_identity", "provider", "upstream_url", "upstream_headers",
        "response_status", "response_headers", "extra_response_headers", "usage",
        "outcome", "denied", "decisions", "state", "started", "upstream_started",
        "first_byte_at", "finished", "peer", "headers_sent", "completion_id",
        "client_wants_usage", "proxy_seconds",
    )

    def __init__(self, *, request_id: str, route: str, method: str, path: str,
                 client_headers: Mapping[str, str], policy: "CompiledPolicy", peer: str = "") -> None:
        self.request_id = request_id
        self.route = route  # "chat" | "completions" | "embeddings" | "models" | ...
        self.method = method
        self.path = path
        self.client_headers = client_headers
        self.body: dict[str, Any] | None = None  # parsed request JSON; stages may edit it
        self.stream = False
        self.policy = policy
        self._identity: Identity | None = None
        self.provider: "ProviderTarget | None" = None  # chosen by the egress stage
        self.upstream_url: str | None = None
        self.upstream_headers: dict[str, str] = {}
        self.response_status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.extra_response_headers: dict[str, str] = {}  # stages add e.g. X-RateLimit-*
        self.usage = Usage()
        self.outcome = "pending"  # ok | denied | upstream_error | client_disconnect | cut_stream | error
        self.denied: tuple[str, str] | None = None  # (stage, reason)
        self.decisions: list[Decision] = []
        self.state: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.upstream_started: float | None = None
        self.first_byte_at: float | None = None
        self.finished: float | None = None
        self.peer = peer
        self.headers_sent = False
        self.completion_id: str | None = None
        self.client_wants_usage = False
        self.proxy_seconds = 0.0  # time spent in proxy code (metrics: overhead)

    @property
    def identity(self) -> Identity | None:
        return self._identity

    def set_identity(self, identity: Identity) -> None:
        """Set once by the tenant stage; nothing later may change who is calling."""
        if self._identity is not None:
            raise RuntimeError("identity is already set for this exchange")
        self._identity = identity

    @property
    def tenant_id(self) -> str | None:
        return self._identity.tenant if self._identity else None

    @property
    def tenant(self) -> "TenantPolicy | None":
        return self.policy.tenants.get(self._identity.tenant) if self._identity else None

    @property
    def model(self) -> str | None:
        m = self.body.get("model") if self.body else None
        return m if isinstance(m, str) else None

    def decide(self, stage: str, decision: str, **detail: Any) -> None:
        self.decisions.append(Decision(stage, decision, detail))
