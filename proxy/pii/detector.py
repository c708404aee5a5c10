"""The fast detection path: one compiled candidate pass, then Presidio's patterns and validators.

0. Cheap evasions are undone first (normalize.py: zero-width characters, full-width and
   non-ASCII digits), with a map back to the original offsets.
1. One compiled pass finds candidate windows: runs of whitespace-separated words that
   contain a digit or an `@` (every built-in structured type does); see `_windows`.
2. Each window is tried only by the recognizers it can hold (a window with 3 digits
   cannot be a card) with Presidio's own patterns (compiled once with `re`), then
   Presidio's `validate_result` / `invalidate_result` (Luhn, IBAN checksum, SSN rules,
   ip_interface, offline TLD check).
3. Context words near a hit raise its score like Presidio's context enhancer.
4. Custom recognizers from the policy scan the whole text (their patterns need not hold
   a digit); an optional spaCy NER model adds PERSON/LOCATION/...
5. Scores under the threshold are dropped, overlaps resolved (highest score, then
   longest), allow-listed values removed.

`Detector.find(text)` returns `Span`s; it is pure and thread-safe (no state per call).
`Detector.steps(text)` is the same work as a generator that yields after every window,
so the stage can give the event loop a turn; both stop at a CPU budget if given one.
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator

import re2
import tldextract
from presidio_analyzer import EntityRecognizer, PatternRecognizer
from presidio_analyzer.predefined_recognizers import IbanRecognizer

from proxy.pii.ner import NER_ENTITIES, SCORE as NER_SCORE, NerModel
from proxy.pii.normalize import normalize, to_original
from proxy.pii.recognizer import builtin_recognizers, custom_recognizers
from proxy.pii.settings import BUILTIN_ENTITIES, DetectionSettings
from proxy.text.case import lower_in_place

# Windows: runs of whitespace-separated words holding a digit or an "@" (or, with URL on,
# a "." ":" "/"). google-re2 scans fast, but its str API converts every match offset from
# UTF-8 at a cost that grows with the text, so it runs on bytes and `_windows` maps offsets
# back; a plain `re` search for a digit or "@" first skips text with nothing to look at. Whitespace is ASCII
# whitespace (a no-break space joins words into one window: harmless, just a longer window).
_WINDOW_B = re2.compile(rb"\S*[\d@]\S*(?:\s\S*[\d@]\S*)*")
_WINDOW_URL_B = re2.compile(rb"\S*[\d@.:/]\S*(?:\s\S*[\d@.:/]\S*)*")
_ANY_S = re.compile(r"[0-9@]")
_ANY_URL_S = re.compile(r"[0-9@.:/]")
# Before normalize(): any character that is, or normalizes to, one a window needs (\d is every
# Unicode decimal digit; full-width "＠" ".:/" too). None found: no built-in recognizer can match.
_CLUE = re.compile(r"[\d@\uff20]")
_CLUE_URL = re.compile(r"[\d@.:/\uff20\uff0e\uff1a\uff0f]")
_WORD = re.compile(r"\w+")
_IBAN_HEAD = re.compile(r"[A-Za-z]{2}\d{2}")
_DOTTED = re.compile(r"\d\.\d")
_STRONG_PHONE = re.compile(r"[-+(.]")
_NOT_DIGITS = re.compile(r"\D+")
CONTEXT_BOOST = 0.35  # Presidio's context_similarity_factor
CONTEXT_MIN = 0.4  # Presidio's min_score_with_context_similarity
CONTEXT_BEFORE = 5  # words before a hit that count as context (Presidio: 5)
CONTEXT_AFTER = 2  # and after it ("416 60 039 office")
MAX_WINDOW = 1024  # longer windows are scanned in overlapping pieces: bounded work per step
OVERLAP = 128  # longer than any built-in entity, so each one is whole in some piece


def _windows(text: str, url: bool) -> list[tuple[int, str]]:
    if (_ANY_URL_S if url else _ANY_S).search(text) is None:  # = the bytes pattern on the UTF-8 (ASCII classes)
        return []
    raw = text.encode("utf-8", "surrogatepass")
    rx = _WINDOW_URL_B if url else _WINDOW_B
    if len(raw) == len(text):  # ASCII: byte offsets are character offsets
        found = [(m.start(), m.group().decode("ascii")) for m in rx.finditer(raw)]
    else:
        # Character offsets by decoding only the gaps between windows (a window starts
        # after ASCII whitespace, so always on a character boundary).
        found = []
        char = last = 0
        for m in rx.finditer(raw):
            s, e = m.span()
            char += len(raw[last:s].decode("utf-8", "surrogatepass"))
            w = raw[s:e].decode("utf-8", "surrogatepass")
            found.append((char, w))
            char += len(w)
            last = e
    if any(len(w) > MAX_WINDOW for _, w in found):
        found = [piece for start, w in found for piece in _pieces(start, w)]
    return found


def _pieces(start: int, w: str) -> list[tuple[int, str]]:
    """A long window cut at spaces into pieces that overlap by OVERLAP characters."""
    if len(w) <= MAX_WINDOW:
        return [(start, w)]
    out = []
    pos = 0
    while True:
        if len(w) - pos <= MAX_WINDOW:
            end = len(w)
        else:  # cut after the last space in range, or hard at MAX_WINDOW in a space-less run
            end = w.rfind(" ", pos + OVERLAP + 1, pos + MAX_WINDOW) + 1 or pos + MAX_WINDOW
        out.append((start + pos, w[pos:end].rstrip(" ")))
        if end >= len(w):
            return out
        back = w.find(" ", end - OVERLAP, end)  # restart a little earlier, at a word start
        pos = back + 1 if back >= 0 and back + 1 > pos else max(pos + 1, end - OVERLAP)


class DetectionBudgetExceeded(RuntimeError):
    """The text is too large or too dense to scan within the configured CPU budget."""


def _check(deadline: float) -> None:
    if time.perf_counter() > deadline:
        raise DetectionBudgetExceeded("PII detection ran past its CPU budget")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    entity: str
    score: float


# Which windows a built-in recognizer can match at all: cheap gates before any regex runs.
Gate = Callable[[str, int], bool]
_GATES: dict[str, Gate] = {
    "EMAIL_ADDRESS": lambda w, nd: "@" in w,
    "PHONE_NUMBER": lambda w, nd: nd >= 7,
    "CREDIT_CARD": lambda w, nd: nd >= 12,
    "US_SSN": lambda w, nd: nd >= 9,
    "IBAN_CODE": lambda w, nd: nd >= 8 and len(w) >= 15 and _IBAN_HEAD.search(w) is not None,
    "IP_ADDRESS": lambda w, nd: (nd >= 4 and _DOTTED.search(w) is not None) or w.count(":") >= 2,
    "URL": lambda w, nd: "." in w,
}


class _Compiled:
    """One recognizer's patterns compiled with `re` (same flags as Presidio's `regex`)."""

    __slots__ = ("rec", "entity", "patterns", "context", "whole_match_groups", "shrink", "digit_range", "cut_needs_neighbor")

    def __init__(self, rec: PatternRecognizer) -> None:
        self.rec = rec
        self.entity = rec.supported_entities[0]
        flags = 0
        g = rec.global_regex_flags or 0
        for name in ("IGNORECASE", "MULTILINE", "DOTALL"):
            if g & getattr(re, name):
                flags |= getattr(re, name)
        self.patterns = [(re.compile(p.regex, flags), p.score) for p in rec.patterns]
        self.context = frozenset(w.lower() for w in (rec.context or ()))
        # Presidio's IBAN recognizer tries shorter group ends when the whole match fails.
        self.whole_match_groups = isinstance(rec, IbanRecognizer)
        # Phone and card numbers may run into the next number: see _scan_shrinking.
        self.shrink = bool(getattr(rec, "SHRINK_AT_SPACES", False))
        self.digit_range = getattr(rec, "DIGITS", (0, 1 << 30))
        # A weakly validated cut (a phone shape) only stands next to another entity;
        # a Luhn-valid card cut stands on its own.
        self.cut_needs_neighbor = bool(getattr(rec, "CUT_NEEDS_NEIGHBOR", False))

    def scan(self, text: str, base: int, out: list[Span], cut: set[tuple[int, int]] | None = None,
             deadline: float | None = None) -> None:
        for rx, pscore in self.patterns:
            if self.shrink:
                self._scan_shrinking(rx, pscore, text, base, out, cut, deadline)
                continue
            for k, m in enumerate(rx.finditer(text)):  # Presidio's semantics: non-overlapping matches
                if deadline is not None and not k & 63:
                    _check(deadline)
                s = m.start()
                ends = [m.end()]
                if self.whole_match_groups:
                    ends = [m.end(g) if m.end(g) > 0 else m.end() for g in range(len(m.groups()), 0, -1)] or ends
                for e in ends:
                    score = self._score(text[s:e], pscore) if e > s else 0.0
                    if score > 0:
                        out.append(Span(base + s, base + e, self.entity, score))
                        break

    def _scan_shrinking(self, rx: re.Pattern, pscore: float, text: str, base: int, out: list[Span],
                        cut: set[tuple[int, int]] | None, deadline: float | None) -> None:
        """Numbers that run into the next number: the match cut at each space is a candidate
        too ("415-555-0134 4111 1111 ..."); every valid one goes on and overlap resolution
        keeps the longest that fits. Unless the whole match was valid, the scan resumes at
        its next group, so a number that starts inside it is still seen."""
        lo = self.digit_range[0]
        pos = 0
        k = 0
        while True:
            k += 1
            if deadline is not None and not k & 63:
                _check(deadline)
            m = rx.search(text, pos)
            if m is None:
                return
            s, end = m.start(), m.end()
            digits = len(_NOT_DIGITS.sub("", m.group()))
            if digits < lo:
                pos = end  # too short, and every later start inside it is shorter still
                continue
            whole_ok = False
            longest = 0
            ends = [end]
            whole = None  # the whole match's score, computed at most once
            if (not self.cut_needs_neighbor or digits > self.digit_range[1]
                    or (whole := self._score(text[s:end], pscore)) > 0):
                # Cards: always (a trailing group may spoil the Luhn sum). Phones: when too long
                # to be one number, or valid but perhaps overlapping another entity; a phone of
                # the right length but the wrong shape (hex bytes, a list) has no cuts.
                ends += [s + i for i in range(end - s - 1, 0, -1) if text[s + i] == " "]
            for e in ends:
                score = whole if e == end and whole is not None else self._score(text[s:e], pscore)
                if score > 0:
                    out.append(Span(base + s, base + e, self.entity, score))
                    if e != end and cut is not None and self.cut_needs_neighbor:
                        cut.add((base + s, base + e))
                    whole_ok = whole_ok or e == end
                    longest = max(longest, e)
            if whole_ok:
                pos = end
            elif self.cut_needs_neighbor and digits <= self.digit_range[1]:
                pos = end  # phones: the right length but the wrong shape (a list, hex bytes)
            elif longest and self.cut_needs_neighbor:
                pos = longest  # phones: the next one starts after the longest valid cut
            else:  # the whole match is not one number: the next one may start at the next group
                nxt = text.find(" ", s + 1, end)
                pos = nxt + 1 if nxt > 0 else end

    def _score(self, found: str, pscore: float) -> float:
        if self.rec.invalidate_result(found):
            return 0.0
        valid = self.rec.validate_result(found)
        if valid is None:
            return pscore
        return EntityRecognizer.MAX_SCORE if valid else 0.0


class Detector:
    """Compiled once per tenant settings; `find(text)` is the hot path."""

    def __init__(self, settings: DetectionSettings, base_dir: Path | None = None,
                 extractor: tldextract.TLDExtract | None = None) -> None:
        self.settings = settings
        customs = custom_recognizers(settings.recognizers)
        custom_entities = {r.supported_entities[0] for r in customs}
        self.ner: NerModel | None = NerModel(settings.ner_model, base_dir) if settings.ner_model else None
        # Custom recognizers' and the NER model's types count as requested.
        self.entities = frozenset(settings.entities) | custom_entities | (NER_ENTITIES if self.ner else frozenset())
        self._builtin = [_Compiled(r) for r in builtin_recognizers(frozenset(settings.entities) & BUILTIN_ENTITIES, extractor)]
        self._gated = [(c, _GATES[c.entity]) for c in self._builtin]
        self._custom = [_Compiled(r) for r in customs]
        self._url = "URL" in settings.entities
        self._threshold = settings.score_threshold
        self._entity_names = tuple(sorted({c.entity for c in self._builtin + self._custom}))
        self._contexts: dict[str, frozenset[str]] = {}
        for c in self._builtin + self._custom:
            self._contexts[c.entity] = self._contexts.get(c.entity, frozenset()) | c.context
        self.allow = self._allow = frozenset(v.casefold() for v in settings.allow_list)
        self._builtin_only = not self._custom and self.ner is None
        self._clue = _CLUE_URL if self._url else _CLUE

    @property
    def recognizers(self) -> list[PatternRecognizer]:
        """The Presidio recognizers this detector runs (the reference engine reuses them)."""
        return [c.rec for c in self._builtin] + [c.rec for c in self._custom]

    def nothing_to_find(self, text: str) -> bool:
        """True when `text` cannot hold anything this detector finds: only built-in recognizers
        (every one needs a digit or an "@", or with URL on a "." ":" "/") and none of those here."""
        return self._builtin_only and (self._clue.search(text) is None)

    def find(self, text: str, budget_s: float | None = None) -> list[Span]:
        """Spans in `text`. With `budget_s`, raise DetectionBudgetExceeded past that much CPU time."""
        if self.nothing_to_find(text):
            return []
        steps = self.steps(text, budget_s)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def steps(self, text: str, budget_s: float | None = None) -> Generator[None, None, list[Span]]:
        """`find` in small steps: yields every few windows so a caller on an event loop can
        let other work run between them; returns the spans (offsets into `text`)."""
        if not text:
            return []
        norm = normalize(text)
        if norm is None:
            return (yield from self._steps(text, budget_s))
        spans = yield from self._steps(norm[0], budget_s)
        out = []
        for sp in spans:
            start, end = to_original(norm[1], sp.start, sp.end)
            out.append(Span(start, end, sp.entity, sp.score))
        return out

    def _steps(self, text: str, budget_s: float | None) -> Generator[None, None, list[Span]]:
        deadline = time.perf_counter() + budget_s if budget_s is not None else None
        cands: list[Span] = []
        cut: set[tuple[int, int]] = set()  # candidates cut short of their regex match
        if self._gated:
            for k, (start, w) in enumerate(_windows(text, self._url)):
                if deadline is not None and not k & 7:
                    _check(deadline)
                yield  # one window per step: at most MAX_WINDOW characters of work
                nd = len(_NOT_DIGITS.sub("", w))
                for comp, gate in self._gated:
                    if gate(w, nd):
                        comp.scan(w, start, cands, cut, deadline)
        for comp in self._custom:
            comp.scan(text, 0, cands, None, deadline)
        if self.ner is not None:
            cands.extend(Span(h.start, h.end, h.entity, NER_SCORE) for h in self.ner.find(text))
        if cut:
            # A phone cut short of its match stands if it looks like a phone on its own (+, (,
            # - or . in it) or if another kind of entity starts right after it ("4111 1111 1111"
            # cut from an invalid card does not). Filtered before overlaps are resolved, so a
            # dropped cut cannot shadow the alternatives.
            others = {(sp.start, sp.entity) for sp in cands if (sp.start, sp.end) not in cut}
            cands = [sp for sp in cands if (sp.start, sp.end) not in cut
                     or _STRONG_PHONE.search(text, sp.start, sp.end) is not None
                     or any((sp.end + 1, e) in others for e in self._entity_names if e != sp.entity)]
        if not cands:
            return []
        yield
        # Validated hits (score 1.0) first: a weaker candidate inside one cannot win, so it
        # needs no context look-up (the costly part on number-dense text).
        certain = resolve(text, [sp for sp in cands if sp.score >= 1.0])
        yield
        c_starts = [sp.start for sp in certain]
        c_ends = [sp.end for sp in certain]
        lowered = None
        kept: list[Span] = list(certain)
        for k, sp in enumerate(cands):
            if not k & 127:
                yield
            if sp.score >= 1.0:
                continue
            i = bisect.bisect_right(c_starts, sp.start)
            inside_prev = i > 0 and c_ends[i - 1] >= sp.end
            if inside_prev:
                continue
            score = sp.score
            ctx = self._contexts.get(sp.entity)
            if ctx and score < 1.0:
                if lowered is None:
                    lowered = lower_in_place(text)  # offsets of `text` are used in it
                if self._has_context(lowered, sp.start, sp.end, ctx):
                    score = min(1.0, max(score + CONTEXT_BOOST, CONTEXT_MIN))
            if score >= self._threshold and score > 0:
                kept.append(sp if score == sp.score else Span(sp.start, sp.end, sp.entity, score))
        yield
        spans = resolve(text, kept, self._allow)
        return spans

    @staticmethod
    def _has_context(lowered: str, start: int, end: int, ctx: frozenset[str]) -> bool:
        before = _WORD.findall(lowered, max(0, start - 64), start)[-CONTEXT_BEFORE:]
        after = _WORD.findall(lowered, end, min(len(lowered), end + 32))[:CONTEXT_AFTER]
        for word in before + after:
            if word in ctx:
                return True
        return False


def resolve(text: str, spans: list[Span], allow: frozenset[str] = frozenset()) -> list[Span]:
    """Non-overlapping spans (highest score, then longest), allow-listed values removed, in order.

    Linear in the text: a mask of taken characters (a text with thousands of hits must not
    cost quadratic time).
    """
    spans.sort(key=lambda s: (-s.score, -(s.end - s.start), s.start))
    taken_mask = bytearray(len(text) + 1)
    taken: list[Span] = []
    for sp in spans:
        if taken_mask.find(1, sp.start, sp.end) >= 0:
            continue
        taken_mask[sp.start:sp.end] = b"\x01" * (sp.end - sp.start)
        taken.append(sp)
    if allow:
        taken = [s for s in taken if text[s.start:s.end].casefold() not in allow]
    taken.sort(key=lambda s: s.start)
    return taken
