"""Where audit data lives on disk, and streaming reads of it.

    <dir>/records/<chain>/<YYYY-MM-DD>.jsonl      append-only entries, one chain per writer
    <dir>/records/<chain>/<day>.jsonl.torn-<ts>   a torn tail moved aside at restart (kept as evidence)
    <dir>/checkpoints/<chain>.jsonl               signed checkpoints (ship these elsewhere)
    <dir>/keys/                                   public keys the writer used (pin a copy elsewhere)
    <dir>/subject-keys/<tenant>/                  wrapped per-subject content keys (erase = delete)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

RECORDS = "records"
CHECKPOINTS = "checkpoints"
KEYS = "keys"
SUBJECT_KEYS = "subject-keys"
RECORD_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
CHAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
READ_BLOCK = 1 << 20
MAX_LINE = 16 << 20  # far above any record; a longer "line" is damage, not a record


class LineTooLong(ValueError):
    pass


def records_root(audit_dir: Path) -> Path:
    """Accept the audit dir itself or its records/ directory."""
    audit_dir = Path(audit_dir)
    return audit_dir / RECORDS if (audit_dir / RECORDS).is_dir() else audit_dir


def chain_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and CHAIN_ID.match(p.name))


def record_files(chain_dir: Path) -> list[Path]:
    return sorted(p for p in chain_dir.iterdir() if p.is_file() and RECORD_FILE.match(p.name))


def torn_files(chain_dir: Path) -> list[Path]:
    return sorted(p for p in chain_dir.iterdir() if p.is_file() and ".jsonl.torn-" in p.name)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without newline, newline-terminated?) in constant memory."""
    lineno = 0
    with open(path, "rb") as f:
        carry = b""
        while block := f.read(READ_BLOCK):
            buf = carry + block
            start = 0
            while (nl := buf.find(b"\n", start)) != -1:
                lineno += 1
                yield lineno, buf[start:nl], True
                start = nl + 1
            carry = buf[start:]
            if len(carry) > MAX_LINE:
                raise LineTooLong(f"{path.name}: line {lineno + 1} is longer than {MAX_LINE} bytes")
        if carry:
            yield lineno + 1, carry, False
