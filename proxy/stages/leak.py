"""Stage `leak`: output leak filtering on the stream with a bounded hold-back.

Detectors (proxy/leak/): secrets, the system prompt's fingerprint (the tenant's
configured one and the one sent in the request), canaries, other tenants'
identifiers, per-tenant moderation terms, markdown-image exfiltration, ANSI
escapes. Per detector and per tenant the action is redact | replace | block | off.

Position: after `pii` in the pipeline. Request hooks run in policy order, so the
system prompt this stage fingerprints is already tokenized by pii; response hooks
run in reverse, so this stage sees the answer before pii restores it. Both sides
are in the same (tokenized) form, and the user's own PII is never mistaken for a leak.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from pydantic import Field

from proxy.leak.cut import cut_body_choice, cut_chunk, drop_choices, is_empty_chunk
from proxy.leak.flow import LeakFlow
from proxy.leak.hit import LeakBlocked
from proxy.leak.rules import PrintCache, TenantInfo, compile_rules
from proxy.leak.secret import scrub_error_body, secret_detector
from proxy.leak.settings import (LeakActions, LeakCrossTenant, LeakImages, LeakModeration, LeakPromptSettings,
                                 LeakSecrets, LeakTenantSettings)
from proxy.pipeline.deny import Deny, DenyError
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage, StageConfig
from proxy.wire.event import Event
from proxy.wire.openai import get_at, request_carriers
from proxy.wire.text_stream import TextStreamEditor

_TEXT_ROUTES = ("chat", "completions")
_OFF_LOOP_CHARS = 8192  # longer sent system prompts (~1 ms+ to fingerprint) are compiled in a thread


class LeakConfig(StageConfig):
    type: str = "leak"
    actions: LeakActions = LeakActions()
    tenants: dict[str, LeakTenantSettings] = {}
    replace_message: str = Field("I can't share that.", max_length=2000)
    markers: dict[str, str] = {}  # detector -> marker; default "[REDACTED:<detector>]", ansi ""
    secrets: LeakSecrets = LeakSecrets()
    system_prompt: LeakPromptSettings = LeakPromptSettings()
    canaries: list[str] = []
    cross_tenant: LeakCrossTenant = LeakCrossTenant()
    markdown_image: LeakImages = LeakImages()
    moderation: LeakModeration = LeakModeration()
    max_hold_chars: int = Field(16384, ge=256, le=1_048_576)


class LeakStage(Stage):
    type = "leak"
    Config = LeakConfig

    def __init__(self, config, policy, services) -> None:
        super().__init__(config, policy, services)
        infos = {tid: TenantInfo(t.config.system_prompt, tuple(t.config.identifiers)) for tid, t in policy.tenants.items()}
        self._rules = compile_rules(config, infos)
        self._prints = PrintCache(config.system_prompt)
        self._error_secrets = secret_detector([(p.name, p.regex, p.max_len, tuple(p.anchors)) for p in config.secrets.patterns])
        self._seconds = services.metrics.stage_seconds.labels(self.type)
        self._sent_prompts = config.system_prompt.request
        self._max_sent_chars = config.system_prompt.max_request_chars

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Fingerprint the system/developer messages the request sends (already pii-tokenized).
        The exchange's state is a LeakFlow; its TextStreamEditor is made at the first event that
        needs one (_editor)."""
        rules = self._rules.get(ex.tenant_id or "")
        if rules is None or ex.route not in _TEXT_ROUTES or not isinstance(ex.body, dict):
            return None
        prints = ()
        if self._sent_prompts and rules.actions.get("system_prompt") != "off":
            text = system_text(ex.route, ex.body)[: self._max_sent_chars]
            if text and not text.isspace():
                key, hit, fp = self._prints.find(text)  # the usual case: the app's usual prompt, compiled before
                if not hit:
                    fp = await self._fingerprint(key, text)
                if fp is not None:
                    prints = (fp,)
        ex.state[self.type] = LeakFlow(rules, prints)
        return None

    async def _fingerprint(self, key, text: str):
        """A prompt seen for the first time (cached after); a long one is compiled off the event loop."""
        fp = await asyncio.to_thread(self._prints.compile, text) if len(text) > _OFF_LOOP_CHARS else self._prints.compile(text)
        self._prints.put(key, fp)
        return fp

    @staticmethod
    def _editor(flow: LeakFlow) -> TextStreamEditor:
        editor = flow.editor
        if editor is None:
            editor = flow.editor = TextStreamEditor(flow.rewriter)
        return editor

    async def on_response_event(self, ex: Exchange, event: Event) -> list[Event]:
        """Scan the answer's text slots; emit only what no match may still need.

        Error bodies (status >= 400) are scrubbed of keys and key fragments. A `block`
        hit raises DenyError (before headers: an error response; after: a final SSE
        error event, no [DONE]); `replace` ends the choice with content_filter.
        """
        if ex.response_status is not None and ex.response_status >= 400:
            self._scrub_error(ex, event)
            return [event]
        flow = ex.state.get(self.type)
        if flow is None:
            return [event]
        t = time.perf_counter()
        try:
            if event.kind == "body" and not flow.cut and _clean_body(flow, event.payload):
                return [event]
            out = (flow.editor or self._editor(flow)).edit(event)
        except LeakBlocked as e:
            self._record(ex, flow)
            raise self._blocked(e) from None
        finally:
            flow.seconds += time.perf_counter() - t
        if flow.pending:
            self._record(ex, flow)
        if flow.cut:
            return self._reshape(ex, flow, out, event)
        return out

    async def on_response_events(self, ex: Exchange, events: list[Event]) -> list[Event]:
        """The events of one upstream read: the text of a run of common chunks is scanned in one
        pass (TextStreamEditor.edit_many), not chunk by chunk; what reaches the client is what
        on_response_event per event gives, except: with a block, less (the text of the read before
        the hit stays with the read); with `replace`, when the read also holds the choice's finish,
        possibly more clean text of the answer before the message (the read judges the text as
        ended, so what one event at a time still held only because a match might yet form there,
        like the "[ ](" of a would-be link, is known clean and leaves first; one event at a time it
        is dropped with the rest). Nothing else differs (tests/stages/test_leak.py,
        assert_same_but_a_longer_clean_prefix). Under load one read usually holds a whole short answer."""
        if len(events) == 1 or (ex.response_status is not None and ex.response_status >= 400):
            out: list[Event] = []
            for ev in events:
                out.extend(await self.on_response_event(ex, ev))
            return out
        flow = ex.state.get(self.type)
        if flow is None:
            return events
        t = time.perf_counter()
        out: list[Event] = []
        try:
            done = (flow.editor or self._editor(flow)).edit_many(events, out, flow.has_new_cut)
        except LeakBlocked as e:
            self._record(ex, flow)
            err = self._blocked(e)
            if not flow.cut:
                err.passed = out  # decided before the run that holds the hit
            raise err from None
        finally:
            flow.seconds += time.perf_counter() - t
        if flow.pending:
            self._record(ex, flow)
        if flow.cut:
            out = self._reshape(ex, flow, out, None)
            if done < len(events):  # a choice was cut: the rest one by one (its later deltas are dropped)
                for ev in events[done:]:
                    out.extend(await self.on_response_event(ex, ev))
        return out

    async def on_response_end(self, ex: Exchange) -> list[Event]:
        """The upstream ended (with or without [DONE]): judge and flush every held slot."""
        flow = ex.state.get(self.type)
        if flow is None:
            return []
        t = time.perf_counter()
        try:
            # No editor: no event was fed to a slot (a whole answer judged clean), nothing to flush.
            return self._edit(ex, flow, flow.editor.end, None) if flow.editor is not None else []
        finally:
            flow.seconds += time.perf_counter() - t
            self._observe(flow)

    def wants_complete(self, ex: Exchange) -> bool:
        flow = ex.state.get(self.type)
        return flow is not None and flow.seconds > 0  # time not observed yet (the answer did not end)

    async def on_complete(self, ex: Exchange) -> None:
        flow = ex.state.get(self.type)
        if flow is not None:
            self._observe(flow)

    def _observe(self, flow: LeakFlow) -> None:
        """Once per exchange: the detection time of all its events (one histogram sample, not one per event)."""
        if flow.seconds:
            self._seconds.observe(flow.seconds)
            flow.seconds = 0.0

    def _edit(self, ex: Exchange, flow: LeakFlow, run, event: Event | None) -> list[Event]:
        try:
            out = run()
        except LeakBlocked as e:
            self._record(ex, flow)
            raise self._blocked(e) from None
        self._record(ex, flow)
        if not flow.cut:
            return out
        return self._reshape(ex, flow, out, event)

    @staticmethod
    def _blocked(e: LeakBlocked) -> DenyError:
        return DenyError(Deny(403, "the answer was withheld: it contained content this tenant may not receive",
                              "permission_error", "output_blocked", reason=f"leak_{e.hit.detector}"))

    def _reshape(self, ex: Exchange, flow: LeakFlow, out: list[Event], event: Event | None) -> list[Event]:
        """Cut choices: content_filter now, nothing of theirs later."""
        newly = flow.take_cut()
        earlier = flow.cut.difference(newly)
        kept: list[Event] = []
        template = flow.editor.template if flow.editor is not None else None
        for ev in out:
            payload = ev.payload
            if ev.kind == "body":
                if any([cut_body_choice(payload, i, self.config.replace_message) for i in newly]):
                    ev.mark_changed()
                kept.append(ev)
                continue
            if isinstance(payload, dict):
                had = bool(payload.get("choices"))
                if drop_choices(payload, earlier, newly):
                    if had and is_empty_chunk(payload):
                        continue
                    ev.mark_changed()
            kept.append(ev)
        if newly and not (event is not None and event.kind == "body"):
            tail = [Event.sse_json(cut_chunk(template, i, self.config.replace_message, ex.route)) for i in newly]
            at = next((k for k, ev in enumerate(kept) if ev.is_done), len(kept))
            kept[at:at] = tail
        return kept

    def _record(self, ex: Exchange, flow: LeakFlow) -> None:
        if not flow.pending:
            return
        metrics = self.services.metrics
        for (detector, kind, action), count in flow.take_hits().items():
            metrics.leak_hits.labels(detector, action).inc(count)
            metrics.decision(self.type, action, ex.tenant_id)
            ex.decide(self.type, action, detector=detector, kind=kind, count=count)

    def _scrub_error(self, ex: Exchange, event: Event) -> None:
        if event.data is None:
            return
        raw = event.data.encode()
        try:
            before = orjson.loads(raw)
        except orjson.JSONDecodeError:
            before = raw
        clean = scrub_error_body(raw, self._error_secrets)
        if (clean == raw) if before is raw else (orjson.loads(clean) == before):
            return
        try:
            event.set_payload(orjson.loads(clean))
        except orjson.JSONDecodeError:
            event.data, event.raw = clean.decode(), None
        self.services.metrics.leak_hits.labels("secret", "redact").inc()
        ex.decide(self.type, "redact", detector="secret", kind="error_body", count=1)


def system_text(route: str, body: dict) -> str:
    """The system/developer text a request sends, joined by newlines: every is_system carrier of
    request_carriers. Chat messages that are only a role and a string content (the usual shape)
    are read directly; any other shape of a system message takes the carrier walk."""
    if route == "chat":
        parts = []
        for msg in body.get("messages") or ():
            if isinstance(msg, dict) and msg.get("role") in ("system", "developer"):
                content = msg.get("content")
                if len(msg) > 2 or not isinstance(content, str) or "role" not in msg:
                    parts = None
                    break
                parts.append(content)
        if parts is not None:
            return "\n".join(parts)
    sent = [get_at(body, c.path) for c in request_carriers(route, body) if c.is_system]
    return "\n".join(s for s in sent if isinstance(s, str))


_OTHER_MESSAGE_SLOTS = ("reasoning_content", "reasoning", "refusal", "tool_calls", "function_call")


def lone_body_text(payload) -> str | None:
    """The text of a whole response whose only text slot (response_slots) is one choice's
    message.content; None for any other shape (the general path takes it)."""
    if not isinstance(payload, dict):
        return None
    choices = payload.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or "text" in choice or "delta" in choice:
        return None
    msg = choice.get("message")
    if not isinstance(msg, dict):
        return None
    content = msg.get("content")
    if not isinstance(content, str):
        return None
    for k in _OTHER_MESSAGE_SLOTS:
        if msg.get(k) is not None:
            return None
    return content


def _clean_body(flow: LeakFlow, payload) -> bool:
    """A whole answer with one text: judged in one final pass (TenantRules.is_clean, what a fresh
    scanner's `whole` says). True when nothing is found (it goes out as it came, its bytes kept, no
    editor is made); otherwise the general path scans it again from scratch with the slot's own
    scanner (this pass leaves no trace)."""
    text = lone_body_text(payload)
    return text is not None and flow.rules.is_clean(flow.prints, text)


STAGE = LeakStage
