"""Stage `pii`: tokenize PII before the provider sees it, restore it in the answer.

Request: every text carrier (wire.openai.request_carriers, system prompt included) is
scanned with the tenant's detector; values become `<TYPE_N>` tokens from a per-request
vault (embeddings: one-way, nothing to restore). Tenants with `pii: block` get a 400
naming the entity types instead, and no upstream call.
Response: a TextStreamEditor with one SlotRestorer per slot puts the values back,
streamed or not, by the same code. The vault is wiped in on_complete.
Detection logic lives in proxy/pii/; this file only wires it to the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

from proxy.config.secret import SecretError
from proxy.pii.detector import DetectionBudgetExceeded, Detector, Span
from proxy.pii.recognizer import offline_tld_extractor
from proxy.pii.restorer import Restorer
from proxy.pii.settings import PiiSettings
from proxy.pii.tokenizer import tokenize
from proxy.pii.vault import Vault, tenant_key
from proxy.pipeline.deny import Deny, unavailable
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage, StageConfig
from proxy.wire.event import Event
from proxy.wire.openai import get_at, request_carriers, set_at
from proxy.wire.text_stream import TextStreamEditor

log = logging.getLogger("ramparts.pii")
MIN_SECRET_BYTES = 32


class PiiConfig(StageConfig, PiiSettings):
    type: str = "pii"


@dataclass
class _PiiState:
    vault: Vault
    restorer: Restorer | None
    editor: TextStreamEditor | None


class PiiStage(Stage):
    type = "pii"
    Config = PiiConfig

    def __init__(self, config: PiiConfig, policy, services) -> None:
        super().__init__(config, policy, services)
        if config.secret is None:
            raise ValueError("pii: `secret: {from_env: NAME}` (or from_file) is required: token tags are keyed per tenant")
        try:
            secret = config.secret.resolve_bytes(policy.base_dir)
        except SecretError as e:
            raise ValueError(f"pii: secret: {e}") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"pii: the secret must be at least {MIN_SECRET_BYTES} bytes")
        unknown = sorted(set(config.tenants) - set(policy.tenants))
        if unknown:
            raise ValueError(f"pii: tenants {unknown} are not in the policy's tenants")
        # Compiled once: one detector for the defaults, one per tenant with overrides.
        tld = offline_tld_extractor()  # one parsed suffix list for every tenant's detector
        self._default = Detector(config.for_tenant(None), policy.base_dir, tld)
        self._detectors = {tid: Detector(config.for_tenant(tid), policy.base_dir, tld) for tid in config.tenants}
        self._keys = {tid: tenant_key(secret, tid) for tid in policy.tenants}
        self._executor_min = config.executor_min_chars
        self._budget = config.max_detect_seconds
        self._counters: dict[tuple[str, str], object] = {}  # (entity, decision) -> metric child
        self._seconds = services.metrics.stage_seconds.labels(self.type)

    def _count(self, entity: str, decision: str, n: int) -> None:
        """pii_entities{entity, decision} += n; the labelled child is looked up once per pair."""
        child = self._counters.get((entity, decision))
        if child is None:
            child = self._counters[(entity, decision)] = self.services.metrics.pii_entities.labels(entity, decision)
        child.inc(n)

    def detector_for(self, tenant: str) -> Detector:
        return self._detectors.get(tenant, self._default)

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Scan every carrier; block (400) for `pii: block` tenants, else tokenize in place."""
        if ex.body is None:
            return None  # no body, no text (the handler answers /v1/models itself)
        tenant = ex.tenant
        if tenant is None or tenant.id not in self._keys:  # fail closed: keys are per tenant
            return Deny(500, "pii: no tenant identity for this request", "server_error", "misconfigured", reason="no_identity")
        carriers = request_carriers(ex.route, ex.body)
        if not carriers:
            return None
        texts = [get_at(ex.body, c.path) for c in carriers]
        detector = self.detector_for(tenant.id)
        started = time.perf_counter()
        try:
            size = sum(len(t) for t in texts if isinstance(t, str))
            if detector.ner is not None and size >= self._executor_min:
                # spaCy runs in one long call: large texts go to a worker thread.
                found = await asyncio.get_running_loop().run_in_executor(None, _find_all, detector, texts, self._budget)
            elif size <= INLINE_CHARS and detector.ner is None:
                found = _find_all(detector, texts, self._budget)  # a few ms at worst: no slices needed
            else:
                found = await _find_all_cooperatively(detector, texts, self._budget)
        except DetectionBudgetExceeded:
            ex.decide(self.type, "scan_limit")
            return Deny(413, "The request's text is too large or too dense to scan for personal data; send less text.",
                        "invalid_request_error", "pii_scan_limit", reason="pii_scan_limit")
        except Exception:
            log.exception("pii detection failed (request %s)", ex.request_id)
            if self.config.on_error == "open":
                ex.decide(self.type, "error_open")
                return None
            return unavailable("PII detection is unavailable; the request was not sent", "pii_unavailable")
        finally:
            self._seconds.observe(time.perf_counter() - started)
        counts: Counter[str] = Counter(sp.entity for spans in found for sp in spans)
        if not counts:
            return None
        if tenant.config.pii == "block":
            for entity, n in counts.items():
                self._count(entity, "blocked", n)
            ex.decide(self.type, "blocked", counts=dict(counts))
            names = ", ".join(sorted(counts))
            return Deny(400, f"This request contains personal data that this tenant may not send to a model provider: {names}.",
                        "invalid_request_error", "pii_blocked", reason="pii_blocked")
        vault = Vault(self._keys[tenant.id], "\n".join(texts))
        for carrier, text, spans in zip(carriers, texts, found):
            if spans:
                set_at(ex.body, carrier.path, tokenize(text, spans, vault))
        for entity, n in counts.items():
            self._count(entity, "tokenized", n)
        ex.decide(self.type, "tokenized", counts=dict(counts))
        if ex.route == "embeddings":
            vault.wipe()  # one-way: nothing comes back to restore
            return None
        restorer = Restorer(vault)
        ex.state[self.type] = _PiiState(vault, restorer, TextStreamEditor(restorer.rewriter))
        return None

    async def on_response_event(self, ex: Exchange, event: Event) -> list[Event]:
        """Restore issued tokens in every text slot; holds back only a possible token suffix."""
        st: _PiiState | None = ex.state.get(self.type)
        if st is None or st.editor is None:
            return [event]
        return st.editor.edit(event)

    async def on_response_end(self, ex: Exchange) -> list[Event]:
        """Flush held text: a dangling partial token goes out as the literal text it was."""
        st: _PiiState | None = ex.state.get(self.type)
        if st is None or st.editor is None:
            return []
        return st.editor.end()

    def wants_events(self, ex: Exchange) -> bool:
        return self.type in ex.state  # tokens were issued: the answer needs restoring

    def wants_complete(self, ex: Exchange) -> bool:
        return self.type in ex.state  # a vault to wipe (nothing was tokenized otherwise)

    async def on_complete(self, ex: Exchange) -> None:
        """Record what was restored (counts only) and wipe the request's token map."""
        st: _PiiState | None = ex.state.pop(self.type, None)
        if st is None:
            return
        if st.restorer is not None and st.restorer.restored:
            restored = dict(st.restorer.restored)
            for entity, n in restored.items():
                self._count(entity, "restored", n)
            ex.decide(self.type, "restored", counts=restored)
        st.vault.wipe()


SLICE_S = 0.002  # longest stretch of detection between two yields to the event loop
# Requests with at most this much text are scanned in one go, like one step of the cooperative
# path (one window of at most MAX_WINDOW characters): no longer a stall than a step is anyway.
INLINE_CHARS = 1024


async def _find_all_cooperatively(detector: Detector, texts: list[str], budget_s: float) -> list[list[Span]]:
    """Spans per text, yielding to the event loop every ~2 ms of detection: a large request
    never stalls the other streams, and nothing runs in a thread (no GIL contention)."""
    deadline = time.perf_counter() + budget_s
    out: list[list[Span]] = []
    mark = time.perf_counter()
    for t in texts:
        if not isinstance(t, str) or detector.nothing_to_find(t):
            out.append([])
            continue
        left = deadline - time.perf_counter()
        if left <= 0:
            raise DetectionBudgetExceeded(f"PII detection took longer than {budget_s:.2f}s")
        steps = detector.steps(t, left)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                out.append(done.value)
                break
            now = time.perf_counter()
            if now - mark > SLICE_S:
                await asyncio.sleep(0)
                mark = time.perf_counter()
    return out


def _find_all(detector: Detector, texts: list[str], budget_s: float) -> list[list[Span]]:
    """Spans per text; one CPU budget for the whole request (DetectionBudgetExceeded past it)."""
    deadline = time.perf_counter() + budget_s
    out = []
    for t in texts:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise DetectionBudgetExceeded(f"PII detection took longer than {budget_s:.2f}s")
        out.append(detector.find(t, left) if isinstance(t, str) else [])
    return out


STAGE = PiiStage
