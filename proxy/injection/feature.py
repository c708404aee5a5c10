"""Hashed n-gram features, the same code for training and for the proxy.

Char 3..5-grams (robust to spelling, spacing, leet) plus word 1..2-grams, hashed
into `DIM` buckets with a fixed, process-independent hash (Python's `hash()` is
salted per process, so it cannot be used). Values are binary presence, then L2
normalised: a long text does not get a larger dot product just by being long.

Cost is a handful of numpy passes over the code points (no Python loop per
character) and one crc32 per word.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

DIM_BITS = 18
DIM = 1 << DIM_BITS
CHAR_NS = (3, 4, 5)
_MULT = np.uint64(0x100000001B3)  # FNV-64 prime: a cheap mixing multiplier
_SEEDS = {n: np.uint64(0x9E3779B97F4A7C15 * n % (1 << 64)) for n in CHAR_NS}
_WORD_SEED = np.uint64(0xC2B2AE3D27D4EB4F)
_BIGRAM_SEED = np.uint64(0x165667B19E3779F9)
_SHIFT = np.uint64(64 - DIM_BITS)
_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def _bucket(h: np.ndarray) -> np.ndarray:
    # Fibonacci hashing: the top bits of a multiply mix all the input bits.
    return ((h * np.uint64(0x9E3779B97F4A7C15)) >> _SHIFT).astype(np.int64)


def indices(plain: str) -> np.ndarray:
    """Sorted unique feature indices of an already folded, lowercased text."""
    parts: list[np.ndarray] = []
    cps = np.frombuffer(plain.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        for n in CHAR_NS:
            if len(cps) < n:
                break
            m = len(cps) - n + 1
            h = _SEEDS[n].copy() + cps[:m]
            for k in range(1, n):
                h = h * _MULT + cps[k:k + m]
            parts.append(_bucket(h))
        words = _WORD.findall(plain)
        if words:
            w = np.fromiter((zlib.crc32(x.encode()) for x in words), dtype=np.uint64, count=len(words))
            parts.append(_bucket(w ^ _WORD_SEED))
            if len(w) > 1:
                parts.append(_bucket((w[:-1] * _MULT + w[1:]) ^ _BIGRAM_SEED))
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(parts))
