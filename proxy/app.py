"""build_app(): the proxy application and its ops application.

State hangs off the app (AppKey), never globals: the compiled policy, the stage
chain, the upstream session, the metrics registry, drain flags.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.config.policy import CompiledPolicy
from proxy.egress.address import AddressPolicy
from proxy.handler import ProxyHandler
from proxy.metrics import Metrics
from proxy.pipeline.chain import Chain
from proxy.pipeline.registry import stage_class
from proxy.pipeline.stage import Stage, StageServices
from proxy.upstream import make_session


@dataclass
class AppState:
    policy: CompiledPolicy
    chain: Chain
    metrics: Metrics
    address_policy: AddressPolicy
    data_dir: Path
    local_routes: dict[str, tuple[Stage, str]]
    session: aiohttp.ClientSession | None = None
    resolver: AbstractResolver | None = None
    in_flight: int = 0
    draining: bool = False
    ready: bool = False
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)  # cut open streams now
    idle: asyncio.Event | None = None  # set when in_flight drops to 0 while draining


STATE = web.AppKey("ramparts_state", AppState)


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


def build_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=state.policy.server.max_body_bytes, handler_args={})
    app[STATE] = state

    async def lifecycle(app: web.Application):
        state.session = make_session(state.policy.server, state.address_policy, state.resolver)
        await state.chain.start()
        state.ready = True
        yield
        state.ready = False
        await state.chain.stop()
        await state.session.close()

    app.cleanup_ctx.append(lifecycle)
    handler = ProxyHandler(state)
    # One catch-all: the handler decides (exact paths only; everything else 404).
    app.router.add_route("*", "/{tail:.*}", handler.__call__, expect_handler=_expect_handler(state))
    return app


def _expect_handler(state: AppState):
    async def expect(request: web.Request) -> None:
        """Expect: 100-continue with an oversized body: 413 before reading a byte of it."""
        if request.version != aiohttp.HttpVersion11:
            return
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text="unknown Expect")
        if request.content_length is not None and request.content_length > state.policy.server.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=state.policy.server.max_body_bytes, actual_size=request.content_length,
                                                headers={"Connection": "close"})
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
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
        keepalive_timeout=s.keepalive_timeout_s,  # also bounds a slowloris header dribble
        max_line_size=s.max_line_size, max_field_size=s.max_field_size, max_headers=s.max_headers,
        access_log=None, shutdown_timeout=2.0,
    )
