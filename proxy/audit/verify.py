"""Offline verification of audit chains: streaming, constant memory, one verdict per chain.

Codes (and `ramparts audit verify` exit codes), least to most severe:
  OK 0 · TORN_TAIL 1 (a crash cut the last line: not tampering) · TRUNCATED 6 (the
  log ends before a signed checkpoint says it does) · MISSING_FILE 7 · UNKNOWN_KEY 4 ·
  BAD_SIGNATURE 5 · TAMPER 3 (edit, deletion, reorder, duplicate/replay, malformed line).
Checking stops at a chain's first hard failure: what follows an edit cannot be trusted.
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from proxy.audit import layout, merkle
from proxy.audit.canonical import GENESIS, entry_hash
from proxy.audit.keyring import Keyring
from proxy.audit.signature import SignatureCheck

OK, TORN_TAIL, TRUNCATED, MISSING_FILE, UNKNOWN_KEY, BAD_SIGNATURE, TAMPER = (
    "OK", "TORN_TAIL", "TRUNCATED", "MISSING_FILE", "UNKNOWN_KEY", "BAD_SIGNATURE", "TAMPER")
SEVERITY = (OK, TORN_TAIL, TRUNCATED, MISSING_FILE, UNKNOWN_KEY, BAD_SIGNATURE, TAMPER)
EXIT_CODES = {OK: 0, TORN_TAIL: 1, TAMPER: 3, UNKNOWN_KEY: 4, BAD_SIGNATURE: 5, TRUNCATED: 6, MISSING_FILE: 7}
REQUIRED = ("chain", "seq", "prev", "kid", "hash", "sig", "type")
REPLAY_WINDOW = 4096  # recent entry hashes kept to tell a duplicate from a reorder


def worst(codes: list[str]) -> str:
    return max(codes, key=SEVERITY.index, default=OK)


@dataclass
class Finding:
    code: str
    chain: str
    detail: str
    file: str | None = None
    line: int | None = None
    seq: int | None = None


@dataclass
class ChainReport:
    chain: str
    status: str = OK
    entries: int = 0
    last_seq: int | None = None
    head: str | None = None
    files: int = 0
    checkpoints: int = 0
    checkpoints_matched: int = 0
    recovered_torn_tails: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    status: str
    chains: list[ChainReport]
    signatures_checked: bool

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "signatures_checked": self.signatures_checked,
                "chains": [asdict(c) for c in self.chains]}


class _Stop(Exception):
    pass


# ------------------------------------------------------------- checkpoints


def load_checkpoints(path: Path, chain: str, keyring: Keyring | None, rep: ChainReport) -> list[dict[str, Any]]:
    """The chain's checkpoints, each checked (hash, signature, link to the previous one)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    prev = GENESIS
    for lineno, line, complete in layout.iter_lines(path):
        if not complete:  # a crash while appending a checkpoint: it never counted
            break
        try:
            doc = orjson.loads(line)
            ok = isinstance(doc, dict) and doc.get("type") == "checkpoint" and doc.get("chain") == chain
        except orjson.JSONDecodeError:
            ok = False
        if not ok or entry_hash(doc) != doc.get("hash") or doc.get("prev") != prev:
            _add(rep, TAMPER, "checkpoint altered, reordered or removed", path.name, lineno)
            raise _Stop
        _check_sig(rep, keyring, doc, path.name, lineno, "checkpoint")
        out.append(doc)
        prev = doc["hash"]
    return out


def _add(rep: ChainReport, code: str, detail: str, file: str | None = None, line: int | None = None,
         seq: int | None = None) -> None:
    rep.findings.append(Finding(code, rep.chain, detail, file, line, seq))
    rep.status = worst([rep.status, code])


def _check_sig(rep: ChainReport, keyring: Keyring | None, doc: dict, file: str, line: int, what: str) -> None:
    if keyring is None:
        return
    kid = doc.get("kid")
    if kid not in keyring:
        _add(rep, UNKNOWN_KEY, f"{what} signed with key {kid!r}, which is not pinned", file, line, doc.get("seq"))
        raise _Stop
    if not isinstance(doc.get("sig"), str) or not keyring.verify(kid, doc["hash"], doc["sig"]):
        _add(rep, BAD_SIGNATURE, f"{what} signature does not verify with {kid}", file, line, doc.get("seq"))
        raise _Stop


# ------------------------------------------------------------- records


def verify_chain(chain_dir: Path | None, chain: str, keyring: Keyring | None, checkpoints_dir: Path | None,
                 workers: int = 1) -> ChainReport:
    rep = ChainReport(chain)
    sigs = SignatureCheck(keyring, workers) if keyring is not None else None
    stopped = False
    try:
        ckpts = load_checkpoints(checkpoints_dir / f"{chain}.jsonl", chain, keyring, rep) if checkpoints_dir else []
        rep.checkpoints = len(ckpts)
        if chain_dir is None or not chain_dir.is_dir():
            _add(rep, MISSING_FILE, "checkpoints exist for this chain but its record directory is missing")
            return rep
        rep.recovered_torn_tails = [p.name for p in layout.torn_files(chain_dir)]
        _walk(chain_dir, chain, keyring, sigs, ckpts, rep)
    except _Stop:
        stopped = True
    except layout.LineTooLong as e:
        _add(rep, TAMPER, str(e))
        stopped = True
    finally:
        if sigs is not None:
            bad = sigs.finish()
            sigs.close()
            if bad is not None:
                _add(rep, BAD_SIGNATURE, "entry signature does not verify", *bad)
                stopped = True
    if not stopped and ckpts and (rep.last_seq is None or rep.last_seq < ckpts[-1]["seq"]):
        _add(rep, TRUNCATED, f"records end at seq {rep.last_seq} but checkpoint covers up to seq {ckpts[-1]['seq']}",
             seq=rep.last_seq)
    return rep


def _walk(chain_dir: Path, chain: str, keyring: Keyring | None, sigs: SignatureCheck | None, ckpts: list[dict],
          rep: ChainReport) -> None:
    files = layout.record_files(chain_dir)
    names = {p.name for p in files}
    rep.files = len(files)
    by_seq = {c["seq"]: c for c in ckpts}
    expected, prev_hash = 0, GENESIS
    recent: collections.OrderedDict[str, int] = collections.OrderedDict()
    acc, period_first = merkle.Accumulator(), (ckpts[0]["first_seq"] if ckpts else 0)
    previous_file: str | None = None
    for fi, path in enumerate(files):
        last_file = fi == len(files) - 1
        first_in_file = True
        lines = layout.iter_lines(path)
        for lineno, line, complete in lines:
            where = (path.name, lineno)
            if not complete:
                if last_file:
                    _add(rep, TORN_TAIL, "the last line is incomplete (a crash mid-write)", *where)
                    return
                _add(rep, TAMPER, "an unterminated line inside the log", *where)
                raise _Stop
            try:
                e = orjson.loads(line)
            except orjson.JSONDecodeError:
                _add(rep, TAMPER, "a line is not JSON", *where)
                raise _Stop
            if not isinstance(e, dict) or any(k not in e for k in REQUIRED) or not isinstance(e["seq"], int):
                _add(rep, TAMPER, "an entry lacks chain fields", *where)
                raise _Stop
            seq = e["seq"]
            if e["chain"] != chain:
                _add(rep, TAMPER, f"an entry of chain {e['chain']!r} was inserted (replay)", *where, seq)
                raise _Stop
            h = entry_hash(e)
            if h != e["hash"]:
                _add(rep, TAMPER, "entry content does not match its hash (edited)", *where, seq)
                raise _Stop
            if first_in_file:
                _check_file_header(rep, e, path.name, previous_file, names, where)
                first_in_file = False
            if seq != expected or e["prev"] != prev_hash:
                if seq < expected:
                    what = "duplicate (replayed) entry" if recent.get(h) == seq else "entry out of order"
                elif seq > expected:
                    what = (f"entry out of order (seq {seq} where {expected} was due)" if _next_seq(lines) == expected
                            else f"entries {expected}..{seq - 1} are missing (deleted)")
                else:
                    what = "the link to the previous entry is broken"
                _add(rep, TAMPER, what, *where, seq)
                raise _Stop
            if keyring is not None:
                if e["kid"] not in keyring:
                    _add(rep, UNKNOWN_KEY, f"entry signed with key {e['kid']!r}, which is not pinned", *where, seq)
                    raise _Stop
                bad = sigs.add(e["kid"], h, e["sig"], (*where, seq))
                if bad is not None:
                    _add(rep, BAD_SIGNATURE, "entry signature does not verify", *bad)
                    raise _Stop
            recent[h] = seq
            if len(recent) > REPLAY_WINDOW:
                recent.popitem(last=False)
            acc.add(merkle.leaf(h))
            cp = by_seq.get(seq)
            if cp is not None:
                if cp["head"] != h or cp["first_seq"] != period_first or cp["merkle_root"] != acc.root().hex():
                    _add(rep, TAMPER, "the records do not match the signed checkpoint (head or Merkle root)", *where, seq)
                    raise _Stop
                rep.checkpoints_matched += 1
                acc, period_first = merkle.Accumulator(), seq + 1
            expected, prev_hash = seq + 1, h
            rep.entries += 1
            rep.last_seq, rep.head = seq, h
        previous_file = path.name


def _next_seq(lines) -> int | None:
    """Peek one line ahead to tell a swap from a deletion (the walk stops here anyway)."""
    nxt = next(lines, None)
    try:
        return orjson.loads(nxt[1]).get("seq") if nxt else None
    except (orjson.JSONDecodeError, AttributeError):
        return None


def _check_file_header(rep: ChainReport, e: dict, name: str, previous_file: str | None, names: set[str],
                       where: tuple[str, int]) -> None:
    if e.get("type") != "file" or e.get("file") != name:
        _add(rep, TAMPER, "a file does not start with its own signed header (renamed, cut or spliced)", *where, e["seq"])
        raise _Stop
    claimed = e.get("previous_file")
    if claimed != previous_file:
        if claimed is not None and claimed not in names:
            _add(rep, MISSING_FILE, f"file {claimed} is missing (named by the header of {name})", *where, e["seq"])
        else:
            _add(rep, TAMPER, f"file order broken: {name} follows {claimed}, found after {previous_file}", *where, e["seq"])
        raise _Stop


def verify_dir(audit_dir: Path, keyring: Keyring | None, checkpoints_dir: Path | None = None,
               workers: int = 1) -> Report:
    """Verify every chain under `audit_dir`; `workers` > 1 checks signatures in that many processes."""
    root = layout.records_root(audit_dir)
    if checkpoints_dir is None and (Path(audit_dir) / layout.CHECKPOINTS).is_dir():
        checkpoints_dir = Path(audit_dir) / layout.CHECKPOINTS
    chains = {p.name: p for p in layout.chain_dirs(root)}
    if checkpoints_dir is not None and checkpoints_dir.is_dir():
        for p in checkpoints_dir.glob("*.jsonl"):
            chains.setdefault(p.stem, None)  # a chain known only from its checkpoints: its records are missing
    reports = [verify_chain(chains[c], c, keyring, checkpoints_dir, workers) for c in sorted(chains)]
    status = worst([r.status for r in reports]) if reports else MISSING_FILE
    if not reports:
        reports = [ChainReport("-", MISSING_FILE, findings=[Finding(MISSING_FILE, "-", f"no audit chains under {root}")])]
    return Report(status, reports, keyring is not None)


# ------------------------------------------------------------- inclusion proofs


def inclusion(audit_dir: Path, chain: str, seq: int, checkpoints_dir: Path | None = None,
              keyring: Keyring | None = None) -> dict[str, Any]:
    """An RFC 6962 inclusion proof of entry `seq` against the checkpoint that covers it.

    Self-contained: the entry hash, the audit path, and the whole signed checkpoint (whose
    hash is the JCS hash of its other fields), so a third party can check it with the
    writer's public key alone. With a keyring, the checkpoint's signature is checked here.
    """
    checkpoints_dir = checkpoints_dir or Path(audit_dir) / layout.CHECKPOINTS
    rep = ChainReport(chain)
    try:
        ckpts = load_checkpoints(checkpoints_dir / f"{chain}.jsonl", chain, None, rep)
    except _Stop:
        raise ValueError(rep.findings[-1].detail) from None
    cp = next((c for c in ckpts if c["first_seq"] <= seq <= c["seq"]), None)
    if cp is None:
        raise ValueError(f"no checkpoint of chain {chain} covers seq {seq} yet")
    leaves, target = [], None
    for path in layout.record_files(layout.records_root(audit_dir) / chain):
        for _, line, complete in layout.iter_lines(path):
            if not complete:
                continue
            e = orjson.loads(line)
            if cp["first_seq"] <= e["seq"] <= cp["seq"]:
                leaves.append(merkle.leaf(e["hash"]))
                if e["seq"] == seq:
                    target = e
    if target is None or len(leaves) != cp["count"]:
        raise ValueError(f"the records of seq {cp['first_seq']}..{cp['seq']} are incomplete")
    index = seq - cp["first_seq"]
    proof = merkle.inclusion_proof(leaves, index)
    root = bytes.fromhex(cp["merkle_root"])
    leaf = merkle.leaf(target["hash"])
    if keyring is None:
        signature = "NOT_CHECKED"
    elif cp.get("kid") not in keyring:
        signature = UNKNOWN_KEY
    else:
        signature = OK if keyring.verify(cp["kid"], cp["hash"], cp.get("sig", "")) else BAD_SIGNATURE
    included = entry_hash(target) == target["hash"] and merkle.verify_inclusion(leaf, index, len(leaves), proof, root)
    return {"chain": chain, "seq": seq, "entry_hash": target["hash"], "leaf": leaf.hex(), "leaf_index": index,
            "tree_size": len(leaves), "proof": [p.hex() for p in proof], "checkpoint": cp,
            "checkpoint_signature": signature,
            "verified": included and signature in (OK, "NOT_CHECKED")}
