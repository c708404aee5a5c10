"""`ramparts demo` runs offline end to end and exits 0."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_exits_zero(tmp_path):
    r = subprocess.run([sys.executable, "-m", "proxy.cli", "demo", "--data-dir", str(tmp_path / "demo")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "Demo finished" in out
    assert "tenant_mismatch" in out and "egress_denied" in out
    assert "Echo: What is the capital of France?" in out
