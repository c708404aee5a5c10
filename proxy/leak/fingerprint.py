"""System-prompt fingerprint: word n-gram shingles of the prompt, matched over the output.

Text is reduced to casefolded words (letters and digits), so whitespace, line
breaks, markdown (`**`, `#`, `>`, backticks, list dashes) and punctuation do not
hide a copy. The output leaks the prompt when, in some window of `window`
consecutive output shingles, at least `threshold` of them are shingles of the
prompt (default: 90 % of 12 shingles of 5 words, i.e. ~16 copied words). This
catches verbatim and lightly reformatted copies, not paraphrases.

Streaming: while a run of output could still grow into such a window (too few
misses so far) it is held back; as soon as it cannot, it is released.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

from proxy.leak.hit import Hit

_WORD = re.compile(r"[^\W_]+")
# ASCII text: _WORD.findall(text.lower()) is text.translate(_ASCII_WORDS).split() (a word character
# is an ASCII letter or digit, lowered; every other ASCII character separates), ~3x faster.
_ASCII_WORDS = {i: (chr(i).lower() if chr(i).isalnum() else " ") for i in range(128)}
# The same over the ASCII text's bytes (bytes.translate and split run in C: ~2x faster again).
_ASCII_BYTES = bytes(ord(chr(i).lower()) if i < 128 and chr(i).isalnum() else 32 for i in range(256))
MIN_WORDS = 4  # shorter prompts carry too little signal: use canaries for them

Word = tuple[int, int, str]  # start, end, casefolded text


def words_in(text: str, start: int = 0) -> list[Word]:
    return [(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(text, start)]


class PromptFingerprint:
    """Compiled once per prompt text (per tenant at startup; per request for sent system prompts)."""

    __slots__ = ("n", "window", "need", "shingles", "grams", "prefixes", "max_word")

    def __init__(self, text: str, shingle: int = 5, window: int = 12, threshold: float = 0.9) -> None:
        ws = [w for _, _, w in words_in(text)]
        if len(ws) < MIN_WORDS:
            raise ValueError(f"a fingerprinted prompt needs at least {MIN_WORDS} words")
        n = self.n = min(shingle, len(ws))
        positions = len(ws) - n + 1
        self.window = max(1, min(window, positions))
        self.need = max(1, math.ceil(threshold * self.window - 1e-9))
        self.shingles = frozenset(tuple(ws[i:i + n]) for i in range(positions))
        # k-grams (k < n): the words at the end of the buffer may be the start of a shingle.
        self.grams = frozenset(tuple(ws[i:i + k]) for k in range(1, n) for i in range(len(ws) - k + 1))
        self.prefixes = frozenset(w[:j] for w in set(ws) for j in range(1, len(w) + 1))
        self.max_word = max(len(w) for w in ws)

    @property
    def max_span(self) -> int:
        return (self.window + self.n) * (self.max_word + 16)

    def scan(self, words: Sequence[Word], open_word: bool, end: int, final: bool) -> tuple[list[tuple[int, int]], int]:
        """Leaked spans (start, end) among `words`, and where a leak may still be forming."""
        done = words[:-1] if open_word else words
        n, W, need = self.n, self.window, self.need
        texts = [w for _, _, w in done]
        shingles = self.shingles
        matched = [tuple(texts[p:p + n]) in shingles for p in range(len(texts) - n + 1)]
        spans: list[tuple[int, int]] = []
        if len(matched) >= W:
            count = sum(matched[:W])
            for j in range(len(matched) - W + 1):
                if j:
                    count += matched[j + W - 1] - matched[j - 1]
                if count >= need:
                    first = next(p for p in range(j, j + W) if matched[p])
                    last = next(p for p in range(j + W - 1, j - 1, -1) if matched[p])
                    s, e = done[first][0], done[last + n - 1][1]
                    if spans and s <= spans[-1][1]:
                        spans[-1] = (spans[-1][0], max(e, spans[-1][1]))
                    else:
                        spans.append((s, e))
        if final:
            return spans, end
        hold = end
        # (a) a run of matched shingles that could still fill a window.
        allowed, misses = W - need, 0
        for p in range(len(matched) - 1, max(-1, len(matched) - W), -1):
            if not matched[p]:
                misses += 1
                if misses > allowed:
                    break
            else:
                hold = min(hold, done[p][0])
        # (b) the last words may begin a shingle; an unfinished word may be a prompt word.
        for k in range(min(n - 1, len(texts)), 0, -1):
            if tuple(texts[-k:]) in self.grams:
                hold = min(hold, done[-k][0])
                break
        if open_word and words[-1][2] in self.prefixes:
            hold = min(hold, words[-1][0])
        return spans, hold


def _has_run(words, vocab, need: int) -> bool:
    """Whether `need` words in a row are in `vocab` (no shingle of `need` words can match otherwise)."""
    run = 0
    for w in words:
        if w in vocab:
            run += 1
            if run >= need:
                return True
        else:
            run = 0
    return False


class FingerprintDetector:
    """Detector over one or more prompt fingerprints (the tenant's and the request's)."""

    __slots__ = ("name", "max_span", "_prints", "_vocab", "_prefixes", "_n", "_shingles", "_grams", "_all_grams",
                 "_run", "_longest_gram", "quiet", "_vocab_bytes")

    def __init__(self, prints: Iterable[PromptFingerprint]) -> None:
        self.name = "system_prompt"
        self._prints = tuple(prints)
        self.max_span = max((p.max_span for p in self._prints), default=0)
        self._vocab = frozenset(w for p in self._prints for sh in p.shingles for w in sh)  # every prompt word
        self._prefixes = frozenset().union(*(p.prefixes for p in self._prints))
        # With one shingle size, a buffer that matches no shingle of any prompt is judged once for all.
        sizes = {p.n for p in self._prints}
        self._n = sizes.pop() if len(sizes) == 1 else None
        self._shingles = frozenset().union(*(p.shingles for p in self._prints)) if self._n else frozenset()
        self._grams = frozenset().union(*(p.grams for p in self._prints)) if self._n else frozenset()
        # Any size: a shingle needs `_run` prompt words in a row; a k-gram of any prompt (k below
        # its shingle size) at the end of the buffer is where a match may start.
        self._all_grams = frozenset().union(*(p.grams for p in self._prints))
        self._run = min((p.n for p in self._prints), default=1)
        self._longest_gram = max((p.n for p in self._prints), default=1) - 1
        # The ASCII prompt words as bytes (no other prompt word can equal a word of an ASCII text).
        self._vocab_bytes = frozenset(w.encode("ascii") for w in self._vocab if w.isascii())
        # For SlotScanner's shortcut: searched over the new text alone (words start where the scan
        # starts); None means scan() would find nothing and hold nothing there.
        self.quiet = (self._busy, True)

    def _busy(self, text: str) -> bool | None:
        """None if `text` (not final) holds no prompt word and does not end in the beginning of one."""
        if not text.isascii():
            return True  # the general path decides
        found = text.translate(_ASCII_WORDS).split()
        if not found:
            return None
        if text[-1].isalnum() and found.pop() in self._prefixes:  # the last word may still grow into one
            return True
        return None if self._vocab.isdisjoint(found) else True

    def scan(self, text: str, start: int, final: bool) -> tuple[list[Hit], int]:
        n = len(text)
        seg = text[start:] if start else text
        if final and seg.isascii():
            # The last scan of an ASCII text (a whole answer): nothing is held, so only whether `_run`
            # prompt words come in a row matters (_has_run), on the text's bytes.
            words = seg.encode("ascii").translate(_ASCII_BYTES).split()
            vocab = self._vocab_bytes
            if not words or vocab.isdisjoint(words) or not _has_run(words, vocab, self._run):
                return [], n
            # `_run` prompt words in a row: the general path below.
        elif seg.isascii():
            # ASCII (the common case): casefold is lower, a word character is an ASCII letter or digit.
            found = seg.translate(_ASCII_WORDS).split()
            if not found:
                return [], n
            open_word = not final and seg[-1].isalnum()  # the last word may still grow
            done = found[:-1] if open_word else found
            vocab = self._vocab
            if vocab.isdisjoint(done):
                # No prompt word: no shingle can match and no run can start, except in the unfinished word.
                return [], (n - len(found[-1]) if open_word and found[-1] in self._prefixes else n)
            if not _has_run(done, vocab, self._run):
                # Never `_run` prompt words in a row: no shingle of any prompt, so no leak and no run
                # of matches; only a shingle's beginning at the end needs holding.
                if final:
                    return [], n
                hold = n
                grams = self._all_grams
                for j in range(min(self._longest_gram, len(done)), 0, -1):
                    if tuple(done[-j:]) in grams:
                        starts = [m.start() for m in _WORD.finditer(seg)]
                        hold = start + starts[len(done) - j]
                        break
                if open_word and found[-1] in self._prefixes:
                    hold = min(hold, n - len(found[-1]))
                return [], hold
            # `_run` prompt words in a row: the general path below.
        found = _WORD.findall(text, start)
        if not found:
            return [], n
        open_word = not final and text.endswith(found[-1])
        vocab = self._vocab
        if not any(w.casefold() in vocab for w in (found[:-1] if open_word else found)):
            # No prompt word here: no shingle can match and no run can start, except in an unfinished word.
            if open_word and found[-1].casefold() in self._prefixes:
                return [], n - len(found[-1])
            return [], n
        words = words_in(text, start)
        if self._n is not None:
            done = words[:-1] if open_word else words
            texts = [w for _, _, w in done]
            k = self._n
            shingles = self._shingles
            if not any(tuple(texts[p:p + k]) in shingles for p in range(len(texts) - k + 1)):
                # No shingle of any prompt: no leak and no run; only a start at the end may need holding.
                hold = n
                if not final:
                    for j in range(min(k - 1, len(texts)), 0, -1):
                        if tuple(texts[-j:]) in self._grams:
                            hold = done[-j][0]
                            break
                    if open_word and words[-1][2] in self._prefixes:
                        hold = min(hold, words[-1][0])
                return [], hold
        hits: list[Hit] = []
        hold = n
        for fp in self._prints:
            spans, h = fp.scan(words, open_word, n, final)
            hits.extend(Hit(self.name, "system_prompt", s, e) for s, e in spans)
            hold = min(hold, h)
        return hits, hold
