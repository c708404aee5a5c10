"""Open a ledger from a store URL: 'embedded' (SQLite under the data dir) or redis://."""

from __future__ import annotations

from pathlib import Path

from proxy.budget.embedded_store import EmbeddedLedger
from proxy.budget.ledger import Ledger
from proxy.budget.redis_client import make_redis
from proxy.budget.redis_store import RedisLedger


def open_ledger(url: str, data_dir: Path, *, password: str | None = None, timeout: float = 1.0,
                tenants: tuple[str, ...] = (), pool_size: int = 32) -> Ledger:
    if url == "embedded":
        return EmbeddedLedger(Path(data_dir) / "budget.sqlite3", timeout=timeout)
    client = make_redis(url, password, max_connections=pool_size, pool_timeout=min(timeout, 0.5),
                        socket_timeout=timeout)
    return RedisLedger(client, op_timeout=timeout, known_tenants=tenants)
