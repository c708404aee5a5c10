from __future__ import annotations

import pytest

from proxy.audit.query import Query, QueryError, parse_time, run
from tests.audit.conftest import write_log


def test_parse_time_forms():
    assert parse_time("2026-11-22") == "2026-11-22T00:00:00.000000Z"
    assert parse_time("2026-11-22T01:02:03+01:00") == "2026-11-22T00:02:03.000000Z"
    assert parse_time("0") == "1970-01-01T00:00:00.000000Z"
    for bad in ("soon", "2026-13-01", "1e999"):
        with pytest.raises(QueryError):
            parse_time(bad)


async def test_run_filters_sorts_and_limits(tmp_path, signer):
    await write_log(tmp_path, signer, 30, clock_day=lambda: "2026-11-22")  # times 00:00:00 .. 00:00:29 on 2026-11-22, tenant acme
    q = Query.from_params("acme", {"from": "2026-11-22T00:00:10Z", "to": "2026-11-22T00:00:20Z"})
    got = run(tmp_path, q)
    assert [r["request_id"] for r in got["data"]] == [f"req-{i}" for i in range(10, 20)] and not got["has_more"]
    got = run(tmp_path, Query("acme", limit=3))
    assert [r["request_id"] for r in got["data"]] == ["req-0", "req-1", "req-2"] and got["has_more"]
    assert run(tmp_path, Query("globex"))["data"] == []
    assert run(tmp_path, Query("acme", subject="nobody"))["data"] == []
