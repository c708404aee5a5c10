"""Raw sockets for the framing tests: send exact bytes, parse exactly what comes back.

HTTP clients normalise requests (they refuse bare LF, duplicate Content-Length,
obs-fold...), so the attacks of SECURITY_TESTS A-D are written as bytes here.
`RawUpstream` is the other side: a hostile provider that answers at the socket
level (bad headers, redirects, hand-split SSE) and records every connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterator

import orjson


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return orjson.loads(self.body)

    @property
    def error(self) -> dict:
        """The OpenAI error object; fails the test if the body does not have that shape."""
        err = self.json()["error"]
        assert set(err) >= {"message", "type", "code"}, err
        assert isinstance(err["message"], str) and err["message"]
        return err


class RawConnection:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def dribble(self, data: bytes, size: int = 1, pause: float = 0.0, every: int = 1) -> bool:
        """Send in `size`-byte segments (sleeping `pause` every `every` segments); False if the peer closed."""
        for n, i in enumerate(range(0, len(data), size)):
            try:
                self.sock.sendall(data[i:i + size])
            except (BrokenPipeError, ConnectionResetError):
                return False
            if pause and n % every == every - 1:
                time.sleep(pause)
        return True

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take_line(self) -> bytes | None:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if not self._fill():
                return None

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"peer closed with {n - len(self.buf)} body bytes missing")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self) -> RawResponse | None:
        """Status line and headers (interim 1xx responses are returned too); None on EOF."""
        line = self._take_line()
        if line is None:
            return None
        version, status, reason = (line.decode("latin-1").split(" ", 2) + [""])[:3]
        assert version.startswith("HTTP/"), line
        headers = []
        while (h := self._take_line()):
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        return RawResponse(int(status), reason, headers)

    def iter_body(self, head: RawResponse) -> Iterator[bytes]:
        """The body as it arrives (chunked or Content-Length or until EOF)."""
        if head.status < 200 or head.status in (204, 304):
            return
        if (head.header("Transfer-Encoding") or "").lower() == "chunked":
            while True:
                size_line = self._take_line()
                if size_line is None:
                    raise ConnectionError("peer closed inside a chunked body")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self._take_line():  # trailers
                        pass
                    return
                yield self._take(size)
                assert self._take(2) == b"\r\n"
        elif head.header("Content-Length") is not None:
            n = int(head.header("Content-Length"))
            if n:
                yield self._take(n)
        else:
            while self._fill():
                pass
            yield bytes(self.buf)
            self.buf.clear()

    def read_response(self) -> RawResponse | None:
        head = self.read_head()
        while head is not None and head.status == 100:
            head = self.read_head()
        if head is not None:
            head.body = b"".join(self.iter_body(head))
        return head

    def peer_closed(self, wait: float = 2.0) -> bool:
        """True if the server closes the connection within `wait` seconds (after any buffered bytes)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            while self._fill():
                pass
            return True
        except (socket.timeout, TimeoutError):
            return False
        finally:
            self.sock.settimeout(old)


def request(port: int, data: bytes, timeout: float = 5.0, close_wait: float = 1.0) -> tuple[RawResponse | None, bool]:
    """Send one raw request; return (the response, whether the server then closed the
    connection within `close_wait` seconds; 0 = do not wait)."""
    with RawConnection(port, timeout=timeout) as c:
        c.send(data)
        resp = c.read_response()
        return resp, c.peer_closed(close_wait) if close_wait else c.eof


def build(method: str, target: str, headers: list[tuple[str, str]] | dict[str, str], body: bytes = b"",
          version: str = "HTTP/1.1", content_length: bool = True) -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if content_length and body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in items):
        items.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    return head.encode("utf-8") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def sse_events(body: bytes) -> list[dict | str]:
    """The `data:` payloads of an SSE body, JSON-decoded where possible ("[DONE]" stays a string)."""
    out: list[dict | str] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [ln[5:].lstrip(b" ") for ln in block.split(b"\n") if ln.startswith(b"data:")]
        if not data:
            continue
        raw = b"\n".join(data)
        try:
            out.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            out.append(raw.decode("utf-8", "replace"))
    return out


# ---------------------------------------------------------------- hostile upstream

Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawUpstream:
    """A provider at the socket level, running in the background loop.

    `script(request_bytes, writer)` answers each request. Records every request,
    and when each connection was closed by the proxy (`closed_at`).
    """

    bg: object
    script: Script
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed_at: list[float] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None
    _writers: set = field(default_factory=set)

    def start(self) -> "RawUpstream":
        async def go():
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        self.bg.run(go())
        return self

    def stop(self) -> None:
        async def go():
            self._server.close()
            for w in list(self._writers):
                w.close()
        self.bg.run(go())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            # one request after another on the connection (the proxy pools connections);
            # a script that does not finish its answer leaves us waiting here until the
            # proxy closes the socket: that moment is what H3/H9 measure
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                await self.script(head + body, writer)
                await writer.drain()
                if writer.is_closing():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.closed_at.append(time.monotonic())
            self._writers.discard(writer)
            writer.close()


def http_head(status: int, headers: list[tuple[str, str]], reason: str = "OK") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")
