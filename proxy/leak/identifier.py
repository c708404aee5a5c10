"""Cross-tenant identifiers: every other tenant's id and identifiers, in one compiled pass.

One pattern for the whole policy (not one per tenant: N tenants would mean N^2
literals); a hit counts only when the literal belongs to another tenant and not
to the caller (an identifier two tenants share is not a leak between them).
"""

from __future__ import annotations

from typing import Mapping

from proxy.leak.hit import Hit
from proxy.leak.literal import word_literals
from proxy.leak.pattern import PatternDetector


class IdentifierIndex:
    """Compiled once per policy: literal (casefolded) -> owning tenants."""

    __slots__ = ("_owners", "_pattern", "_max_len")

    def __init__(self, identifiers: Mapping[str, tuple[str, ...]]) -> None:
        """`identifiers`: tenant id -> the literals only that tenant may see."""
        owners: dict[str, set[str]] = {}
        for tenant, lits in identifiers.items():
            for lit in lits:
                if lit.strip():
                    owners.setdefault(lit.strip().casefold(), set()).add(tenant)
        self._owners = {k: frozenset(v) for k, v in owners.items()}
        self._pattern = word_literals(self._owners) if self._owners else None
        self._max_len = max((len(k) for k in self._owners), default=0)

    def detector_for(self, tenant: str) -> PatternDetector | None:
        """The detector for answers to `tenant` (None when no other tenant has identifiers)."""
        if self._pattern is None or not any(tenant not in o for o in self._owners.values()):
            return None
        owners = self._owners

        def foreign(m) -> bool:
            return tenant not in owners.get(m.group().casefold(), frozenset((tenant,)))

        return PatternDetector("cross_tenant", self._pattern, self._max_len + 1, keep=foreign)


def foreign_hits(index: IdentifierIndex, tenant: str, text: str) -> list[Hit]:
    """Whole-text check (used by tests and batch tools)."""
    det = index.detector_for(tenant)
    return det.scan(text, 0, final=True)[0] if det else []
