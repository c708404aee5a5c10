"""A closed-loop HTTP/1.1 load generator on raw asyncio protocols.

Why not aiohttp's client: on a shared core the load generator competes with
the mock provider, so it should cost as little CPU as possible. Each of `c`
workers owns one keep-alive connection, sends a prebuilt request, reads the
whole response (Content-Length or chunked), checks it, and sends the next one.
Latency is request written to last response byte parsed (perf_counter);
throughput counts completions inside the measured window.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


class ResponseError(Exception):
    """The server answered something the bench does not accept (status, framing, content)."""


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, requests completed in the window
    ttfb: list[float] = field(default_factory=list)  # seconds to the first body byte, same requests
    total: int = 0  # all completed requests, warm-up included (for CPU per request)
    errors: int = 0
    window: float = 0.0
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.window if self.window else 0.0

    def percentile(self, q: float, of: str = "latencies") -> float:
        """Nearest-rank percentile in seconds (q in [0, 100]) of `latencies` or `ttfb`."""
        if not getattr(self, of):
            return float("nan")
        xs = sorted(getattr(self, of))
        k = max(0, min(len(xs) - 1, int(round(q / 100 * len(xs) + 0.5)) - 1))
        return xs[k]


class _Connection(asyncio.Protocol):
    """One keep-alive connection that parses exactly one response per request."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers_done = False
        self.length: int | None = None
        self.chunked = False
        self.pos = 0  # parse offset into buf (chunked body)
        self.body = bytearray()
        self.first_body_at = 0.0  # perf_counter when the first body byte was parsed

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ResponseError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            done = self._parse()
        except ResponseError as e:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(e)
            return
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, bytes(self.body)))

    def _parse(self) -> bool:
        buf = self.buf
        if not self.headers_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
                elif name == "connection" and value.strip().lower() == "close":
                    raise ResponseError("the server closes the connection")
            self.headers_done = True
            self.pos = end + 4
            if not self.chunked and self.length is None:
                raise ResponseError("response without Content-Length or chunked framing")
        if not self.first_body_at and len(buf) > self.pos:
            self.first_body_at = time.perf_counter()
        if not self.chunked:
            if len(buf) - self.pos < self.length:
                return False
            self.body = buf[self.pos:self.pos + self.length]
            del buf[: self.pos + self.length]
            return True
        while True:
            eol = buf.find(b"\r\n", self.pos)
            if eol < 0:
                return False
            size = int(bytes(buf[self.pos:eol]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < eol + 4:
                    return False
                del buf[: eol + 4]  # last chunk + empty trailer
                return True
            if len(buf) < eol + 2 + size + 2:
                return False
            self.body += buf[eol + 2:eol + 2 + size]
            self.pos = eol + 2 + size + 2

    async def request(self, data: bytes, timeout: float) -> tuple[int, bytes]:
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await asyncio.wait_for(self.waiter, timeout)


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode() + body


def check_response(status: int, body: bytes, stream: bool) -> None:
    if status != 200:
        raise ResponseError(f"status {status}: {body[:200]!r}")
    if stream and not body.rstrip().endswith(b"data: [DONE]"):
        raise ResponseError(f"stream did not end with [DONE]: {body[-200:]!r}")
    if not stream and not body.startswith(b"{"):
        raise ResponseError(f"not a JSON body: {body[:200]!r}")


async def smoke(host: str, port: int, request: bytes, *, stream: bool, timeout: float = 120.0) -> None:
    """One request that must succeed (raises ResponseError otherwise): a slow first call (model
    loading, cold caches) is waited for, not counted."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Connection, host, port)
    try:
        status, body = await conn.request(request, timeout)
        check_response(status, body, stream)
    finally:
        conn.transport.close()


async def run_load(host: str, port: int, request: bytes, *, concurrency: int, duration: float, warmup: float,
                   stream: bool, timeout: float = 30.0, min_requests: int | None = None) -> LoadResult:
    """`concurrency` workers for warmup + duration seconds; only completions after the warm-up
    count. The window stretches past `duration` until `min_requests` (default: concurrency)
    completions are counted, so a short window on a slow target still measures something."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, host, port))[1] for _ in range(concurrency)]
    result = LoadResult()
    need = concurrency if min_requests is None else min_requests
    start = time.perf_counter()
    window_start = start + warmup
    window_end = window_start + duration
    last = window_end

    async def worker(conn: _Connection) -> None:
        nonlocal last
        while True:
            t0 = time.perf_counter()
            if t0 >= window_end and len(result.latencies) >= need:
                return
            try:
                status, body = await conn.request(request, timeout)
                check_response(status, body, stream)
            except (ResponseError, asyncio.TimeoutError, ValueError) as e:
                result.errors += 1
                result.first_error = result.first_error or f"{type(e).__name__}: {e}"
                return  # the connection's state is unknown now
            t1 = time.perf_counter()
            result.total += 1
            if window_start <= t1 and (t1 <= window_end or len(result.latencies) < need):
                result.latencies.append(t1 - t0)  # throughput: completions inside the window
                result.ttfb.append((conn.first_body_at or t1) - t0)
                last = max(last, t1)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.transport.close()
    result.window = last - window_start
    return result
