"""Read a tenant's records back: the compliance query endpoint and `ramparts audit export`.

Filters on the verified `tenant` field only: records of unauthenticated calls
(which carry just an unverified `claimed_tenant`) are never served to a tenant,
so nobody can plant entries in another tenant's view by spoofing a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import orjson

from proxy.audit import layout

MAX_LIMIT = 1000


class QueryError(ValueError):
    pass


def parse_time(value: str) -> str:
    """ISO 8601 or unix seconds -> the record's own time format (sortable as text)."""
    value = value.strip()
    try:
        if value.replace(".", "", 1).isdigit():
            dt = datetime.fromtimestamp(float(value), timezone.utc)
        else:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise QueryError(f"not a time: {value[:40]!r} (use ISO 8601 or unix seconds)") from None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Query:
    tenant: str
    since: str | None = None  # inclusive, record time format
    until: str | None = None  # exclusive
    subject: str | None = None
    limit: int = 100

    @classmethod
    def from_params(cls, tenant: str, params: dict[str, str], default_limit: int = 100) -> "Query":
        unknown = set(params) - {"from", "to", "subject", "limit"}
        if unknown:
            raise QueryError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        try:
            limit = int(params.get("limit", default_limit))
        except ValueError:
            raise QueryError("limit must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
        since = parse_time(params["from"]) if params.get("from") else None
        until = parse_time(params["to"]) if params.get("to") else None
        return cls(tenant, since, until, params.get("subject") or None, limit)

    def matches(self, e: dict[str, Any]) -> bool:
        if e.get("type") != "exchange" or e.get("tenant") != self.tenant:
            return False
        if self.subject is not None and e.get("subject") != self.subject:
            return False
        t = e.get("time", "")
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)


def _day_in_range(path: Path, q: Query) -> bool:
    """A record sits in the file of the UTC day it was sealed: its own day or, past midnight, the next."""
    day = path.stem
    if q.since is not None and day < q.since[:10]:
        return False
    return q.until is None or day <= _next_day(q.until[:10])


def _next_day(day: str) -> str:
    d = datetime.strptime(day, "%Y-%m-%d").date().toordinal() + 1
    return datetime.fromordinal(d).strftime("%Y-%m-%d")


def iter_records(audit_dir: Path, q: Query) -> Iterator[dict[str, Any]]:
    """Matching records, oldest first within each chain; skips torn lines."""
    for chain_dir in layout.chain_dirs(layout.records_root(audit_dir)):
        for path in layout.record_files(chain_dir):
            if not _day_in_range(path, q):
                continue
            try:
                for _, line, complete in layout.iter_lines(path):
                    if not complete:
                        continue
                    try:
                        e = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(e, dict) and q.matches(e):
                        yield e
            except layout.LineTooLong:  # a damaged file: the verifier reports it; serve the rest
                continue


def run(audit_dir: Path, q: Query) -> dict[str, Any]:
    """Up to `limit` records sorted by time (several chains merged), OpenAI-style list."""
    out: list[dict[str, Any]] = []
    more = False
    for e in iter_records(audit_dir, q):
        out.append(e)
        if len(out) > q.limit * 4:  # bound memory: keep the earliest as we go
            out.sort(key=lambda r: r.get("time", ""))
            del out[q.limit + 1:]
            more = True
    out.sort(key=lambda r: r.get("time", ""))
    if len(out) > q.limit:
        more = True
        del out[q.limit:]
    return {"object": "list", "data": out, "has_more": more}
