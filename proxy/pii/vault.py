"""The per-request token map: value -> `<TYPE_N>` on the way in, back on the way out.

- The same value gets the same token within a request (the whole conversation in one
  request is consistent); values are looked up by a keyed MAC (BLAKE2b) under the tenant's key and a
  fresh per-request nonce, so the map never keys on plaintext and its digests are
  meaningless outside this request and tenant.
- Numbering skips any `TYPE_N` that already appears in the request's own text, so a
  forged or replayed token (from another tenant or request) is never one we issued and
  never restores; it also makes slightly mangled forms of an issued token unambiguous.
- Each entry carries a tag binding token and value to the tenant key and nonce; restore
  checks it, so an entry cannot be replayed into another request's vault.
- The MAC is keyed BLAKE2b (key = the tenant key, salt = the request nonce, person = the
  purpose): one C call per MAC, no HMAC state copies on the hot path.
- `wipe()` drops everything when the exchange completes; the map is never serialized.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from hashlib import blake2b
from collections import Counter


def tenant_key(secret: bytes, tenant: str) -> bytes:
    """The tenant's HMAC key, derived once at startup from the stage secret."""
    return hmac.new(secret, b"ramparts/pii/tenant\x00" + tenant.encode(), hashlib.sha256).digest()


class Vault:
    __slots__ = ("_key", "_nonce", "_reserved", "_by_digest", "_entries", "_next", "issued_counts")

    def __init__(self, key: bytes, reserved_text: str = "") -> None:
        # Keyed BLAKE2b under the tenant key, salted with a fresh nonce per request.
        self._key = key
        self._nonce = os.urandom(16)
        self._reserved = reserved_text.upper()  # the request's own text: numbers used there are skipped
        self._by_digest: dict[bytes, str] = {}
        self._entries: dict[str, tuple[str, str, bytes]] = {}  # core "EMAIL_ADDRESS_1" -> (entity, value, tag)
        self._next: dict[str, int] = {}
        self.issued_counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def _mac(self, purpose: bytes, *parts: str) -> bytes:
        data = "\x00".join(parts).encode("utf-8", "surrogatepass")
        return blake2b(data, key=self._key, salt=self._nonce, person=purpose).digest()

    def token_for(self, entity: str, value: str) -> str:
        """The token for this value (a new one the first time the request shows it)."""
        digest = self._mac(b"value", entity, value)
        core = self._by_digest.get(digest)
        if core is None:
            n = self._next.get(entity, 0)
            while True:
                n += 1
                core = f"{entity}_{n}"
                if core not in self._reserved:
                    break
            self._next[entity] = n
            self._by_digest[digest] = core
            self._entries[core] = (entity, value, self._mac(b"entry", core, value))
            self.issued_counts[entity] += 1
        return f"<{core}>"

    def lookup(self, core: str) -> tuple[str, str] | None:
        """(entity, value) for an issued token core like "EMAIL_ADDRESS_1" (any case)."""
        entry = self._entries.get(core.upper())
        if entry is None:
            return None
        entity, value, tag = entry
        if not hmac.compare_digest(tag, self._mac(b"entry", core.upper(), value)):
            return None
        return entity, value

    def cores(self) -> list[str]:
        return list(self._entries)

    def wipe(self) -> None:
        self._by_digest.clear()
        self._entries.clear()
        self._reserved = ""
        self._key = os.urandom(32)  # the tenant key is gone too
