"""build_app(): the proxy application and its ops application.

State hangs off the app (AppKey), never globals: the compiled policy, the stage
chain, the upstream session, the metrics registry, drain flags.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import logging

import aiohttp
import orjson
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.config.policy import CompiledPolicy
from proxy.egress.address import AddressPolicy
from proxy.handler import PROXY_ROUTES, ProxyHandler
from proxy.loopmon import monitor_loop_lag
from proxy.metrics import Metrics
from proxy.pipeline.chain import Chain
from proxy.pipeline.deny import Deny
from proxy.pipeline.registry import stage_class
from proxy.pipeline.stage import Stage, StageServices
from proxy.upstream import UpstreamClient


@dataclass
class AppState:
    policy: CompiledPolicy
    chain: Chain
    metrics: Metrics
    address_policy: AddressPolicy
    data_dir: Path
    local_routes: dict[str, tuple[Stage, str]]
    upstream: UpstreamClient | None = None
    resolver: AbstractResolver | None = None
    in_flight: int = 0
    draining: bool = False
    ready: bool = False
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)  # cut open streams now
    idle: asyncio.Event | None = None  # set when in_flight drops to 0 while draining
    memory_pressure: bool = False  # RSS above server.max_rss_mib: shed new requests


STATE = web.AppKey("ramparts_state", AppState)
log = logging.getLogger("ramparts.server")


def build_stages(policy: CompiledPolicy, services: StageServices) -> list[Stage]:
    return [stage_class(cfg.type)(cfg, policy, services) for cfg in policy.stage_configs]


def build_state(policy: CompiledPolicy, data_dir: Path | None = None, metrics: Metrics | None = None,
                resolver: AbstractResolver | None = None, extras: dict[str, Any] | None = None) -> AppState:
    data_dir = Path(data_dir or policy.server.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    metrics = metrics or Metrics(tenant_label=policy.model.metrics.tenant_label)
    services = StageServices(metrics=metrics, data_dir=data_dir, extras=dict(extras or {}))
    stages = build_stages(policy, services)
    local_routes = {path: (s, scope) for s in stages for path, scope in s.local_routes.items()}
    return AppState(policy=policy, chain=Chain(stages, metrics), metrics=metrics,
                    address_policy=AddressPolicy.from_cidrs(policy.model.egress.allow_private_ips),
                    data_dir=data_dir, local_routes=local_routes, resolver=resolver)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (one small /proc read: cheap enough every second)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def check_memory(state: AppState) -> None:
    limit = state.policy.server.max_rss_mib
    over = limit is not None and rss_bytes() > limit * 1_048_576
    if over != state.memory_pressure:
        log.warning("memory soft limit %s MiB %s: %s new requests", limit, "exceeded" if over else "cleared",
                    "shedding" if over else "accepting")
        state.memory_pressure = over
        state.metrics.memory_pressure.set(1 if over else 0)


async def watch_memory(state: AppState) -> None:
    while True:
        await asyncio.sleep(state.policy.server.rss_check_s)
        check_memory(state)


def build_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=state.policy.server.max_body_bytes, handler_args={})
    app[STATE] = state

    async def lifecycle(app: web.Application):
        state.upstream = UpstreamClient(state.policy.server, state.address_policy, state.resolver)
        await state.chain.start()
        lag = asyncio.ensure_future(monitor_loop_lag(state.metrics.loop_lag))
        watch = None
        if state.policy.server.max_rss_mib is not None:
            check_memory(state)  # before the first request, so a start above the limit already sheds
            watch = asyncio.ensure_future(watch_memory(state))
        state.ready = True
        yield
        state.ready = False
        lag.cancel()
        if watch is not None:
            watch.cancel()
        await state.chain.stop()
        await state.upstream.close()

    app.cleanup_ctx.append(lifecycle)
    proxy_handler = ProxyHandler(state)

    @web.middleware
    async def every_request(request: web.Request, handler) -> web.StreamResponse:
        """Targets the router cannot match (CONNECT host:port) reach the proxy handler too."""
        return await proxy_handler(request)

    app.middlewares.append(every_request)
    # One catch-all: the handler decides (exact paths only; everything else 404).
    app.router.add_route("*", "/{tail:.*}", proxy_handler.__call__, expect_handler=_expect_handler(state))
    return app


def _json_error(status: int, message: str, code: str) -> web.Response:
    resp = web.Response(status=status, body=orjson.dumps(Deny(status, message, "invalid_request_error", code).body()),
                        content_type="application/json")
    resp.force_close()
    return resp


class _ParseErrorProtocol(RequestHandler):
    """aiohttp answers unparseable requests in plain text that echoes the offending
    bytes (an Authorization line included) and logs them with a traceback. Answer in
    the OpenAI error shape and log only the kind of error."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        log.warning("refused a malformed request from %s: %s (%d)", request.remote, type(exc).__name__, status)
        audit = getattr(self._manager, "ramparts_audit", None)
        if audit is not None:  # no headers are trusted (or kept) from bytes that did not parse
            audit.audit_refusal(request_id=os.urandom(16).hex(), status=status, code="malformed_request", route="-",
                                method=None, client=request.remote, headers=None)
        if request.writer.output_size > 0:
            raise ConnectionError("the response was already started")
        return _json_error(status, f"the request is not valid HTTP/1.1 ({type(exc).__name__})", "malformed_request")


class _ProxyWebServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ParseErrorProtocol(self, loop=self._loop, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """AppRunner whose connections answer parse errors in the OpenAI shape."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ProxyWebServer  # same state; only the protocol factory differs
        server.ramparts_audit = audit_stage(self._app[STATE])
        return server


def audit_stage(state: AppState):
    """The pipeline's audit stage (it records refusals that happen before an exchange exists), or None."""
    return next((s for s in state.chain.stages if hasattr(s, "audit_refusal")), None)


def _expect_handler(state: AppState):
    audit = audit_stage(state)

    async def expect(request: web.Request) -> web.Response | None:
        """Expect: 100-continue with an oversized body: 413 before reading a byte of it."""
        if request.version != aiohttp.HttpVersion11:
            return
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text="unknown Expect")
        if request.content_length is not None and request.content_length > state.policy.server.max_body_bytes:
            if audit is not None:
                path = request.raw_path.partition("?")[0]
                audit.audit_refusal(request_id=os.urandom(16).hex(), status=413, code="body_too_large",
                                    route=PROXY_ROUTES.get(path, "-"), method=request.method, client=request.remote,
                                    headers=request.headers)
            return _json_error(413, f"the request body is larger than {state.policy.server.max_body_bytes} bytes", "body_too_large")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None
    return expect


def build_ops_app(state: AppState) -> web.Application:
    """Health and metrics on their own listener: scrapeable without exposing the proxy port."""
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if state.ready and not state.draining:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "draining" if state.draining else "starting"}, status=503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(state.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def runner_kwargs(state: AppState) -> dict[str, Any]:
    """Explicit limits and deadlines (aiohttp's defaults keep idle sockets for an hour)."""
    s = state.policy.server
    return dict(
        handler_cancellation=True,  # a client that disconnects cancels the upstream call
        auto_decompress=False,  # encoded request bodies are refused (415), never inflated (gzip bombs)
        lingering_time=1.0,  # an unread refused body (413/415/408) is drained for 1 s, not 10, then closed
        keepalive_timeout=s.keepalive_timeout_s,  # also bounds a slowloris header dribble
        max_line_size=s.max_line_size, max_field_size=s.max_field_size, max_headers=s.max_headers,
        access_log=None, shutdown_timeout=2.0,
    )
