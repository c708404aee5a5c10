"""Audit records of refusals by unauthenticated callers, bounded against floods.

A request refused before anyone is authenticated (bad or missing JWT, tenant
mismatch, unknown route, wrong method, malformed HTTP, oversize body announced
with Expect, draining / over capacity / memory pressure) costs the caller
nothing, so without a bound a flood of them would grow the audit log without
limit. Per window of `window_s` seconds (default 60):

- the first `per_window` (default 100) refusals are written one by one
  (`type: "refusal"` records, or the usual exchange record when the request had
  become an exchange, e.g. a 401 from the tenant stage);
- every further refusal is only counted, by (status, code, route); when the
  window closes one `type: "refusal_summary"` record per key carries the count,
  the first/last time and the busiest client addresses. The keys are bounded
  (status, code and route come from the proxy, never from the client; beyond
  `MAX_KEYS` they fold into one key) and so are the client tallies.

So the log grows by at most `per_window + MAX_KEYS` records per window whatever
the flood. Records never hold the token, the body, or the raw path: the route
is the proxy's name for it ("-" for an unknown path), the tenant is only
`claimed_tenant` (the header, unverified, shape-checked) and `tenant` is null,
so the writer key signs them, hash-chained like every other entry.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from proxy.audit.record import RECORD_VERSION, utc_now

MAX_KEYS = 64  # distinct (status, code, route) per window before folding into ("other", ...)
MAX_CLIENTS = 1024  # distinct client addresses tallied per key; more are counted as "other_clients"
TOP_CLIENTS = 8  # client addresses named in a summary (the busiest)
_CLAIMED_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"))


def claimed(raw: str | None) -> str | None:
    """The tenant header as claimed by an unauthenticated caller: its value if tenant-shaped, else "<invalid>"."""
    if raw is None:
        return None
    return raw if _CLAIMED_TENANT.match(raw) else "<invalid>"


def _code(code: str | None) -> str | None:
    if code is None:
        return None
    return code if _CODE.match(code) else "<invalid>"


def _method(method: str | None) -> str | None:
    if method is None:
        return None
    return method if method in _METHODS else "<other>"


def _client(peer: str | None) -> str | None:
    return peer[:64] if peer else None  # the socket's peer address: not client-controlled text


def refusal_record(*, request_id: str, status: int, code: str | None, route: str, method: str | None,
                   client: str | None, claimed_tenant: str | None, at: str | None = None) -> dict[str, Any]:
    return {
        "v": RECORD_VERSION,
        "type": "refusal",
        "time": at or utc_now(),
        "request_id": request_id,
        "status": int(status),
        "code": _code(code),
        "route": route,
        "method": _method(method),
        "client": _client(client),
        "tenant": None,  # nobody was authenticated: the writer key signs
        "claimed_tenant": claimed(claimed_tenant),
    }


@dataclass
class _Tally:
    count: int = 0
    first: str = ""
    last: str = ""
    clients: Counter = field(default_factory=Counter)
    other_clients: int = 0


class RefusalLimiter:
    """Which refusals get their own record this window; counts for the rest.

    Not thread-safe: used from the event loop only."""

    def __init__(self, per_window: int = 100, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._start_wall = utc_now()
        self._written = 0
        self._tallies: dict[tuple[int, str | None, str], _Tally] = {}

    def admit(self, status: int, code: str | None, route: str, client: str | None) -> tuple[bool, list[dict[str, Any]]]:
        """(write this refusal's own record?, summary records of a window that just closed)."""
        closed = self.roll()
        if self._written < self.per_window:
            self._written += 1
            return True, closed
        key = (int(status), _code(code), route)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= MAX_KEYS:
                key = (0, "other", "-")
                tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(first=utc_now())
        tally.count += 1
        tally.last = utc_now()
        c = _client(client) or "-"
        if c in tally.clients or len(tally.clients) < MAX_CLIENTS:
            tally.clients[c] += 1
        else:
            tally.other_clients += 1
        return False, closed

    def roll(self, force: bool = False) -> list[dict[str, Any]]:
        """Close the window if it is over (or `force`): its summary records, and a fresh window."""
        now = self._clock()
        if not force and now - self._start < self.window_s:
            return []
        out = self.summaries()
        self._start, self._start_wall, self._written, self._tallies = now, utc_now(), 0, {}
        return out

    def summaries(self) -> list[dict[str, Any]]:
        end = utc_now()
        out = []
        for (status, code, route), t in sorted(self._tallies.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])):
            out.append({
                "v": RECORD_VERSION,
                "type": "refusal_summary",
                "time": end,
                "window_start": self._start_wall,
                "window_s": self.window_s,
                "written_individually": self._written,  # refusals of this window that have their own record
                "status": status,
                "code": code,
                "route": route,
                "count": t.count,  # refusals of this key NOT written individually
                "first": t.first,
                "last": t.last,
                "distinct_clients": len(t.clients) + (1 if t.other_clients else 0),
                "distinct_clients_capped": bool(t.other_clients),
                "top_clients": [{"client": c, "count": n} for c, n in t.clients.most_common(TOP_CLIENTS)],
                "tenant": None,
            })
        return out
