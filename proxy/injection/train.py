"""`ramparts train injection`: rebuild the shipped classifier, reproducibly.

    ramparts train injection [--data DIR] [--out FILE] [--seed N]

Training rows (only rows whose licence allows shaping a shipped model, `train_ok: true`):
- DIR/injection_dev.jsonl minus the fixed held-out 30 % (corpus.is_held_out),
- DIR/injection_train_extra.jsonl (all of it),
- proxy/injection/data/handwritten.jsonl (ours, Apache-2.0),
- benign windows cut from the local Python install (licence, docs prose, stdlib code),
- attacks pasted into benign documents (indirect-injection augmentation).
Label cleaning: a benign row of the extra corpora on which a strong heuristic fires (weight >= 0.45,
or a role-play-framed harmful request) is left out. Those corpora define "attack" as injection only,
so they label jailbreak templates and framed harmful requests benign (neuralchemy has 17 copies of a
JailbreakBench random-search template among its benign rows); Ramparts counts them as attacks.
Rows longer than the classifier's window are cut into windows like the scorer does.
Needs scikit-learn (a dev/test extra); the proxy itself only needs numpy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from proxy.injection.classifier import MODEL_FILE, save
from proxy.injection.corpus import Row, embed_attacks, handwritten, is_held_out, local_prose, read_jsonl
from proxy.injection.feature import DIM, indices
from proxy.injection.fold import fold, window
from proxy.injection.heuristic import signals
from proxy.injection.scorer import DEFAULT_CAP

WINDOW = 2048  # a 2 KB message is one window
C = 4.0
FOLDS = 3
FPR_TARGET = 0.005
# Our hand-written rows are few but aimed at the gaps (long prose, role-play that is benign).
HANDWRITTEN_WEIGHT = 2.0
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def windows_of(row: Row, width: int = WINDOW) -> list[tuple[str, int]]:
    """(text, label) windows of a row, cut the way Classifier.logit_of cuts."""
    plain = fold(row.text).plain
    if len(plain) <= width:
        return [(plain, row.label)]
    step = width - width // 4
    parts = [plain[i:i + width] for i in range(0, len(plain) - width // 4, step)]
    if row.label == 0:
        return [(p, 0) for p in parts]
    # An attack's windows are attacks only where the attack text is, when we know it.
    marker = fold(row.meta.get("attack_text", "")).plain[:60] if row.meta.get("attack_text") else ""
    hits = [p for p in parts if marker and marker in p]
    return [(p, 1) for p in (hits or parts)]


CLEAN_WEIGHT = 0.45  # a benign extra row with a heuristic signal this strong is a label conflict


def conflicting(row: Row) -> bool:
    """A row labelled benign that our own definition calls an attack (see the module doc)."""
    if row.label != 0:
        return False
    f = fold(window(row.text, DEFAULT_CAP))
    found = signals(f.plain, f.text)
    return "framed_harmful_request" in found or any(w >= CLEAN_WEIGHT for w in found.values())


def build_rows(data: Path, seed: int, prose_count: int = 1500, embedded_count: int = 1200) -> tuple[list[Row], dict[str, int]]:
    dev = [r for r in read_jsonl(data / "injection_dev.jsonl") if r.train_ok and not is_held_out(r)]
    extra_all = [r for r in read_jsonl(data / "injection_train_extra.jsonl") if r.train_ok]
    extra = [r for r in extra_all if not conflicting(r)]
    own = handwritten()
    prose = local_prose(seed, prose_count)
    docs = prose + [r for r in own + dev if r.label == 0 and len(r.text) >= 300]
    attacks = [r for r in extra + own + dev if r.label == 1]
    embedded = embed_attacks([Row(d.text[:WINDOW - 450], 0, d.subtype) for d in docs], attacks, seed, embedded_count)
    rows = dev + extra + own + prose + embedded
    counts = {"dev_train": len(dev), "extra": len(extra), "extra_dropped_conflicting": len(extra_all) - len(extra), "handwritten": len(own),
              "local_prose": len(prose), "embedded": len(embedded)}
    return rows, counts


def matrix(samples: list[tuple[str, int]]):
    """Sparse feature matrix of (text, label) windows, valued as Classifier._logit reads them."""
    return _stack([indices(text) for text, _ in samples])


def _stack(rows_idx: list[np.ndarray]):
    from scipy.sparse import csr_matrix

    ptr = np.zeros(len(rows_idx) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(i) for i in rows_idx])
    data = np.concatenate([np.full(len(i), 1.0 / np.sqrt(max(1, len(i))), dtype=np.float32) for i in rows_idx])
    X = csr_matrix((data, np.concatenate(rows_idx), ptr), shape=(len(rows_idx), DIM))
    return X


def _is_extra(row: Row) -> bool:
    return row.source.startswith(("S-Labs/", "neuralchemy/"))


def fit(rows: list[Row], seed: int) -> tuple[np.ndarray, float, float]:
    """(weights, bias, offset). `offset` calibrates the classifier for the noisy-OR:
    the logit at the FPR_TARGET quantile of out-of-fold benign logits (dev, ours, local
    prose: the long, realistic benign rows), so the classifier alone reaches 0.5 only
    where about FPR_TARGET of unseen benign text would."""
    from sklearn.linear_model import LogisticRegression

    # Featurise every window once; folds and the final fit select rows of it.
    owner, labels, weight, feats = [], [], [], []
    for n, r in enumerate(rows):
        for text, label in windows_of(r):
            owner.append(n)
            labels.append(label)
            weight.append(HANDWRITTEN_WEIGHT if r.source == "ramparts-handwritten" else 1.0)
            feats.append(indices(text))
    X = _stack(feats)
    owner_a, y, w = np.array(owner), np.array(labels), np.array(weight)

    def train(mask: np.ndarray):
        clf = LogisticRegression(C=C, solver="liblinear", class_weight="balanced", max_iter=300, random_state=seed)
        return clf.fit(X[mask], y[mask], sample_weight=w[mask])

    fold_of = np.random.default_rng(seed).integers(0, FOLDS, size=len(rows))
    calib = np.array([not _is_extra(r) and r.label == 0 for r in rows])
    benign_logits: list[float] = []
    for k in range(FOLDS):
        held_rows = (fold_of == k) & calib
        clf = train(~held_rows[owner_a])
        sel = held_rows[owner_a]
        logits = clf.decision_function(X[sel])
        # a row's logit is its highest window's, as in Classifier.logit_of
        per_row: dict[int, float] = {}
        for o, z in zip(owner_a[sel], logits):
            per_row[o] = max(per_row.get(o, -np.inf), float(z))
        benign_logits.extend(per_row.values())
    offset = float(np.quantile(benign_logits, 1 - FPR_TARGET))
    clf = train(np.ones(len(y), dtype=bool))
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), offset


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts train injection", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory with injection_dev.jsonl and injection_train_extra.jsonl")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / MODEL_FILE)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--prose", type=int, default=1500, help="benign windows cut from the local Python install")
    ap.add_argument("--embedded", type=int, default=1200, help="attacks pasted into benign documents")
    args = ap.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("training needs scikit-learn: pip install 'ramparts[test]'", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows, counts = build_rows(args.data, args.seed, args.prose, args.embedded)
    weights, bias, offset = fit(rows, args.seed)
    meta = {"offset": round(offset, 4), "fpr_target": FPR_TARGET, "window": WINDOW, "C": C, "seed": args.seed, "rows": counts, "dim": DIM,
            "features": "char 3-5 + word 1-2 grams, hashed, binary, l2", "split": "corpus.is_held_out (30 %)"}
    save(args.out, weights, bias, meta)
    print(json.dumps({"out": str(args.out), "rows": counts, "seconds": round(time.perf_counter() - t0, 1)}))
    return 0
