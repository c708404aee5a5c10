"""The core benchmark runs end to end (--quick) and prints every row. No timing assertions:
numbers depend on the machine; this checks the bench itself works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_prints_a_full_table():
    # A subprocess: the bench pins its own process to a core, which must not touch pytest's.
    run = subprocess.run([sys.executable, "-m", "bench.core", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| json") or line.startswith("| stream")]
    cells = {(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows}
    assert cells == {(m, c, t) for m in ("json", "stream") for c in ("1", "16", "64")
                     for t in ("direct", "passthrough", "ramparts")}
    for r in rows:
        assert float(r[3].split()[0]) > 0  # RPS measured
        assert r[-1].strip() == "0"  # no errors: every response was a 200 with the full body / [DONE]
    assert re.search(r"stream c=16: Ramparts RPS = \d+ % of the floor", run.stdout)
    assert re.search(r"json   c=1:  Ramparts added p50 = -?[\d.]+ ms", run.stdout)
