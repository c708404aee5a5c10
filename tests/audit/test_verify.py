"""Mutation tests (SECURITY_TESTS L1-L6, L9): every kind of damage gets its own code."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.audit import verify
from proxy.audit.canonical import entry_hash
from proxy.audit.keyring import Keyring, Signer
from tests.audit.conftest import chain_file, load, read_lines, write_log


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _status(d: Path, keyring: Keyring | None, checkpoints: Path | None = None) -> verify.Report:
    return verify.verify_dir(d, keyring, checkpoints)


async def test_clean_log_verifies_with_checkpoints(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 120, checkpoint_every=50, batch=25)
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.OK and rep.exit_code == 0
    chain = rep.chains[0]
    assert chain.entries == 121  # 120 records + the file header
    assert chain.checkpoints >= 2 and chain.checkpoints_matched == chain.checkpoints


@pytest.mark.parametrize("field,value", [
    ("tenant", "globex"), ("time", "2020-01-01T00:00:00.000000Z"), ("outcome", "denied"),
    ("usage", {"prompt_tokens": 0, "completion_tokens": 0}), ("request_id", "req-x"),
    ("seq", 99), ("prev", "1" * 64), ("kid", "ed25519:0000000000000000"), ("chain", "c1x"),
    ("hash", "2" * 64), ("extra", "added"),
])
async def test_edit_any_field_is_tamper(tmp_path, signer, keyring, field, value):
    await write_log(tmp_path, signer, 10)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    e = load(lines[5])
    e[field] = value
    lines[5] = orjson.dumps(e) + b"\n"
    _rewrite(path, lines)
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.TAMPER
    assert rep.chains[0].findings[0].line == 6


async def test_edit_with_recomputed_hash_fails_the_signature(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 10)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    e = load(lines[-1])  # last entry: no successor's prev to break
    e["outcome"] = "ok-edited"
    e["hash"] = entry_hash(e)
    lines[-1] = orjson.dumps(e) + b"\n"
    _rewrite(path, lines)
    assert _status(tmp_path, keyring).status == verify.BAD_SIGNATURE


async def test_signature_edit_is_bad_signature(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 5)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    e = load(lines[3])
    other = Signer.from_private(Ed25519PrivateKey.generate())
    e["sig"] = other.sign(e["hash"])  # right kid claimed, signed by someone else
    lines[3] = orjson.dumps(e) + b"\n"
    _rewrite(path, lines)
    assert _status(tmp_path, keyring).status == verify.BAD_SIGNATURE


@pytest.mark.parametrize("mutation,detail", [
    ("delete", "missing"), ("reorder", "out of order"), ("duplicate", "duplicate"),
])
async def test_delete_reorder_duplicate(tmp_path, signer, keyring, mutation, detail):
    await write_log(tmp_path, signer, 10)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    if mutation == "delete":
        del lines[4]
    elif mutation == "reorder":
        lines[4], lines[5] = lines[5], lines[4]
    else:
        lines.insert(5, lines[4])
    _rewrite(path, lines)
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.TAMPER
    assert detail in rep.chains[0].findings[0].detail


async def test_resigned_with_foreign_key_is_unknown_key(tmp_path, signer, keyring):
    """An attacker rebuilds the whole chain (and checkpoints) with a key of their own."""
    await write_log(tmp_path, signer, 10, checkpoint_every=4, batch=4)
    foreign = Signer.from_private(Ed25519PrivateKey.generate())
    for path in [chain_file(tmp_path)]:
        prev, out = "0" * 64, []
        for line in read_lines(path):
            e = load(line)
            e.update(prev=prev, kid=foreign.kid)
            e["hash"] = entry_hash(e)
            e["sig"] = foreign.sign(e["hash"])
            prev = e["hash"]
            out.append(orjson.dumps(e) + b"\n")
        _rewrite(path, out)
    shutil.rmtree(tmp_path / "checkpoints")  # their checkpoints would be foreign too; drop them
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.UNKNOWN_KEY and rep.exit_code == 4
    # ... and against its own (unpinned) key the forged log is internally consistent: pinning is what matters
    forged_ring = Keyring()
    forged_ring.add(foreign.private.public_key())
    assert _status(tmp_path, forged_ring).status == verify.OK


async def test_key_rotation_mid_log(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 5)
    rotated = Signer.from_private(Ed25519PrivateKey.generate())
    await write_log(tmp_path, rotated, 5)  # restart with a new key: the chain resumes
    assert _status(tmp_path, keyring).status == verify.UNKNOWN_KEY
    keyring.add(rotated.private.public_key())
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries == 11


async def test_per_tenant_keys(tmp_path, signer, keyring):
    acme = Signer.from_private(Ed25519PrivateKey.generate())
    await write_log(tmp_path, signer, 4, tenant_signers={"acme": acme})
    kids = {load(line)["kid"] for line in read_lines(chain_file(tmp_path))}
    assert kids == {signer.kid, acme.kid}  # header by the writer key, records by the tenant's
    assert _status(tmp_path, keyring).status == verify.UNKNOWN_KEY
    keyring.add(acme.private.public_key())
    assert _status(tmp_path, keyring).status == verify.OK


async def test_truncation_needs_a_checkpoint(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 10)  # the final checkpoint at stop covers seq 10
    path = chain_file(tmp_path)
    lines = read_lines(path)
    _rewrite(path, lines[:-3])
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.TRUNCATED and rep.exit_code == 6
    # Without the external anchor, a cut tail is indistinguishable from a shorter log (L3, measured).
    empty = tmp_path / "no-checkpoints"
    empty.mkdir()
    assert _status(tmp_path / "records", keyring, empty).status == verify.OK


async def test_torn_tail_is_not_tamper(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 6, checkpoint_every=100000)
    (tmp_path / "checkpoints" / "c1.jsonl").unlink()  # crash: no final checkpoint
    path = chain_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # cut inside the last line
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.TORN_TAIL and rep.exit_code == 1
    assert rep.chains[0].entries == 6


async def test_torn_tail_then_restart_resumes_the_chain(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 6)
    path = chain_file(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"v":1,"type":"exch')  # kill -9 mid-write
    await write_log(tmp_path, signer, 3)
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.OK
    assert rep.chains[0].entries == 10 and len(rep.chains[0].recovered_torn_tails) == 1


async def test_malformed_line_inside_is_tamper(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 6)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    lines[3] = b"not json at all\n"
    _rewrite(path, lines)
    assert _status(tmp_path, keyring).status == verify.TAMPER


async def test_entry_replayed_from_another_chain(tmp_path, signer, keyring):
    await write_log(tmp_path / "a", signer, 4, chain="c1")
    await write_log(tmp_path / "b", signer, 4, chain="c2")
    path = chain_file(tmp_path / "a", "c1")
    lines = read_lines(path)
    lines.append(read_lines(chain_file(tmp_path / "b", "c2"))[-1])
    _rewrite(path, lines)
    rep = _status(tmp_path / "a", keyring)
    assert rep.status == verify.TAMPER and "replay" in rep.chains[0].findings[0].detail


def _days():
    days = iter(["2026-11-20"] * 1 + ["2026-11-21"] * 1 + ["2026-11-22"] * 100)
    return lambda: next(days)


async def test_rotation_links_files_and_missing_file_is_detected(tmp_path, signer, keyring):
    clock = _days()
    await write_log(tmp_path, signer, 9, clock_day=clock, batch=3)
    files = sorted((tmp_path / "records" / "c1").glob("*.jsonl"))
    assert [f.name for f in files] == ["2026-11-20.jsonl", "2026-11-21.jsonl", "2026-11-22.jsonl"]
    assert _status(tmp_path, keyring).status == verify.OK
    files[1].unlink()
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.MISSING_FILE and rep.exit_code == 7
    assert "2026-11-21.jsonl" in rep.chains[0].findings[0].detail


async def test_missing_first_file(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 6, clock_day=_days(), batch=2)
    sorted((tmp_path / "records" / "c1").glob("*.jsonl"))[0].unlink()
    assert _status(tmp_path, keyring).status == verify.MISSING_FILE


async def test_missing_chain_directory_with_checkpoints(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 3)
    shutil.rmtree(tmp_path / "records" / "c1")
    assert _status(tmp_path, keyring).status == verify.MISSING_FILE


async def test_checkpoint_edit_is_tamper(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 5)
    cp = tmp_path / "checkpoints" / "c1.jsonl"
    doc = orjson.loads(cp.read_bytes())
    doc["seq"] = 3
    cp.write_bytes(orjson.dumps(doc) + b"\n")
    assert _status(tmp_path, keyring).status == verify.TAMPER


async def test_records_not_matching_checkpoint_root(tmp_path, signer, keyring):
    """Rebuilt chain with the writer's own key (stolen key): the shipped checkpoint still catches it."""
    await write_log(tmp_path, signer, 6)
    path = chain_file(tmp_path)
    prev, out = "0" * 64, []
    for i, line in enumerate(read_lines(path)):
        e = load(line)
        if i == 3:
            e["outcome"] = "rewritten"
        e["prev"] = prev
        e["hash"] = entry_hash(e)
        e["sig"] = signer.sign(e["hash"])
        prev = e["hash"]
        out.append(orjson.dumps(e) + b"\n")
    _rewrite(path, out)
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.TAMPER and "checkpoint" in rep.chains[0].findings[0].detail


async def test_inclusion_proof(tmp_path, signer):
    await write_log(tmp_path, signer, 37, checkpoint_every=10, batch=10)
    for seq in (0, 1, 5, 17, 36):
        proof = verify.inclusion(tmp_path, "c1", seq)
        assert proof["verified"] is True
        assert proof["checkpoint"]["first_seq"] <= seq <= proof["checkpoint"]["seq"]
    path = chain_file(tmp_path)
    lines = read_lines(path)
    e = load(lines[5])
    e["outcome"] = "x"
    lines[5] = orjson.dumps(e) + b"\n"
    _rewrite(path, lines)
    assert verify.inclusion(tmp_path, "c1", 5)["verified"] is False


async def test_no_chains_is_missing(tmp_path, keyring):
    assert _status(tmp_path, keyring).status == verify.MISSING_FILE


@pytest.mark.parametrize("bad_at", [None, 95])
async def test_signatures_checked_in_worker_processes(tmp_path, signer, keyring, monkeypatch, bad_at):
    """The pooled path gives the same verdicts, in order, as the inline one."""
    from proxy.audit import signature
    monkeypatch.setattr(signature, "CHUNK", 16)
    await write_log(tmp_path, signer, 100)
    if bad_at is not None:
        path = chain_file(tmp_path)
        lines = read_lines(path)
        e = load(lines[bad_at])
        e["sig"] = Signer.from_private(Ed25519PrivateKey.generate()).sign(e["hash"])
        lines[bad_at] = orjson.dumps(e) + b"\n"
        _rewrite(path, lines)
    rep = verify.verify_dir(tmp_path, keyring, workers=2)
    if bad_at is None:
        assert rep.status == verify.OK and rep.chains[0].entries == 101
    else:
        assert rep.status == verify.BAD_SIGNATURE and rep.chains[0].findings[0].seq == bad_at


async def test_oversized_line_is_reported_not_loaded(tmp_path, signer, keyring, monkeypatch):
    from proxy.audit import layout
    await write_log(tmp_path, signer, 3)
    monkeypatch.setattr(layout, "MAX_LINE", 4096)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    lines.insert(2, b"x" * (3 * layout.READ_BLOCK) + b"\n")
    _rewrite(path, lines)
    rep = _status(tmp_path, keyring)
    assert rep.status == verify.TAMPER and "longer than" in rep.chains[0].findings[0].detail
