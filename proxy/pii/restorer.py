"""Put the values back into the model's answer, streamed or not, by the same code.

A token occurrence is `<TYPE_N>`, or a slightly mangled form the model may write
(other case, a missing bracket, no brackets): `(<|word boundary) TYPE_N (>|word
boundary)`. Only tokens the request's vault issued are restored; anything else stays
as written. Numbering skipped every `TYPE_N` the request itself contained, so each
mangled form names one issued token only.

Streaming: each slot (choice i's content, tool call j's arguments, ...) gets its own
`SlotRestorer`. It holds back only a suffix that could still become an issued token
(a proper prefix of an issued literal, at a place a token may start) or a match whose
end is not decided yet;
everything before it is released at once. At the end of the slot what is held is
restored if complete and otherwise released as the literal text it was. Matches are
always found on the held text plus the new text, with the last released character as
left context, so any split of the stream gives the same output as the whole text.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import Counter

from proxy.pii.vault import Vault
from proxy.wire.openai import SlotKey

# Group 1: "<" (or a word boundary), 2: TYPE_N, 3: ">" (or a word boundary after).
TOKEN = re.compile(r"(?:(<)|(?<![A-Za-z0-9_]))([A-Za-z][A-Za-z0-9_]{0,63}?_[0-9]{1,6})(?:(>)|(?![A-Za-z0-9_]))")
MAX_MATCH = 1 + 64 + 1 + 6 + 1  # longest TOKEN match: bounds what a slot ever holds
# Every TOKEN match holds "_" + digit, its first one at most _LEAD characters after the match's
# start ("<", a letter, 63 more, then "_"): see _search.
_UNDERSCORE_DIGIT = re.compile(r"_[0-9]")
_LEAD = 1 + 1 + 63


def _search(s: str, pos: int) -> re.Match | None:
    """`TOKEN.search(s, pos)`, without running TOKEN over stretches that cannot hold a match.

    TOKEN tries a lazy 64-character loop at every word start (~35 µs per KB of answer text).
    A match starting at or after `pos` holds a "_" + digit at or after `pos`, at most _LEAD
    characters after its start; so no match starts before (the first such "_" + digit at or
    after `pos`) - _LEAD, and searching from there finds the same leftmost match (the
    look-behind still sees the characters before: the string is not cut). The literal "_"
    prefix makes that first search a fast scan."""
    u = _UNDERSCORE_DIGIT.search(s, pos)
    if u is None:
        return None
    return TOKEN.search(s, max(pos, u.start() - _LEAD))


def _finditer(s: str, pos: int):
    """`TOKEN.finditer(s, pos)`, match by match through `_search` (matches are never empty)."""
    while True:
        m = _search(s, pos)
        if m is None:
            return
        yield m
        pos = m.end()
JSON_FIELDS = frozenset(("tool_arguments", "function_arguments"))


class Restorer:
    """Built once per request after tokenization; makes one rewriter per response slot."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        cores = [c.lower() for c in vault.cores()]
        # Sorted, not a table of every prefix (built per request, ~2 x 17 strings per token):
        # "is s a proper prefix of an issued literal" is one bisect (see _is_prefix).
        self._literals = sorted({f"<{c}>" for c in cores} | {f"{c}>" for c in cores})
        literals = self._literals
        self._first = frozenset(lit[0] for lit in literals)
        self._max_len = max((len(lit) for lit in literals), default=0)
        self.max_hold = max(self._max_len, MAX_MATCH)
        self.restored: Counter[str] = Counter()

    def _is_prefix(self, s: str) -> bool:
        """True when `s` (not empty) is a proper prefix of an issued literal (lower case)."""
        lits = self._literals
        i = bisect_left(lits, s)
        # The literals >= s that start with s follow s directly; a proper prefix is shorter.
        return i < len(lits) and len(lits[i]) > len(s) and lits[i].startswith(s) or (
            i + 1 < len(lits) and lits[i] == s and lits[i + 1].startswith(s))

    def rewriter(self, key: SlotKey | None = None) -> "SlotRestorer":
        json_string = key is not None and key[1] in JSON_FIELDS
        return SlotRestorer(self, json_string)

    def restore_text(self, text: str) -> str:
        """The whole text at once (what a non-streamed response gets)."""
        rw = self.rewriter()
        return rw.feed(text) + rw.finish()


class SlotRestorer:
    __slots__ = ("_r", "_pending", "_prev", "_json")

    def __init__(self, restorer: Restorer, json_string: bool = False) -> None:
        self._r = restorer
        self._pending = ""
        self._prev = ""  # last released character: left context for the next match
        self._json = json_string  # tool-call arguments are JSON text: values go in escaped

    def feed(self, text: str) -> str:
        buf = self._pending + text if self._pending else text
        if not buf:
            return ""
        cut = max(self._hold_from(buf), len(buf) - self._r.max_hold)
        return self._release(buf, cut, final=False)

    def _hold_from(self, buf: str) -> int:
        """Start of the earliest suffix that could still become an issued token.

        Like holdback.LiteralPrefixes over the issued literals, but a bare token can only
        start after a non-word character, so "Ple|ase" is not held for "EMAIL_ADDRESS_1".
        """
        r = self._r
        n = len(buf)
        low = buf[max(0, n - r._max_len + 1):].lower()
        base = n - len(low)
        for i, ch in enumerate(low):
            if ch not in r._first:
                continue
            if ch != "<":
                before = buf[base + i - 1] if base + i > 0 else self._prev
                if before and (before.isalnum() or before == "_") and before.isascii():
                    continue
            if r._is_prefix(low[i:]):
                return base + i
        return n

    def finish(self) -> str:
        buf, self._pending = self._pending, ""
        return self._release(buf, len(buf), final=True) if buf else ""

    def _release(self, buf: str, cut: int, final: bool) -> str:
        if "_" not in buf:
            # Every token match has "_" + digits inside buf (a match starts in buf): none here.
            if cut > 0:
                self._prev = buf[cut - 1]
            self._pending = buf[cut:]
            return buf[:cut]
        prev = self._prev
        s = prev + buf
        off = len(prev)
        end_cut = off + cut
        first = _search(s, off)
        if first is None or first.start() >= end_cut:
            # No token-shaped text before the cut (most events): release up to it as is.
            if cut > 0:
                self._prev = buf[cut - 1]
            self._pending = buf[cut:]
            return buf[:cut]
        pieces: list[str] = []
        pos = off
        for m in _finditer(s, off):
            if m.start() >= end_cut:
                break
            undecided = not final and m.end() == len(s) and m.group(3) is None
            if m.end() > end_cut or undecided:
                end_cut = m.start()  # a match we cannot finish yet: hold from its start
                break
            hit = self._r.vault.lookup(m.group(2))
            if hit is None:
                continue
            entity, value = hit
            pieces.append(s[pos:m.start()])
            pieces.append(json.dumps(value, ensure_ascii=False)[1:-1] if self._json else value)
            self._r.restored[entity] += 1
            pos = m.end()
        pieces.append(s[pos:end_cut])
        if end_cut > off:
            self._prev = s[end_cut - 1]
        self._pending = s[end_cut:]
        return "".join(pieces)
