"""RFC 8785 (JCS) canonical JSON and the hashes built on it.

An entry's hash is SHA-256 over the canonical JSON of the entry without its
`hash` and `sig` members; the signature covers that hash. Anyone with the
record and the public key can recompute both, in any language with a JCS
implementation.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

UNSEALED = ("hash", "sig")  # members that are not part of the hashed entry
GENESIS = "0" * 64  # `prev` of a chain's first entry


def canonical(obj: Any) -> bytes:
    return rfc8785.dumps(obj)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k not in UNSEALED}
    return hashlib.sha256(canonical(body)).hexdigest()
