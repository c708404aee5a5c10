"""Shared fixtures for the audit engine tests: real keys, real files, a real writer."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.audit.keyring import Keyring, Signer
from proxy.audit.writer import AuditWriter, WriterOptions


@pytest.fixture
def signer() -> Signer:
    return Signer.from_private(Ed25519PrivateKey.generate())


@pytest.fixture
def keyring(signer: Signer) -> Keyring:
    kr = Keyring()
    kr.add(signer.private.public_key())
    return kr


def exchange_body(i: int, tenant: str = "acme", subject: str = "user-1") -> dict:
    return {"v": 1, "type": "exchange", "time": f"2026-11-22T00:00:{i % 60:02d}.000000Z", "request_id": f"req-{i}",
            "tenant": tenant, "subject": subject, "outcome": "ok", "usage": {"prompt_tokens": i, "completion_tokens": 3},
            "decisions": [{"stage": "budget", "decision": "settle", "detail": {"cost_usd": 0.000123 * (i + 1)}}]}


async def write_log(directory: Path, signer: Signer, n: int, *, chain: str = "c1", checkpoint_every: int = 1000,
                    tenant_signers: dict | None = None, clock_day: Callable[[], str] | None = None,
                    batch: int = 0) -> AuditWriter:
    """n exchange records through a real writer (started, flushed, stopped)."""
    kwargs = {"clock_day": clock_day} if clock_day else {}
    w = AuditWriter(directory, chain, signer, tenant_signers or {}, WriterOptions(checkpoint_every=checkpoint_every), **kwargs)
    await w.start()
    for i in range(n):
        w.submit(exchange_body(i))
        if batch and i % batch == batch - 1:
            await w.flush()
    await w.stop()
    return w


def chain_file(directory: Path, chain: str = "c1") -> Path:
    files = sorted((directory / "records" / chain).glob("*.jsonl"))
    assert files, "no record file written"
    return files[-1]


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def load(line: bytes) -> dict:
    return orjson.loads(line)
