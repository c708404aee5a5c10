"""One SQLite file used from asyncio: a dedicated thread, short write transactions.

Every call runs on one thread that owns the connection (the event loop never waits
on a file lock), inside `BEGIN IMMEDIATE` so that several worker processes sharing
the file serialize their read-modify-write steps (no lost updates). WAL mode keeps
readers off the writers' backs; `busy_timeout` and an asyncio deadline bound the
wait. A call that misses its deadline raises StoreUnavailable; if it still runs
later, what it wrote is a hold with a deadline, reclaimed like any other.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from proxy.budget.ledger import StoreUnavailable

T = TypeVar("T")


class SqliteFile:
    def __init__(self, path: Path, schema: str, timeout: float = 2.0) -> None:
        self.path = Path(path)
        self._schema = schema
        self._timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self._timeout)
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in self._schema.split(";"):  # executescript would commit behind our back
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._conn = conn

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.path.name}")
            await self._submit(self._open)

    async def close(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await asyncio.get_running_loop().run_in_executor(executor, shut)
        executor.shutdown(wait=True)

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreUnavailable(f"{self.path.name} is not open")
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, fn), self._timeout)
        except (TimeoutError, asyncio.TimeoutError) as e:
            raise StoreUnavailable(f"{self.path.name} did not answer within {self._timeout}s") from e
        except sqlite3.Error as e:
            raise StoreUnavailable(f"{self.path.name}: {type(e).__name__}: {e}") from e

    async def write(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run fn(conn, now) in one BEGIN IMMEDIATE transaction on the store's thread."""
        def run() -> T:
            conn = self._conn
            if conn is None:
                raise StoreUnavailable(f"{self.path.name} is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn, time.time())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out
        return await self._submit(run)

    @staticmethod
    def one(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return conn.execute(sql, args).fetchone()
