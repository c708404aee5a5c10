"""The embedded ledger: one SQLite file under the data dir (the default store).

Safe with several worker processes on one pod: every step is one BEGIN IMMEDIATE
transaction (see proxy/budget/sqlite_file.py). Held amounts are summed from the
live holds rather than kept as a counter, so a crash can never leave a counter
out of step with the holds. The clock is the host's (one file = one host).
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from proxy.budget.ledger import Balance, Grant, Hold, Limits, decide
from proxy.budget.sqlite_file import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (tenant TEXT NOT NULL, period TEXT NOT NULL, spent INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, period)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hold (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, period TEXT NOT NULL,
    amount INTEGER NOT NULL, interactions INTEGER NOT NULL, deadline REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hold_tenant ON hold (tenant, period);
CREATE INDEX IF NOT EXISTS hold_deadline ON hold (deadline);
CREATE TABLE IF NOT EXISTS finished (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID
"""
FINISHED_KEEP_S = 6 * 3600  # how long a settled/released hold id is remembered (duplicate settles)


def _balance(conn: sqlite3.Connection, tenant: str, period: str) -> Balance:
    u = conn.execute("SELECT spent, used FROM usage WHERE tenant = ? AND period = ?", (tenant, period)).fetchone()
    h = conn.execute("SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(interactions), 0) FROM hold "
                     "WHERE tenant = ? AND period = ?", (tenant, period)).fetchone()
    return Balance(spent=u[0] if u else 0, held=h[0], used=u[1] if u else 0, held_interactions=h[1])


class EmbeddedLedger:
    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.db = SqliteFile(path, SCHEMA, timeout)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def reserve(self, tenant: str, period: str, want: int, least: int, interactions: int,
                      limits: Limits, ttl: float) -> Grant:
        hold_id = secrets.token_hex(12)

        def tx(conn: sqlite3.Connection, now: float) -> Grant:
            conn.execute("DELETE FROM hold WHERE tenant = ? AND deadline <= ?", (tenant, now))
            bal = _balance(conn, tenant, period)
            refused, granted = decide(bal, want, least, interactions, limits)
            if refused:
                return Grant(None, refused, bal)
            hold = Hold(hold_id, tenant, period, granted, interactions, now + ttl)
            conn.execute("INSERT INTO hold VALUES (?, ?, ?, ?, ?, ?)",
                         (hold.id, tenant, period, granted, interactions, hold.deadline))
            return Grant(hold, None, Balance(bal.spent, bal.held + granted, bal.used, bal.held_interactions + interactions))
        return await self.db.write(tx)

    async def settle(self, hold: Hold, actual: int) -> bool:
        def tx(conn: sqlite3.Connection, now: float) -> bool:
            if conn.execute("INSERT OR IGNORE INTO finished VALUES (?, ?)", (hold.id, now)).rowcount == 0:
                return False
            conn.execute("DELETE FROM hold WHERE id = ?", (hold.id,))
            # A reclaimed hold (its deadline passed) is still charged: the tokens were spent.
            conn.execute("INSERT INTO usage (tenant, period, spent, used) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (tenant, period) DO UPDATE SET spent = spent + excluded.spent, used = used + excluded.used",
                         (hold.tenant, hold.period, max(0, actual), hold.interactions))
            return True
        return await self.db.write(tx)

    async def release(self, hold: Hold) -> bool:
        def tx(conn: sqlite3.Connection, now: float) -> bool:
            if conn.execute("INSERT OR IGNORE INTO finished VALUES (?, ?)", (hold.id, now)).rowcount == 0:
                return False
            conn.execute("DELETE FROM hold WHERE id = ?", (hold.id,))
            return True
        return await self.db.write(tx)

    async def extend(self, hold: Hold, ttl: float) -> bool:
        def tx(conn: sqlite3.Connection, now: float) -> bool:
            return conn.execute("UPDATE hold SET deadline = ? WHERE id = ? AND deadline > ?",
                                (now + ttl, hold.id, now)).rowcount == 1
        return await self.db.write(tx)

    async def balance(self, tenant: str, period: str) -> Balance:
        def tx(conn: sqlite3.Connection, now: float) -> Balance:
            conn.execute("DELETE FROM hold WHERE tenant = ? AND deadline <= ?", (tenant, now))
            return _balance(conn, tenant, period)
        return await self.db.write(tx)

    async def reclaim(self) -> int:
        def tx(conn: sqlite3.Connection, now: float) -> int:
            conn.execute("DELETE FROM finished WHERE at < ?", (now - FINISHED_KEEP_S,))
            return conn.execute("DELETE FROM hold WHERE deadline <= ?", (now,)).rowcount
        return await self.db.write(tx)
