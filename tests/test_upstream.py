"""The provider client (proxy/upstream.py) against raw loopback servers.

Each server is a script over asyncio streams, so the tests control every byte
the "provider" sends: keep-alive reuse, chunked and read-until-close bodies,
interim 1xx answers, heads that are too large, deadlines, cuts, backpressure
and TLS with a certificate from a throwaway CA.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.config.policy import ServerConfig
from proxy.egress.address import AddressPolicy
from proxy.upstream import (UpstreamBroken, UpstreamClient, UpstreamError, UpstreamStalled, UpstreamTimeout,
                            parse_target)

LOOPBACK = AddressPolicy.from_cidrs(["127.0.0.0/8"])
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Provider:
    """A loopback server: `script(reader, writer)` answers each connection; connections are counted."""

    def __init__(self, script, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.script, self.ssl_ctx = script, ssl_ctx
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> "Provider":
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.script(self, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        self.requests.append(head + await reader.readexactly(length))
        return self.requests[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"


async def keep_alive(p: Provider, reader, writer) -> None:
    while True:
        await p.read_request(reader)
        writer.write(OK)
        await writer.drain()


def client(**server) -> UpstreamClient:
    return UpstreamClient(ServerConfig(**server), LOOPBACK)


async def read_all(resp) -> bytes:
    out = b""
    while chunk := await resp.readany():
        out += chunk
    return out


async def test_request_is_built_from_the_target_and_headers_only():
    async with Provider(keep_alive) as p:
        c = client()
        resp = await c.post(p.url, {"Authorization": "Bearer sk-x", "X-Request-ID": "r1"}, b'{"a":1}')
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json" and await read_all(resp) == b"{}"
        resp.close()
        await c.close()
    head, _, body = p.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{p.port}".encode() in lines and b"Authorization: Bearer sk-x" in lines
    assert b"Content-Length: 7" in lines and body == b'{"a":1}'


async def test_a_fully_read_answer_gives_its_connection_back_for_the_next_call():
    async with Provider(keep_alive) as p:
        c = client()
        for _ in range(5):
            resp = await c.post(p.url, {}, b"{}")
            assert await read_all(resp) == b"{}"
            resp.close()
        await c.close()
    assert p.connections == 1 and len(p.requests) == 5


async def test_an_unread_or_cancelled_answer_closes_its_connection():
    async with Provider(keep_alive) as p:
        c = client()
        for _ in range(3):
            resp = await c.post(p.url, {}, b"{}")
            resp.close()  # body never read: never reused (a cancelled call must not leave bytes behind)
        await c.close()
    assert p.connections == 3


async def test_idle_connections_expire_and_a_connection_the_provider_closed_is_not_reused():
    async def once(p, reader, writer):
        await p.read_request(reader)
        writer.write(OK)
        await writer.drain()  # then the connection closes (no Connection: close header)

    async with Provider(once) as p:
        c = client()
        for _ in range(3):
            resp = await c.post(p.url, {}, b"{}")
            assert await read_all(resp) == b"{}"
            resp.close()
            await asyncio.sleep(0.05)
        await c.close()
    assert p.connections == 3
    async with Provider(keep_alive) as p:
        c = UpstreamClient(ServerConfig(), LOOPBACK, keepalive_s=0.1)
        for _ in range(2):
            resp = await c.post(p.url, {}, b"{}")
            assert await read_all(resp) == b"{}"
            resp.close()
            await asyncio.sleep(0.2)
        await c.close()
    assert p.connections == 2


async def test_chunked_and_read_until_close_bodies():
    async def chunked(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: [DONE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def until_close(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\"")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b": 1}")

    for script, expected in ((chunked, b"data: 1\n\ndata: [DONE]\n\n"), (until_close, b'{"a": 1}')):
        async with Provider(script) as p:
            c = client()
            resp = await c.post(p.url, {}, b"{}")
            assert await read_all(resp) == expected and resp.at_eof()
            resp.close()
            await c.close()


async def test_an_interim_100_continue_is_skipped():
    async def interim(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
        await writer.drain()

    async with Provider(interim) as p:
        c = client()
        resp = await c.post(p.url, {}, b"{}")
        assert resp.status == 200 and await read_all(resp) == b"{}"
        resp.close()
        await c.close()


@pytest.mark.parametrize("headers", [{"X-A": "1\r\nX-Injected: 1"}, {"X-A\r\nX-B": "1"}, {"X-A": "nul\x00"}])
async def test_a7_crlf_or_nul_in_an_upstream_header_is_refused_before_connecting(headers):
    async with Provider(keep_alive) as p:
        c = client()
        with pytest.raises(UpstreamBroken):
            await c.post(p.url, headers, b"{}")
        await c.close()
    assert p.connections == 0


def test_provider_urls_that_cannot_be_a_request_line_are_refused():
    assert parse_target("https://api.example.com/v1/chat").head == b"POST /v1/chat HTTP/1.1\r\nHost: api.example.com\r\n"
    assert parse_target("http://[::1]:8080/x?y=1").head == b"POST /x?y=1 HTTP/1.1\r\nHost: [::1]:8080\r\n"
    for bad in ("ftp://x/y", "http:///nohost", "http://h/a b", "http://h/caf\u00e9", "http://h/a\x00", "http://h/a\r\nX: 1"):
        with pytest.raises(UpstreamBroken):
            parse_target(bad)


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
], ids=["huge-header", "many-headers", "dup-cl", "cr-in-value", "bad-status", "not-http", "upgrade"])
async def test_a8_malformed_heads_are_refused(head):
    async def script(p, reader, writer):
        await p.read_request(reader)
        writer.write(head)
        await writer.drain()
        await reader.read()

    async with Provider(script) as p:
        c = client()
        with pytest.raises(UpstreamBroken):
            resp = await c.post(p.url, {}, b"{}")
            await read_all(resp)
        await c.close()


async def test_deadlines_no_head_is_a_timeout_and_a_silent_body_is_a_stall():
    async def silent(p, reader, writer):
        await p.read_request(reader)
        await asyncio.sleep(5)

    async def stalls(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\"")
        await writer.drain()
        await asyncio.sleep(5)

    async with Provider(silent) as p:
        c = client(upstream_read_timeout_s=0.3)
        t = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout):
            await c.post(p.url, {}, b"{}")
        assert 0.25 < asyncio.get_running_loop().time() - t < 2
        await c.close()
    async with Provider(stalls) as p:
        c = client(upstream_read_timeout_s=0.3)
        resp = await c.post(p.url, {}, b"{}")
        assert await resp.readany() == b'{"a"'
        with pytest.raises(UpstreamStalled):
            await resp.readany()
        resp.close()
        await c.close()


async def test_a_slow_but_steady_body_is_never_a_stall():
    async def dribble(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0.1)
            writer.write(b"x")
            await writer.drain()

    async with Provider(dribble) as p:
        c = client(upstream_read_timeout_s=0.3)  # 1 s in total, 0.1 s between bytes
        resp = await c.post(p.url, {}, b"{}")
        assert await read_all(resp) == b"x" * 10
        resp.close()
        await c.close()


async def test_a_cut_in_the_middle_of_a_body_is_broken_not_a_short_answer():
    async def cut(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\"")
        await writer.drain()

    async with Provider(cut) as p:
        c = client()
        resp = await c.post(p.url, {}, b"{}")
        with pytest.raises(UpstreamBroken):
            await read_all(resp)
        resp.close()
        await c.close()


async def test_closed_before_answering_is_broken():
    async def hang_up(p, reader, writer):
        await p.read_request(reader)

    async with Provider(hang_up) as p:
        c = client()
        with pytest.raises(UpstreamBroken):
            await c.post(p.url, {}, b"{}")
        await c.close()


async def test_a_reader_that_does_not_read_stops_the_provider():
    sent = []

    async def flood(p, reader, writer):
        await p.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        part = b"x" * 65536
        while True:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            sent.append(len(part))

    async with Provider(flood) as p:
        c = client()
        resp = await c.post(p.url, {}, b"{}")
        await asyncio.sleep(0.5)
        stuck = sum(sent)
        await asyncio.sleep(0.3)
        assert sum(sent) == stuck and stuck < 16 * 2**20  # paused: only socket buffers fill
        got = len(resp.read_nowait())
        assert 0 < got < 2**20
        for _ in range(100):  # a reader again: the socket buffers drain and the provider moves on
            resp.read_nowait()
            await asyncio.sleep(0.01)
        assert sum(sent) > stuck
        resp.close()
        await c.close()


async def test_unreachable_and_refused_addresses():
    c = client(upstream_connect_timeout_s=1)
    with pytest.raises(UpstreamError):
        await c.post("http://127.0.0.1:1/v1/x", {}, b"{}")  # nothing listens on port 1
    await c.close()


def make_ca_and_cert(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ramparts test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    return server, trust


async def test_tls_verifies_the_provider_certificate_and_name(tmp_path):
    server_ctx, trust = make_ca_and_cert(tmp_path)
    async with Provider(keep_alive, server_ctx) as p:
        url = f"https://localhost:{p.port}/v1/chat/completions"
        c = UpstreamClient(ServerConfig(), LOOPBACK, ssl_context=trust)
        for _ in range(2):
            resp = await c.post(url, {}, b"{}")
            assert resp.status == 200 and await read_all(resp) == b"{}"
            resp.close()
        await c.close()
        assert p.connections == 1 and b"Host: localhost:%d" % p.port in p.requests[0]
        default_trust = client()  # the system's CAs: the throwaway CA is unknown
        with pytest.raises(UpstreamError):
            await default_trust.post(url, {}, b"{}")
        await default_trust.close()
        wrong_name = UpstreamClient(ServerConfig(), LOOPBACK, ssl_context=trust)  # the cert names localhost only
        with pytest.raises(UpstreamError):
            await wrong_name.post(f"https://127.0.0.1:{p.port}/v1/x", {}, b"{}")
        await wrong_name.close()
    assert len(p.requests) == 2
