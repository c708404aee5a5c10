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


@dataclass(frozen=True, slots=True)
class Folded:
    text: str  # NFKC, invisible characters removed, homoglyph words folded
    tricks: tuple[str, ...]  # zero_width | bidi_override | tag_chars | homoglyph
    plain: str  # `text` lowercased, whitespace collapsed, letter-spacing and leet undone


def fold(text: str) -> Folded:
    tricks: list[str] = []
    if not text.isascii():  # pure ASCII (most traffic) cannot hide any of these tricks
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
    plain = "\n".join(" ".join(line.split()) for line in text.lower().splitlines() if line and not line.isspace())
    if _SPACED_HINT.search(plain):
        plain = _SPACED.sub(lambda m: _SPACED_SEP.sub("", m.group()), plain)
    if _LEET_HINT.search(plain):
        plain = _LEET_WORD.sub(lambda m: m.group().translate(_LEET_TABLE), plain)
    return Folded(text, tuple(tricks), plain)


def window(text: str, cap: int) -> str:
    """At most `cap` characters: the head and the tail, where instructions usually sit."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return text[:half] + "\n" + text[-(cap - half):]
