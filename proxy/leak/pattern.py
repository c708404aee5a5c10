"""A regex detector that knows whether a match may still be forming at the end of the text.

Uses the `regex` module's partial matching, so it works for any pattern, the
policy's own included, and the hold-back is exactly "from where a match could
still be forming". Two passes over the (small) buffer:

- complete matches (`finditer`); one that ends at the buffer's end may still grow,
  so it is not judged yet;
- the leftmost place where a match could still be in progress. `regex` prefers a
  complete match over a partial one anywhere in the text (`abcd|b` on "xabc" gives
  "b"), which would hide an earlier, longer match in progress; searching for
  `(?:P)(?!)` rules complete matches out, so the partial found is the leftmost one.
"""

from __future__ import annotations

from typing import Callable

import regex

from proxy.leak.hit import Hit

Validate = Callable[["regex.Match[str]"], bool]


class PatternDetector:
    __slots__ = ("name", "max_span", "_pattern", "_tail", "_kinds", "_validate", "_keep")

    def __init__(self, name: str, pattern: "regex.Pattern[str]", max_span: int, *,
                 kinds: tuple[str, ...] = (), validate: dict[str, Validate] | None = None,
                 keep: Callable[["regex.Match[str]"], bool] | None = None) -> None:
        """`kinds`: top-level named groups, one per alternative (the hit's kind);
        `validate`: per-kind check of a complete match (e.g. entropy); `keep`: final filter."""
        self.name = name
        self.max_span = max_span
        self._pattern = pattern
        self._tail = regex.compile("(?:" + pattern.pattern + ")(?!)", pattern.flags)
        self._kinds = kinds
        self._validate = validate or {}
        self._keep = keep

    def scan(self, text: str, start: int, final: bool) -> tuple[list[Hit], int]:
        """Complete hits in text[start:], and the index from which a match may still form."""
        hits: list[Hit] = []
        n = hold = len(text)
        for m in self._pattern.finditer(text, start):
            s, e = m.span()
            if e == s:
                continue
            if e == n and not final:
                hold = s  # may still grow: judged when more text (or the end) arrives
                break
            kind = next((k for k in self._kinds if m.group(k) is not None), self.name)
            check = self._validate.get(kind)
            if check is not None and not check(m):
                continue
            if self._keep is not None and not self._keep(m):
                continue
            hits.append(Hit(self.name, kind, s, e))
        if not final:
            p = self._tail.search(text, start, partial=True)
            if p is not None and p.start() < hold:
                hold = p.start()
        return hits, hold
