"""RFC 6962 Merkle tree hashes over entry hashes: roots, streaming roots, inclusion proofs.

Leaf = SHA-256(0x00 || entry hash bytes), node = SHA-256(0x01 || left || right),
split at the largest power of two below n. `Accumulator` computes the same root
in O(log n) memory, which keeps the verifier's memory flat.
"""

from __future__ import annotations

import hashlib


def leaf(entry_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(root(leaves[:k]), root(leaves[k:]))


class Accumulator:
    """Streaming RFC 6962 root: a stack of perfect subtrees, merged as leaves arrive."""

    __slots__ = ("_stack", "count")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (size, hash), sizes strictly decreasing
        self.count = 0

    def add(self, leaf_hash: bytes) -> None:
        size, h = 1, leaf_hash
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            h = _node(left, h)
            size <<= 1
        self._stack.append((size, h))
        self.count += 1

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = _node(left, h)
        return h


def inclusion_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """Audit path for leaves[index] (RFC 6962 section 2.1.1), bottom-up."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return inclusion_proof(leaves[:k], index) + [root(leaves[k:])]
    return inclusion_proof(leaves[k:], index - k) + [root(leaves[:k])]


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: list[bytes], expected_root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: recompute the root from a leaf and its path."""
    if index >= size:
        return False
    fn, sn, h = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            h = _node(p, h)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            h = _node(h, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and h == expected_root
