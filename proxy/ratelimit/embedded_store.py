"""Rate-limit state in a SQLite file: one row per key, updated in BEGIN IMMEDIATE."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.budget.sqlite_file import SqliteFile
from proxy.ratelimit.gcra import Limit, Verdict, step

SCHEMA = "CREATE TABLE IF NOT EXISTS bucket (key TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID"


class EmbeddedRateStore:
    def __init__(self, path: Path, timeout: float = 0.5) -> None:
        self.db = SqliteFile(path, SCHEMA, timeout)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def apply(self, key: str, limit: Limit, cost: int, mode: str) -> Verdict:
        def tx(conn: sqlite3.Connection, now: float) -> Verdict:
            row = conn.execute("SELECT tat FROM bucket WHERE key = ?", (key,)).fetchone()
            old = row[0] if row else now
            tat, verdict = step(old, now, limit, cost, mode)
            if tat != old or row is None:
                conn.execute("INSERT INTO bucket VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat", (key, tat))
            return verdict
        return await self.db.write(tx)
