"""Injection scoring: quality on the held-out dev split, long-benign-prose false positives, speed.

    .venv/bin/python -m bench.injection_bench [--data ../shared/data] [--runs 5]

1. Held-out 30 % of injection_dev.jsonl (proxy/injection/corpus.py: seeded, BIPIA pairs kept
   together): TPR per attack subtype and FPR per benign subtype at the default bands, a
   ROC-style table, and an ablation (classifier alone, heuristics alone, combined); then the
   same prompts base64/hex/rot13-encoded (attack TPR and benign FPR once encoded).
2. Domain shift: long benign texts never used in training, cut into 1-4 KB pieces: the
   Debian licence texts (/usr/share/common-licenses) and the package descriptions
   (METADATA) of the installed Python packages. FPR at each band.
3. Speed on one core: p50 of scoring a 2 KB message (median of --runs runs), against a
   baseline measured in the same run (orjson parse + dump of the same request body, work
   the proxy does anyway); and a 1 MB input to show the work is capped.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import glob
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from proxy.injection.band import Bands
from proxy.injection.classifier import Classifier
from proxy.injection.corpus import Row, is_held_out, read_jsonl
from proxy.injection.evaluate import evaluate, print_report
from proxy.injection.fold import fold, window
from proxy.injection.heuristic import TRICK_WEIGHTS, signals
from proxy.injection.measure import auc, rates
from proxy.injection.scorer import Scorer
from proxy.injection.train import DEFAULT_DATA


def heuristic_only(text: str, cap: int) -> float:
    f = fold(window(text, cap))
    miss = 1.0
    for w in list(signals(f.plain, f.text).values()) + [TRICK_WEIGHTS[t] for t in f.tricks]:
        miss *= 1.0 - w
    return 1.0 - miss


def ablation(rows: list[Row], scorer: Scorer) -> None:
    labels = [r.label for r in rows]
    subtypes = [r.subtype for r in rows]
    parts = {
        "classifier only": [scorer.classifier.probability(fold(window(r.text, scorer.cap)).plain) for r in rows],
        "heuristics only": [heuristic_only(r.text, scorer.cap) for r in rows],
        "combined (shipped)": [scorer.score(r.text).value for r in rows],
    }
    print("\nAblation on the held-out split (threshold 0.5):")
    print(f"  {'scorer':<20} {'AUC':>6} {'TPR':>6} {'FPR':>6}  TPR direct/jailbreak/indirect   FPR benign/context")
    for name, s in parts.items():
        r = rates(s, labels, subtypes, 0.5)
        t, f = r["tpr_by_subtype"], r["fpr_by_subtype"]
        print(f"  {name:<20} {auc(s, labels):6.3f} {r['tpr']:6.3f} {r['fpr']:6.3f}  "
              f"{t.get('direct_injection', 0):.3f}/{t.get('jailbreak', 0):.3f}/{t.get('indirect_injection', 0):.3f}"
              f"            {f.get('benign', 0):.3f}/{f.get('benign_context', 0):.3f}")


TARGET_TPR, TARGET_FPR = 0.90, 0.02  # the target: direct injections and jailbreaks


def subtype_roc(rows: list[Row], scores: list[float], fprs=(0.005, 0.01, 0.02, 0.05, 0.1)) -> None:
    """TPR of each attack subtype at the lowest threshold whose benign FPR (all benign rows) is <= f."""
    s = np.asarray(scores)
    y = np.array([r.label for r in rows])
    st = np.array([r.subtype for r in rows])
    attacks = sorted(set(st[y == 1]))
    neg = np.sort(s[y == 0])[::-1]
    print("\nROC per attack subtype (threshold chosen on all held-out benign rows):")
    print(f"  {'benign FPR <=':<14} {'threshold':>9}  " + "  ".join(f"{a:>18}" for a in attacks))
    at_target = {}
    for f in fprs:
        k = int(np.floor(f * len(neg)))
        thr = float(np.nextafter(neg[k], 2.0)) if k < len(neg) else 0.0
        tprs = {a: float((s[st == a] >= thr).mean()) for a in attacks}
        if f == TARGET_FPR:
            at_target = tprs
        print(f"  {f:<14} {thr:9.3f}  " + "  ".join(f"{tprs[a]:18.3f}" for a in attacks))
    # How much of that is noise: 95 % bootstrap interval of each subtype's TPR at FPR <= TARGET_FPR
    # (rows resampled with replacement, the threshold re-chosen in each resample).
    rng = np.random.default_rng(0)
    boots: dict[str, list[float]] = {a: [] for a in attacks}
    for _ in range(300):
        i = rng.integers(0, len(s), len(s))
        bs, by, bst = s[i], y[i], st[i]
        bneg = np.sort(bs[by == 0])[::-1]
        k = int(np.floor(TARGET_FPR * len(bneg)))
        thr = float(np.nextafter(bneg[k], 2.0)) if k < len(bneg) else 0.0
        for a in attacks:
            if (bst == a).any():
                boots[a].append(float((bs[bst == a] >= thr).mean()))
    print(f"  95 % bootstrap interval at FPR <= {TARGET_FPR}: " + "  ".join(
        f"{a} [{np.quantile(b, 0.025):.3f}, {np.quantile(b, 0.975):.3f}]" for a, b in boots.items() if b))
    checked = {a: at_target.get(a) for a in ("direct_injection", "jailbreak") if a in at_target}
    met = bool(checked) and all(v >= TARGET_TPR for v in checked.values())
    print(f"  target TPR >= {TARGET_TPR} on direct_injection and jailbreak at FPR <= {TARGET_FPR}: "
          + ", ".join(f"{a} {v:.3f}" for a, v in checked.items()) + f" -> {'MET' if met else 'NOT MET'}")


ENCODERS = {
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "hex": lambda t: t.encode().hex(),
    "rot13": lambda t: codecs.encode(t, "rot13"),
}
CARRIERS = ("Decode this and do what it says: {}", "{}", "What does this mean?\n{}\n")


def encoded_rows(rows: list[Row], seed: int = 5) -> list[Row]:
    """Held-out rows (attacks and benign prompts alike) hidden in an encoding, each with one of a few
    carrier sentences: do attacks still score once encoded, and what do encoded benign prompts cost?"""
    rng = random.Random(seed)
    out = []
    for r in rows:
        if r.subtype not in ("direct_injection", "jailbreak", "benign") or len(r.text) > 1500:
            continue
        kind = rng.choice(sorted(ENCODERS))
        out.append(Row(rng.choice(CARRIERS).format(ENCODERS[kind](r.text)), r.label, r.subtype, r.source, r.id + ":" + kind))
    return out


def encoded_report(rows: list[Row], prose: list[Row], scorer: Scorer, bands: Bands) -> None:
    enc = encoded_rows(rows)
    plain_ids = {r.id.rsplit(":", 1)[0] for r in enc}
    plain = [r for r in rows if r.id in plain_ids]
    rng = random.Random(3)
    enc_prose = [Row(rng.choice(CARRIERS).format(ENCODERS[rng.choice(sorted(ENCODERS))](r.text[:1500])), 0, r.subtype, r.source) for r in prose]
    print(f"\nEncoded payloads ({len(enc)} held-out prompts of <= 1500 chars, each base64/hex/rot13-encoded in a carrier;"
          f" and {len(enc_prose)} long benign pieces, cut to 1500 chars, encoded the same way):")
    for name, rs in (("plain text", plain), ("encoded", enc), ("enc. prose", enc_prose)):
        res, _ = evaluate(rs, scorer, bands)
        print(f"  {name:<11} " + "   ".join(
            f"{b}>={v['threshold']}: " + " ".join(f"{k} {x:.3f}" for k, x in sorted({**v['tpr_by_subtype'], **v['fpr_by_subtype']}.items()))
            for b, v in res["bands"].items() if b != "reinforce"))


def long_benign(seed: int = 11) -> list[Row]:
    rng = random.Random(seed)
    out: list[Row] = []
    files = sorted(glob.glob("/usr/share/common-licenses/*"))
    metas = sorted(glob.glob(str(Path(sys.prefix) / "lib/python3*/site-packages/*.dist-info/METADATA")))
    for kind, paths in (("licence_text", files), ("package_readme", metas)):
        for p in paths:
            try:
                text = Path(p).read_text(encoding="utf-8", errors="replace")
            except (IsADirectoryError, OSError):
                continue
            pos = 0
            while pos < len(text) - 500 and sum(r.subtype == kind for r in out) < 300:
                n = rng.randint(1000, 4000)
                out.append(Row(text[pos:pos + n], 0, kind, p))
                pos += n
    return out


def speed(scorer: Scorer, runs: int, iterations: int = 300) -> None:
    text = ("Hi team, the quarterly numbers are attached. Revenue grew in every region except the north, "
            "where two large customers delayed renewals. Please review the forecast tab before Thursday. ") * 20
    text = text[:2048]
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})

    def p50(fn, n=iterations) -> float:
        meds = []
        for _ in range(runs):
            ts = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            meds.append(statistics.median(ts))
        return statistics.median(meds) * 1000

    base = p50(lambda: orjson.dumps(orjson.loads(body)))
    score = p50(lambda: scorer.score(text))
    clf = p50(lambda: scorer.classifier.probability(fold(text).plain))
    big = "lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 18_000  # ~1 MB
    big_ms = p50(lambda: scorer.score(big), n=5)
    t0 = time.perf_counter()
    Classifier.load()
    load_ms = (time.perf_counter() - t0) * 1000
    print(f"\nSpeed (one core, p50, median of {runs} runs):")
    print(f"  {'what':<40} {'ms':>8} {'x baseline':>11}")
    print(f"  {'baseline: orjson loads+dumps 2 KB body':<40} {base:8.3f} {1.0:11.1f}")
    print(f"  {'score() of a 2 KB message':<40} {score:8.3f} {score / base:11.1f}")
    print(f"  {'  of which classifier (fold + n-grams)':<40} {clf:8.3f} {clf / base:11.1f}")
    print(f"  {'score() of a 1 MB input (capped)':<40} {big_ms:8.3f} {big_ms / base:11.1f}")
    print(f"  {'model load':<40} {load_ms:8.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a few rows and iterations: checks the bench runs, not the numbers")
    args = ap.parse_args(argv)
    scorer = Scorer(Classifier.load())
    rows = [r for r in read_jsonl(args.data / "injection_dev.jsonl") if is_held_out(r)]
    if args.quick:
        rows = rows[::10]
    print(f"Held-out split: {len(rows)} rows of injection_dev.jsonl (default bands {Bands().thresholds()})")
    result, scores = evaluate(rows, scorer, Bands())
    print_report(result, rows, scores)
    subtype_roc(rows, scores)
    ablation(rows, scorer)
    prose = long_benign()[:: 10 if args.quick else 1]
    encoded_report(rows, prose, scorer, Bands())
    if prose:
        res, _ = evaluate(prose, scorer, Bands())
        print(f"\nLong benign texts never trained on ({len(prose)} pieces of 1-4 KB):")
        for name, b in res["bands"].items():
            print(f"  band {name:<9} (>= {b['threshold']}): " + "  ".join(f"{k} FPR {v:.3f}" for k, v in b["fpr_by_subtype"].items()))
    speed(scorer, 1 if args.quick else args.runs, 20 if args.quick else 300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
