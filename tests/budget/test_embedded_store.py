"""Embedded (SQLite) ledger specifics: several OS processes share the file; a locked file fails closed."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time

import pytest

from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Balance, Hold, Limits, StoreUnavailable

WORKER = r"""
import asyncio, sys
from pathlib import Path
from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Limits

async def main(path, n):
    led = EmbeddedLedger(Path(path), timeout=10)
    await led.start()
    async def one():
        g = await led.reserve("acme", "2026-11", 1000, 1000, 1, Limits(10_000, None), 60)
        if g.hold is None:
            return 0
        await asyncio.sleep(0.001)
        await led.settle(g.hold, 1000)
        return 1
    got = sum(await asyncio.gather(*(one() for _ in range(n))))
    await led.close()
    print(got)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

KILLED = r"""
import asyncio, os, signal, sys
from pathlib import Path
from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Limits

async def main(path):
    led = EmbeddedLedger(Path(path))
    await led.start()
    g = await led.reserve("acme", "2026-11", 10_000, 10_000, 1, Limits(10_000, None), 2.0)
    assert g.hold is not None
    print("reserved", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # dies between reserve and settle

asyncio.run(main(sys.argv[1]))
"""


async def test_several_processes_share_the_file_without_overspending(tmp_path):
    path = tmp_path / "budget.sqlite3"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), "70"], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    admitted = sum(int(p.communicate(timeout=60)[0]) for p in procs)
    led = EmbeddedLedger(path)
    await led.start()
    bal = await led.balance("acme", "2026-11")
    await led.close()
    assert admitted == 10 and bal.spent == 10_000 and bal.held == 0


async def test_kill_9_between_reserve_and_settle_is_reclaimed(tmp_path):
    path = tmp_path / "budget.sqlite3"
    p = subprocess.run([sys.executable, "-c", KILLED, str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9 and "reserved" in p.stdout
    led = EmbeddedLedger(path)
    await led.start()
    assert (await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10_000, None), 60)).refused == "budget"
    await asyncio.sleep(2.1)
    bal = await led.balance("acme", "2026-11")
    assert bal.held == 0 and bal.spent == 0  # returned, not charged: no leak, no double spend
    await led.close()


async def test_a_locked_file_fails_closed_within_the_timeout(tmp_path):
    path = tmp_path / "budget.sqlite3"
    led = EmbeddedLedger(path, timeout=0.3)
    await led.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process wedged mid-transaction
    try:
        t = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)
        assert time.perf_counter() - t < 2.0  # 0.3 s deadline + slack for a loaded CI box
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # the store recovers once the lock is gone
    await asyncio.sleep(0.35)
    assert (await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)).hold is not None
    await led.close()


async def test_uncontended_steps_run_inline_and_contended_ones_on_the_thread(tmp_path):
    led = EmbeddedLedger(tmp_path / "budget.sqlite3", timeout=5)
    await led.start()
    g = await led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)
    await led.settle(g.hold, 1)
    assert (led.db.inline_steps, led.db.thread_steps) == (2, 0)
    blocker = sqlite3.connect(tmp_path / "budget.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another worker mid-write
    pending = asyncio.ensure_future(led.reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60))
    await asyncio.sleep(0.05)
    assert not pending.done()  # waiting on the thread, not blocking the loop
    blocker.execute("COMMIT")
    blocker.close()
    assert (await pending).hold is not None and led.db.thread_steps == 1
    await led.close()


async def test_an_unopened_store_fails_closed(tmp_path):
    with pytest.raises(StoreUnavailable):
        await EmbeddedLedger(tmp_path / "x.sqlite3").reserve("acme", "2026-11", 1, 1, 1, Limits(10, None), 60)


OLD_SCHEMA = """
CREATE TABLE usage (tenant TEXT NOT NULL, period TEXT NOT NULL, spent INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, period)) WITHOUT ROWID;
CREATE TABLE hold (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, period TEXT NOT NULL,
    amount INTEGER NOT NULL, interactions INTEGER NOT NULL, deadline REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX hold_tenant ON hold (tenant, period);
CREATE INDEX hold_deadline ON hold (deadline);
CREATE TABLE finished (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""


async def test_a_file_written_by_the_previous_schema_opens_and_its_live_hold_settles_once(tmp_path):
    path = tmp_path / "budget.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode = WAL")
    old.executescript(OLD_SCHEMA)
    old.execute("INSERT INTO usage VALUES ('acme', '2026-11', 500, 1)")
    old.execute("INSERT INTO hold VALUES ('h1', 'acme', '2026-11', 300, 1, ?)", (time.time() + 60,))
    old.execute("INSERT INTO finished VALUES ('h0', ?)", (time.time(),))
    old.close()
    led = EmbeddedLedger(path)
    await led.start()
    assert await led.balance("acme", "2026-11") == Balance(500, 300, 1, 1)
    h1 = Hold("h1", "acme", "2026-11", 300, 1, time.time() + 60)
    assert await led.settle(h1, 200) is True
    assert await led.settle(h1, 200) is False
    assert await led.balance("acme", "2026-11") == Balance(700, 0, 2, 0)
    await led.close()
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "finished" not in names and "hold_deadline" not in names and "reclaimed" in names


async def test_finished_holds_leave_no_rows_behind_and_reclaimed_ids_expire(tmp_path, monkeypatch):
    led = EmbeddedLedger(tmp_path / "budget.sqlite3")
    await led.start()
    lim = Limits(None, None)
    for _ in range(50):  # the common path: nothing is remembered once a hold is settled or released
        g = await led.reserve("acme", "2026-11", 10, 10, 1, lim, 60)
        await (led.settle(g.hold, 5) if g.hold.amount % 2 else led.release(g.hold))
    lapsed = (await led.reserve("acme", "2026-11", 10, 10, 1, lim, 0.05)).hold
    await asyncio.sleep(0.1)
    assert await led.reclaim() == 1

    def rows(conn, now):
        return [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("hold", "reclaimed")]
    assert await led.db.write(rows) == [0, 1]  # only the reclaimed id, so its late settle charges once
    monkeypatch.setattr("proxy.budget.embedded_store.RECLAIMED_KEEP_S", 0.0)
    await asyncio.sleep(0.01)
    await led.reclaim()
    assert await led.db.write(rows) == [0, 0]
    assert await led.settle(lapsed, 5) is False  # past the keep window: not charged (documented)
    await led.close()


def _balance_two_selects(conn: sqlite3.Connection, tenant: str, period: str) -> Balance:
    """The balance as two plain SELECTs (the general form the one-statement _balance must equal)."""
    u = conn.execute("SELECT spent, used FROM usage WHERE tenant = ? AND period = ?", (tenant, period)).fetchone()
    h = conn.execute("SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(interactions), 0) FROM hold "
                     "WHERE tenant = ? AND period = ?", (tenant, period)).fetchone()
    return Balance(spent=u[0] if u else 0, held=h[0], used=u[1] if u else 0, held_interactions=h[1])


def test_one_statement_balance_equals_two_selects(tmp_path):
    """Differential: random usage rows and holds over tenants/periods, every (tenant, period) pair,
    including ones with no usage row, no holds, zero spends and holds of other tenants or periods."""
    import random

    from proxy.budget.embedded_store import SCHEMA, _balance
    conn = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    rng = random.Random(4)
    tenants, periods = ["acme", "mercy", "zeta"], ["2026-11", "2026-12"]
    for round_ in range(60):
        conn.execute("DELETE FROM usage")
        conn.execute("DELETE FROM hold")
        for t in tenants:
            for p in periods:
                if rng.random() < 0.6:
                    conn.execute("INSERT INTO usage VALUES (?, ?, ?, ?)", (t, p, rng.choice([0, 1, 10**9]), rng.randint(0, 5)))
                for k in range(rng.choice([0, 0, 1, 3])):
                    conn.execute("INSERT INTO hold VALUES (?, ?, ?, ?, ?, ?)",
                                 (f"{round_}-{t}-{p}-{k}", t, p, rng.randint(0, 10**6), rng.randint(0, 3), 1e12))
        for t in tenants + ["nobody"]:
            for p in periods + ["2027-01"]:
                assert _balance(conn, t, p) == _balance_two_selects(conn, t, p), (t, p)
