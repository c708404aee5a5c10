"""The stage interface. Base hooks are no-ops; the chain calls only overridden ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from proxy.pipeline.deny import Deny
from proxy.pipeline.exchange import Exchange
from proxy.wire.event import Event

if TYPE_CHECKING:  # pragma: no cover
    from proxy.config.policy import CompiledPolicy
    from proxy.metrics import Metrics


class StageConfig(BaseModel):
    """Base of every `<Name>Config`: strict, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    on_error: str = "closed"  # what to do when the stage's own backend fails: closed | open


@dataclass
class StageServices:
    """What the app gives every stage: no globals, everything hangs off the app."""

    metrics: "Metrics"
    data_dir: Path
    extras: dict[str, Any] = field(default_factory=dict)  # shared resources (e.g. http session)


class Stage:
    type: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    # Endpoints the proxy answers itself (no upstream), e.g. {"/v1/usage": "ai:completion"}:
    # path -> scope required. The handler authenticates with the tenant stage, then calls serve_local.
    local_routes: ClassVar[dict[str, str]] = {}

    def __init__(self, config: StageConfig, policy: "CompiledPolicy", services: StageServices) -> None:
        self.config = config
        self.policy = policy
        self.services = services

    async def start(self) -> None:
        """Called once when the app starts (open stores, load models)."""

    async def stop(self) -> None:
        """Called once at shutdown, after in-flight exchanges drained."""

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Before the upstream call, in policy order. May edit `ex.body`; Deny stops the call."""
        return None

    async def on_response_headers(self, ex: Exchange) -> Deny | None:
        """Upstream answered with a status and headers; nothing was sent to the client yet."""
        return None

    async def on_response_event(self, ex: Exchange, event: Event) -> list[Event]:
        """One response event, in reverse policy order. [] holds it back, [e] passes it.

        May raise DenyError: before headers were sent that becomes an error response,
        after it is a final SSE error event and the stream ends without [DONE].
        """
        return [event]

    async def on_response_events(self, ex: Exchange, events: list[Event]) -> list[Event]:
        """Several events that arrived together (one upstream read), in order. Override only to
        work on them at once (Chain.run_events calls on_response_event per event otherwise); must
        give what on_response_event would give event by event, or less sooner (a hold-back may
        differ, never what is finally sent). A DenyError raised here may carry `passed`: the events
        this stage let through before the one it denies (they still reach the client)."""
        out: list[Event] = []
        for ev in events:
            out.extend(await self.on_response_event(ex, ev))
        return out

    async def on_response_end(self, ex: Exchange) -> list[Event]:
        """The upstream body ended: flush anything held back."""
        return []

    async def on_complete(self, ex: Exchange) -> None:
        """Always runs (success, deny, error, disconnect), shielded from cancellation."""

    def wants_events(self, ex: Exchange) -> bool:
        """False when on_response_event would pass every event through unchanged and
        on_response_end would add nothing for this exchange (asked once, after the request
        hooks ran). Must be exact, never a guess."""
        return True

    def wants_complete(self, ex: Exchange) -> bool:
        """False when on_complete has nothing to do for this exchange: the chain then skips it
        (and with no stage left, creates no shielded task). Must be exact, never a guess."""
        return True

    async def serve_local(self, ex: Exchange, query: dict[str, str]) -> tuple[int, Any]:
        """Answer one of `local_routes` for the authenticated `ex.identity`: (status, JSON)."""
        return 404, {"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}}
