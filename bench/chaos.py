"""A small asyncio TCP fault proxy (a toxiproxy stand-in) for the soak and fault runs.

Each accepted connection draws one mode, by weight, and keeps it for its life:

    pass            bytes relayed both ways
    reset_after=N   after N bytes from the upstream, both sockets are aborted (RST)
    blackhole_after=N  after N bytes from the upstream, nothing more is relayed (stall)
    slow=B          the upstream's bytes are relayed B bytes at a time, 10 ms apart

Counts of connections per mode and of faults actually fired are kept in `stats`
(a connection drawn `reset_after` that closes before N bytes fired nothing).

    python -m bench.chaos --listen 127.0.0.1:7001 --upstream 127.0.0.1:9999 \\
        --mix pass=90,reset_after=4,blackhole_after=3,slow=3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
from collections import Counter

DEFAULT_MIX = {"pass": 90, "reset_after": 4, "blackhole_after": 3, "slow": 3}


def parse_mix(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in DEFAULT_MIX:
            raise ValueError(f"unknown chaos mode {name!r}")
        out[name.strip()] = float(weight or 1)
    return out


class ChaosProxy:
    def __init__(self, upstream: tuple[str, int], mix: dict[str, float] | None = None, seed: int = 1,
                 fault_bytes: tuple[int, int] = (200, 4000)) -> None:
        self.upstream = upstream
        self.mix = mix or dict(DEFAULT_MIX)
        self.rnd = random.Random(seed)
        self.fault_bytes = fault_bytes
        self.stats: Counter[str] = Counter()
        self.server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    def draw(self) -> str:
        names = list(self.mix)
        return self.rnd.choices(names, weights=[self.mix[n] for n in names])[0]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "ChaosProxy":
        self.server = await asyncio.start_server(self._accept, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            await self._relay(creader, cwriter)
        except asyncio.CancelledError:  # close() while a connection is held (black hole)
            cwriter.transport.abort()

    async def _relay(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        mode = self.draw()
        self.stats[f"conn:{mode}"] += 1
        limit = self.rnd.randint(*self.fault_bytes)
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.stats["upstream_connect_error"] += 1
            cwriter.transport.abort()
            return
        up = asyncio.ensure_future(self._pipe(creader, uwriter, "pass", 0, None))
        down = asyncio.ensure_future(self._pipe(ureader, cwriter, mode, limit, uwriter))
        self._tasks.update((up, down))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (up, down):
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            self._tasks.difference_update((up, down))
            for w in (cwriter, uwriter):
                if not w.transport.is_closing():
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str, limit: int,
                    other: asyncio.StreamWriter | None) -> None:
        sent = 0
        while True:
            data = await reader.read(65536)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if mode in ("reset_after", "blackhole_after") and sent + len(data) >= limit:
                writer.write(data[: max(0, limit - sent)])
                self.stats[f"fired:{mode}"] += 1
                if mode == "reset_after":
                    for w in (writer, other):
                        if w is not None:
                            sock = w.get_extra_info("socket")
                            if sock is not None:  # SO_LINGER 0: close() sends RST
                                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                            w.transport.abort()
                    return
                await asyncio.sleep(3600)  # blackhole: hold both sockets open, relay nothing
                return
            if mode == "slow":
                for i in range(0, len(data), 64):
                    writer.write(data[i:i + 64])
                    await writer.drain()
                    await asyncio.sleep(0.01)
            else:
                writer.write(data)
                await writer.drain()
            sent += len(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:7001")
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    uh, _, up = args.upstream.rpartition(":")
    lh, _, lp = args.listen.rpartition(":")

    async def run() -> None:
        proxy = await ChaosProxy((uh, int(up)), parse_mix(args.mix), args.seed).start(lh, int(lp))
        print(f"chaos proxy on {lh}:{proxy.port} -> {args.upstream}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
