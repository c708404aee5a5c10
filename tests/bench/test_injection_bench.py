"""The injection bench runs end to end (--quick) and prints every table. No timing assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_injection_bench_prints_every_table():
    run = subprocess.run([sys.executable, "-m", "bench.injection_bench", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for heading in ("band flag", "band block", "ROC (pooled)", "Ablation", "Encoded payloads", "Speed (one core"):
        assert heading in out
    assert "score() of a 2 KB message" in out and "direct_injection" in out and "benign_context" in out
