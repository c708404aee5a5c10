"""Runs the stages: request hooks in policy order, response hooks in reverse (onion)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Sequence

from proxy.pipeline.deny import Deny, DenyError
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage
from proxy.wire.event import Event

log = logging.getLogger("ramparts.chain")


def _overrides(stage: Stage, hook: str) -> bool:
    return getattr(type(stage), hook) is not getattr(Stage, hook)


class Chain:
    def __init__(self, stages: Sequence[Stage], metrics: Any = None) -> None:
        self.stages = tuple(stages)
        self._metrics = metrics  # proxy.metrics.Metrics: stage decisions are counted at completion
        # Worked out once: which stages implement which hook.
        self._request = tuple(s for s in self.stages if _overrides(s, "on_request"))
        self._request_after_auth = tuple(s for s in self._request if s is not (self.stages[0] if self.stages else None))
        self._headers = tuple(s for s in reversed(self.stages) if _overrides(s, "on_response_headers"))
        self._event = tuple(s for s in reversed(self.stages) if _overrides(s, "on_response_event"))
        self._batching = frozenset(s for s in self._event if _overrides(s, "on_response_events"))
        self._end_order = tuple(
            s for s in reversed(self.stages) if _overrides(s, "on_response_event") or _overrides(s, "on_response_end")
        )
        self._complete = tuple(s for s in self.stages if _overrides(s, "on_complete"))

    @property
    def touches_events(self) -> bool:
        return bool(self._event) or any(_overrides(s, "on_response_end") for s in self.stages)

    def touches_events_of(self, ex: Exchange) -> bool:
        """touches_events for this exchange, after its request hooks ran: False when every stage
        with response hooks says (wants_events) it has nothing to do for it, so the caller may
        pass the response through without run_event / run_end."""
        return any(s.wants_events(ex) for s in self._end_order)

    async def start(self) -> None:
        for s in self.stages:
            await s.start()

    async def stop(self) -> None:
        for s in reversed(self.stages):
            try:
                await s.stop()
            except Exception:  # one stage's shutdown error must not skip the others
                log.exception("stage %s failed to stop", s.type)

    async def authenticate(self, ex: Exchange) -> Deny | None:
        """Run the first stage (always `tenant`) alone: identity before the body is read."""
        first = self.stages[0] if self.stages else None
        if first is None or first.type != "tenant":
            return Deny(500, "the pipeline has no tenant stage", "server_error", "misconfigured")
        return await self._request_range(ex, (first,))

    async def run_request(self, ex: Exchange, start: int = 0) -> Deny | None:
        """Request hooks in policy order; start=1 skips the tenant stage already run by authenticate."""
        return await self._request_range(ex, self._request if start == 0 else self._request_after_auth)

    async def _request_range(self, ex: Exchange, stages: tuple[Stage, ...]) -> Deny | None:
        for s in stages:
            try:
                deny = await s.on_request(ex)
            except DenyError as e:
                deny = e.deny
            if deny is not None:
                self._mark_denied(ex, s, deny)
                return deny
        return None

    async def run_response_headers(self, ex: Exchange) -> Deny | None:
        for s in self._headers:
            try:
                deny = await s.on_response_headers(ex)
            except DenyError as e:
                deny = e.deny
            if deny is not None:
                self._mark_denied(ex, s, deny)
                return deny
        return None

    async def run_event(self, ex: Exchange, event: Event) -> list[Event]:
        """Pass one upstream event through every stage (raises DenyError)."""
        events = [event]
        for s in self._event:
            if not events:
                break
            try:
                if len(events) == 1:  # the common case: one event in, no list to build
                    events = await s.on_response_event(ex, events[0])
                    continue
                out: list[Event] = []
                for ev in events:
                    out.extend(await s.on_response_event(ex, ev))
            except DenyError as e:
                self._mark_denied(ex, s, e.deny)
                raise
            events = out
        return events

    async def run_events(self, ex: Exchange, events: list[Event]) -> list[Event]:
        """The events of one upstream read through every stage (raises DenyError): a stage that
        overrides on_response_events gets them at once, the others one by one. On a deny, what
        the denying stage let through before it (e.passed) still goes through the outer stages
        one by one and is set as e.passed for the caller: the same events reach the client as
        with run_event per event (an outer stage's deny on one of them wins, as it would have)."""
        if len(events) == 1:
            return await self.run_event(ex, events[0])
        stages = self._event
        for i, s in enumerate(stages):
            if not events:
                break
            if s in self._batching:
                try:
                    events = await s.on_response_events(ex, events)
                except DenyError as e:
                    # Outer stages first: one of them denying an earlier event would have come first.
                    e.passed = await self._outer(ex, stages[i + 1:], list(getattr(e, "passed", ()) or ()))
                    self._mark_denied(ex, s, e.deny)
                    raise
                continue
            events = await self._each(ex, s, stages[i + 1:], events)
        return events

    async def _each(self, ex: Exchange, s: Stage, outer: tuple[Stage, ...], events: list[Event]) -> list[Event]:
        """`events` through stage `s` one by one; on a deny, what `s` let through before it passes `outer`."""
        out: list[Event] = []
        for ev in events:
            try:
                out.extend(await s.on_response_event(ex, ev))
            except DenyError as e:
                e.passed = await self._outer(ex, outer, out)
                self._mark_denied(ex, s, e.deny)
                raise
        return out

    async def _outer(self, ex: Exchange, stages: tuple[Stage, ...], events: list[Event]) -> list[Event]:
        """`events` through `stages` one by one (what a denying stage let through before its deny)."""
        for i, s in enumerate(stages):
            events = await self._each(ex, s, stages[i + 1:], events)
        return events

    async def run_end(self, ex: Exchange) -> list[Event]:
        """Flush each stage; what an inner stage flushes still passes the outer ones."""
        pending: list[Event] = []
        for s in self._end_order:
            out: list[Event] = []
            if _overrides(s, "on_response_event"):
                for ev in pending:
                    out.extend(await self._guard(ex, s, s.on_response_event(ex, ev)))
            else:
                out = pending
            out.extend(await self._guard(ex, s, s.on_response_end(ex)))
            pending = out
        return pending

    async def run_complete(self, ex: Exchange) -> None:
        """Every stage's on_complete, shielded: a disconnect must not skip settle or audit."""
        if self._metrics is not None:  # synchronous: nothing can interrupt it
            for d in ex.decisions:
                self._metrics.decision(d.stage, d.decision, ex.tenant_id)
        # No task for shield() when no stage has work to protect for this exchange.
        todo = tuple(s for s in self._complete if s.wants_complete(ex)) if self._complete else ()
        if not todo:
            return
        task = asyncio.ensure_future(self._complete_all(ex, todo))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # The caller was cancelled (client gone, shutdown): settle and audit still
                # finish before the caller goes on, so a drain never outruns them.
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError()

    async def _complete_all(self, ex: Exchange, stages: tuple[Stage, ...]) -> None:
        for s in stages:
            try:
                await s.on_complete(ex)
            except Exception:
                log.exception("stage %s on_complete failed (request %s)", s.type, ex.request_id)

    async def _guard(self, ex: Exchange, stage: Stage, coro) -> list[Event]:
        try:
            return await coro
        except DenyError as e:
            self._mark_denied(ex, stage, e.deny)
            raise

    @staticmethod
    def _mark_denied(ex: Exchange, stage: Stage, deny: Deny) -> None:
        if ex.denied is None:
            ex.denied = (stage.type, deny.reason or deny.code or str(deny.status))
        ex.decide(stage.type, "deny", reason=deny.reason or deny.code, status=deny.status)
