"""Event-loop lag monitor (SECURITY_TESTS H11): a blocking callback shows up in the histogram."""

from __future__ import annotations

import asyncio
import time

import pytest

from proxy.loopmon import monitor_loop_lag, quantile_from_buckets
from proxy.metrics import Metrics
from tests.integration.rawhttp import build, request
from tests.integration.servers import BackgroundLoop, MockServer, ProxyServer, policy_for


def lag_buckets(text: str) -> list[tuple[float, float]]:
    out = []
    for ln in text.splitlines():
        if ln.startswith("ramparts_event_loop_lag_seconds_bucket{"):
            le = ln.split('le="', 1)[1].split('"', 1)[0]
            out.append((float(le), float(ln.rsplit(" ", 1)[1])))
    return out


def test_a_blocking_callback_is_observed_as_lag():
    m = Metrics()

    async def main():
        task = asyncio.ensure_future(monitor_loop_lag(m.loop_lag, interval=0.02))
        await asyncio.sleep(0.1)  # a few quiet samples first
        quiet = m.registry.get_sample_value("ramparts_event_loop_lag_seconds_bucket", {"le": "0.1"})
        asyncio.get_running_loop().call_soon(time.sleep, 0.3)  # holds the loop for 300 ms
        await asyncio.sleep(0.1)
        task.cancel()
        return quiet

    quiet = asyncio.run(main())
    r = m.registry
    count = r.get_sample_value("ramparts_event_loop_lag_seconds_count")
    assert quiet >= 2 and count > quiet
    # exactly the sample that slept across the blocking call overshot by ~0.3 s (> 0.25)
    over = count - r.get_sample_value("ramparts_event_loop_lag_seconds_bucket", {"le": "0.25"})
    assert over == 1
    assert r.get_sample_value("ramparts_event_loop_lag_seconds_sum") >= 0.28


def test_quantile_from_buckets():
    b = [(0.01, 90.0), (0.05, 99.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert quantile_from_buckets(b, 0.5) == 0.01
    assert quantile_from_buckets(b, 0.99) == 0.05
    assert quantile_from_buckets(b, 1.0) == 0.1
    assert quantile_from_buckets([(0.01, 0.0), (float("inf"), 0.0)], 0.99) is None


@pytest.fixture(scope="module")
def px(tmp_path_factory):
    bg = BackgroundLoop()
    mock = MockServer(bg).start()
    p = ProxyServer(bg, policy_for(mock.port), tmp_path_factory.mktemp("loopmon")).start()
    yield p, bg
    p.stop()
    mock.stop()
    bg.close()


def test_the_served_proxy_exposes_its_loop_lag_on_metrics(px):
    p, bg = px

    def scrape():
        resp, _ = request(p.server.ops_port, build("GET", "/metrics", {"Host": "x"}), close_wait=0)
        return lag_buckets(resp.body.decode())

    time.sleep(0.35)  # the monitor started with the app: some samples already
    before = scrape()
    assert before and before[-1][1] >= 2
    assert quantile_from_buckets(before, 0.99) <= 0.25  # an idle loop is not late by 250 ms
    bg.loop.call_soon_threadsafe(time.sleep, 0.4)  # a deliberately blocking callback on the proxy's loop
    time.sleep(0.8)
    after = scrape()
    over = dict(after)[float("inf")] - dict(after)[0.25]
    over_before = dict(before)[float("inf")] - dict(before)[0.25]
    assert over - over_before == 1
