"""`ramparts serve`: the proxy listener, the ops listener, and a graceful drain on SIGTERM.

Drain order (Kubernetes preStop/SIGTERM): readiness goes false, the listener
stops accepting, in-flight requests get up to `server.drain_timeout_s` to
finish, streams still open then end with an SSE error event (never a silent
[DONE]), and finally the stages stop (budget holds settled, audit flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from proxy.app import AppState, ProxyRunner, build_app, build_ops_app, build_state, runner_kwargs
from proxy.config.loader import PolicyInvalid, load_policy
from proxy.config.secret import SecretError

log = logging.getLogger("ramparts.serve")


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Server:
    """Both listeners of one proxy process; start() then drain() (tests drive it directly)."""

    def __init__(self, state: AppState, listen: str, ops_listen: str | None) -> None:
        self.state = state
        self.listen = listen
        self.ops_listen = ops_listen
        self.runner = ProxyRunner(build_app(state), **runner_kwargs(state))
        self.ops_runner = web.AppRunner(build_ops_app(state), access_log=None) if ops_listen else None
        self.site: web.TCPSite | None = None
        self.port: int | None = None
        self.ops_port: int | None = None

    async def start(self) -> None:
        await self.runner.setup()
        host, port = split_listen(self.listen)
        self.site = web.TCPSite(self.runner, host, port, backlog=1024)
        await self.site.start()
        self.port = self.site._server.sockets[0].getsockname()[1]
        if self.ops_runner is not None:
            await self.ops_runner.setup()
            ohost, oport = split_listen(self.ops_listen)
            osite = web.TCPSite(self.ops_runner, ohost, oport)
            await osite.start()
            self.ops_port = osite._server.sockets[0].getsockname()[1]

    async def drain(self) -> None:
        st = self.state
        st.draining = True
        st.idle = asyncio.Event()
        if self.site is not None:
            self.site._server.close()  # stop accepting; open connections stay
        if st.in_flight:
            try:
                await asyncio.wait_for(st.idle.wait(), st.policy.server.drain_timeout_s)
            except TimeoutError:
                log.warning("drain timeout: cutting %d open requests", st.in_flight)
        st.shutdown.set()
        for _ in range(50):  # open streams write their error event and finish
            if not st.in_flight:
                break
            await asyncio.sleep(0.05)
        await self.runner.cleanup()  # stops the stages: settle, flush audit
        if self.ops_runner is not None:
            await self.ops_runner.cleanup()


# Generation thresholds once the startup heap is frozen: CPython's defaults, kept on purpose (see tune_gc).
GC_THRESHOLDS = (700, 10, 10)


def tune_gc() -> None:
    """Keep full garbage collections off the request path (SECURITY_TESTS H11: loop lag).

    After startup the heap holds a few million long-lived objects (the policy, the PII and
    injection models, tokenizer tables, imported modules). A generation-2 collection walks
    all of them and holds the event loop for the whole walk: 250-400 ms measured under the
    50-stream soak. gc.freeze() moves everything alive now into the permanent generation,
    which collections never scan (Instagram's recipe). The thresholds stay small: raising
    them (20000, 20, 50 was tried) made collections rarer but each one walk every object the
    in-flight requests hold: young collections of up to 81 ms and a gen-1 one of 286 ms in the
    same soak. Set RAMPARTS_GC_FREEZE=0 to keep the interpreter's defaults (A/B runs)."""
    if os.environ.get("RAMPARTS_GC_FREEZE", "1") == "0":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tune_gil() -> None:
    """Opt-in: RAMPARTS_GIL_SWITCH_S sets how long another thread may hold the GIL before the
    event loop's thread gets it back (CPython's default: 5 ms). Busy background threads (audit
    writer, SQLite, to_thread jobs) can keep the loop waiting that long each time it releases the
    GIL; 1 ms was tried in the 50-worker soak and is NOT the default: one A/B pair looked better,
    two later pairs showed no gain beyond the run-to-run noise (bench/RESULTS.md, H11)."""
    value = float(os.environ.get("RAMPARTS_GIL_SWITCH_S") or 0)
    if value > 0:
        sys.setswitchinterval(value)


async def _serve(state: AppState, listen: str, ops_listen: str | None) -> None:
    server = Server(state, listen, ops_listen)
    await server.start()  # stages started: models loaded
    tune_gc()
    tune_gil()
    print(f"ramparts listening on http://{listen} (ops on http://{ops_listen})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("draining...", flush=True)
    await server.drain()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts serve")
    ap.add_argument("--policy", default=os.environ.get("RAMPARTS_POLICY", "policies/example.yaml"))
    ap.add_argument("--listen", help="HOST:PORT (default: server.listen from the policy)")
    ap.add_argument("--ops-listen", help="HOST:PORT for /healthz /readyz /metrics (default: server.ops_listen)")
    ap.add_argument("--data-dir", help="budget and audit data (default: server.data_dir)")
    ap.add_argument("--log-level", default=os.environ.get("RAMPARTS_LOG_LEVEL", "INFO"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        policy = load_policy(args.policy)
        state = build_state(policy, data_dir=Path(args.data_dir) if args.data_dir else None)
    except PolicyInvalid as e:
        print(f"ramparts: invalid policy {args.policy}:", file=sys.stderr)
        for err in e.errors:
            print(f"  {err}", file=sys.stderr)
        return 2
    except (SecretError, ValueError, OSError) as e:
        print(f"ramparts: cannot start: {e}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(state, args.listen or policy.server.listen, args.ops_listen or policy.server.ops_listen))
    return 0
