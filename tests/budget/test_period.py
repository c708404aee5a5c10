"""Periods are UTC calendar months; the reset is the 1st at 00:00 UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from proxy.budget.period import period_of, period_reset, period_start, reset_date


@pytest.mark.parametrize("moment,period,reset", [
    ("2026-11-30T23:59:59", "2026-11", "2026-12-01"),
    ("2026-12-01T00:00:00", "2026-12", "2027-01-01"),
    ("2026-12-31T23:59:59", "2026-12", "2027-01-01"),
    ("2028-02-29T12:00:00", "2028-02", "2028-03-01"),
])
def test_month_boundaries_in_utc(moment, period, reset):
    ts = datetime.fromisoformat(moment).replace(tzinfo=timezone.utc).timestamp()
    assert period_of(ts) == period
    assert reset_date(period) == reset
    assert period_start(period) < period_reset(period)
    assert period_reset(period).tzinfo == timezone.utc


def test_the_remembered_month_agrees_with_datetime_on_both_sides_of_every_boundary():
    import random
    from proxy.budget import period as mod
    rnd = random.Random(7)
    stamps = []
    for year in (2026, 2027, 2028):
        for month in range(1, 13):
            edge = datetime(year, month, 1, tzinfo=timezone.utc).timestamp()
            stamps += [edge - 1e-6, edge, edge + 1e-6, edge - 1, edge + 1]
    stamps += [rnd.uniform(1.7e9, 1.9e9) for _ in range(500)]
    rnd.shuffle(stamps)
    for ts in stamps + sorted(stamps):  # jumps back and forth, then a clock moving forward
        assert mod.period_of(ts) == datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m"), ts
