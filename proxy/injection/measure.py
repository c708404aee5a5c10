"""Quality numbers without scikit-learn: AUC, rates per subtype, a ROC-style table."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if not pos or not neg:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = s[order]
    i = 0
    while i < len(ss):  # average ranks over ties
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def rates(scores: Sequence[float], labels: Sequence[int], subtypes: Sequence[str], threshold: float) -> dict:
    """TPR (attacks) and FPR (benign) at `threshold`, pooled and per subtype."""
    hit: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s, y, st in zip(scores, labels, subtypes):
        key = (1, st) if y else (0, st)
        hit[key][0] += s >= threshold
        hit[key][1] += 1
    tp = sum(v[0] for k, v in hit.items() if k[0] == 1)
    p = sum(v[1] for k, v in hit.items() if k[0] == 1)
    fp = sum(v[0] for k, v in hit.items() if k[0] == 0)
    n = sum(v[1] for k, v in hit.items() if k[0] == 0)
    return {
        "threshold": threshold,
        "tpr": round(tp / p, 4) if p else None,
        "fpr": round(fp / n, 4) if n else None,
        "tpr_by_subtype": {k[1]: round(v[0] / v[1], 4) for k, v in sorted(hit.items()) if k[0] == 1},
        "fpr_by_subtype": {k[1]: round(v[0] / v[1], 4) for k, v in sorted(hit.items()) if k[0] == 0},
    }


def roc_table(scores: Sequence[float], labels: Sequence[int], fprs: Sequence[float] = (0.005, 0.01, 0.02, 0.05, 0.1)) -> list[tuple[float, float, float]]:
    """(target FPR, threshold reaching it, TPR there): the lowest threshold whose FPR <= target."""
    s = np.asarray(scores)
    y = np.asarray(labels)
    neg = np.sort(s[y == 0])[::-1]
    out = []
    for f in fprs:
        k = int(np.floor(f * len(neg)))  # allowed false positives
        thr = float(np.nextafter(neg[k], 2.0)) if k < len(neg) else 0.0
        out.append((f, thr, float((s[y == 1] >= thr).mean()) if (y == 1).any() else float("nan")))
    return out
