"""Undo cheap evasions before detection, keeping a map back to the original offsets.

Zero-width and other invisible format characters are dropped; full-width forms and
non-ASCII decimal digits become their ASCII forms ("４１１１", "٤٦٠"). Detection runs on
the normalized text and its spans are mapped back, so the original characters (the
invisible ones included) are what gets tokenized and restored, byte for byte.
ASCII text is returned as is, at no cost. Homoglyph letters are not folded.
"""

from __future__ import annotations

import re
import unicodedata

# Invisible: soft hyphen, zero-width space/joiners, LRM/RLM, word joiner and invisible operators, BOM.
_INVISIBLE = frozenset("\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
_SUSPECT = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff\uff01-\uff5e]|(?![0-9])\d")


def normalize(text: str) -> tuple[str, list[int]] | None:
    """(normalized text, original index of each of its characters), or None if unchanged."""
    if text.isascii() or _SUSPECT.search(text) is None:
        return None
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _INVISIBLE:
            continue
        if "\uff01" <= ch <= "\uff5e":
            ch = chr(ord(ch) - 0xFEE0)  # full-width ASCII block -> ASCII
        elif not ch.isascii() and ch.isdecimal():
            ch = str(unicodedata.decimal(ch))
        out.append(ch)
        index.append(i)
    return "".join(out), index


def to_original(index: list[int], start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) span of the normalized text back to the original text."""
    return index[start], index[end - 1] + 1
