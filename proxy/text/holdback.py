"""Hold back only the suffix of a text stream that could still become a match.

A detector says, for the text seen so far, from which index a match might still
be forming (`hold_from`). Everything before it is safe to release now; the rest
waits for more text. `max_hold` bounds memory: nothing longer than the longest
possible match is ever kept.
"""

from __future__ import annotations

from typing import Callable, Iterable

from proxy.text.case import lower_in_place

HoldFrom = Callable[[str], int]


class HoldBack:
    __slots__ = ("_hold_from", "_max_hold", "_held")

    def __init__(self, hold_from: HoldFrom, max_hold: int) -> None:
        self._hold_from = hold_from
        self._max_hold = max_hold
        self._held = ""

    @property
    def held(self) -> str:
        return self._held

    def push(self, text: str) -> str:
        """Add text; return the part that can no longer be the start of a match."""
        buf = self._held + text if self._held else text
        if not buf:
            return ""
        cut = min(self._hold_from(buf), len(buf))
        cut = max(cut, len(buf) - self._max_hold, 0)
        self._held = buf[cut:]
        return buf[:cut]

    def flush(self) -> str:
        """End of stream: whatever is held is released as it is."""
        out, self._held = self._held, ""
        return out


class LiteralPrefixes:
    """hold_from for a fixed set of literals: hold a suffix that is a proper prefix of one."""

    __slots__ = ("_prefixes", "_first_chars", "_fold", "max_len")

    def __init__(self, literals: Iterable[str], case_insensitive: bool = False) -> None:
        self._fold = case_insensitive
        lits = [lower_in_place(s) if case_insensitive else s for s in literals if s]
        self._prefixes = frozenset(s[:k] for s in lits for k in range(1, len(s)))
        self._first_chars = frozenset(s[0] for s in lits)
        self.max_len = max((len(s) for s in lits), default=0)

    def hold_from(self, text: str) -> int:
        n = len(text)
        start = max(0, n - self.max_len + 1)
        tail = lower_in_place(text[start:]) if self._fold else text[start:]
        for i, ch in enumerate(tail):
            if ch in self._first_chars and tail[i:] in self._prefixes:
                return start + i
        return n

