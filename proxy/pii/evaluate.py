"""`ramparts eval pii FILE.jsonl [--policy P] [--tenant T] [--engine fast|presidio]`

Reads rows `{"text": ..., "entities": [{"start", "end", "type"}, ...]}` (the format of
shared/data/pii_dev.jsonl), runs the detection the proxy runs (the policy's `pii` stage
settings for that tenant, or the defaults), and prints per entity type precision,
recall and F1 with exact-span and overlap matching, type-agnostic span recall and
precision (for gold without our type names), and a round trip: tokenize -> restore must
give back every row byte for byte, whole and streamed one character at a time.
The last line is one JSON object (see `summary`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from proxy.pii.detector import Detector, Span
from proxy.pii.restorer import Restorer
from proxy.pii.settings import DetectionSettings
from proxy.pii.tokenizer import tokenize
from proxy.pii.vault import Vault

Find = Callable[[str], Sequence[Span]]


@dataclass
class Row:
    text: str
    gold: list[tuple[int, int, str]]


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f


@dataclass
class OverlapTally:
    """Overlap matching: a gold span is found if a same-type prediction touches it, and back."""

    gold: int = 0
    gold_hit: int = 0
    pred: int = 0
    pred_hit: int = 0

    def prf(self) -> tuple[float, float, float]:
        p = self.pred_hit / self.pred if self.pred else 0.0
        r = self.gold_hit / self.gold if self.gold else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f


@dataclass
class Report:
    rows: int = 0
    exact: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    overlap: dict[str, OverlapTally] = field(default_factory=lambda: defaultdict(OverlapTally))
    gold_spans: int = 0
    gold_covered: int = 0
    pred_spans: int = 0
    pred_on_gold: int = 0
    roundtrip_failures: int = 0
    chars: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        by_type = {}
        for t in sorted(set(self.exact)):
            p, r, f = self.exact[t].prf()
            by_type[t] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
        return {
            "span_recall": round(self.gold_covered / self.gold_spans, 4) if self.gold_spans else 0.0,
            "span_precision": round(self.pred_on_gold / self.pred_spans, 4) if self.pred_spans else 0.0,
            "by_type": by_type,
            "roundtrip_ok": self.roundtrip_failures == 0,
            "rows": self.rows,
        }


def read_rows(path: str | Path) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                gold = [(int(e["start"]), int(e["end"]), str(e.get("type") or "PII")) for e in obj.get("entities") or ()]
                rows.append(Row(str(obj["text"]), gold))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a row of the form {{'text', 'entities': [{{start, end, type}}]}}: {e}") from None
    return rows


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def measure(rows: Iterable[Row], find: Find, roundtrip: bool = True) -> Report:
    rep = Report()
    key = os.urandom(32)
    for row in rows:
        rep.rows += 1
        rep.chars += len(row.text)
        t0 = time.perf_counter()
        spans = list(find(row.text))
        rep.seconds += time.perf_counter() - t0
        pred = [(s.start, s.end, s.entity) for s in spans]
        gold = row.gold
        for g in set(gold):
            rep.exact[g[2]].fn += g not in pred
            ov = rep.overlap[g[2]]
            ov.gold += 1
            ov.gold_hit += any(p[2] == g[2] and _overlaps(p[:2], g[:2]) for p in pred)
        for p in set(pred):
            hit = p in gold
            rep.exact[p[2]].tp += hit
            rep.exact[p[2]].fp += not hit
            ov = rep.overlap[p[2]]
            ov.pred += 1
            ov.pred_hit += any(g[2] == p[2] and _overlaps(p[:2], g[:2]) for g in gold)
        rep.gold_spans += len(gold)
        rep.gold_covered += sum(1 for g in gold if any(_overlaps(p[:2], g[:2]) for p in pred))
        rep.pred_spans += len(pred)
        rep.pred_on_gold += sum(1 for p in pred if any(_overlaps(p[:2], g[:2]) for g in gold))
        if roundtrip and not roundtrip_ok(row.text, spans, key):
            rep.roundtrip_failures += 1
    return rep


def roundtrip_ok(text: str, spans: Sequence[Span], key: bytes) -> bool:
    """tokenize -> restore is byte-exact, for the whole text and for a 1-char stream."""
    vault = Vault(key, text)
    tokenized = tokenize(text, spans, vault)
    restorer = Restorer(vault)
    whole = restorer.restore_text(tokenized)
    rw = restorer.rewriter()
    streamed = "".join(rw.feed(ch) for ch in tokenized) + rw.finish()
    return whole == text and streamed == text


def format_table(rep: Report) -> str:
    lines = [f"{'entity type':<20} {'gold':>5} {'pred':>5} | {'P exact':>7} {'R exact':>7} {'F1 exact':>8} | {'P ovl':>6} {'R ovl':>6} {'F1 ovl':>6}"]
    lines.append("-" * len(lines[0]))
    for t in sorted(rep.exact):
        ex, ov = rep.exact[t], rep.overlap[t]
        p, r, f = ex.prf()
        op, orr, of = ov.prf()
        lines.append(f"{t:<20} {ex.tp + ex.fn:>5} {ex.tp + ex.fp:>5} | {p:>7.3f} {r:>7.3f} {f:>8.3f} | {op:>6.3f} {orr:>6.3f} {of:>6.3f}")
    s = rep.summary()
    lines.append("")
    lines.append(f"type-agnostic spans: recall {s['span_recall']:.3f} (gold {rep.gold_spans}), precision {s['span_precision']:.3f} (pred {rep.pred_spans})")
    mbps = rep.chars / rep.seconds / 1e6 if rep.seconds else 0.0
    lines.append(f"detection: {rep.rows} rows, {rep.chars} chars in {rep.seconds * 1000:.1f} ms ({mbps:.2f} MB/s)")
    lines.append(f"round trip (tokenize -> restore, whole and streamed per character): "
                 f"{'ok on every row' if s['roundtrip_ok'] else f'{rep.roundtrip_failures} rows FAILED'}")
    return "\n".join(lines)


def _detector_from(policy: str | None, tenant: str | None) -> Detector:
    if not policy:
        return Detector(DetectionSettings())
    from proxy.config.loader import load_policy

    compiled = load_policy(policy, resolve_secrets=False)
    for cfg in compiled.stage_configs:
        if getattr(cfg, "type", None) == "pii":
            if tenant and tenant not in compiled.tenants:
                raise SystemExit(f"ramparts eval pii: tenant {tenant!r} is not in {policy}")
            return Detector(cfg.for_tenant(tenant), compiled.base_dir)
    raise SystemExit(f"ramparts eval pii: {policy} has no `pii` stage in its pipeline")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ramparts eval pii", description="Evaluate the proxy's PII detection on a JSONL file of labelled texts.")
    ap.add_argument("file", help="JSONL rows: {text, entities: [{start, end, type}]}")
    ap.add_argument("--policy", help="take the pii stage's settings from this policy file")
    ap.add_argument("--tenant", help="with --policy: that tenant's overrides")
    ap.add_argument("--engine", choices=("fast", "presidio"), default="fast",
                    help="fast: the proxy's path; presidio: Presidio's AnalyzerEngine with the same recognizers (slow reference)")
    args = ap.parse_args(argv)
    try:
        detector = _detector_from(args.policy, args.tenant)
        rows = read_rows(args.file)
    except (OSError, ValueError) as e:
        print(f"ramparts eval pii: {e}", file=sys.stderr)
        return 2
    find: Find = detector.find
    if args.engine == "presidio":
        from proxy.pii.reference import PresidioReference

        find = PresidioReference(detector).find
    rep = measure(rows, find)
    print(format_table(rep))
    print(json.dumps(rep.summary()))
    return 0
