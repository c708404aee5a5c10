"""The full-stack benchmark runs end to end (--quick) and prints every table. No timing
assertions: numbers depend on the machine; this checks the bench itself works and that every
request through every stage came back whole (a failed request is reported with '!')."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.fullstack import PII_LINE, prompt

ROOT = Path(__file__).resolve().parents[2]


def test_prompts_have_the_asked_size_pii_and_the_mock_directive():
    for size in (200, 2048, 204800):
        text = prompt(size, 7)
        assert text.endswith(" mock:stream-chunks=7") and len(text) == size + len(" mock:stream-chunks=7")
    assert PII_LINE[:40] in prompt(2048, 20)


def test_quick_full_stack_bench_prints_every_table():
    run = subprocess.run([sys.executable, "-m", "bench.fullstack", "--quick", "--concurrency", "1,16"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "  ! " not in run.stderr, run.stderr[-3000:]
    out = run.stdout
    for title in ("## 1. Full stack", "## 2. Per-stage cost", "## 3. Growth with prompt size",
                  "## 4. Growth with stream length", "RSS of the full stack", "Targets (issue 9)"):
        assert title in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith(("| json", "| stream"))]
    assert {(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows} == {
        (m, c, t) for m in ("json", "stream") for c in ("1", "16") for t in ("direct", "passthrough", "core", "full")}
    assert all(float(r[3]) > 0 for r in rows)
    stages = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| +") or line.startswith("| core |")]
    assert stages == ["core", "+rate_limit", "+budget", "+injection", "+pii", "+leak", "+audit"]
