"""What the proxy's metrics can carry, read from the code itself: the families of the registry
(proxy/metrics.py) and the label values the handler and the stages pass as literals."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from proxy.metrics import Metrics
from tests.deploy.release import ROOT


@dataclass(frozen=True)
class Family:
    name: str  # without _total
    type: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


def families() -> dict[str, Family]:
    """By the name a user writes in PromQL (counters with _total)."""
    out: dict[str, Family] = {}
    m = Metrics()
    for attr in vars(m).values():
        name = getattr(attr, "_name", None)
        kind = getattr(attr, "_type", None)
        if not name or kind not in ("counter", "gauge", "histogram"):
            continue
        buckets = tuple(getattr(attr, "_upper_bounds", ()))
        full = name + "_total" if kind == "counter" else name
        out[full] = Family(name, kind, tuple(attr._labelnames), buckets)
    return out


@dataclass
class LabelValues:
    literals: set[str] = field(default_factory=set)
    patterns: list[re.Pattern] = field(default_factory=list)  # f-strings, e.g. http_{...}xx

    def has(self, value: str) -> bool:
        return value in self.literals or any(p.fullmatch(value) for p in self.patterns)


def _attr_of_metrics() -> dict[str, str]:
    """Metrics attribute (e.g. budget_reservations) -> PromQL family name."""
    by_attr = {}
    m = Metrics()
    fams = {f.name: full for full, f in families().items()}
    for attr, obj in vars(m).items():
        name = getattr(obj, "_name", None)
        if name in fams:
            by_attr[attr] = fams[name]
    return by_attr


def _value(node: ast.expr) -> str | re.Pattern | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [re.escape(p.value) if isinstance(p, ast.Constant) else ".+" for p in node.values]
        return re.compile("".join(parts))
    return None


def emitted_label_values() -> dict[tuple[str, str], LabelValues]:
    """(family, label) -> values passed as literals to .labels(...) on that family anywhere in
    proxy/, plus the `kind` of ramparts_upstream_errors_total, which the handler passes through
    its _fault(ex, kind) helper."""
    fams = families()
    by_attr = _attr_of_metrics()
    out: dict[tuple[str, str], LabelValues] = {}

    def add(family: str, index: int, node: ast.expr, keyword: str | None = None) -> None:
        if isinstance(node, ast.IfExp):  # a if cond else b: both can be emitted
            add(family, index, node.body, keyword)
            add(family, index, node.orelse, keyword)
            return
        labels = fams[family].labels
        label = keyword or (labels[index] if index < len(labels) else None)
        v = _value(node)
        if label is None or v is None:
            return
        slot = out.setdefault((family, label), LabelValues())
        if isinstance(v, str):
            slot.literals.add(v)
        else:
            slot.patterns.append(v)

    for path in (ROOT / "proxy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if node.func.attr == "labels" and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in by_attr:
                family = by_attr[node.func.value.attr]
                for i, arg in enumerate(node.args):
                    if isinstance(arg, ast.Starred):
                        break
                    add(family, i, arg)
                for kw in node.keywords:
                    add(family, 0, kw.value, kw.arg)
            elif node.func.attr == "_fault" and len(node.args) == 2:
                add("ramparts_upstream_errors_total", 1, node.args[1])
    return out
