"""The provider client: one ClientSession for the app, configured for a proxy.

No redirects (a 30x to an internal address is never followed), no automatic
decompression (Accept-Encoding: identity; a gzip bomb stays a small body),
no environment proxies (trust_env=False), no total timeout (a healthy slow stream
lives on) but connect and per-read deadlines, and every resolved address checked
against the AddressPolicy at connect time.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from proxy.config.policy import ServerConfig
from proxy.egress.address import AddressPolicy, is_ip_literal


class EgressBlocked(aiohttp.ClientConnectionError):
    """The upstream host resolved to an address the policy does not allow."""


class GuardedResolver(AbstractResolver):
    """Wraps the default resolver; drops addresses the policy does not permit.

    aiohttp connects to exactly the addresses returned here, so the checked IP is
    the connected IP (a second, rebinding answer is checked again).
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.permits(r["host"])]
        if not allowed:
            raise EgressBlocked(f"{host} resolved only to addresses outside the egress policy")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def make_session(server: ServerConfig, address_policy: AddressPolicy, resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(address_policy, resolver), limit=0, limit_per_host=512,
        ttl_dns_cache=30, enable_cleanup_closed=True, keepalive_timeout=30,
    )
    timeout = aiohttp.ClientTimeout(total=None, connect=server.upstream_connect_timeout_s,
                                    sock_connect=server.upstream_connect_timeout_s, sock_read=server.upstream_read_timeout_s)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False, auto_decompress=False,
        max_line_size=server.max_upstream_line_bytes, max_field_size=16384,
        read_bufsize=2**16, skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar(),
    )


@lru_cache(maxsize=1024)
def _literal_refused(address_policy: AddressPolicy, host: str) -> bool:
    """Provider hosts come from the policy: a small, fixed set, so the answer is cached."""
    return is_ip_literal(host) and not address_policy.permits(host.strip("[]"))


async def send(session: aiohttp.ClientSession, address_policy: AddressPolicy, url: str, host: str,
               headers: dict[str, str], body: bytes) -> aiohttp.ClientResponse:
    """POST to the provider. IP-literal hosts skip aiohttp's resolver, so check them here."""
    if _literal_refused(address_policy, host):
        raise EgressBlocked(f"{host} is outside the egress policy")
    return await session.post(url, data=body, headers=headers, allow_redirects=False, compress=None)


def upstream_headers(auth: dict[str, str], request_id: str) -> dict[str, Any]:
    """Built from scratch: nothing from the client (JWT, hop-by-hop, XFF) is copied."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Accept-Encoding": "identity",
        "User-Agent": "ramparts/0.1",
        "X-Request-ID": request_id,
        **auth,
    }
