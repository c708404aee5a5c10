"""Undo the unicode and spacing tricks attackers use to hide words from detectors.

`fold(text)` returns the text a detector should read plus the names of the
tricks it found (each trick is itself a signal). Work is linear in the text:
a few C-level passes (translate, NFKC, compiled regexes).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import re2

# Zero-width and invisible format characters. U+200D (ZWJ) is left alone: emoji
# sequences use it legitimately, and it is stripped without being a signal.
_ZERO_WIDTH = "\u200b\u200c\u2060\u2061\u2062\u2063\u2064\u180e\u00ad"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
_DROP = {ord(c): None for c in _ZERO_WIDTH + _BIDI + "\u200d\ufeff"}
_ZERO_WIDTH_RE = re.compile(f"[{_ZERO_WIDTH}]")
# Override/embedding/isolate controls reorder text on screen; the plain LRM/RLM marks
# (U+200E/F) are common in right-to-left prose and are not a signal by themselves.
_BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Unicode "tag" characters (U+E0000..E007F) mirror ASCII invisibly ("ASCII smuggling").
_TAG_RE = re.compile("[\U000e0000-\U000e007f]+")

# Cyrillic and Greek letters that render like Latin ones. Only words that MIX Latin
# with these are folded, so genuine Russian or Greek text is left as it is.
_CONFUSABLE = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "к": "k", "м": "m",
    "т": "t", "н": "h", "в": "b",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "ο": "o", "ν": "v", "ρ": "p", "ι": "i", "κ": "k", "τ": "t", "ε": "e", "υ": "u",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLE)
_CONF_CLASS = "".join(_CONFUSABLE)
_TURKISH_I = {0x130: "i", 0x131: "i"}
_MIXED_WORD = re.compile(f"\\w*(?:[A-Za-z][{_CONF_CLASS}]|[{_CONF_CLASS}][A-Za-z])\\w*")

# "i g n o r e" / "i.g.n.o.r.e": four or more single letters joined by one separator.
_SPACED = re.compile(r"\b(?:[A-Za-z][ ._\-*]){3,}[A-Za-z]\b")
_SPACED_SEP = re.compile(r"[ ._\-*]")
# Leetspeak inside a word that also has letters: "1gn0r3", "pr3v10us", "s3cr3t".
_LEET_WORD = re.compile(r"\b(?=[A-Za-z0-9@$]*[A-Za-z])(?=[A-Za-z0-9@$]*[0-9@$])[A-Za-z0-9@$]{3,}\b")
_LEET_TABLE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# Cheap pre-checks: the full rewrites run only when their pattern can occur.
_SPACED_HINT = re2.compile(r"(?:^|[ ._*-])[a-z][ ._*-][a-z][ ._*-][a-z](?:[ ._*-]|$)")
_LEET_HINT = re2.compile(r"[a-z][0-9@$]|[0-9@$][a-z]")
_LEET_CLASSES = bytes(97 if chr(b).isascii() and chr(b).isalpha() else 49 if chr(b) in "0123456789@$" else 32
                      for b in range(256))
_UNLEET_WORDS = 32  # hint hits handled word by word before _unleet falls back to one full pass


@dataclass(frozen=True, slots=True)
class Folded:
    text: str  # NFKC, invisible characters removed, homoglyph words folded
    tricks: tuple[str, ...]  # zero_width | bidi_override | tag_chars | homoglyph
    plain: str  # `text` lowercased, whitespace collapsed, letter-spacing and leet undone


def fold(text: str) -> Folded:
    tricks: list[str] = []
    ascii_text = text.isascii()
    if not ascii_text:  # pure ASCII (most traffic) cannot hide any of these tricks
        if _ZERO_WIDTH_RE.search(text):
            tricks.append("zero_width")
        if _BIDI_RE.search(text):
            tricks.append("bidi_override")
        if _TAG_RE.search(text):
            tricks.append("tag_chars")
            # Keep what the tags spell: that is what the model would read.
            text = _TAG_RE.sub(lambda m: " " + "".join(chr(ord(c) - 0xE0000) for c in m.group()) + " ", text)
        text = unicodedata.normalize("NFKC", text.translate(_DROP))
        if _MIXED_WORD.search(text):
            tricks.append("homoglyph")
            text = _MIXED_WORD.sub(lambda m: m.group().translate(_CONFUSABLE_TABLE), text)
    # Collapse runs of spaces but keep line breaks: some markers only count at a line start.
    # Turkish "İ" lower-cases to "i" + a combining dot and "ı" has no ASCII lower case: both read as
    # "i" (not a homoglyph signal: Turkish prose is full of them), or "İGNORE" would hide "ignore".
    low = text.lower() if ascii_text else text.translate(_TURKISH_I).lower()
    plain = "\n".join(" ".join(line.split()) for line in low.splitlines() if line and not line.isspace())
    if _SPACED_HINT.search(plain):
        plain = _SPACED.sub(lambda m: _SPACED_SEP.sub("", m.group()), plain)
    if _LEET_HINT.search(plain):
        plain = _unleet(plain)
    return Folded(text, tuple(tricks), plain)


def _unleet_word(m: re.Match) -> str:
    return m.group().translate(_LEET_TABLE)


def _unleet(plain: str) -> str:
    """`_LEET_WORD.sub(...)` over `plain`, run only on the words that can match (the same output).

    `plain` holds no whitespace but " " and "\n" (str.split / splitlines above took the rest).
    A match never crosses whitespace (neither the class nor the lookaheads take it) and the
    `\b` at a word's edge sees the same non-word neighbour (whitespace, or the string's end)
    whether the word is cut out or not, so the pattern gives the same matches word by word.
    And a word can only match where a letter touches one of 0-9 @ $ (`_LEET_HINT`): the match
    is a run of those characters holding both. The full pass tries both lookaheads at every
    word boundary (~35 µs per KB in Python's re); a byte translate to character classes and
    `bytes.find` locate the few words that need it in a few µs. Non-ASCII text and texts with
    many such words (a Python step per word would cost more than the full pass) keep the full
    pass.
    """
    if not plain.isascii():
        return _LEET_WORD.sub(_unleet_word, plain)
    cls = plain.encode("ascii").translate(_LEET_CLASSES)  # letter -> "a", 0-9 @ $ -> "1", else " "
    n = len(plain)
    out: list[str] = []
    pos = 0
    dense = False
    words = 0
    i1, i2 = cls.find(b"a1"), cls.find(b"1a")
    while True:
        if 0 <= i1 < pos:
            i1 = cls.find(b"a1", pos)
        if 0 <= i2 < pos:
            i2 = cls.find(b"1a", pos)
        i = i1 if i2 < 0 or 0 <= i1 < i2 else i2
        if i < 0:
            break
        words += 1
        if words > _UNLEET_WORDS:
            dense = True  # the rest in one full pass (from a word start: the same matches)
            break
        s = max(plain.rfind(" ", pos, i), plain.rfind("\n", pos, i)) + 1
        if s < pos:
            s = pos
        e1, e2 = plain.find(" ", i), plain.find("\n", i)
        e = min(e1 if e1 >= 0 else n, e2 if e2 >= 0 else n)
        out.append(plain[pos:s])
        out.append(_LEET_WORD.sub(_unleet_word, plain[s:e]))
        pos = e
    if not out:
        return _LEET_WORD.sub(_unleet_word, plain)  # the hint matched nothing: not reached from fold()
    out.append(_LEET_WORD.sub(_unleet_word, plain[pos:]) if dense else plain[pos:])
    return "".join(out)


def window(text: str, cap: int) -> str:
    """At most `cap` characters: the head and the tail, where instructions usually sit."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return text[:half] + "\n" + text[-(cap - half):]
