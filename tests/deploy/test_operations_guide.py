"""docs/operations.md against the code: the metrics reference table is the registry of
proxy/metrics.py (names, types, labels), enumerated label values are the ones the handler and
the stages emit, and every metric name the guide or the README's deploy section mentions exists."""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from proxy import cli
from tests.deploy.emitted import emitted_label_values, families
from tests.deploy.release import ROOT

GUIDE = (ROOT / "docs" / "operations.md").read_text()
README = (ROOT / "README.md").read_text()
TENANT_LABEL = "tenant"  # added to some families only with metrics.tenant_label: true


def reference_rows() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """metric -> (type, labels, meaning) from the table under '## Prometheus metrics'."""
    section = GUIDE[GUIDE.index("## Prometheus metrics"):]
    section = section[:section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`ramparts_"):
            continue
        labels = tuple(x.strip() for x in cells[2].split(",") if x.strip())
        for name in re.findall(r"`(ramparts_[a-z0-9_]+)`", cells[0]):
            rows[name] = (cells[1], labels, cells[3])
    return rows


def test_the_reference_table_is_the_registry():
    rows = reference_rows()
    fams = families()
    assert set(rows) == set(fams), {"documented, not exported": set(rows) - set(fams),
                                    "exported, not documented": set(fams) - set(rows)}
    for name, (kind, labels, _) in rows.items():
        fam = fams[name]
        assert kind == fam.type, name
        assert labels == tuple(l for l in fam.labels if l != TENANT_LABEL), name


def test_enumerated_label_values_are_exactly_the_emitted_ones():
    """Where the table lists a label's values, the list is complete and holds no invented one."""
    rows = reference_rows()
    emitted = emitted_label_values()
    for family, label in (("ramparts_upstream_errors_total", "kind"), ("ramparts_budget_reservations_total", "outcome")):
        documented = set(re.findall(r"`([a-z0-9_]+)`", rows[family][2]))
        known = emitted[(family, label)]
        assert known.literals <= documented, (family, known.literals - documented)
        assert all(known.has(v) for v in documented), (family, {v for v in documented if not known.has(v)})
        # f-string values (http_{status // 100}xx) are documented by at least one instance
        for pattern in known.patterns:
            assert any(pattern.fullmatch(v) for v in documented), (family, pattern.pattern)


def test_every_metric_named_in_the_docs_exists():
    series = set()
    for full, f in families().items():
        series.add(full)
        if f.type == "histogram":
            series |= {f.name + s for s in ("_bucket", "_count", "_sum")}
    readme = README[README.index("<!-- section:deploy -->"):]
    readme = readme[:readme.find("<!-- section:", 10) if readme.find("<!-- section:", 10) > 0 else None]
    for where, text in (("docs/operations.md", GUIDE), ("README deploy section", readme)):
        named = set(re.findall(r"\b(ramparts_[a-z0-9_]+)", text))
        assert named <= series, (where, named - series)
    assert len(set(re.findall(r"\b(ramparts_[a-z0-9_]+)", GUIDE))) >= len(families())


def _help(words: tuple[str, ...]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main([*words, "--help"])
    return out.getvalue()


def test_cli_commands_in_the_docs_are_real():
    """`ramparts keys generate --out DIR --name ...`, `ramparts audit verify ... --keys ...`:
    the commands exist and take those flags (their real argparse --help)."""
    readme = README[README.index("<!-- section:deploy -->"):]
    mentions = re.findall(r"`(ramparts [a-z][^`]*)`", GUIDE + readme)
    assert len(mentions) >= 4
    for mention in mentions:
        argv = shlex.split(mention)[1:]
        words = next((tuple(argv[:n]) for n in (2, 1) if tuple(argv[:n]) in cli.COMMANDS), None)
        assert words is not None, f"{mention}: no such command"
        flags = {a.split("=")[0] for a in argv if a.startswith("--")}
        assert flags <= set(re.findall(r"--[a-z][a-z-]*", _help(words))), mention
