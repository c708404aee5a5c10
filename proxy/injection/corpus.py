"""Labelled rows for training and evaluation, and the fixed held-out split.

Row format (one JSON object per line, as ../shared/data/injection_dev.jsonl):
{"id", "text", "label": 1 = attack | 0 = benign, "subtype", "source", "meta", "license", "train_ok"}

The held-out split is a seeded hash of each row's group, so it never changes
between runs or machines: BIPIA rows are grouped by pair (the benign context and
its injected twin land on the same side), every other row by its id. 30 % of the
groups are held out.
"""

from __future__ import annotations

import hashlib
import json
import random
import sysconfig
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

SPLIT_SEED = "ramparts-injection-split-v1"
HELD_OUT_PERCENT = 30
HANDWRITTEN = "data/handwritten.jsonl"


@dataclass(frozen=True)
class Row:
    text: str
    label: int
    subtype: str
    source: str = ""
    id: str = ""
    train_ok: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def read_jsonl(path: str | Path, skipped: list[str] | None = None) -> list[Row]:
    """Rows of a JSONL file. A line that is not a labelled row is an error with its number,
    or, when a `skipped` list is given, is described there and left out."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                label = int(d["label"])
                text = d["text"]
                if label not in (0, 1) or not isinstance(text, str):
                    raise ValueError("label must be 0 or 1 and text a string")
            except (ValueError, KeyError, TypeError) as e:
                if skipped is None:
                    raise ValueError(f"{path}:{n}: not a labelled row ({e})") from e
                skipped.append(f"{path}:{n}: {e}")
                continue
            rows.append(Row(text, label, str(d.get("subtype") or ("attack" if label else "benign")),
                            str(d.get("source", "")), str(d.get("id", n)), bool(d.get("train_ok", False)),
                            d.get("meta") if isinstance(d.get("meta"), dict) else {}))
    return rows


def group_of(row: Row) -> str:
    pair = row.meta.get("pair_id")
    return f"{row.source.split(':')[0]}:pair:{row.meta.get('task', '')}:{pair}" if pair is not None else f"id:{row.id}"


def is_held_out(row: Row) -> bool:
    digest = hashlib.sha256(f"{SPLIT_SEED}:{group_of(row)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def handwritten() -> list[Row]:
    """Examples written for Ramparts (Apache-2.0, same as the project): long benign
    prose, emails, code, and attacks including ones hidden in documents."""
    with resources.as_file(resources.files("proxy.injection").joinpath(HANDWRITTEN)) as p:
        return read_jsonl(p)


def local_prose(seed: int, count: int, min_len: int = 300, max_len: int = 4000) -> list[Row]:
    """Benign long texts cut from files every Python install has: the interpreter's
    licence and the language reference prose (pydoc topics), and stdlib source code
    (PSF licence). They teach the classifier that length, legal prose and code are
    not attacks, without downloading anything."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources: list[tuple[str, str]] = []
    lic = stdlib / "LICENSE.txt"
    if lic.exists():
        sources.append(("licence", lic.read_text(encoding="utf-8", errors="replace")))
    try:
        from pydoc_data.topics import topics  # the Python docs' prose, shipped with CPython
        sources.append(("docs", "\n\n".join(topics[k] for k in sorted(topics))))
    except ImportError:
        pass
    for name in ("json/decoder.py", "textwrap.py", "csv.py", "asyncio/locks.py", "http/cookies.py", "argparse.py",
                 "email/message.py", "logging/handlers.py", "unittest/case.py", "shutil.py"):
        p = stdlib / name
        if p.exists():
            sources.append(("code", p.read_text(encoding="utf-8", errors="replace")))
    if not sources:
        return []
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind, text = sources[i % len(sources)]
        n = rng.randint(min_len, max_len)
        start = rng.randrange(0, max(1, len(text) - n))
        out.append(Row(text[start:start + n], 0, f"local_{kind}", "python-stdlib", f"local-{i}", True))
    return out


def embed_attacks(benign: list[Row], attacks: list[Row], seed: int, count: int) -> list[Row]:
    """Indirect-injection examples: a short attack pasted into a benign document
    (start, middle or end). Teaches that one instruction inside a long text counts."""
    rng = random.Random(seed)
    short = [a for a in attacks if 20 <= len(a.text) <= 400]
    docs = [b for b in benign if len(b.text) >= 300]
    out = []
    for i in range(min(count, len(short) and len(docs) and count)):
        doc, atk = rng.choice(docs).text, rng.choice(short).text
        cut = rng.choice((0, len(doc) // 2, len(doc)))
        cut = doc.rfind("\n", 0, cut) + 1 if cut else 0
        out.append(Row(doc[:cut] + ("\n" if cut else "") + atk + "\n" + doc[cut:], 1, "embedded_attack", "augmented", f"emb-{i}", True))
    return out


def labelled(rows: Iterable[Row]) -> Iterator[tuple[str, int]]:
    for r in rows:
        yield r.text, r.label
