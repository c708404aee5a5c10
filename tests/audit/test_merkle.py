from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.audit import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]


def test_rfc6962_shape():
    a, b, c = _leaves(3)
    node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()  # noqa: E731
    assert merkle.root([a]) == a
    assert merkle.root([a, b]) == node(a, b)
    assert merkle.root([a, b, c]) == node(node(a, b), c)
    assert merkle.leaf("00" * 32) == hashlib.sha256(b"\x00" + bytes(32)).digest()


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_streaming_root_equals_recursive_root(n):
    leaves = _leaves(n)
    acc = merkle.Accumulator()
    for lf in leaves:
        acc.add(lf)
    assert acc.root() == merkle.root(leaves) and acc.count == n


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=130), st.data())
def test_inclusion_proofs_verify_and_reject_wrong_leaves(n, data):
    leaves = _leaves(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    r = merkle.root(leaves)
    proof = merkle.inclusion_proof(leaves, i)
    assert merkle.verify_inclusion(leaves[i], i, n, proof, r)
    assert not merkle.verify_inclusion(merkle.leaf("11" * 32), i, n, proof, r)
    if n > 1:
        assert not merkle.verify_inclusion(leaves[i], (i + 1) % n, n, proof, r)
