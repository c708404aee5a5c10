"""Replace detected spans with vault tokens (request side)."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from proxy.pii.detector import Span
from proxy.pii.vault import Vault


def tokenize(text: str, spans: Sequence[Span], vault: Vault, counts: Counter[str] | None = None) -> str:
    """`text` with every span replaced by its token; spans are sorted and non-overlapping."""
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for sp in spans:
        out.append(text[pos:sp.start])
        out.append(vault.token_for(sp.entity, text[sp.start:sp.end]))
        if counts is not None:
            counts[sp.entity] += 1
        pos = sp.end
    out.append(text[pos:])
    return "".join(out)
