"""Cross-tenant identifiers: every other tenant's id and identifiers, in one compiled pass.

One alternative for the whole policy (not one per tenant: N tenants would mean
N^2 literals), shared by every tenant's pass; a hit counts only when the literal
belongs to another tenant and not to the caller (an identifier two tenants share
is not a leak between them).
"""

from __future__ import annotations

from typing import Mapping

from proxy.leak.hit import Hit
from proxy.leak.literal import literal_forms, word_literals
from proxy.leak.pattern import Alternative, Check, PatternDetector

GROUP = "cross_tenant__cross_tenant"


class IdentifierIndex:
    """Compiled once per policy: literal (casefolded) -> owning tenants."""

    __slots__ = ("_owners", "_alternative")

    def __init__(self, identifiers: Mapping[str, tuple[str, ...]]) -> None:
        """`identifiers`: tenant id -> the literals only that tenant may see."""
        owners: dict[str, set[str]] = {}
        for tenant, lits in identifiers.items():
            for lit in lits:
                if lit.strip():
                    owners.setdefault(lit.strip().casefold(), set()).add(tenant)
        self._owners = {k: frozenset(v) for k, v in owners.items()}
        self._alternative = None
        if self._owners:
            # Searched as written and case-folded (see literal_forms); owners keyed case-folded, and a
            # match's casefold() is one of those keys.
            forms = literal_forms(lit.strip() for lits in identifiers.values() for lit in lits if lit.strip())
            self._alternative = Alternative(GROUP, "cross_tenant", "cross_tenant", word_literals(forms).pattern,
                                            max(len(k) for k in forms) + 1, tuple(forms), True)

    def alternative_for(self, tenant: str) -> tuple[Alternative, Check] | None:
        """The shared alternative and this tenant's owner check (None if nothing is foreign to it)."""
        if self._alternative is None or all(tenant in o for o in self._owners.values()):
            return None
        owners = self._owners
        mine = frozenset((tenant,))

        def foreign(m) -> bool:
            return tenant not in owners.get(m.group().casefold(), mine)

        return self._alternative, foreign

    def detector_for(self, tenant: str) -> PatternDetector | None:
        found = self.alternative_for(tenant)
        if found is None:
            return None
        alt, check = found
        return PatternDetector([alt], {alt.group: check})


def foreign_hits(index: IdentifierIndex, tenant: str, text: str) -> list[Hit]:
    """Whole-text check (tests and batch tools)."""
    det = index.detector_for(tenant)
    return det.scan(text, 0, final=True)[0] if det else []
