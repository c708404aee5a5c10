"""Stage `audit`: one signed, hash-chained record per exchange (denied ones included).

Put it LAST in the pipeline: on the request path it sees the text as it will
leave (after tokenization), on the response path it runs FIRST and sees what
the provider sent, and its on_complete runs after budget settled. The stage
only gathers facts; proxy/audit/ builds, seals, writes and verifies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from proxy.audit import layout
from proxy.audit.content import SubjectKeys
from proxy.audit.digest import Capture, texts_of
from proxy.audit.keyring import PRIVATE_SUFFIX, Signer, generate_keypair, load_private_key
from proxy.audit.query import Query, QueryError, run as run_query
from proxy.audit.record import build_record, credentials_of
from proxy.audit.refusal import RefusalLimiter, refusal_record
from proxy.audit.seal import ProcessSealer
from proxy.audit.writer import AuditWriter, WriterOptions
from proxy.config.secret import SecretSource
from proxy.pipeline.deny import Deny, bad_request, unauthorized, unavailable
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage, StageConfig
from proxy.wire.event import Event

WRITER_KEY = "writer"
log = logging.getLogger("ramparts.audit")


class AuditConfig(StageConfig):
    type: str = "audit"
    on_error: Literal["closed", "open"] = "closed"  # sink overloaded/unwritable: 503 new requests | serve + alarm
    dir: str | None = None  # default: <server.data_dir>/audit
    checkpoints_dir: str | None = None  # default: <dir>/checkpoints; a separate volume meant to be shipped elsewhere
    chain_id: str | None = None  # default: the hostname (pod name); must be unique per writer
    signing_key: SecretSource | None = None  # writer key: checkpoints, file headers, tenants without a key
    tenant_keys: dict[str, SecretSource] = {}
    sealer: Literal["thread", "process"] = "thread"  # process: sealing CPU off the event loop's GIL
    fsync: Literal["batch", "interval", "off"] = "batch"
    fsync_interval_s: float = Field(1.0, gt=0, le=60)
    queue_size: int = Field(10_000, ge=1, le=1_000_000)
    checkpoint_every: int = Field(1000, ge=1, le=1_000_000)
    checkpoint_interval_s: float = Field(60.0, gt=0, le=86_400)
    retain_content: bool = False  # keep prompt/response text, encrypted per subject (erasable)
    content_key: SecretSource | None = None  # key-encryption key for the per-subject keys
    legal_hold: dict[str, list[str]] = {}  # tenant -> subjects whose records may not be erased
    query_limit: int = Field(100, ge=1, le=1000)  # default page size of GET /v1/audit
    # Unauthenticated refusals (401, 404, 503 overloaded, ...): the first N of each window get their
    # own record, the rest are counted into refusal_summary records (proxy/audit/refusal.py).
    refusals_per_window: int = Field(100, ge=0, le=1_000_000)
    refusal_window_s: float = Field(60.0, gt=0, le=86_400)

    @field_validator("chain_id")
    @classmethod
    def _chain(cls, v: str | None) -> str | None:
        if v is not None and not layout.CHAIN_ID.match(v):
            raise ValueError("chain_id: letters, digits, '.', '_' and '-' only")
        return v

    @model_validator(mode="after")
    def _content(self):
        if self.retain_content and self.content_key is None:
            raise ValueError("retain_content needs content_key (the key that wraps per-subject keys)")
        return self


class AuditStage(Stage):
    type = "audit"
    Config = AuditConfig
    local_routes = {"/v1/audit": "ai:audit"}

    def __init__(self, config: AuditConfig, policy, services) -> None:
        super().__init__(config, policy, services)
        self.dir = Path(config.dir) if config.dir else Path(services.data_dir) / "audit"
        if not self.dir.is_absolute() and config.dir:
            self.dir = policy.base_dir / self.dir
        self.checkpoints_dir = self.dir / layout.CHECKPOINTS
        if config.checkpoints_dir:
            self.checkpoints_dir = Path(config.checkpoints_dir)
            if not self.checkpoints_dir.is_absolute():
                self.checkpoints_dir = policy.base_dir / self.checkpoints_dir
        unknown = sorted(set(config.tenant_keys) - set(policy.tenants))
        if unknown:  # a typo here would quietly sign that tenant's records with the writer key
            raise ValueError(f"audit.tenant_keys names unknown tenant(s): {', '.join(unknown)}")
        self._keep = config.retain_content
        self._provider_keys = tuple(k for k in policy.provider_keys.values() if k)
        self._options = WriterOptions(
            fsync=config.fsync, fsync_interval_s=config.fsync_interval_s, queue_size=config.queue_size,
            hard_limit=config.queue_size + max(policy.server.max_in_flight, config.queue_size),
            checkpoint_every=config.checkpoint_every, checkpoint_interval_s=config.checkpoint_interval_s)
        self.writer: AuditWriter | None = None
        self.refusals = RefusalLimiter(config.refusals_per_window, config.refusal_window_s)
        self._windows: asyncio.Task | None = None

    async def start(self) -> None:
        """Load keys (fail to start if one is unreadable), recover the chain, start the writer task."""
        self.writer = await asyncio.to_thread(self._build_writer)
        await self.writer.start()
        self._windows = asyncio.ensure_future(self._close_refusal_windows())

    def _build_writer(self) -> AuditWriter:
        c, base = self.config, self.policy.base_dir
        keys_dir = self.dir / layout.KEYS
        if c.signing_key is not None:
            writer = Signer.from_private(load_private_key(c.signing_key.resolve_bytes(base)))
        elif (keys_dir / (WRITER_KEY + PRIVATE_SUFFIX)).exists():
            writer = Signer.from_private(load_private_key((keys_dir / (WRITER_KEY + PRIVATE_SUFFIX)).read_bytes()))
        else:  # no key configured: generate one next to the log; pin its .pub elsewhere to make it count
            writer = generate_keypair(keys_dir, WRITER_KEY)
        tenants = {t: Signer.from_private(load_private_key(s.resolve_bytes(base))) for t, s in c.tenant_keys.items()}
        keys_dir.mkdir(parents=True, exist_ok=True)
        for s in (writer, *tenants.values()):  # publish public keys (a convenience copy, not the pin)
            pub = keys_dir / (s.kid.replace(":", "-") + ".pub")
            if not pub.exists():
                pub.write_bytes(s.public_pem())
        subject_keys, kek = None, None
        if c.retain_content:
            kek = c.content_key.resolve_bytes(base)
            subject_keys = SubjectKeys(self.dir / layout.SUBJECT_KEYS, kek)
        sealer = None
        if c.sealer == "process":
            sealer = ProcessSealer(writer, tenants, self.dir / layout.SUBJECT_KEYS, kek, subject_keys)
        return AuditWriter(self.dir, c.chain_id, writer, tenants, self._options, self.services.metrics, subject_keys,
                           sealer=sealer, checkpoints_dir=self.checkpoints_dir)

    async def stop(self) -> None:
        """Flush the queue and write a final signed checkpoint (after the handler drained)."""
        if self._windows is not None:
            self._windows.cancel()
            self._windows = None
        if self.writer is not None:
            for summary in self.refusals.roll(force=True):  # the last window's counts
                self.writer.submit(summary)
            await self.writer.stop()

    async def _close_refusal_windows(self) -> None:
        """Write a window's refusal summaries soon after it closes, even if no refusal follows."""
        while True:
            await asyncio.sleep(self.config.refusal_window_s / 4)
            for summary in self.refusals.roll():
                self.writer.submit(summary)

    def audit_refusal(self, *, request_id: str, status: int, code: str | None, route: str, method: str | None,
                      client: str | None, headers: Any = None) -> None:
        """A request refused before it became an exchange (framing, 404/405, draining, over capacity,
        memory pressure, malformed HTTP): a `refusal` record, or only a count once the window's quota
        of individual records is spent. Never the token, the body or the raw path."""
        if self.writer is None:
            return
        admit, closed = self.refusals.admit(status, code, route, client)
        for summary in closed:
            self.writer.submit(summary)
        if admit:
            raw = headers.get(self.policy.model.auth.tenant_header) if headers is not None else None
            self.writer.submit(refusal_record(request_id=request_id, status=status, code=code, route=route, method=method,
                                              client=client, claimed_tenant=raw if isinstance(raw, str) else None))

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Last on the way in: refuse while the sink is unhealthy (fail closed); keep the outgoing prompt's text."""
        w = self.writer
        if w is not None and w.overloaded and self.config.on_error == "closed":
            return unavailable("the audit log is unavailable; retry shortly", "audit_unavailable", retry_after=2)
        ex.state["audit"] = Capture(texts_of(ex.route, ex.body))  # nothing edits the body after the last stage
        return None

    async def on_response_event(self, ex: Exchange, event: Event) -> list[Event]:
        """First on the way out: keep a reference to what the provider sent; never changes the event."""
        capture = ex.state.get("audit")
        if capture is not None and event.data is not None:
            capture.response.append(event.data)
        return [event]

    async def on_complete(self, ex: Exchange) -> None:
        """Always, after the other stages: build the record and queue it (digests happen in the writer)."""
        capture: Capture | None = ex.state.get("audit")
        if capture is None:  # denied before reaching this stage: digest what was asked, if anything
            texts = texts_of(ex.route, ex.body)
            capture = Capture(texts if texts else None)
        if self.writer is None:  # never started (the app failed to start): say so, do not drop silently
            self.services.metrics.audit_failures.inc()
            log.error("audit stage not started: record of request %s not written", ex.request_id)
            return
        if ex.identity is None:  # refused at authentication: free for the caller, so bounded per window
            reason = ex.denied[1] if ex.denied else ex.outcome
            admit, closed = self.refusals.admit(ex.state.get("refusal_status") or 0, reason, ex.route, ex.peer)
            for summary in closed:
                self.writer.submit(summary)
            if not admit:
                return
        record = build_record(ex, secrets=credentials_of(ex, self._provider_keys))
        keep = self._keep and ex.identity is not None
        self.writer.submit(record, functools.partial(capture.apply, keep_text=keep))

    async def serve_local(self, ex: Exchange, query: dict[str, str]) -> tuple[int, Any]:
        """GET /v1/audit?from=&to=&subject=&limit=: the caller's own tenant's records only."""
        if ex.identity is None:
            return 401, unauthorized("authentication required").body()
        try:
            q = Query.from_params(ex.identity.tenant, query, self.config.query_limit)
        except QueryError as e:
            return 400, bad_request(str(e), "invalid_query").body()
        return 200, await asyncio.to_thread(run_query, self.dir, q)


STAGE = AuditStage
