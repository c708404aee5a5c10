"""Entry signature checks for the verifier: inline, or in worker processes, in order.

Ed25519 verification is most of the verifier's CPU; entries are independent
once the hash chain (checked in order by the caller) binds them, so chunks go
to a process pool while the caller keeps walking. Memory stays bounded: at
most `2 x workers` chunks are in flight.
"""

from __future__ import annotations

import collections
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from cryptography.hazmat.primitives import serialization

from proxy.audit.keyring import Keyring, load_public_key

CHUNK = 2048
Where = tuple[Any, ...]  # (file, line, seq) of an entry, for the report

_worker_ring: Keyring | None = None


def _init(raw_keys: list[bytes]) -> None:
    global _worker_ring  # per worker process, set once by the pool initializer
    _worker_ring = Keyring()
    for raw in raw_keys:
        _worker_ring.add(load_public_key(raw))


def _check(items: list[tuple[str, str, str]]) -> int | None:
    """Index of the first entry whose signature fails, or None."""
    ring = _worker_ring
    for i, (kid, digest, sig) in enumerate(items):
        if not isinstance(sig, str) or not ring.verify(kid, digest, sig):
            return i
    return None


class SignatureCheck:
    def __init__(self, keyring: Keyring, workers: int = 1) -> None:
        self.keyring = keyring
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._items: list[tuple[str, str, str]] = []
        self._wheres: list[Where] = []
        self._flight: collections.deque[tuple[Future, list[Where]]] = collections.deque()

    def add(self, kid: str, digest: str, sig: Any, where: Where) -> Where | None:
        """Queue (or do) one check; returns the place of a failure found so far, if any."""
        if self.workers <= 1:
            ok = isinstance(sig, str) and self.keyring.verify(kid, digest, sig)
            return None if ok else where
        self._items.append((kid, digest, sig))
        self._wheres.append(where)
        if len(self._items) >= CHUNK:
            self._submit()
            while len(self._flight) > 2 * self.workers:
                bad = self._collect_oldest()
                if bad is not None:
                    return bad
        return None

    def finish(self) -> Where | None:
        """Wait for everything queued; the earliest failure, if any."""
        if self._items:
            self._submit()
        first = None
        while self._flight:
            bad = self._collect_oldest()
            first = first or bad
        return first

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _submit(self) -> None:
        if self._pool is None:
            raw = [k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex().encode()
                   for k in self.keyring.keys.values()]
            # spawn: the verifier may run inside a process with threads (the demo, tests)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init, initargs=(raw,))
        self._flight.append((self._pool.submit(_check, self._items), self._wheres))
        self._items, self._wheres = [], []

    def _collect_oldest(self) -> Where | None:
        fut, wheres = self._flight.popleft()
        i = fut.result()
        return None if i is None else wheres[i]
