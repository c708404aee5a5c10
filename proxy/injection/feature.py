"""Hashed n-gram features, the same code for training and for the proxy.

Char 3..5-grams (robust to spelling, spacing, leet) plus word 1..2-grams, hashed
into `DIM` buckets with a fixed, process-independent hash (Python's `hash()` is
salted per process, so it cannot be used). Values are binary presence, L2
normalised by the classifier: a long or repetitive text does not get a larger dot
product just by being long (term counts made licence texts look like attacks).

Everything is vectorised over the code points: a few numpy passes, no Python
loop per character or per word.
"""

from __future__ import annotations

import threading

import numpy as np

DIM_BITS = 18
DIM = 1 << DIM_BITS
CHAR_NS = (3, 4, 5)
_MULT = np.uint64(0x100000001B3)  # FNV-64 prime: a cheap mixing multiplier
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SEEDS = {n: np.uint64(0x9E3779B97F4A7C15 * n % (1 << 64)) for n in CHAR_NS}
_WORD_SEED = np.uint64(0xC2B2AE3D27D4EB4F)
_BIGRAM_SEED = np.uint64(0x165667B19E3779F9)
_SHIFT = np.uint64(64 - DIM_BITS)
_MAX_WORD = 32  # letters past this position do not change a word's hash
_POW = np.ones(_MAX_WORD, dtype=np.uint64)  # _MULT ** k, wrapping at 2**64
with np.errstate(over="ignore"):
    for _k in range(1, _MAX_WORD):
        _POW[_k] = _POW[_k - 1] * _MULT
    # h_n = SEED_n * M^(n-1) + sum c_k M^(n-1-k); so h_n = h_(n-1) * M + c + (SEED_n - SEED_(n-1)) * M^(n-1)
    _ROLL = {n: (_SEEDS[n] - _SEEDS[n - 1]) * _POW[n - 1] for n in CHAR_NS[1:]}


def _bucket(h: np.ndarray) -> np.ndarray:
    # Fibonacci hashing: the top bits of a multiply mix all the input bits.
    return ((h * _GOLDEN) >> _SHIFT).astype(np.int64)


def _word_hashes(cps: np.ndarray) -> np.ndarray:
    """One hash per word (a run of letters, digits, apostrophes or non-ASCII letters)."""
    is_word = ((cps >= 97) & (cps <= 122)) | ((cps >= 48) & (cps <= 57)) | (cps == 39) | (cps >= 192)
    if not is_word.any():
        return np.zeros(0, dtype=np.uint64)
    starts = is_word & ~np.concatenate(([False], is_word[:-1]))
    pos_all = np.arange(len(cps))
    start_pos = pos_all[starts]
    word_id = np.cumsum(starts) - 1
    offset = np.minimum(pos_all - start_pos[np.maximum(word_id, 0)], _MAX_WORD - 1)
    vals = cps[is_word] * _POW[offset[is_word]]
    # reduceat over the compacted word characters: each word's first char index.
    first = np.flatnonzero(starts[is_word])
    return np.add.reduceat(vals, first)


_IS_WORD = np.array([97 <= c <= 122 or 48 <= c <= 57 or c == 39 or c >= 192 for c in range(256)])
_INV_MULT = np.uint64(pow(0x100000001B3, -1, 1 << 64))  # _MULT is odd: it has an inverse mod 2**64
# (_MULT ** k, _MULT ** -k) for k < len, grown on demand; one tuple, swapped whole, so a reader in
# another thread never sees the powers of one size with the inverses of another.
_POWERS: tuple[np.ndarray, np.ndarray] = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(_MULT ** k, _MULT ** -k) for k < at least n, wrapping mod 2**64 (cumprod wraps too)."""
    global _POWERS
    powers = _POWERS
    if len(powers[0]) < n:
        size = max(n, 2 * len(powers[0]), 8192)
        with np.errstate(over="ignore"):
            p = np.cumprod(np.full(size, _MULT, dtype=np.uint64))
            q = np.cumprod(np.full(size, _INV_MULT, dtype=np.uint64))
        one = np.ones(1, dtype=np.uint64)
        powers = _POWERS = (np.concatenate((one, p[:-1])), np.concatenate((one, q[:-1])))
    return powers


def _word_spans(cps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, starts, ends) of every word; the hashes equal `_word_hashes(cps)`.

    A word's hash is sum c_k * M^min(k - start, 31). With P[i] = sum_(t < i) c_t * M^t (one
    cumulative sum, wrapping mod 2**64) a word of at most 32 characters is
    (P[end] - P[start]) * M^-start: M is odd, so it has an inverse mod 2**64. Longer words (the
    exponent stops growing at 31) add their tail as a plain sum times M^31. About twice as fast
    as `_word_hashes`, and vectorised throughout (no Python step per word).
    """
    is_word = _IS_WORD[np.minimum(cps, 255)]  # the same mask as _word_hashes's comparisons, one lookup
    n = len(cps)
    if not n or not is_word.any():
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint64), empty, empty
    bounds = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1  # where a word starts or ends, inside
    if is_word[0] or is_word[-1]:
        bounds = np.concatenate((np.array([0] if is_word[0] else [], dtype=bounds.dtype), bounds,
                                 np.array([n] if is_word[-1] else [], dtype=bounds.dtype)))
    starts, ends = bounds[0::2], bounds[1::2]
    mpow, minv = _powers(n + 1)
    with np.errstate(over="ignore"):
        prefix = np.empty(n + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum(cps * mpow[:n], out=prefix[1:])
        hashes = (prefix[ends] - prefix[starts]) * minv[starts]
        long = ends - starts > _MAX_WORD
        if long.any():
            # letters at offset >= _MAX_WORD - 1 all weigh M^31: the first 32 by the prefix sum,
            # the rest by a plain sum times M^31 (vectorised: many long words cost no more)
            sl, el = starts[long], ends[long]
            plain_sum = np.empty(n + 1, dtype=np.uint64)
            plain_sum[0] = 0
            np.cumsum(cps, out=plain_sum[1:])
            hashes[long] = ((prefix[sl + _MAX_WORD] - prefix[sl]) * minv[sl]
                            + _POW[-1] * (plain_sum[el] - plain_sum[sl + _MAX_WORD]))
    return hashes, starts, ends


def indices(plain: str) -> np.ndarray:
    """Sorted distinct feature indices of an already folded, lowercased text (training, tests)."""
    idx = _all(plain)
    if not len(idx):
        return idx
    # sort + neighbour compare: several times faster than np.unique on these sizes
    idx = np.sort(idx)
    return idx[np.concatenate(([True], idx[1:] != idx[:-1]))]


_scratch = threading.local()


def distinct_indices(plain: str) -> np.ndarray:
    """The same set as `indices`, in no particular order: the scoring path, where a sort of
    ~10k indices cost more than all the hashing (numpy's sort is slow on this VM's CPUs)."""
    idx = _all(plain)
    slot = getattr(_scratch, "slot", None)
    if slot is None:
        slot = _scratch.slot = np.zeros(DIM, dtype=np.int32)  # per thread: the scatter below is not shareable
    pos = np.arange(len(idx), dtype=np.int32)
    slot[idx] = pos  # each value keeps one of its positions (whichever write lands) ...
    return idx[slot[idx] == pos]  # ... so exactly one occurrence of every value survives


def _all(plain: str) -> np.ndarray:
    """Every feature index of the text, duplicates included."""
    parts: list[np.ndarray] = []  # raw 64-bit hashes, bucketed together at the end
    cps = np.frombuffer(plain.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = None
        for n in CHAR_NS:
            if len(cps) < n:
                break
            m = len(cps) - n + 1
            if h is None:
                h = _SEEDS[n] + cps[:m]
                for k in range(1, n):
                    h = h * _MULT + cps[k:k + m]
            else:  # roll the (n-1)-gram hash one character on (exactly the same value, fewer passes)
                h = h[:m] * _MULT + cps[n - 1:n - 1 + m] + _ROLL[n]
            parts.append(h)
        w = _word_spans(cps)[0]  # = _word_hashes(cps), faster
        if len(w):
            parts.append(w ^ _WORD_SEED)
            if len(w) > 1:
                parts.append((w[:-1] * _MULT + w[1:]) ^ _BIGRAM_SEED)
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return _bucket(np.concatenate(parts))


def _one_word(cps: np.ndarray) -> np.uint64:
    """`_word_hashes` of a slice that is one word (wrapping uint64 sums are order-free)."""
    n = len(cps)
    pw = _POW[:n] if n <= _MAX_WORD else np.concatenate((_POW, np.full(n - _MAX_WORD, _POW[-1], dtype=np.uint64)))
    with np.errstate(over="ignore"):
        return (cps * pw).sum(dtype=np.uint64)


def window_distinct_indices(plain: str, size: int, starts: range) -> list[np.ndarray]:
    """`[distinct_indices(plain[a:a + size]) for a in starts]`, the very same arrays (values and
    order: the classifier's float32 sum depends on the order), with the hashing done once.

    Every char n-gram hash depends only on its own characters, so a window's are a slice of
    the whole text's. A word inside a window hashes the same; a word the window cuts at
    either edge is hashed again from the part inside (`_one_word`). Each window's parts are
    laid out as `_all` lays them out (3-, 4-, 5-grams, words, word bigrams), bucketed, then
    made distinct as `distinct_indices` does. Windows must hold at least 5 characters.
    """
    cps = np.frombuffer(plain.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    grams: list[np.ndarray] = []
    with np.errstate(over="ignore"):
        h = None
        for n in CHAR_NS:
            m = len(cps) - n + 1
            if h is None:
                h = _SEEDS[n] + cps[:m]
                for k in range(1, n):
                    h = h * _MULT + cps[k:k + m]
            else:
                h = h[:m] * _MULT + cps[n - 1:n - 1 + m] + _ROLL[n]
            grams.append(_bucket(h))
    words, w_starts, w_ends = _word_spans(cps)
    out: list[np.ndarray] = []
    for a in starts:
        b = min(a + size, len(cps))
        if b - a < CHAR_NS[-1]:
            raise ValueError("window_distinct_indices: every window needs at least 5 characters")
        parts = [g[a:b - n + 1] for g, n in zip(grams, CHAR_NS)]
        # words [i, j) lie inside [a, b) whole; a word cut by the window's start or end is partial
        i = int(np.searchsorted(w_starts, a, side="left"))  # first word starting at or after a
        j = int(np.searchsorted(w_ends, b, side="right"))  # words ending at or before b: [0, j)
        ws = words[i:j] if j > i else words[:0]
        head, tail = [], []
        if i > 0 and w_ends[i - 1] > a:  # word i-1 starts before the window and reaches into it
            head = [np.array([_one_word(cps[a:min(int(w_ends[i - 1]), b)])], dtype=np.uint64)]
        if j < len(words) and a <= w_starts[j] < b:  # word j starts inside the window and ends after it
            tail = [np.array([_one_word(cps[int(w_starts[j]):b])], dtype=np.uint64)]
        if head or tail:
            ws = np.concatenate(head + [ws] + tail)
        if len(ws):
            with np.errstate(over="ignore"):
                parts.append(_bucket(ws ^ _WORD_SEED))
                if len(ws) > 1:
                    parts.append(_bucket((ws[:-1] * _MULT + ws[1:]) ^ _BIGRAM_SEED))
        idx = np.concatenate(parts)
        out.append(_distinct(idx))
    return out


def _distinct(idx: np.ndarray) -> np.ndarray:
    slot = getattr(_scratch, "slot", None)
    if slot is None:
        slot = _scratch.slot = np.zeros(DIM, dtype=np.int32)
    pos = np.arange(len(idx), dtype=np.int32)
    slot[idx] = pos
    return idx[slot[idx] == pos]
