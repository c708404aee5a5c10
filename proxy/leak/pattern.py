"""Regex detectors that know whether a match may still be forming at the end of the text.

Each alternative (a kind of secret, the other tenants' identifiers, an image,
an escape...) is its own compiled `regex` pattern: with a literal start, the
engine skips ahead fast, where one big alternation would try every branch at
every position (measured: ~30x slower on a short buffer).

Anchors make the common case cheap. Every built-in alternative declares the
literals its matches start with ("sk-", "AKIA", "![", the identifiers...). One
lookahead pass over the buffer finds which anchors occur; only their alternatives
run. A buffer ending in a prefix of an anchor ("...the s") is held from there.
Clean text, with no anchor in it, costs two small `re` searches. Anchors match in
any case, except those of a case-sensitive alternative (base64 characters), which
count only as written.

When an alternative runs it uses the `regex` module's partial matching, so any
pattern, the policy's own included, knows exactly from where a match could still
be forming:
- complete matches; one that ends at the buffer's end may still grow, so it is
  not judged yet;
- the leftmost place where a match could still be in progress. `regex` prefers a
  complete match over a partial one anywhere in the text (`abcd|b` on "xabc" gives
  "b"), which would hide an earlier, longer match in progress; searching for
  `(?:P)(?!)` rules complete matches out, so the partial found is the leftmost one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, MutableMapping, Sequence

import re2
import regex

from proxy.leak.hit import Hit
from proxy.leak.literal import trie_pattern

Check = Callable[["regex.Match[str]"], bool]
# implied by every built-in look-behind: a safe superset. Not case-folded: under re.I, [A-Za-z] also
# matches "İ", "ſ" and the Kelvin sign, and an anchor right after one would be missed.
_NOT_AFTER_WORD = r"(?-i:(?<![A-Za-z0-9]))"


@dataclass(frozen=True)
class Alternative:
    group: str  # unique name, an identifier: "<detector>__<kind>"
    detector: str
    kind: str
    source: str  # regex source (`regex` module syntax)
    max_len: int  # longest text it can match: bounds the hold-back
    anchors: tuple[str, ...] | None = None  # every match starts with one of these (any case); None: unknown
    word_start: bool = True  # the anchors count only where no ASCII letter or digit precedes them
    # The anchors count only as written (every match starts with one of them in exactly that case: base64
    # characters). Searched without case folding, so "NrL" is not looked for at every "nrl" of prose.
    case_sensitive: bool = False


Compiled = tuple["regex.Pattern[str]", "regex.Pattern[str]"]


def compile_alternative(alt: Alternative, cache: MutableMapping[str, Compiled] | None = None) -> Compiled:
    """(pattern, tail) for one alternative; `cache` shares them between tenants."""
    if cache is not None and alt.source in cache:
        return cache[alt.source]
    pattern = regex.compile(alt.source)
    out = (pattern, tail_of(pattern))
    if cache is not None:
        cache[alt.source] = out
    return out


def tail_of(pattern: "regex.Pattern[str]") -> "regex.Pattern[str]":
    """The pattern that can only match partially (see the module docstring)."""
    return regex.compile("(?:" + pattern.pattern + ")(?!)", pattern.flags)


class AlternativeSet:
    """The compiled, tenant-independent part: patterns and the anchor index. Shared by every
    tenant whose settings give the same alternatives (with 1,000 tenants: built once, not 1,000 times)."""

    __slots__ = ("alts", "compiled", "max_span", "always", "anchored", "anchor_re", "prefix_re", "quiet_re", "clean_re",
                 "by_anchor", "anchor_len", "presence")

    def __init__(self, alts: Sequence[Alternative], cache: MutableMapping[str, Compiled] | None = None) -> None:
        self.alts = tuple(alts)
        self.compiled = tuple((a, *compile_alternative(a, cache)) for a in alts)
        self.max_span = max((a.max_len for a in alts), default=0)
        self.always = frozenset(i for i, a in enumerate(alts) if a.anchors is None)
        self.anchored = frozenset(range(len(alts))) - self.always
        # (case-insensitive, case-sensitive) x (word start, free): anchor -> alternatives; the
        # case-insensitive ones keyed lower-cased, the case-sensitive ones as written.
        tables: dict[tuple[bool, bool], dict[str, set[int]]] = {(c, w): {} for c in (False, True) for w in (True, False)}
        raw: dict[tuple[bool, bool], set[str]] = {k: set() for k in tables}  # as written too: lower() may change length ("İ")
        for i, a in enumerate(alts):
            key = (a.case_sensitive, a.word_start)
            for anchor in a.anchors or ():
                tables[key].setdefault(anchor if a.case_sensitive else anchor.lower(), set()).add(i)
                raw[key].update((anchor,) if a.case_sensitive else (anchor, anchor.lower()))
        self.by_anchor = _by_anchor(tables)
        self.anchor_len = max((len(k) for t in tables.values() for k in t), default=0)
        self.anchor_re = self.prefix_re = self.quiet_re = self.presence = None
        self.clean_re = re.compile(r"(?!)")  # no anchors: nothing to find, nothing to hold
        if self.by_anchor:
            # One class of every anchor's possible first character (case-insensitive ones in both
            # cases, case-sensitive ones as written) first: a position that cannot start an anchor
            # costs one test, not one per part. Then the parts, each opening with its own one-character
            # class, so a position that starts none of its anchors fails on one test, not one per trie
            # branch: the word-start anchors (one look-behind for both kinds), then the free ones. The
            # patterns are compiled with re.I; the case-sensitive parts switch it off ((?-i:...)).
            pre = _prefilter(raw)

            def parts(prefixes: bool) -> str:
                def one(cs: bool, word: bool) -> list[str]:
                    if not raw[(cs, word)]:
                        return []
                    src = f"{_first(raw[(cs, word)])}(?:{trie_pattern(raw[(cs, word)], prefixes, re.escape)})"
                    return [f"(?-i:{src})" if cs else src]
                words = one(False, True) + one(True, True)
                out = [_NOT_AFTER_WORD + "(?:" + "|".join(words) + ")"] if words else []
                return "|".join(out + one(False, False) + one(True, False))

            anchors = parts(False)
            self.anchor_re = re.compile(f"{pre}(?=({anchors}))", re.I)
            # The common case in one search: is there any anchor from `start` on?
            self.quiet_re = re.compile(f"{pre}(?:{anchors})", re.I)
            ends = parts(True)
            self.prefix_re = re.compile(f"{pre}(?:{ends})\\Z", re.I)
            self.presence = _presence(raw)
            # Both at once, for the scanner's shortcut: no match means scan() gives ([], len(text)).
            self.clean_re = re.compile(f"{pre}(?:(?:{anchors})|(?:{ends})\\Z)", re.I)


def _prefilter(raw: dict[tuple[bool, bool], set[str]]) -> str:
    """A lookahead for a character that may start an anchor, without case folding: a superset. The
    case-insensitive anchors' first characters in both cases (and the ASCII characters re.I matches
    to a non-ASCII one), the case-sensitive ones as written, and any non-ASCII character when a
    case-insensitive anchor starts with a cased or non-ASCII one (re.I matches "K" to the Kelvin sign)."""
    chars: set[str] = set()
    wide = False
    for (cs, _), anchors in raw.items():
        for a in anchors:
            c = a[:1]
            if not c:
                continue
            chars.add(c)
            if cs:
                continue
            if c.isascii():
                chars.update((c.lower(), c.upper()))
                wide = wide or c.lower() != c.upper()
            else:
                chars.update(x for x in map(chr, range(128)) if re.fullmatch(re.escape(c), x, re.I))
                wide = True
    body = "".join(re.escape(c) for c in sorted(chars) if c.isascii() or not wide)
    return "(?-i:(?=[" + body + ("\\x80-\\U0010ffff" if wide else "") + "]))"


def _by_anchor(tables: dict[tuple[bool, bool], dict[str, set[int]]]) -> dict[str, frozenset[int]]:
    """What an anchor found stands for, keyed lower-cased (also the case-sensitive ones: the found
    text is one of them as written, and its lower-cased form only widens the set). The anchor search
    takes the longest anchor of the first part that matches at a position, so the text found also
    stands for every anchor that may match at the same place: the anchors it starts with, and the
    anchors of a later part that start with it (case-sensitive word-start anchors behind
    case-insensitive ones, free anchors behind word-start ones); compared lower-cased, a superset."""
    every: dict[str, set[int]] = {}
    longer: dict[str, set[int]] = {}
    for (cs, word), table in tables.items():
        for k, v in table.items():
            k = k.lower()
            every.setdefault(k, set()).update(v)
            if cs or not word:  # the first part (case-insensitive, word start) is never behind another
                for j in range(1, len(k)):
                    longer.setdefault(k[:j], set()).update(v)
    interned: dict[frozenset[int], frozenset[int]] = {}
    out: dict[str, frozenset[int]] = {}
    for k in every:
        s = set().union(*(every[k[:j]] for j in range(1, len(k) + 1) if k[:j] in every))
        s.update(longer.get(k, ()))
        fs = frozenset(s)
        out[k] = interned.setdefault(fs, fs)
    return out


# Longer ASCII text looks for anchors with google-re2 (a DFA: ~1.5 us for 150 characters where the
# `re` search with its per-position look-arounds takes ~7 us; for a few characters `re` is cheaper).
# It is given the ASCII text as bytes (the same bytes re2 would search after encoding a str, without
# the wrapper's str-to-byte offset bookkeeping: ~0.4 us less per search).
_PRESENCE_CHARS = 64
_PRESENCE_MAX_CHARS = 100_000  # anchors' total length up to which that search is built (1,000 tenants: ~60,000)


def _presence(raw: dict[tuple[bool, bool], set[str]]) -> "re2._Regexp | None":
    """Whether any anchor occurs, as one re2 search: a superset of anchor_re's matches on ASCII
    text (the same ASCII case folding, off for the case-sensitive anchors; a word anchor needs a
    non-alphanumeric character or the start before it, the search starts one character early so
    that character is seen)."""
    if sum(len(a) for s in raw.values() for a in s) > _PRESENCE_MAX_CHARS:
        return None  # tens of thousands of identifiers: re2's DFA would run out of memory (and log it)
    parts = []
    for (cs, word), anchors in raw.items():
        if anchors:
            src = trie_pattern(anchors, escape=re.escape)
            parts.append(("(?:^|[^A-Za-z0-9])" if word else "") + (f"(?-i:{src})" if cs else f"(?:{src})"))
    try:
        return re2.compile("(?i)" + "|".join(parts))
    except re2.error:
        return None  # an anchor re2 cannot take: the `re` search does it all


def _first(anchors: set[str]) -> str:
    """A lookahead for the first characters of `anchors` (the pattern adds re.I, or a case-sensitive part clears it)."""
    return "(?=[" + "".join(sorted({re.escape(a[0]) for a in anchors if a})) + "])"


class PatternDetector:
    __slots__ = ("name", "max_span", "_set", "_checks", "quiet")

    def __init__(self, alts: Sequence[Alternative] | AlternativeSet, checks: dict[str, Check] | None = None,
                 cache: MutableMapping[str, Compiled] | None = None) -> None:
        """`checks`: group -> test of a complete match (entropy, allowlist, owner); false drops it."""
        self.name = "patterns"
        self._set = alts if isinstance(alts, AlternativeSet) else AlternativeSet(alts, cache)
        self.max_span = self._set.max_span
        self._checks = checks or {}
        # (pattern, segment_only) for SlotScanner's shortcut; searched over the buffer from `start`,
        # no match means scan() finds nothing and holds nothing. None: alternatives without anchors.
        self.quiet = None if self._set.always else (self._set.clean_re.search, False)

    @property
    def detectors(self) -> tuple[str, ...]:
        """Detector families this detector covers, in order."""
        return tuple(dict.fromkeys(a.detector for a in self._set.alts))

    def scan(self, text: str, start: int, final: bool) -> tuple[list[Hit], int]:
        """Complete hits in text[start:], and the index from which a match may still form."""
        n = hold = len(text)
        aset = self._set
        run = aset.always
        if not run and (aset.quiet_re is None or (
                aset.quiet_re.search(text, start) is None if n - start <= _PRESENCE_CHARS or aset.presence is None
                or not text.isascii() else aset.presence.search(
                    (text[start - 1:] if start else text).encode("ascii")) is None)):
            # Clean text (the common case): no anchor, so no pattern runs; only an anchor's
            # beginning at the very end is held.
            if not final and aset.prefix_re is not None:
                p = aset.prefix_re.search(text, max(start, n - aset.anchor_len))
                if p is not None:
                    hold = p.start()
            return [], hold
        if aset.anchor_re is not None:
            by = aset.by_anchor
            for m in aset.anchor_re.finditer(text, start):
                # Case mappings that change length ("İ") miss the table: then run every pattern.
                run = run | by.get(m.group(1).lower(), aset.anchored)
            if not final:
                p = aset.prefix_re.search(text, max(start, n - aset.anchor_len))
                if p is not None:
                    hold = p.start()
        if not run:
            return [], hold
        hits: list[Hit] = []
        checks = self._checks
        for i in sorted(run):
            alt, pattern, tail = aset.compiled[i]
            check = checks.get(alt.group)
            for m in pattern.finditer(text, start):
                s, e = m.span()
                if e == s:
                    continue
                if e == n and not final:
                    hold = min(hold, s)  # may still grow: judged when more text (or the end) arrives
                    break
                if check is not None and not check(m):
                    continue
                hits.append(Hit(alt.detector, alt.kind, s, e))
            if not final:
                p = tail.search(text, start, partial=True)
                if p is not None and p.start() < hold:
                    hold = p.start()
        hits.sort(key=lambda h: h.start)
        return hits, hold


def single(detector: str, kind: str, source: str, max_len: int, check: Check | None = None) -> PatternDetector:
    """A detector of one alternative without anchors (tests, policy patterns)."""
    alt = Alternative(f"{detector}__{kind}", detector, kind, source, max_len)
    return PatternDetector([alt], {alt.group: check} if check else None)
