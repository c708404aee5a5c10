"""The example alerts (deploy/helm/ramparts/files/alerts.yaml): they parse as PromQL, name only
series Ramparts exports, cover what the operations guide promises, and link to real sections."""

from __future__ import annotations

import re
from typing import Any, Iterator

import promql_parser
import pytest
import yaml

from proxy.metrics import Metrics
from tests.deploy.emitted import emitted_label_values, families
from tests.deploy.release import CHART, ROOT

ALERTS = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
RULES = [r for g in ALERTS["groups"] for r in g["rules"]]
GUIDE = (ROOT / "docs" / "operations.md").read_text()


def exported_series() -> set[str]:
    """Every sample name the proxy's registry can produce."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum", "_created")}
        else:
            names.add(family.name)
    return names


def selectors(node: Any) -> Iterator[Any]:
    if type(node).__name__ == "VectorSelector":
        yield node
        return
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from selectors(child)
    for child in getattr(node, "args", None) or []:
        yield from selectors(child)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
def test_rule_parses_and_names_only_exported_series(rule: dict):
    tree = promql_parser.parse(rule["expr"])
    names = {s.name for s in selectors(tree)}
    assert names, "an alert must select at least one series"
    assert names <= exported_series(), names - exported_series()
    assert rule["labels"]["severity"] in ("info", "warning", "critical")
    assert rule["annotations"]["summary"]


def test_label_values_in_alerts_exist_in_the_metric_definitions():
    """A matcher on a label the metric does not have would never fire."""
    labels_of: dict[str, set[str]] = {}
    for attr in vars(Metrics()).values():
        name = getattr(attr, "_name", None)
        if name:
            labelnames = set(getattr(attr, "_labelnames", ()))
            for suffix in ("", "_total", "_bucket", "_count", "_sum"):
                labels_of[name + suffix] = labelnames | ({"le"} if suffix == "_bucket" else set())
    for rule in RULES:
        for sel in selectors(promql_parser.parse(rule["expr"])):
            used = {m.name for m in sel.matchers.matchers} - {"__name__"}
            assert used <= labels_of[sel.name], (rule["alert"], sel.name, used)


def _family(series: str) -> str:
    fams = families()
    for full, f in fams.items():
        if series == full or series in {f.name + s for s in ("_bucket", "_count", "_sum")}:
            return full
    raise AssertionError(f"{series} is not a Ramparts series")


def test_label_values_the_alerts_match_are_emitted_by_the_proxy():
    """`outcome="refused"` or `kind=~"timeout|connect"` must be values the code really passes
    (a typo would make the alert silently never fire), and `le` must be a real bucket bound."""
    emitted = emitted_label_values()
    fams = families()
    checked = 0
    for rule in RULES:
        for sel in selectors(promql_parser.parse(rule["expr"])):
            family = _family(sel.name)
            for m in sel.matchers.matchers:
                if m.name == "__name__":
                    continue
                if m.name == "le":
                    assert float(m.value) in fams[family].buckets, (rule["alert"], m.value)
                else:
                    values = m.value.split("|") if m.op == promql_parser.MatchOp.Re else [m.value]
                    assert all(re.fullmatch(r"[a-z0-9_]+", v) for v in values), (rule["alert"], m.value)
                    known = emitted.get((family, m.name))
                    assert known is not None, (rule["alert"], family, m.name)
                    assert all(known.has(v) for v in values), (rule["alert"], family, m.name, values)
                checked += 1
    assert checked >= 3  # outcome="refused", le="0.8", kind=~"..."


def test_alerts_cover_what_the_guide_promises():
    names = {r["alert"] for r in RULES}
    exprs = " ".join(r["expr"] for r in RULES)
    for metric in ("budget_reservations_total", "audit_sink_healthy", "audit_sink_failures_total",
                   "injection_score", "upstream_errors_total"):
        assert f"ramparts_{metric}" in exprs
    for name in names:
        assert name in GUIDE, f"{name} is not explained in docs/operations.md"


def test_runbook_links_point_at_guide_sections():
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", GUIDE, re.M)}
    for rule in RULES:
        runbook = rule["annotations"].get("runbook")
        if runbook:
            path, _, anchor = runbook.partition("#")
            assert path == "docs/operations.md" and anchor in anchors, runbook
