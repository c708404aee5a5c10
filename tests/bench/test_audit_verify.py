"""SECURITY_TESTS L9: the verifier streams (flat peak RSS from N/10 to N records) and reports
malformed and oversized lines with their place. Fast tier: 4,000 records; slow tier: 1 M."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(n: int, tmp_path: Path, timeout: float) -> dict:
    out = tmp_path / "verify.json"
    p = subprocess.run([sys.executable, "-m", "bench.audit_verify", "--n", str(n), "--runs", "1", "--damage", "--json", str(out)],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads(out.read_text())


def check(r: dict, n: int, rss_ratio: float) -> None:
    assert [log["records"] for log in r["logs"]] == [n // 10, n]
    assert r["rss_ratio"] <= rss_ratio, r  # constant memory: the big log does not cost more RSS
    malformed, oversized = r["damaged"]
    at = int(n * 0.9) + 2
    assert malformed["exit"] == 3 and malformed["line"] == at and f".jsonl:{at} " in malformed["message"]
    assert "not JSON" in malformed["message"]
    assert oversized["exit"] == 3 and f"line {at} is longer than" in oversized["message"]
    # the 20 MiB "line" is refused past layout.MAX_LINE (16 MiB), never loaded whole or beyond
    assert oversized["peak_rss_mb"] < r["logs"][1]["peak_rss_mb"] + 40


def test_l9_verifier_small_log_flat_memory_and_damage_reported(tmp_path):
    check(run(4000, tmp_path, 300), 4000, 1.3)


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_l9_verifier_one_million_records(tmp_path):
    """~8 min on the 2-core VM (1.4 GB log: generate ~2 min, verify ~2 min, two damaged verifies ~3.5 min)."""
    r = run(1_000_000, tmp_path, 4 * 3600)
    check(r, 1_000_000, 1.10)
