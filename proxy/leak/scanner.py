"""One text stream (one choice's content, one tool call's arguments, ...) through every detector.

`feed` returns what may be emitted now: the text before the earliest point where
any detector's match may still be forming, with `redact` hits replaced by their
marker. A `replace` or `block` hit stops the stream: the text before it is the
last thing emitted. Held text is bounded by `max_hold`; a would-be match that grows
past it stops the slot like `replace` (or `block` if the action for "overflow" is
block): fail closed, never released unscanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from proxy.leak.hit import SEVERITY, Hit

_CONTEXT = 8  # released characters kept so look-behinds (word boundaries) see what came before
# A long would-be match (a PEM block, a JWT) is rescanned whole on every event: quadratic. Past
# _LAZY held characters, new text is only appended until it adds a quarter of what is held
# (at least _LAZY), then everything is scanned again: linear overall, and nothing held is
# released in between, so nothing leaks; only the release of a match that fails is later.
_LAZY = 256
# The per-detector "nothing here" searches are for streamed deltas (a few characters each); a
# whole body goes straight to the detectors, whose own shortcuts look only where they need to.
_QUICK_CHARS = 64


class Detector(Protocol):
    name: str
    max_span: int

    def scan(self, text: str, start: int, final: bool) -> tuple[list[Hit], int]:
        """Complete hits in text[start:] and the index from which a match may still form."""


@dataclass(slots=True)
class Scan:
    text: str  # what may be emitted now
    hits: Sequence[tuple[Hit, str]] = ()  # (hit, action) applied, for decisions
    stop: str | None = None  # "replace" | "block": nothing after `text` may be emitted


class SlotScanner:
    __slots__ = ("_detectors", "_actions", "_markers", "_max_hold", "_held", "_ctx", "_unscanned", "stopped", "_quick")

    def __init__(self, detectors: Sequence[Detector], actions: Mapping[str, str],
                 markers: Mapping[str, str], max_hold: int, quick: tuple | None | bool = False) -> None:
        self._detectors = detectors
        self._actions = actions
        self._markers = markers
        self._max_hold = max_hold
        self._held = ""
        self._ctx = ""
        self._unscanned = 0  # characters appended to `_held` since it was last scanned
        self.stopped = False
        # Every detector's "nothing here" search (see step): (detector, search, segment_only) per
        # detector, or None if one of them has none.
        self._quick = quick_searches(detectors) if quick is False else quick

    @property
    def held(self) -> str:
        return self._held

    def feed(self, text: str) -> Scan:
        out = self.step(text)
        return Scan(out) if out.__class__ is str else out

    def step(self, text: str) -> "str | Scan":
        """`feed`, but when nothing was found and nothing stops the slot (the common case) the result
        is just the text to emit, a str: no Scan is built per event."""
        if self.stopped:
            return ""
        held = self._held
        if not held and not text:
            return ""
        if len(held) > _LAZY:
            grown = self._unscanned + len(text)
            if grown < max(len(held) // 4, _LAZY) and len(held) + len(text) <= self._max_hold:
                self._held = held + text
                self._unscanned = grown
                return ""
        self._unscanned = 0
        buf = held + text if held else text
        quick = self._quick
        if quick is not None and len(buf) <= _QUICK_CHARS:
            # A streamed delta (with what is held): one "nothing here" check per detector. A
            # detector whose check finds nothing would find no hit and hold nothing in this
            # buffer, so only the others scan; with none left, all of it goes out (what _run
            # would decide).
            ctx = self._ctx
            whole = ctx + buf
            busy = None
            for d, search, segment_only in quick:
                if (search(buf) if segment_only else search(whole, len(ctx))) is not None:
                    if busy is None:
                        busy = [d]
                    else:
                        busy.append(d)
            if busy is None:
                self._held = ""
                self._ctx = whole[-_CONTEXT:]
                return buf
            return self._run(buf, final=False, detectors=busy)
        return self._run(buf, final=False)

    def whole(self, text: str) -> "str | Scan":
        """A fresh scanner judges one complete text in one pass (a whole answer): what _run gives
        for it as the final buffer, the text itself when nothing was found."""
        return self._run(text, final=True)

    def finish(self) -> Scan:
        """The stream ended: judge everything held, partial matches included."""
        if self.stopped or not self._held:
            self._held = ""
            return Scan("")
        out = self._run(self._held, final=True)
        return Scan(out) if out.__class__ is str else out

    def _run(self, buf: str, final: bool, detectors: Sequence[Detector] | None = None) -> "str | Scan":
        """A Scan, or (nothing found, nothing stopped) just the text to emit."""
        base = len(self._ctx)
        text = self._ctx + buf
        n = len(text)
        hold = n
        hits: list[Hit] = []
        for d in detectors or self._detectors:
            found, h = d.scan(text, base, final)
            if found:
                hits.extend(found)
            if h < hold:
                hold = h
        if not hits:
            if hold == n:  # the common case: nothing found, nothing forming
                self._held = ""
                self._ctx = text[-_CONTEXT:]
                return buf
            if hold >= n - self._max_hold:  # nothing found; a match may be forming from `hold`
                self._held = text[hold:]
                self._ctx = text[max(0, hold - _CONTEXT):hold]
                return text[base:hold]
        actions = self._actions
        if hold < n - self._max_hold:
            # A would-be match longer than any pattern declares (a policy pattern with a wrong
            # max_len). Releasing part of it would let its tail out unrecognised: stop the slot.
            stop_action = "block" if actions.get("overflow") == "block" else "replace"
            hit = Hit("overflow", "hold_limit", hold, n)
            shown = [h for h in _merge([h for h in hits if actions.get(h.detector, "redact") == "redact"], actions) if h.end <= hold]
            self.stopped = True
            self._held = ""
            return Scan(self._render(text, base, hold, shown),
                        [(h, "redact") for h in shown] + [(hit, stop_action)], stop_action)
        hits = _merge([h for h in hits if actions.get(h.detector, "redact") != "off"], actions)
        stop = next((h for h in hits if actions.get(h.detector, "redact") in ("replace", "block")), None)
        if stop is not None:
            self.stopped = True
            self._held = ""
            upto = min(hold, stop.start)
            shown = [h for h in hits if h.end <= upto]
            return Scan(self._render(text, base, upto, shown), [(h, actions.get(h.detector, "redact")) for h in shown]
                        + [(stop, actions[stop.detector])], actions[stop.detector])
        # A hit that runs into the held part waits: it is found again, whole, next time.
        for h in hits:
            if h.start < hold < h.end:
                hold = h.start
        shown = [h for h in hits if h.end <= hold]
        out = self._render(text, base, hold, shown)
        self._held = text[hold:]
        self._ctx = text[max(0, hold - _CONTEXT):hold]
        return Scan(out, [(h, actions.get(h.detector, "redact")) for h in shown])

    def _render(self, text: str, base: int, upto: int, hits: list[Hit]) -> str:
        if not hits:
            return text[base:upto]
        parts, last = [], base
        for h in hits:
            if h.start > last:
                parts.append(text[last:h.start])
            parts.append(self._markers.get(h.detector, "[redacted]"))
            last = max(last, h.end)
        parts.append(text[last:upto])
        return "".join(parts)


def quick_searches(detectors: Sequence[Detector]) -> tuple | None:
    """The detectors' "nothing here" checks as (detector, search, segment_only), or None if one has none:
    `search(text)` (segment_only: the new text alone) or `search(buffer, start)` gives None when the
    detector's scan would find nothing and hold nothing."""
    quick = [getattr(d, "quiet", None) for d in detectors]
    if any(q is None for q in quick):
        return None
    return tuple((d, search, segment_only) for d, (search, segment_only) in zip(detectors, quick))


def _merge(hits: list[Hit], actions: Mapping[str, str]) -> list[Hit]:
    """Sort by start; overlapping hits become one with the strictest action's detector."""
    if len(hits) < 2:
        return hits
    hits.sort(key=lambda h: (h.start, -h.end))
    out = [hits[0]]
    for h in hits[1:]:
        prev = out[-1]
        if h.start < prev.end:
            stricter = h if SEVERITY[actions.get(h.detector, "redact")] > SEVERITY[actions.get(prev.detector, "redact")] else prev
            out[-1] = Hit(stricter.detector, stricter.kind, prev.start, max(prev.end, h.end))
        else:
            out.append(h)
    return out
