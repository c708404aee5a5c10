"""The provider client: keep-alive HTTP/1.1 connections, configured for a proxy.

No redirects (a 30x is an answer, never followed), no decompression (we ask for
identity; an encoded answer is refused by the handler), no environment proxies,
no total timeout (a healthy slow stream lives on) but a connect deadline and a
read deadline that every byte from the provider re-arms, and every address
checked against the AddressPolicy before it is connected to.

Why not aiohttp's ClientSession: per call it parses a URL, builds a ClientRequest,
merges headers, consults a cookie jar and arms several timers. py-spy put that at
18 % of the proxy's CPU per request, more than the whole stage pipeline. A proxy
needs much less: one pre-encoded request, llhttp (httptools, the parser uvicorn
uses) for the answer, and one deadline per wait.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httptools
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config.policy import ServerConfig
from proxy.egress.address import AddressPolicy, is_ip_literal


class UpstreamError(Exception):
    """The provider could not be reached or answered something unusable."""


class EgressBlocked(UpstreamError):
    """The upstream host resolved to an address the policy does not allow."""


class UpstreamTimeout(UpstreamError):
    """No connection, or no response head, within the deadline (504)."""


class UpstreamStalled(UpstreamError):
    """The provider stopped sending in the middle of a body."""


class UpstreamBroken(UpstreamError):
    """Reset, cut short, or not valid HTTP/1.1."""


class GuardedResolver(AbstractResolver):
    """Wraps a resolver; drops addresses the policy does not permit.

    The client connects to exactly the addresses returned here, so the checked IP
    is the connected IP (a second, rebinding answer is checked again).
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


@dataclass(frozen=True)
class Target:
    """A provider URL, split once."""

    host: str
    port: int
    tls: bool
    head: bytes  # request line and Host header


@lru_cache(maxsize=1024)
def parse_target(url: str) -> Target:
    """Provider URLs come from the policy: a small, fixed set, so the split is cached."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamBroken(f"not an http(s) URL: {url[:128]}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        netloc = f"{netloc}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSAFE.search(path + netloc) or " " in path or not (path + netloc).isascii():
        raise UpstreamBroken("the provider URL holds characters that cannot go on a request line")
    return Target(host, port, tls, f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\n".encode("ascii"))


# A header name or value with CR, LF or NUL would split the request (SECURITY_TESTS A7).
_UNSAFE = re.compile(r"[\r\n\x00]")


def encode_request(target: Target, headers: dict[str, str], body: bytes) -> bytes:
    if _UNSAFE.search("".join(headers) + "".join(headers.values())):
        raise UpstreamBroken("an upstream header holds CR, LF or NUL")
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return b"".join((target.head, lines.encode("utf-8"), b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))


class UpstreamResponse:
    """The provider's answer: status and headers, then the body as it arrives."""

    __slots__ = ("status", "headers", "_conn", "_chunks", "_size", "_eof", "_error", "_waiter")

    def __init__(self, conn: "_Connection", status: int, headers: CIMultiDictProxy[str]) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._eof = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future | None = None

    # -- fed by the connection
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self._wake()

    def _finish(self, error: UpstreamError | None = None) -> None:
        self._eof = True
        self._error = self._error or error
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- read by the handler
    def read_nowait(self) -> bytes:
        """What has arrived so far (b"" if nothing); raises if the body broke."""
        if not self._chunks:
            if self._eof and self._error is not None:
                raise self._error
            return b""
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        self._conn.drained()
        return data

    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    async def readany(self) -> bytes:
        """The next bytes of the body; b"" at its end. Waits under the read deadline."""
        while not self._chunks and not self._eof:
            self._waiter = self._conn.loop.create_future()
            try:
                await self._conn.wait(self._waiter, UpstreamStalled("the provider stopped sending"))
            finally:
                self._waiter = None
        return self.read_nowait()

    def close(self) -> None:
        """Done with the answer: the connection goes back to the pool only if the body was read to
        its end and the provider keeps it alive; otherwise it is closed at once (a cancelled call)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.release(reuse=self._eof and not self._chunks and self._error is None)


class _Connection(asyncio.Protocol):
    """One socket to a provider, one request at a time; parser callbacks fill the response."""

    def __init__(self, client: "UpstreamClient", key: tuple[str, int, bool]) -> None:
        self.client = client
        self.key = key
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._deadline_s = client.read_timeout
        self._last_data = 0.0
        self._head_waiter: asyncio.Future | None = None
        self._header_list: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._response: UpstreamResponse | None = None
        self._busy = False
        self._skip = False  # a 1xx interim response: its head is dropped
        self._until_close = False  # no Content-Length and not chunked: the body ends with the socket
        self._complete = False
        self._keep_alive = False
        self._paused = False

    # ---------------------------------------------------------------- transport side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_data = self.loop.time()
        if not self._busy:  # bytes nobody asked for: the connection is unusable
            self.abort()
            return
        if self._response is None:
            self._head_bytes += len(data)
            if self._head_bytes > self.client.max_head_bytes:
                self._fail(UpstreamBroken("the provider's response head is too large"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamBroken("the provider tried to switch protocols"))
        except httptools.HttpParserError as e:
            cause = e.__cause__ or e.__context__
            self._fail(cause if isinstance(cause, UpstreamError) else
                       UpstreamBroken(f"the provider's answer is not valid HTTP/1.1 ({type(e).__name__})"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost decides what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._busy:
            return
        if self._response is None:
            self._fail(UpstreamBroken("the provider closed the connection before answering"))
        elif not self._complete:
            if self._until_close and exc is None:
                self._complete = True
                self._response._finish()
            else:
                self._fail(UpstreamBroken("the provider's connection was cut in the middle of the answer"))

    # ---------------------------------------------------------------- parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self.client.max_field_bytes or len(self._header_list) >= 128:
            raise UpstreamBroken("the provider sent an over-long header or too many headers")
        self._header_list.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue and friends: wait for the real answer
            self._skip = True
            self._header_list = []
            return
        headers = CIMultiDictProxy(CIMultiDict(self._header_list))
        self._header_list = []
        if len(headers.getall("Content-Length", ())) > 1:
            raise UpstreamBroken("the provider sent more than one Content-Length")
        te = headers.get("Transfer-Encoding")
        self._until_close = "Content-Length" not in headers and te is None and status not in (204, 304)
        self._response = UpstreamResponse(self, status, headers)
        w = self._head_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._skip or self._response is None:
            return
        self._response._feed(body)
        if self._response._size > self.client.read_buffer and not self._paused and self.transport is not None:
            self._paused = True  # backpressure: a client that does not read stops the provider
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._skip:
            self._skip = False
            return
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive() and not self._until_close
        if self._response is not None:
            self._response._finish()

    # ---------------------------------------------------------------- request side
    async def request(self, data: bytes) -> UpstreamResponse:
        self._busy = True
        self._complete = False
        self._response = None
        self._head_bytes = 0
        self._last_data = self.loop.time()
        self._head_waiter = self.loop.create_future()
        self.transport.write(data)
        await self.wait(self._head_waiter, UpstreamTimeout("the provider sent no response head in time"))
        self._head_waiter = None
        return self._response

    async def wait(self, fut: asyncio.Future, on_timeout: UpstreamError) -> None:
        """Await `fut`; fail with `on_timeout` once no byte arrived for the read deadline."""
        if self.closed and not fut.done():
            raise UpstreamBroken("the provider's connection is closed")
        timer = self.loop.call_at(self._last_data + self._deadline_s, self._check_deadline, fut, on_timeout)
        try:
            await fut
        finally:
            timer.cancel()

    def _check_deadline(self, fut: asyncio.Future, on_timeout: UpstreamError) -> None:
        if fut.done():
            return
        due = self._last_data + self._deadline_s
        if self.loop.time() >= due:
            fut.set_exception(on_timeout)
        else:  # bytes came meanwhile: re-arm (cheaper than moving the timer on every read)
            self.loop.call_at(due, self._check_deadline, fut, on_timeout)

    def _fail(self, error: UpstreamError) -> None:
        w = self._head_waiter
        if w is not None and not w.done():
            w.set_exception(error)
        if self._response is not None and not self._complete:
            self._response._finish(error)
        self.abort()

    def drained(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def release(self, reuse: bool) -> None:
        self._busy = False
        self._response = None
        if reuse and self._complete and self._keep_alive and not self.closed and not self._paused:
            self.client._put_idle(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamClient:
    """Pools keep-alive connections per (host, port, tls); resolves through the GuardedResolver."""

    def __init__(self, server: ServerConfig, address_policy: AddressPolicy, resolver: AbstractResolver | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, keepalive_s: float = 30.0, max_idle: int = 512,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.connect_timeout = server.upstream_connect_timeout_s
        self.read_timeout = server.upstream_read_timeout_s
        self.max_field_bytes = 16384
        self.max_head_bytes = 65536 + server.max_upstream_line_bytes
        self.read_buffer = 2**16
        self._policy = address_policy
        self._resolver = GuardedResolver(address_policy, resolver)
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._dns_ttl = 30.0
        self._idle: dict[tuple[str, int, bool], deque[_Connection]] = {}
        self._keepalive_s = keepalive_s
        self._max_idle = max_idle
        self._ssl = ssl_context or ssl.create_default_context()  # verifies the provider's certificate and name
        self._ssl.set_alpn_protocols(["http/1.1"])
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> UpstreamResponse:
        """Send one POST and return once the response head is in. Never retried: a POST to a
        provider costs money, and a second copy could be billed twice."""
        target = parse_target(url)
        data = encode_request(target, headers, body)
        conn = self._take_idle((target.host, target.port, target.tls)) or await self._connect(target)
        try:
            return await conn.request(data)
        except BaseException:
            conn.release(reuse=False)
            raise

    # ---------------------------------------------------------------- connections
    def _take_idle(self, key: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(key)
        now = self.loop.time()
        while idle:
            conn = idle.pop()  # the most recently used: warmest, least likely closed by the peer
            if not conn.closed and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.abort()
        return None

    def _put_idle(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, deque())
        if self.closed or len(idle) >= self._max_idle:
            conn.abort()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._keepalive_s, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle past the keep-alive time (their sockets would otherwise linger)."""
        self._sweeper = None
        now = self.loop.time()
        for idle in self._idle.values():
            while idle and (idle[0].closed or now - idle[0].idle_since >= self._keepalive_s):
                idle.popleft().abort()
        if any(self._idle.values()) and not self.closed:
            self._sweeper = self.loop.call_later(self._keepalive_s, self._sweep)

    async def _addresses(self, host: str, port: int) -> list[str]:
        if is_ip_literal(host):  # no resolver involved: check the literal itself
            ip = host.strip("[]")
            if not self._policy.permits(ip):
                raise EgressBlocked(f"{host} is outside the egress policy")
            return [ip]
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > self.loop.time():
            return cached[1]
        try:
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except EgressBlocked:
            raise
        except OSError as e:
            raise UpstreamError(f"{host} could not be resolved ({type(e).__name__})") from e
        addresses = list(dict.fromkeys(r["host"] for r in results))
        self._dns[(host, port)] = (self.loop.time() + self._dns_ttl, addresses)
        return addresses

    def clear_dns_cache(self) -> None:
        self._dns.clear()

    async def _connect(self, target: Target) -> _Connection:
        if self.closed:
            raise UpstreamError("the upstream client is closed")
        key = (target.host, target.port, target.tls)
        last: Exception | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                for ip in await self._addresses(target.host, target.port):
                    try:
                        _, conn = await self.loop.create_connection(
                            lambda: _Connection(self, key), ip, target.port,
                            ssl=self._ssl if target.tls else None,
                            server_hostname=target.host if target.tls else None)
                        sock = conn.transport.get_extra_info("socket")
                        if sock is not None:
                            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        return conn
                    except (OSError, ssl.SSLError) as e:
                        last = e
        except TimeoutError as e:
            raise UpstreamTimeout(f"no connection to {target.host} within {self.connect_timeout} s") from e
        raise UpstreamError(f"{target.host} could not be reached ({type(last).__name__ if last else 'no address'})")

    async def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        await self._resolver.close()


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
