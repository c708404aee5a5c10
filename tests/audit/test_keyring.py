from __future__ import annotations

import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.audit.keyring import Keyring, KeyLoadError, Signer, generate_keypair, key_id, load_private_key


def test_private_key_formats_load_to_the_same_key():
    priv = Ed25519PrivateKey.generate()
    raw = priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    kid = key_id(priv.public_key())
    for data in (pem, raw.hex().encode(), base64.b64encode(raw), b"  " + raw.hex().encode() + b"\n"):
        assert key_id(load_private_key(data).public_key()) == kid


@pytest.mark.parametrize("bad", [b"short", b"00" * 31, b"not a key at all!"])
def test_bad_private_keys_are_refused(bad):
    with pytest.raises(KeyLoadError):
        load_private_key(bad)


def test_non_ed25519_pem_is_refused():
    ec = generate_private_key(SECP256R1()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
    with pytest.raises(KeyLoadError):
        load_private_key(ec)


def test_generate_and_pin(tmp_path):
    signer = generate_keypair(tmp_path, "audit")
    assert stat.S_IMODE(os.stat(tmp_path / "audit.key").st_mode) == 0o600
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path, "audit")
    (tmp_path / "renamed-to-look-official.pub").write_bytes((tmp_path / "audit.pub").read_bytes())
    ring = Keyring.from_dir(tmp_path)
    assert list(ring.keys) == [signer.kid]  # kid comes from the key, not from the file name
    sig = signer.sign("ab" * 32)
    assert ring.verify(signer.kid, "ab" * 32, sig)
    assert not ring.verify(signer.kid, "cd" * 32, sig)
    assert not ring.verify(signer.kid, "ab" * 32, "!!not-base64")
    other = Signer.from_private(Ed25519PrivateKey.generate())
    assert other.kid not in ring
