"""SqliteFile: the WAL stays bounded under sustained inline writes (checkpoints restart it)."""

from __future__ import annotations

import asyncio

from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Limits


async def test_the_wal_stays_bounded_while_the_loop_commits_continuously(tmp_path, monkeypatch):
    # A PASSIVE checkpoint never caught up with a loop that commits between every await: the WAL grew
    # ~30 KB per request without bound. RESTART checkpoints (inline steps wait behind them) keep it small.
    monkeypatch.setattr("proxy.budget.sqlite_file.SqliteFile.CHECKPOINT_EVERY", 100)
    monkeypatch.setattr("proxy.budget.sqlite_file.SqliteFile.WAL_LIMIT_BYTES", 1 << 20)
    path = tmp_path / "budget.sqlite3"
    led = EmbeddedLedger(path)
    await led.start()
    wal = path.with_name(path.name + "-wal")
    lim = Limits(10**15, None)
    sizes = []
    for i in range(3000):
        g = await led.reserve("acme", "2026-11", 10, 10, 1, lim, 60)
        await asyncio.sleep(0)
        assert await led.settle(g.hold, 5)
        if i % 500 == 499:
            sizes.append(wal.stat().st_size)
    assert led.db.thread_steps > 0  # some steps waited behind a checkpoint, on the thread
    assert led.db.inline_steps > 5000
    assert max(sizes) < 4 << 20, sizes  # 3,000 requests wrote ~90 MB of WAL frames before the fix
    assert (await led.balance("acme", "2026-11")).spent == 15_000
    await led.close()


async def test_a_new_file_gets_small_pages_and_an_existing_file_keeps_its_own(tmp_path):
    import sqlite3
    new, old = tmp_path / "new.sqlite3", tmp_path / "old.sqlite3"
    c = sqlite3.connect(old)
    c.execute("CREATE TABLE t (x)")  # a file written before: 4 KiB pages
    c.close()
    for path in (new, old):
        led = EmbeddedLedger(path)
        await led.start()
        g = await led.reserve("acme", "2026-11", 10, 10, 1, Limits(100, None), 60)
        assert await led.settle(g.hold, 5)
        await led.close()
    assert sqlite3.connect(new).execute("PRAGMA page_size").fetchone()[0] == 1024
    assert sqlite3.connect(old).execute("PRAGMA page_size").fetchone()[0] == 4096
