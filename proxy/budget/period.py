"""Budget periods: calendar months in UTC. A period resets at 00:00 UTC on the 1st.

A hold remembers the period it was reserved in and is settled into that period,
so a request that straddles midnight on the 1st is charged once, to the month it
was admitted in (no double allowance across a rollover).
"""

from __future__ import annotations

from datetime import datetime, timezone


_month: tuple[float, float, str] = (0.0, 0.0, "")  # [start, end) in Unix seconds and its period


def period_of(ts: float) -> str:
    """'YYYY-MM' of a Unix timestamp, in UTC (the current month is remembered: one comparison per call)."""
    global _month
    start, end, period = _month
    if start <= ts < end:
        return period
    period = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m")
    _month = (period_start(period).timestamp(), period_reset(period).timestamp(), period)
    return period


def period_start(period: str) -> datetime:
    year, month = (int(x) for x in period.split("-"))
    return datetime(year, month, 1, tzinfo=timezone.utc)


def period_reset(period: str) -> datetime:
    """When the next period starts: the 1st of the following month, 00:00 UTC."""
    start = period_start(period)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def reset_date(period: str) -> str:
    """The reset day as shown to clients, e.g. '2026-12-01'."""
    return period_reset(period).date().isoformat()
