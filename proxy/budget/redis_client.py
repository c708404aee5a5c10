"""A Redis client for the stores: blocking pool, short deadlines, no silent retries.

redis-py's default async pool raises at once when a burst exceeds max_connections;
a BlockingConnectionPool waits up to `pool_timeout` for a free connection instead.
Socket and connect timeouts are short and the client does not retry on its own, so
a dead or slow Redis costs a bounded wait and the caller fails closed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def check_redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a store URL is 'embedded' or redis://host:port/db (rediss:// for TLS)")
    if parts.password or parts.username:
        raise ValueError("put the Redis password in `redis_password` ({from_env|from_file}), not in the URL")
    return url


def make_redis(url: str, password: str | None = None, *, max_connections: int = 32, pool_timeout: float = 0.25,
               socket_timeout: float = 0.5) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        check_redis_url(url), max_connections=max_connections, timeout=pool_timeout, password=password,
        socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis(connection_pool=pool)
