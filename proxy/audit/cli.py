"""`ramparts audit verify|erase|export` and `ramparts keys generate`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from proxy.audit import layout
from proxy.audit.content import ErasureRefused, SubjectKeys
from proxy.audit.keyring import Keyring, KeyLoadError, generate_keypair
from proxy.audit.query import Query, iter_records
from proxy.audit.verify import EXIT_CODES, inclusion, verify_dir

EXIT_USAGE = 2
EXIT_LEGAL_HOLD = 5


def _err(msg: str) -> None:
    print(f"ramparts: {msg}", file=sys.stderr)


def _dump(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ verify


def verify_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts audit verify", description=(
        "Verify audit chains. Exit 0 OK, 1 TORN_TAIL, 2 usage, 3 TAMPER, 4 UNKNOWN_KEY, 5 BAD_SIGNATURE, "
        "6 TRUNCATED, 7 MISSING_FILE. Prints a JSON report on stdout."))
    ap.add_argument("dir", type=Path, help="the audit directory (or its records/ directory)")
    ap.add_argument("--keys", type=Path, help="pinned public keys (*.pub); default: DIR/keys (not a real pin)")
    ap.add_argument("--checkpoints", type=Path, help="signed checkpoints shipped elsewhere; default: DIR/checkpoints")
    ap.add_argument("--record", type=int, metavar="SEQ", help="print an inclusion proof of entry SEQ instead")
    ap.add_argument("--chain", help="the chain of --record (needed when there are several)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes checking signatures (default: one per CPU)")
    a = ap.parse_args(argv)
    if not a.dir.is_dir():
        _err(f"{a.dir} is not a directory")
        return EXIT_USAGE
    keys_dir = a.keys
    if keys_dir is None and (a.dir / layout.KEYS).is_dir():
        keys_dir = a.dir / layout.KEYS
        _err(f"warning: using keys from {keys_dir}, next to the log; pass --keys with a pinned copy")
    keyring = None
    if keys_dir is not None:
        try:
            keyring = Keyring.from_dir(keys_dir)
        except (OSError, KeyLoadError) as e:
            _err(f"cannot load keys from {keys_dir}: {e}")
            return EXIT_USAGE
    else:
        _err("warning: no keys: signatures are NOT checked")
    if a.record is not None:
        return _prove(a, keyring)
    report = verify_dir(a.dir, keyring, a.checkpoints, workers=max(1, a.jobs))
    _dump(report.to_json())
    for c in report.chains:
        first = c.findings[0] if c.findings else None
        where = f" at {first.file}:{first.line} seq {first.seq}: {first.detail}" if first else ""
        _err(f"chain {c.chain}: {c.status} ({c.entries} entries, {c.checkpoints_matched}/{c.checkpoints} checkpoints){where}")
    return report.exit_code


def _prove(a: argparse.Namespace, keyring: Keyring | None) -> int:
    """Exit 0 proven, 3 not included (or records/checkpoints damaged), 4/5 the checkpoint's key unknown/signature bad."""
    chain = a.chain
    if chain is None:
        chains = layout.chain_dirs(layout.records_root(a.dir))
        if len(chains) != 1:
            _err("several chains: pass --chain")
            return EXIT_USAGE
        chain = chains[0].name
    try:
        proof = inclusion(a.dir, chain, a.record, a.checkpoints, keyring)
    except (ValueError, OSError) as e:
        _err(str(e))
        return 3
    _dump(proof)
    if proof["checkpoint_signature"] in EXIT_CODES and proof["checkpoint_signature"] != "OK":
        _err(f"checkpoint seq {proof['checkpoint']['seq']}: {proof['checkpoint_signature']}")
        return EXIT_CODES[proof["checkpoint_signature"]]
    return 0 if proof["verified"] else 3


# ------------------------------------------------------------------ erase / export


def _audit_settings(policy_path: Path | None, dir_override: Path | None):
    """(audit dir, legal holds, content key secret or None) from the policy's audit stage."""
    holds: dict[str, list[str]] = {}
    kek = None
    audit_dir = dir_override
    if policy_path is not None:
        from proxy.config.loader import load_policy
        policy = load_policy(policy_path, resolve_secrets=False)
        cfg = next((c for c in policy.stage_configs if c.type == "audit"), None)
        if cfg is None:
            raise ValueError(f"{policy_path} has no audit stage")
        holds = cfg.legal_hold
        if audit_dir is None:
            audit_dir = (policy.base_dir / cfg.dir) if cfg.dir else Path(policy.server.data_dir) / "audit"
        if cfg.content_key is not None:
            kek = cfg.content_key.resolve_bytes(policy.base_dir)
    if audit_dir is None:
        raise ValueError("pass --policy (or --dir)")
    return audit_dir, holds, kek


def erase_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts audit erase", description=(
        "Crypto-shred a subject's retained content: destroys the subject's data key. Records and chain stay "
        "verifiable. Subjects on the policy's legal_hold list are refused (exit 5)."))
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--subject", required=True)
    ap.add_argument("--policy", type=Path, required=True, help="the policy file (audit dir and legal holds)")
    ap.add_argument("--dir", type=Path, help="override the audit directory")
    a = ap.parse_args(argv)
    try:
        audit_dir, holds, _ = _audit_settings(a.policy, a.dir)
        # shredding needs no key-encryption key: it destroys the wrapped subject key
        erased = SubjectKeys(audit_dir / layout.SUBJECT_KEYS, b"").shred(a.tenant, a.subject, holds)
    except ErasureRefused as e:
        _err(str(e))
        _dump({"tenant": a.tenant, "subject": a.subject, "erased": False, "legal_hold": True})
        return EXIT_LEGAL_HOLD
    except Exception as e:  # policy errors, unreadable dirs: report, do not trace
        _err(str(e))
        return EXIT_USAGE
    _dump({"tenant": a.tenant, "subject": a.subject, "erased": erased, "legal_hold": False,
           "note": "subject key destroyed" if erased else "no retained content for this subject"})
    return 0


def export_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts audit export", description=(
        "Write a tenant's (or one subject's) records as JSON; with --policy, retained content is decrypted "
        "where the subject's key still exists (erased content is marked as such)."))
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--subject")
    ap.add_argument("--policy", type=Path)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--from", dest="since")
    ap.add_argument("--to", dest="until")
    ap.add_argument("--out", type=Path, help="file to write (default: stdout)")
    a = ap.parse_args(argv)
    try:
        audit_dir, _, kek = _audit_settings(a.policy, a.dir)
        keys = SubjectKeys(audit_dir / layout.SUBJECT_KEYS, kek) if kek is not None else None
        params = {k: v for k, v in (("from", a.since), ("to", a.until), ("subject", a.subject)) if v}
        q = Query.from_params(a.tenant, params)
    except Exception as e:  # policy errors, bad times, unreadable secrets: report, do not trace
        _err(str(e))
        return EXIT_USAGE
    out = open(a.out, "wb") if a.out else sys.stdout.buffer
    count = 0
    try:
        out.write(b'{"tenant":' + orjson.dumps(a.tenant) + b',"records":[')
        for e in iter_records(audit_dir, q):
            if keys is not None and isinstance(e.get("content"), dict):
                plain = keys.decrypt(e["tenant"], e["subject"], e["request_id"], e["content"])
                e["content_plain"] = plain
                e["content_erased"] = plain is None
            out.write((b"," if count else b"\n") + orjson.dumps(e))
            count += 1
        out.write(b"\n]}\n")
    finally:
        if a.out:
            out.close()
        else:
            out.flush()
    _err(f"exported {count} records")
    return 0


# ------------------------------------------------------------------ keys


def keygen_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts keys generate", description=(
        "Generate an Ed25519 audit signing keypair: NAME.key (PKCS#8 PEM, 0600) and NAME.pub."))
    ap.add_argument("--out", type=Path, required=True, help="directory for the key files")
    ap.add_argument("--name", default="audit", help="file name stem (default: audit)")
    a = ap.parse_args(argv)
    if not layout.CHAIN_ID.match(a.name):
        _err("--name: letters, digits, '.', '_' and '-' only")
        return EXIT_USAGE
    try:
        signer = generate_keypair(a.out, a.name)
    except FileExistsError:
        _err(f"{a.out / (a.name + '.key')} exists; refusing to overwrite a key")
        return EXIT_USAGE
    _dump({"kid": signer.kid, "private": str(a.out / (a.name + ".key")), "public": str(a.out / (a.name + ".pub"))})
    return 0
