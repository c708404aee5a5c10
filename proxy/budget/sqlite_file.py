"""One SQLite file used from asyncio: short write transactions that never stall the loop.

Every step runs inside `BEGIN IMMEDIATE`, so several worker processes sharing the
file serialize their read-modify-write steps (no lost updates).

Fast path: the step runs inline on the event loop on a connection with
busy_timeout 0, so it either gets the write lock at once or fails at once; in WAL
mode with synchronous=NORMAL a commit does not fsync, and automatic checkpoints
(the only fsyncs) are turned off on that connection, so an inline step is tens of
microseconds of CPU, never a wait. The WAL is checkpointed every CHECKPOINT_EVERY
inline commits in RESTART mode, so the next commit starts the WAL over (a PASSIVE
checkpoint never catches up with a writer that commits continuously: the WAL grew
by ~30 KB per request without bound under sustained load); journal_size_limit
trims what a burst left behind. While that checkpoint runs, steps take the slow
path (queued behind it on the thread, in order) rather than racing it for the
lock. Slow path: when the lock is busy (another
worker is writing), the step goes to a dedicated thread whose connection waits up
to `busy_timeout`, under an asyncio deadline. That thread also runs the WAL
checkpoints. A step that misses its deadline raises StoreUnavailable; if it still
runs later, what it wrote is a hold with a deadline, reclaimed like any other.
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
    CHECKPOINT_EVERY = 500  # inline commits between WAL checkpoints (run on the thread)
    PAGE_SIZE = 1024
    WAL_LIMIT_BYTES = 4 << 20  # the WAL is cut back to this after a checkpoint restarted it

    def __init__(self, path: Path, schema: str, timeout: float = 2.0) -> None:
        self.path = Path(path)
        self._schema = schema
        self._timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # the thread's connection
        self._inline: sqlite3.Connection | None = None  # the loop's connection (busy_timeout 0)
        self._since_checkpoint = 0
        self._checkpointing = False  # a checkpoint is queued or running on the thread
        self.inline_steps = 0  # counters for tests and the bench
        self.thread_steps = 0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self._timeout)
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        # Small pages for a small, hot file: a commit writes (and checksums) every page it dirtied,
        # so 1 KiB pages cut the per-request commit work (~25 % of the ledger's CPU measured here).
        # Takes effect for a new file only; an existing file keeps its page size.
        conn.execute(f"PRAGMA page_size = {self.PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        conn.execute(f"PRAGMA journal_size_limit = {self.WAL_LIMIT_BYTES}")
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
            inline = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            inline.execute("PRAGMA busy_timeout = 0")
            inline.execute("PRAGMA synchronous = NORMAL")
            inline.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints (fsync) happen on the thread
            inline.execute(f"PRAGMA journal_size_limit = {self.WAL_LIMIT_BYTES}")
            self._inline = inline

    async def close(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        if self._inline is not None:
            self._inline.close()
            self._inline = None

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
        """Run fn(conn, now) in one BEGIN IMMEDIATE transaction: inline if the lock is free, else on the thread."""
        inline = self._inline
        if inline is not None and not self._checkpointing:
            try:
                inline.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                pass  # locked by another writer: wait for it on the thread, not here
            else:
                try:
                    out = fn(inline, time.time())
                    inline.execute("COMMIT")
                except sqlite3.Error as e:
                    if inline.in_transaction:
                        inline.execute("ROLLBACK")
                    raise StoreUnavailable(f"{self.path.name}: {type(e).__name__}: {e}") from e
                except BaseException:
                    if inline.in_transaction:
                        inline.execute("ROLLBACK")
                    raise
                self.inline_steps += 1
                self._since_checkpoint += 1
                if self._since_checkpoint >= self.CHECKPOINT_EVERY:
                    self._since_checkpoint = 0
                    self._checkpointing = True
                    done = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
                    done.add_done_callback(self._checkpoint_done)
                return out

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
        self.thread_steps += 1
        return await self._submit(run)

    def _checkpoint_done(self, _: asyncio.Future) -> None:
        self._checkpointing = False

    def _checkpoint(self) -> None:
        try:
            if self._conn is not None:
                # RESTART: copy every frame back and make the next writer start the WAL over. It waits
                # (busy_timeout) for a writer in progress and blocks new ones while it runs.
                self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error:  # a busy checkpoint is retried next time
            pass

    @staticmethod
    def one(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return conn.execute(sql, args).fetchone()
