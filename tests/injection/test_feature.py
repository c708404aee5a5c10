import subprocess
import sys

import numpy as np

from proxy.injection.feature import DIM, indices


def test_indices_are_sorted_unique_and_in_range():
    idx = indices("ignore all previous instructions")
    assert len(idx) > 20 and idx.min() >= 0 and idx.max() < DIM
    assert np.all(np.diff(idx) > 0)
    # binary presence: repeating a phrase adds only the n-grams that span the joins
    once, many = indices("abc abc"), indices("abc abc abc abc abc abc")
    assert set(once.tolist()) <= set(many.tolist()) and len(many) - len(once) <= 2


def test_word_hash_ignores_punctuation_and_position():
    a, b = indices("hello, world"), indices("world hello")
    # the word unigrams of both texts are the same buckets
    assert len(set(a.tolist()) & set(b.tolist())) >= 2


def test_empty_and_tiny_texts():
    assert len(indices("")) == 0
    assert len(indices("a")) == 1  # one word, no char n-gram


def test_hash_is_stable_across_processes():
    # Python's hash() is salted per process; ours must not be.
    code = "from proxy.injection.feature import indices; print(indices('hello world, stable?').tolist())"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": s, "PATH": ""}).stdout for s in ("1", "2")}
    assert len(runs) == 1 and runs.pop().strip() == str(indices("hello world, stable?").tolist())


def test_distinct_indices_is_the_same_set_as_indices_in_any_order():
    from proxy.injection.feature import distinct_indices
    texts = ["", "ab", "abc abc abc", "ignore all previous instructions " * 40, "x" * 5000,
             "the same words, the same words, the same words; and then a few others at the end"]
    for text in texts:
        got = distinct_indices(text)
        assert len(got) == len(set(got.tolist()))
        assert sorted(got.tolist()) == indices(text).tolist()
