"""GCRA arithmetic, table-driven."""

from __future__ import annotations

import pytest

from proxy.ratelimit.gcra import Limit, step


def run(limit: Limit, costs: list[int], mode: str = "take", now: float = 1000.0):
    tat, out = now, []
    for c in costs:
        tat, v = step(tat, now, limit, c, mode)
        out.append(v)
    return tat, out


def test_exactly_burst_admitted_then_refused_with_retry_after():
    lim = Limit(per_minute=10, burst=3)  # one every 6 s, three at once
    _, vs = run(lim, [1] * 5)
    assert [v.allowed for v in vs] == [True, True, True, False, False]
    assert [v.remaining for v in vs[:3]] == [2, 1, 0]
    assert vs[3].retry_after == pytest.approx(6.0)
    assert vs[3].reset_after == pytest.approx(18.0)


def test_refills_at_the_rate():
    lim = Limit(per_minute=60, burst=1)
    tat, v = step(0.0, 100.0, lim, 1, "take")
    assert v.allowed
    assert not step(tat, 100.5, lim, 1, "take")[1].allowed
    assert step(tat, 101.0, lim, 1, "take")[1].allowed


@pytest.mark.parametrize("tat_ahead,allowed", [(0.0, True), (59.0, True), (60.0, False), (600.0, False)])
def test_check_admits_while_not_empty_and_debits_nothing(tat_ahead, allowed):
    lim = Limit(per_minute=1000, burst=1000)  # 1000 tokens/min: the bucket holds 60 s of debt
    tat, v = step(100.0 + tat_ahead, 100.0, lim, 0, "check")
    assert v.allowed is allowed
    assert tat == max(100.0 + tat_ahead, 100.0)
    if not allowed:
        assert v.retry_after == pytest.approx(tat_ahead - 60.0 + 0.06)


def test_force_always_debits_so_the_next_request_waits():
    lim = Limit(per_minute=1000, burst=1000)
    tat, v = step(100.0, 100.0, lim, 5000, "force")  # one stream overshot by 4000 tokens
    assert v.allowed and tat == pytest.approx(100.0 + 300.0)
    assert not step(tat, 100.0, lim, 0, "check")[1].allowed
    assert step(tat, 100.0 + 241.0, lim, 0, "check")[1].allowed  # after 4 min of refill
