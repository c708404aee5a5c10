"""Lower-casing that keeps offsets: an index into the result is the same index into the input."""

from __future__ import annotations


def lower_in_place(s: str) -> str:
    """s.lower(), with every character at its offset. "İ" (U+0130) lower-cases to two code points
    ("i" and a combining dot), the only character whose lower() changes length, so past one an
    index into s.lower() would be shifted; it is lowered to "i" instead."""
    low = s.lower()
    return low if len(low) == len(s) else s.replace("\u0130", "i").lower()
