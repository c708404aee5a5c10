"""Leak filtering state of one exchange: a scanner per text slot, and which choices were cut.

`rewriter(key)` plugs into wire.text_stream.TextStreamEditor. A `block` hit raises
LeakBlocked out of the editor; a `replace` hit marks the choice as cut (its other
slots go silent) and is reported in `newly_cut` for the stage to reshape events.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from proxy.leak.fingerprint import PromptFingerprint
from proxy.leak.hit import Hit, LeakBlocked
from proxy.leak.rules import TenantRules
from proxy.leak.scanner import Scan, SlotScanner


class LeakFlow:
    __slots__ = ("rules", "prints", "cut", "newly_cut", "pending", "seconds", "editor")

    def __init__(self, rules: TenantRules, request_prints: Iterable[PromptFingerprint] = ()) -> None:
        self.rules = rules
        self.prints = tuple(request_prints)
        # The stage's TextStreamEditor over `rewriter`, made at the first event that needs it (a
        # whole answer judged clean in one pass never does).
        self.editor = None
        self.cut: set[int] = set()  # choice indexes whose answer was replaced
        self.newly_cut: list[int] = []  # cut since the stage last looked
        self.pending: list[tuple[Hit, str]] = []  # hits since the stage last looked
        self.seconds = 0.0  # time spent scanning (one metrics sample per exchange)

    def rewriter(self, key: tuple[int, str, int]) -> "SlotFilter":
        return SlotFilter(self, key[0], self.rules.scanner(self.prints))

    def take_hits(self) -> Counter[tuple[str, str, str]]:
        """(detector, kind, action) -> count since the last call (never the matched text)."""
        out = Counter((h.detector, h.kind, action) for h, action in self.pending)
        self.pending.clear()
        return out

    def has_new_cut(self) -> bool:
        return bool(self.newly_cut)

    def take_cut(self) -> list[int]:
        out, self.newly_cut = self.newly_cut, []
        return out

    def apply(self, choice: int, scan: Scan) -> str:
        self.pending.extend(scan.hits)
        if scan.stop == "block":
            raise LeakBlocked(scan.hits[-1][0])
        if scan.stop == "replace" and choice not in self.cut:
            self.cut.add(choice)
            self.newly_cut.append(choice)
        return scan.text


class SlotFilter:
    """One slot's SlotRewriter: silent once its choice was cut."""

    __slots__ = ("_flow", "_choice", "_scanner")

    def __init__(self, flow: LeakFlow, choice: int, scanner: SlotScanner) -> None:
        self._flow = flow
        self._choice = choice
        self._scanner = scanner

    @property
    def held_len(self) -> int:
        """Characters held from earlier feeds: the start of what the next feed emits, when it
        finds nothing (TextStreamEditor.edit_many lays the output back over the chunks with it)."""
        return len(self._scanner.held)

    def feed(self, text: str) -> str:
        flow = self._flow
        if self._choice in flow.cut:
            return ""
        scan = self._scanner.step(text)
        if scan.__class__ is str:
            return scan  # nothing found (the common case)
        if scan.hits or scan.stop:
            return flow.apply(self._choice, scan)
        return scan.text

    def finish(self) -> str:
        if self._choice in self._flow.cut:
            return ""
        return self._flow.apply(self._choice, self._scanner.finish())
