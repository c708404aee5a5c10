"""bench.soak's loop-lag report: the proxy's own histogram, diffed over the traffic window."""

from bench.soak import loop_lag


def metrics(buckets: dict[str, int], total_s: float) -> str:
    lines = [f'ramparts_event_loop_lag_seconds_bucket{{le="{le}"}} {n}.0' for le, n in buckets.items()]
    return "\n".join(lines + [f"ramparts_event_loop_lag_seconds_count {list(buckets.values())[-1]}.0",
                              f"ramparts_event_loop_lag_seconds_sum {total_s}"]) + "\n"


def test_loop_lag_is_the_window_difference_with_bucket_bound_quantiles():
    before = metrics({"0.01": 40, "0.05": 50, "0.1": 50, "0.25": 50, "+Inf": 50}, 0.5)  # startup: excluded
    after = metrics({"0.01": 40 + 980, "0.05": 50 + 992, "0.1": 50 + 999, "0.25": 50 + 1000, "+Inf": 50 + 1000}, 4.5)
    r = loop_lag(before, after)
    assert r == {"samples": 1000, "p50_le_ms": 10.0, "p99_le_ms": 50.0, "max_le_ms": 250.0, "over_50ms": 8, "sum_s": 4.0}


def test_loop_lag_without_the_metric():
    assert loop_lag("", "") == {"samples": 0}
