"""The shipped linear classifier: hashed n-grams -> logit, numpy only.

The model file is an .npz with the weight vector (float16, DIM entries), the bias
and the training metadata. Loading it is one np.load (a few milliseconds); nothing
is fetched at run time. Texts longer than `window` characters are scored window by
window and the highest logit wins: an instruction buried in a long document is not
diluted, and a long benign text looks like several short benign ones (the model was
trained on windows of that size, see train.py).
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from proxy.injection.feature import DIM, distinct_indices, window_distinct_indices

MODEL_FILE = "model/classifier.npz"


@dataclass(frozen=True)
class Classifier:
    weights: np.ndarray  # float32[DIM]
    bias: float
    window: int
    meta: dict
    offset: float = 0.0  # calibration shift (train.py): logit - offset = 0 at the target benign FPR

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Classifier":
        """Load `path`, or the model that ships inside the package."""
        src = Path(path) if path else resources.files("proxy.injection").joinpath(MODEL_FILE)
        with (nullcontext(src) if isinstance(src, Path) else resources.as_file(src)) as p, np.load(p, allow_pickle=False) as z:
            weights = z["weights"].astype(np.float32)
            if weights.shape != (DIM,):
                raise ValueError(f"injection model {p}: expected {DIM} weights, got {weights.shape}")
            meta = json.loads(str(z["meta"]))
            return cls(weights, float(z["bias"]), int(meta["window"]), meta, float(meta.get("offset", 0.0)))

    def logit_of(self, plain: str) -> float:
        """Highest window logit of a folded, lowercased text."""
        w = self.window
        if len(plain) <= w:
            return self._logit(plain)
        # Windows overlap by a quarter so an instruction on a boundary is seen whole.
        step = w - w // 4
        starts = range(0, len(plain) - w // 4, step)
        if w >= 5:  # the same indices as window by window (feature.window_distinct_indices), hashed once
            return max(self._logit_of_indices(idx) for idx in window_distinct_indices(plain, w, starts))
        return max(self._logit(plain[i:i + w]) for i in starts)

    def logit_of_reference(self, plain: str) -> float:
        """`logit_of` window by window, each hashed on its own: the general path (tests)."""
        w = self.window
        if len(plain) <= w:
            return self._logit(plain)
        step = w - w // 4
        return max(self._logit(plain[i:i + w]) for i in range(0, len(plain) - w // 4, step))

    def _logit(self, plain: str) -> float:
        return self._logit_of_indices(distinct_indices(plain))

    def _logit_of_indices(self, idx: np.ndarray) -> float:
        if not len(idx):
            return self.bias
        return float(self.weights[idx].sum()) / math.sqrt(len(idx)) + self.bias

    def probability(self, plain: str) -> float:
        """Calibrated probability: 0.5 at the training-time benign FPR target."""
        return _sigmoid(self.logit_of(plain) - self.offset)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= -60 else 0.0


def save(path: Path, weights: np.ndarray, bias: float, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, weights=weights.astype(np.float16), bias=np.float64(bias), meta=np.array(json.dumps(meta, sort_keys=True)))
