from __future__ import annotations

import pytest

from proxy.audit.content import ErasureRefused, SubjectKeys


def test_encrypt_decrypt_and_shred(tmp_path):
    keys = SubjectKeys(tmp_path, b"kek-secret")
    # A plaintext long enough that random base64 cannot contain it by chance ("hi" did, 1 run in ~100).
    secret = "alice's card is 4111 1111 1111 1111"
    blob = keys.encrypt("acme", "alice", "req-1", {"prompt": [secret]})
    assert "4111" not in str(blob) and "card is" not in str(blob)
    assert keys.decrypt("acme", "alice", "req-1", blob) == {"prompt": [secret]}
    assert keys.decrypt("acme", "alice", "req-2", blob) is None  # bound to its record
    assert keys.decrypt("globex", "alice", "req-1", blob) is None  # and to its tenant
    assert keys.shred("acme", "alice", {}) is True
    assert keys.decrypt("acme", "alice", "req-1", blob) is None
    assert keys.shred("acme", "alice", {}) is False
    # a later record gets a fresh key; the shredded one stays gone
    blob2 = keys.encrypt("acme", "alice", "req-3", {"prompt": ["again"]})
    assert blob2["kid"] != blob["kid"] and keys.decrypt("acme", "alice", "req-1", blob) is None


def test_another_process_sees_the_erase(tmp_path):
    writer_side = SubjectKeys(tmp_path, b"kek")
    blob = writer_side.encrypt("acme", "bob", "r", "text")
    SubjectKeys(tmp_path, b"kek").shred("acme", "bob", {})
    assert writer_side.decrypt("acme", "bob", "r", blob) is None


def test_wrong_kek_cannot_unwrap(tmp_path):
    blob = SubjectKeys(tmp_path, b"kek-1").encrypt("acme", "carol", "r", "x")
    with pytest.raises(Exception):
        SubjectKeys(tmp_path, b"kek-2").decrypt("acme", "carol", "r", blob)


def test_legal_hold_blocks_erasure(tmp_path):
    keys = SubjectKeys(tmp_path, b"kek")
    blob = keys.encrypt("acme", "dave", "r", "x")
    with pytest.raises(ErasureRefused):
        keys.shred("acme", "dave", {"acme": ["dave"]})
    assert keys.decrypt("acme", "dave", "r", blob) == "x"
    assert keys.shred("acme", "dave", {"globex": ["dave"]}) is True  # holds are per tenant
