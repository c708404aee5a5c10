"""`ramparts eval injection FILE.jsonl [--policy P] [--tenant T]`

Scores every row with the engine the proxy runs, prints TPR per attack subtype and
FPR per benign subtype at each of the policy's bands (defaults without --policy),
and ends with one line of JSON:
{"auc", "bands": {BAND: {"threshold", "tpr", "fpr", "tpr_by_subtype", "fpr_by_subtype"}}, "rows", "p50_ms"}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from proxy.injection.band import Bands
from proxy.injection.classifier import Classifier
from proxy.injection.corpus import Row, is_held_out, read_jsonl
from proxy.injection.measure import auc, rates, roc_table
from proxy.injection.scorer import Scorer


def bands_from_policy(path: str, tenant: str | None) -> tuple[Bands, str | None]:
    """The injection stage's bands for `tenant` in a policy file (and its model_path)."""
    from proxy.config.loader import load_policy
    from proxy.pipeline.registry import stage_class

    policy = load_policy(path, resolve_secrets=False)
    entries = [s for s in policy.model.pipeline if s.get("type") == "injection"]
    if not entries:
        raise ValueError(f"{path}: the pipeline has no `injection` stage")
    cfg = stage_class("injection").Config.model_validate(entries[0])
    if tenant is not None and tenant not in policy.tenants:
        raise ValueError(f"{path}: unknown tenant {tenant!r}")
    model = cfg.model_path
    if model is not None and not Path(model).is_absolute():
        model = str(policy.base_dir / model)
    return cfg.bands_for(tenant), model


def evaluate(rows: list[Row], scorer: Scorer, bands: Bands) -> tuple[dict, list[float]]:
    scores, times = [], []
    for r in rows:
        t0 = time.perf_counter()
        scores.append(scorer.score(r.text).value)
        times.append(time.perf_counter() - t0)
    labels = [r.label for r in rows]
    subtypes = [r.subtype for r in rows]
    result = {
        "auc": round(auc(scores, labels), 4),
        "bands": {name: rates(scores, labels, subtypes, thr) for name, thr in bands.thresholds().items()},
        "rows": len(rows),
        "p50_ms": round(float(np.median(times)) * 1000, 3) if times else 0.0,
    }
    return result, scores


def print_report(result: dict, rows: list[Row], scores: list[float], out=None) -> None:
    out = out or sys.stdout
    for name, b in result["bands"].items():
        print(f"band {name} (score >= {b['threshold']}):  TPR {b['tpr']}  FPR {b['fpr']}", file=out)
        for st, v in b["tpr_by_subtype"].items():
            print(f"    attack  {st:<28} TPR {v:.3f}", file=out)
        for st, v in b["fpr_by_subtype"].items():
            print(f"    benign  {st:<28} FPR {v:.3f}", file=out)
    labels = [r.label for r in rows]
    if 0 < sum(labels) < len(labels):
        print("ROC (pooled): target FPR -> threshold, TPR", file=out)
        for f, thr, tpr in roc_table(scores, labels):
            print(f"    FPR <= {f:<6} threshold {thr:.3f}  TPR {tpr:.3f}", file=out)
    print(f"AUC {result['auc']}  rows {result['rows']}  p50 {result['p50_ms']} ms/row", file=out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts eval injection", description="score a labelled JSONL file")
    ap.add_argument("file", help="JSONL rows with text, label (1 = attack) and subtype")
    ap.add_argument("--policy", help="take the bands (and model_path) from this policy's injection stage")
    ap.add_argument("--tenant", help="use this tenant's band overrides (with --policy)")
    ap.add_argument("--held-out", action="store_true", help="only rows in Ramparts' fixed held-out split (dev data)")
    args = ap.parse_args(argv)
    try:
        bands, model = bands_from_policy(args.policy, args.tenant) if args.policy else (Bands(), None)
        skipped: list[str] = []
        rows = read_jsonl(args.file, skipped)
    except (OSError, ValueError) as e:
        print(f"ramparts eval injection: {e}", file=sys.stderr)
        return 2
    if skipped:  # one bad line should not void a whole evaluation: say so and go on
        print(f"ramparts eval injection: skipped {len(skipped)} line(s) that are not labelled rows, first: {skipped[0]}", file=sys.stderr)
    if args.held_out:
        rows = [r for r in rows if is_held_out(r)]
    if not rows:
        print("ramparts eval injection: no rows", file=sys.stderr)
        return 2
    result, scores = evaluate(rows, Scorer(Classifier.load(model)), bands)
    print_report(result, rows, scores)
    print(json.dumps(result, sort_keys=True))
    return 0
