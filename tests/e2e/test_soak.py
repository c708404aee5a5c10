"""Slow tier: the soak (bench/soak.py) as a test. SOAK_SECONDS sets the traffic time (default 600,
the issue's 10 minutes), SOAK_WORKERS the client workers (default 50, SECURITY_TESTS H11's 50
streams), SOAK_THINK their pause between requests (default 0.3 s); every pass criterion of bench.soak must hold, the loop-lag p99 < 50 ms included."""

import json
import os

import pytest

from bench import soak


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_soak_mixed_traffic_with_faults_every_stage_on(tmp_path):
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    out = tmp_path / "soak.json"
    workers = os.environ.get("SOAK_WORKERS", "50")
    think = os.environ.get("SOAK_THINK", "0.3")  # the H11 runs' pace (~110 req/s); 0.02 saturates the 2-core VM
    code = soak.main(["--duration", str(seconds), "--concurrency", workers, "--think", think, "--json", str(out)])
    report = json.loads(out.read_text())
    failed = [name for name, ok in report["checks"].items() if not ok]
    assert code == 0 and not failed, (failed, {k: report[k] for k in ("bad_5xx", "bad_stream_errors", "rss_mib", "fds",
                                                                      "budget_holds_left", "audit_verify")})
    assert report["requests"] > 10 * seconds  # traffic really flowed
    assert report["chaos_fired"] > 0 and report["answered"] == report["audit_exchange_records"]
    lag = report["event_loop_lag (ramparts_event_loop_lag_seconds, traffic window)"]
    assert lag["samples"] > 5 * seconds and lag["p99_le_ms"] <= 50  # the monitor ran all along (every 0.1 s)
