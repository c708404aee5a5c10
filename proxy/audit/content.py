"""Retained content under per-subject keys, and crypto-shredding for erasure.

Each (tenant, subject) gets a random AES-256-GCM data key, stored wrapped by
the policy's key-encryption key. Records carry only ciphertext, so their
hashes and signatures never change; erasing a subject destroys its data key
and the ciphertext in the chain becomes unreadable noise.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALG = "A256GCM"


class ErasureRefused(Exception):
    """The subject is under legal hold."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


class SubjectKeys:
    def __init__(self, directory: Path, kek_secret: bytes) -> None:
        self.directory = Path(directory)
        # The secret may be any length (env var, file); the wrapping key is its SHA-256.
        self._kek = AESGCM(hashlib.sha256(b"ramparts-audit-kek\x00" + kek_secret).digest())
        self._cache: dict[Path, tuple[str, AESGCM, int]] = {}

    def path(self, tenant: str, subject: str) -> Path:
        name = hashlib.sha256(f"{tenant}\x00{subject}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return self.directory / tenant / (name + ".key")

    def _load(self, path: Path) -> tuple[str, AESGCM] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        hit = self._cache.get(path)
        if hit is not None and hit[2] == st.st_ino:  # re-created after an erase: a new key
            return hit[0], hit[1]
        doc = orjson.loads(path.read_bytes())
        raw = self._kek.decrypt(base64.b64decode(doc["nonce"]), base64.b64decode(doc["wrapped"]), doc["kid"].encode())
        aead = AESGCM(raw)
        self._cache[path] = (doc["kid"], aead, st.st_ino)
        return doc["kid"], aead

    def _create(self, path: Path) -> tuple[str, AESGCM]:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kid, raw, nonce = secrets.token_hex(8), AESGCM.generate_key(256), os.urandom(12)
        doc = {"kid": kid, "nonce": _b64(nonce), "wrapped": _b64(self._kek.encrypt(nonce, raw, kid.encode()))}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return self._load(path)  # type: ignore[return-value]

    def encrypt(self, tenant: str, subject: str, aad: str, content: Any) -> dict[str, str]:
        path = self.path(tenant, subject)
        found = self._load(path) or self._create(path)
        kid, aead = found
        nonce = os.urandom(12)
        ct = aead.encrypt(nonce, orjson.dumps(content), aad.encode())
        return {"alg": ALG, "kid": kid, "nonce": _b64(nonce), "ct": _b64(ct)}

    def decrypt(self, tenant: str, subject: str, aad: str, blob: dict[str, str]) -> Any | None:
        """The content, or None when the subject's key was erased (or replaced since)."""
        found = self._load(self.path(tenant, subject))
        if found is None or found[0] != blob.get("kid"):
            return None
        try:
            return orjson.loads(found[1].decrypt(base64.b64decode(blob["nonce"]), base64.b64decode(blob["ct"]), aad.encode()))
        except (InvalidTag, KeyError, ValueError):
            return None

    def shred(self, tenant: str, subject: str, holds: dict[str, list[str]]) -> bool:
        """Destroy the subject's data key; False if there was none. Raises ErasureRefused on legal hold."""
        if subject in holds.get(tenant, ()):
            raise ErasureRefused(f"subject {subject!r} of tenant {tenant!r} is under legal hold")
        path = self.path(tenant, subject)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        # Overwrite before unlinking; the KEK wrapping is the real guard where the disk keeps old blocks.
        with open(path, "r+b") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
        self._cache.pop(path, None)
        return True
