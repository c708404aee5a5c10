"""bench/chaos.py, the TCP fault proxy the soak relies on: each mode does what it says."""

import asyncio

from bench.chaos import ChaosProxy, parse_mix


async def _upstream(payload: bytes):
    async def serve(reader, writer):
        await reader.read(100)
        writer.write(payload)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _fetch(port: int, timeout: float = 2.0) -> tuple[bytes, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    got = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                return got, "eof"
            got += chunk
    except ConnectionResetError:
        return got, "reset"
    except asyncio.TimeoutError:
        return got, "stalled"
    finally:
        writer.close()


async def _run(mode: str, payload: bytes) -> tuple[bytes, str, dict]:
    server, port = await _upstream(payload)
    chaos = await ChaosProxy(("127.0.0.1", port), {mode: 1}, fault_bytes=(1000, 1000)).start()
    try:
        got, how = await _fetch(chaos.port, timeout=1.0)
    finally:
        await chaos.close()
        server.close()
    return got, how, dict(chaos.stats)


async def test_pass_relays_everything():
    got, how, stats = await _run("pass", b"x" * 5000)
    assert (got, how) == (b"x" * 5000, "eof") and stats == {"conn:pass": 1}


async def test_reset_after_n_bytes_sends_an_rst():
    got, how, stats = await _run("reset_after", b"x" * 5000)
    assert how == "reset" and len(got) <= 1000 and stats["fired:reset_after"] == 1


async def test_blackhole_after_n_bytes_stalls_with_the_socket_open():
    got, how, stats = await _run("blackhole_after", b"x" * 5000)
    assert (len(got), how) == (1000, "stalled") and stats["fired:blackhole_after"] == 1


async def test_slow_still_delivers_everything():
    got, how, stats = await _run("slow", b"y" * 640)
    assert (got, how) == (b"y" * 640, "eof") and stats == {"conn:slow": 1}


def test_mix_parsing():
    assert parse_mix("pass=9,reset_after=1") == {"pass": 9.0, "reset_after": 1.0}
    try:
        parse_mix("explode=1")
    except ValueError as e:
        assert "explode" in str(e)
    else:
        raise AssertionError("unknown mode accepted")
