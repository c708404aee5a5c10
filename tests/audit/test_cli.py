"""`ramparts audit verify|erase|export` and `ramparts keys generate`, run as the CLI runs them."""

from __future__ import annotations

import copy
import json
import shutil

import orjson
import pytest
import yaml

from proxy.audit.content import SubjectKeys
from proxy.cli import main
from tests.audit.conftest import chain_file, read_lines, write_log
from tests.harness import BASE_POLICY


def _run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


async def test_verify_exit_codes_and_report(tmp_path, signer, capsys):
    await write_log(tmp_path / "log", signer, 20)
    keys = tmp_path / "pinned"
    keys.mkdir()
    (keys / "audit.pub").write_bytes(signer.public_pem())
    code, report, err = _run(capsys, "audit", "verify", str(tmp_path / "log"), "--keys", str(keys))
    assert code == 0 and report["status"] == "OK" and report["signatures_checked"] is True
    assert "chain c1: OK (21 entries, 1/1 checkpoints)" in err

    bad = tmp_path / "tampered"
    shutil.copytree(tmp_path / "log", bad)
    path = chain_file(bad)
    lines = read_lines(path)
    e = orjson.loads(lines[7])
    e["tenant"] = "globex"
    lines[7] = orjson.dumps(e) + b"\n"
    path.write_bytes(b"".join(lines))
    code, report, _ = _run(capsys, "audit", "verify", str(bad), "--keys", str(keys))
    assert code == 3 and report["status"] == "TAMPER"
    assert report["chains"][0]["findings"][0]["seq"] == 7

    empty_keys = tmp_path / "nokeys"
    empty_keys.mkdir()
    code, report, _ = _run(capsys, "audit", "verify", str(tmp_path / "log"), "--keys", str(empty_keys))
    assert code == 4 and report["status"] == "UNKNOWN_KEY"
    code, _, err = _run(capsys, "audit", "verify", str(tmp_path / "missing"))
    assert code == 2


async def test_verify_record_prints_an_inclusion_proof(tmp_path, signer, capsys):
    await write_log(tmp_path, signer, 12)
    code, proof, _ = _run(capsys, "audit", "verify", str(tmp_path), "--record", "4")
    assert code == 0 and proof["verified"] is True and proof["seq"] == 4 and proof["tree_size"] == 13
    assert proof["checkpoint_signature"] == "NOT_CHECKED"
    code, _, err = _run(capsys, "audit", "verify", str(tmp_path), "--record", "400")
    assert code == 3 and "no checkpoint" in err


def _rfc9162_root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, written out here so the test does not trust proxy.audit.merkle."""
    import hashlib
    fn, sn, r = index, size - 1, leaf
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


@pytest.mark.parametrize("seq", [0, 4, 9, 12, 13, 20])
async def test_inclusion_proof_checks_out_for_a_third_party(tmp_path, signer, capsys, seq):
    """What `--record SEQ` prints is enough for an outsider: entry -> leaf -> root -> signed checkpoint."""
    import base64
    import hashlib

    from proxy.audit.canonical import entry_hash
    await write_log(tmp_path / "log", signer, 13, checkpoint_every=7)  # checkpoints at seq 6, 13, and the final one
    await write_log(tmp_path / "log", signer, 7)
    keys = tmp_path / "pinned"
    keys.mkdir()
    (keys / "w.pub").write_bytes(signer.public_pem())
    code, proof, _ = _run(capsys, "audit", "verify", str(tmp_path / "log"), "--record", str(seq), "--keys", str(keys))
    assert code == 0 and proof["verified"] is True and proof["checkpoint_signature"] == "OK"
    entry = next(orjson.loads(line) for line in read_lines(chain_file(tmp_path / "log")) if orjson.loads(line)["seq"] == seq)
    assert entry["hash"] == proof["entry_hash"] == entry_hash(entry)
    leaf = hashlib.sha256(b"\x00" + bytes.fromhex(entry["hash"])).digest()
    cp = proof["checkpoint"]
    assert cp["first_seq"] + proof["leaf_index"] == seq and cp["count"] == proof["tree_size"]
    root = _rfc9162_root(leaf, proof["leaf_index"], proof["tree_size"], [bytes.fromhex(p) for p in proof["proof"]])
    assert root.hex() == cp["merkle_root"]
    assert entry_hash(cp) == cp["hash"]  # the root is part of what was signed
    signer.private.public_key().verify(base64.b64decode(cp["sig"]), cp["hash"].encode())  # raises if forged


async def test_inclusion_proof_against_a_foreign_or_forged_checkpoint(tmp_path, signer, capsys):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from proxy.audit.keyring import Signer
    await write_log(tmp_path / "log", signer, 5)
    empty = tmp_path / "nokeys"
    empty.mkdir()
    code, proof, err = _run(capsys, "audit", "verify", str(tmp_path / "log"), "--record", "2", "--keys", str(empty))
    assert code == 4 and proof["checkpoint_signature"] == "UNKNOWN_KEY" and proof["verified"] is False
    cps = tmp_path / "log" / "checkpoints" / "c1.jsonl"
    doc = orjson.loads(cps.read_bytes())
    doc["sig"] = Signer.from_private(Ed25519PrivateKey.generate()).sign(doc["hash"])
    cps.write_bytes(orjson.dumps(doc) + b"\n")
    keys = tmp_path / "pinned"
    keys.mkdir()
    (keys / "w.pub").write_bytes(signer.public_pem())
    code, proof, err = _run(capsys, "audit", "verify", str(tmp_path / "log"), "--record", "2", "--keys", str(keys))
    assert code == 5 and proof["checkpoint_signature"] == "BAD_SIGNATURE" and "BAD_SIGNATURE" in err


def test_keys_generate(tmp_path, capsys):
    code, out, _ = _run(capsys, "keys", "generate", "--out", str(tmp_path), "--name", "acme")
    assert code == 0 and out["kid"].startswith("ed25519:") and (tmp_path / "acme.key").exists()
    code, _, err = _run(capsys, "keys", "generate", "--out", str(tmp_path), "--name", "acme")
    assert code == 2 and "refusing to overwrite" in err


async def test_erase_export_and_legal_hold(tmp_path, signer, capsys, monkeypatch):
    monkeypatch.setenv("RAMPARTS_TEST_AUDIT_KEK", "cli-kek-0123456789")
    audit_dir = tmp_path / "audit"
    policy = copy.deepcopy(BASE_POLICY)
    policy["pipeline"] = [{"type": "tenant"}, {"type": "egress"},
                          {"type": "audit", "dir": "audit", "retain_content": True,
                           "content_key": {"from_env": "RAMPARTS_TEST_AUDIT_KEK"},
                           "legal_hold": {"acme": ["held-user"]}}]
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    # records with retained content for two subjects, written as the stage writes them
    from proxy.audit.writer import AuditWriter, WriterOptions
    w = AuditWriter(audit_dir, "c1", signer, {}, WriterOptions(),
                    subject_keys=SubjectKeys(audit_dir / "subject-keys", b"cli-kek-0123456789"))
    await w.start()
    for i, subject in enumerate(("alice", "held-user", "alice")):
        w.submit({"type": "exchange", "time": f"2026-11-22T00:00:0{i}.000000Z", "request_id": f"r{i}",
                  "tenant": "acme", "subject": subject}, lambda body, s=subject: {"prompt": [f"secret words of {s}"]})
    w.submit({"type": "exchange", "time": "2026-11-22T00:00:09.000000Z", "request_id": "g", "tenant": "globex", "subject": "alice"})
    await w.stop()

    code, out, _ = _run(capsys, "audit", "export", "--tenant", "acme", "--subject", "alice", "--policy", str(policy_path))
    assert code == 0 and [r["request_id"] for r in out["records"]] == ["r0", "r2"]
    assert out["records"][0]["content_plain"] == {"prompt": ["secret words of alice"]}

    code, out, _ = _run(capsys, "audit", "erase", "--tenant", "acme", "--subject", "alice", "--policy", str(policy_path))
    assert code == 0 and out["erased"] is True
    code, out, err = _run(capsys, "audit", "erase", "--tenant", "acme", "--subject", "held-user", "--policy", str(policy_path))
    assert code == 5 and out["legal_hold"] is True and "legal hold" in err

    code, out, _ = _run(capsys, "audit", "export", "--tenant", "acme", "--policy", str(policy_path))
    by_subject = {r["request_id"]: r for r in out["records"]}
    assert by_subject["r0"]["content_erased"] is True and by_subject["r0"]["content_plain"] is None
    assert by_subject["r1"]["content_plain"] == {"prompt": ["secret words of held-user"]}
    assert "g" not in by_subject  # another tenant's record
    raw = b"".join(p.read_bytes() for p in (audit_dir / "records").rglob("*.jsonl"))
    assert b"secret words" not in raw

    keys = tmp_path / "pinned"
    keys.mkdir()
    (keys / "w.pub").write_bytes(signer.public_pem())
    code, report, _ = _run(capsys, "audit", "verify", str(audit_dir), "--keys", str(keys))
    assert code == 0 and report["status"] == "OK"  # erased content, intact chain

    out_file = tmp_path / "export.json"
    code, _, _ = _run(capsys, "audit", "export", "--tenant", "globex", "--dir", str(audit_dir), "--out", str(out_file))
    assert code == 0 and [r["request_id"] for r in json.loads(out_file.read_text())["records"]] == ["g"]


def test_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["audit", "erase", "--tenant", "acme"])  # no --subject
    assert e.value.code == 2
    assert main(["audit", "export", "--tenant", "acme"]) == 2  # neither --policy nor --dir
    assert "pass --policy" in capsys.readouterr().err


def _mutate(kind: str, log, signer) -> None:
    """One kind of damage per failure class, applied to a clean log written by the real writer."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from proxy.audit.keyring import Signer
    path = chain_file(log)
    lines = read_lines(path)
    if kind == "TORN_TAIL":  # a crash mid-write: no final checkpoint, half a line
        (log / "checkpoints" / "c1.jsonl").unlink()
        path.write_bytes(b"".join(lines)[:-40])
    elif kind == "TAMPER":
        e = orjson.loads(lines[3])
        e["outcome"] = "denied"
        lines[3] = orjson.dumps(e) + b"\n"
        path.write_bytes(b"".join(lines))
    elif kind == "BAD_SIGNATURE":  # the pinned kid claimed, someone else's signature
        e = orjson.loads(lines[3])
        e["sig"] = Signer.from_private(Ed25519PrivateKey.generate()).sign(e["hash"])
        lines[3] = orjson.dumps(e) + b"\n"
        path.write_bytes(b"".join(lines))
    elif kind == "TRUNCATED":  # the tail cut off, the shipped checkpoint says it existed
        path.write_bytes(b"".join(lines[:-3]))
    elif kind == "MISSING_FILE":  # a whole day file removed
        sorted((log / "records" / "c1").glob("*.jsonl"))[0].unlink()


@pytest.mark.parametrize("kind,code", [("OK", 0), ("TORN_TAIL", 1), ("TAMPER", 3), ("UNKNOWN_KEY", 4),
                                       ("BAD_SIGNATURE", 5), ("TRUNCATED", 6), ("MISSING_FILE", 7)])
async def test_verify_exit_code_per_failure_class(tmp_path, signer, capsys, kind, code):
    log = tmp_path / "log"
    await write_log(log, signer, 5, clock_day=lambda: "2026-11-21")  # two day files, linked by the second one's header
    await write_log(log, signer, 8, clock_day=lambda: "2026-11-22")
    assert len(list((log / "records" / "c1").glob("*.jsonl"))) == 2
    _mutate(kind, log, signer)
    keys = tmp_path / "pinned"
    keys.mkdir()
    if kind != "UNKNOWN_KEY":
        (keys / "audit.pub").write_bytes(signer.public_pem())
    got, report, err = _run(capsys, "audit", "verify", str(log), "--keys", str(keys), "--jobs", "1")
    assert (got, report["status"], report["exit_code"]) == (code, kind, code)
    chain = report["chains"][0]
    assert chain["status"] == kind and (kind == "OK") == (chain["findings"] == [])
    assert f"chain c1: {kind}" in err


def test_verify_exit_status_of_the_installed_command(tmp_path, signer):
    """The `ramparts` console script exits with the report's code (not just main()'s return value)."""
    import asyncio
    import subprocess
    import sys
    from pathlib import Path

    asyncio.run(write_log(tmp_path / "log", signer, 10))
    path = chain_file(tmp_path / "log")
    path.write_bytes(b"".join(read_lines(path)[:-2]))  # truncated below the final checkpoint
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "a.pub").write_bytes(signer.public_pem())
    exe = Path(sys.executable).with_name("ramparts")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "proxy.cli"]
    p = subprocess.run([*cmd, "audit", "verify", str(tmp_path / "log"), "--keys", str(tmp_path / "keys"), "--jobs", "1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 6 and json.loads(p.stdout)["status"] == "TRUNCATED" and "TRUNCATED" in p.stderr
