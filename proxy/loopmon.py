"""Event-loop lag: how late the loop runs a callback that was due (SECURITY_TESTS H11).

The usual production probe (Node's monitorEventLoopDelay, aiomonitor, loopmon): a task
sleeps a fixed interval and records by how much the wake-up overshot it. Anything that
holds the loop (a blocking call, a long CPU-bound step, a GC pause) delays every socket
of the process by the same amount, and shows up here as one observation of about its
length. Observed into `ramparts_event_loop_lag_seconds`.

Sampling: a stall shorter than the interval is seen only when a wake-up falls inside it,
so the histogram's tail is a lower bound of the worst stall and an unbiased estimate of
the lag a request arriving at a random moment meets. The interval (100 ms) keeps the
probe's own cost negligible (10 wake-ups per second).
"""

from __future__ import annotations

import asyncio
import time

INTERVAL_S = 0.1
# Fine around the 50 ms H11 bound so a p99 read from the buckets is tight there.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


async def monitor_loop_lag(histogram, interval: float = INTERVAL_S) -> None:
    """Forever: sleep `interval`, observe the overshoot in seconds (never negative)."""
    clock = time.perf_counter
    while True:
        t = clock()
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, clock() - t - interval))


def quantile_from_buckets(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile q, from cumulative (le, count) pairs
    as Prometheus exposes them (le may be inf). None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    for le, count in buckets:
        if count >= rank:
            return le
    return buckets[-1][0]
