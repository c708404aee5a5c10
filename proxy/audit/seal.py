"""Turning record bodies into chain entries: digests, retained content, JCS hash, signature.

Pure given (chain id, next seq, head hash, keys), so it runs where the writer
chooses: inline in the writer thread (`InlineSealer`, the default) or in a
worker process (`ProcessSealer`, `sealer: process`), where its Python work no
longer competes with the event loop for the GIL. Only the appending to disk
and the chain state stay with the writer.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

import orjson
from cryptography.hazmat.primitives import serialization

from proxy.audit.canonical import entry_hash
from proxy.audit.content import SubjectKeys
from proxy.audit.keyring import Signer, load_private_key

log = logging.getLogger("ramparts.audit")

Item = tuple[dict[str, Any], Callable[[dict[str, Any]], Any] | None]  # (body, finish)
Sealed = list[tuple[str, bytes]]  # (entry hash, line with newline), in chain order


def prepare(items: list[Item], subject_keys: SubjectKeys | None) -> list[dict[str, Any]]:
    """Run each record's finish (digests, content) and encrypt retained content."""
    bodies = []
    for body0, finish in items:
        body = dict(body0)  # a retry after a failed write starts from the original again
        try:
            content = finish(body) if finish is not None else None
            if content is not None and subject_keys is not None and body.get("subject") is not None:
                body["content"] = subject_keys.encrypt(body["tenant"], body["subject"], body["request_id"], content)
        except OSError:
            raise  # the disk: retried with the batch
        except Exception as e:  # a poison record must not stall the chain: keep the facts, flag the gap
            log.exception("audit: digest/content of request %s failed", body0.get("request_id"))
            body = dict(body0)
            body["audit_error"] = type(e).__name__
        bodies.append(body)
    return bodies


def seal(chain_id: str, seq: int, head: str, bodies: list[dict[str, Any]], writer: Signer,
         tenant_signers: dict[str, Signer]) -> Sealed:
    out: Sealed = []
    for body in bodies:
        signer = tenant_signers.get(body.get("tenant") or "", writer)
        entry = dict(body)
        entry.update(chain=chain_id, seq=seq, prev=head, kid=signer.kid)
        h = entry_hash(entry)
        entry["hash"] = h
        entry["sig"] = signer.sign(h)
        out.append((h, orjson.dumps(entry) + b"\n"))
        seq, head = seq + 1, h
    return out


class InlineSealer:
    def __init__(self, writer: Signer, tenant_signers: dict[str, Signer], subject_keys: SubjectKeys | None) -> None:
        self.writer, self.tenant_signers, self.subject_keys = writer, tenant_signers, subject_keys

    def seal_batch(self, chain_id: str, seq: int, head: str, items: list[Item]) -> Sealed:
        return seal(chain_id, seq, head, prepare(items, self.subject_keys), self.writer, self.tenant_signers)

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ worker process

_worker: InlineSealer | None = None


def _raw(signer: Signer) -> bytes:
    return signer.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption()).hex().encode()


def _init(writer: bytes, tenants: dict[str, bytes], subject_dir: str | None, kek: bytes | None) -> None:
    global _worker  # one sealer per worker process, built once by the pool initializer
    keys = SubjectKeys(Path(subject_dir), kek) if subject_dir is not None and kek is not None else None
    _worker = InlineSealer(Signer.from_private(load_private_key(writer)),
                           {t: Signer.from_private(load_private_key(k)) for t, k in tenants.items()}, keys)


def _seal_in_worker(chain_id: str, seq: int, head: str, items: list[Item]) -> Sealed:
    return _worker.seal_batch(chain_id, seq, head, items)


class ProcessSealer:
    """Seals in one spawned worker process; falls back inline for what cannot cross (and after close)."""

    def __init__(self, writer: Signer, tenant_signers: dict[str, Signer], subject_dir: Path | None,
                 kek: bytes | None, subject_keys: SubjectKeys | None) -> None:
        self._inline = InlineSealer(writer, tenant_signers, subject_keys)
        self.inline_batches = 0  # batches that could not cross to the worker (visible to tests)
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
            initargs=(_raw(writer), {t: _raw(s) for t, s in tenant_signers.items()},
                      str(subject_dir) if subject_dir is not None else None, kek))

    def seal_batch(self, chain_id: str, seq: int, head: str, items: list[Item]) -> Sealed:
        if self._pool is not None:
            try:
                return self._pool.submit(_seal_in_worker, chain_id, seq, head, items).result()
            except (pickle.PicklingError, AttributeError, TypeError) as e:  # e.g. a closure as `finish`
                log.debug("audit: sealing inline (%s)", e)
            except (BrokenProcessPool, RuntimeError) as e:
                # The worker died or never started (e.g. a host script without a __main__ guard, which
                # spawn re-runs): keep every record, seal inline from now on, and say so.
                log.error("audit: sealer process unavailable (%r); sealing in the writer thread", e)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        self.inline_batches += 1
        return self._inline.seal_batch(chain_id, seq, head, items)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
