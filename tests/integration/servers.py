"""Real servers on loopback for end-to-end tests: the mock provider and the proxy,
running in a background thread's event loop (so sync SDK clients can call them)."""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from proxy.app import build_state
from proxy.config.loader import load_policy
from proxy.devtoken import mint
from proxy.metrics import Metrics
from proxy.mock_provider import MockProvider, MockState
from proxy.serve import Server
from tests.harness import BASE_POLICY, HMAC_SECRET, _merge


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class MockServer:
    def __init__(self, bg: BackgroundLoop) -> None:
        self.bg = bg
        self.provider = MockProvider(MockState())
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.provider.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def start(self) -> "MockServer":
        self.bg.run(self._start())
        return self

    def stop(self) -> None:
        self.bg.run(self.runner.cleanup())

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.provider.state.log

    def clear(self) -> None:
        self.provider.state.log.clear()
        self.provider.state.queued.clear()

    def queue(self, mode: str, count: int = 1) -> None:
        self.provider.state.queued.append((mode, count))


def policy_for(mock_port: int, **overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_POLICY)
    data["providers"]["openai"]["base_url"] = f"http://127.0.0.1:{mock_port}/v1"
    data["providers"]["azure"]["base_url"] = f"http://127.0.0.1:{mock_port}"
    data["egress"]["allow"] = [f"127.0.0.1:{mock_port}"]
    data["server"] = {"sse_keepalive_s": 0, "drain_timeout_s": 2}
    return _merge(data, overrides)


class ProxyServer:
    def __init__(self, bg: BackgroundLoop, policy: dict[str, Any], tmp: Path) -> None:
        self.bg = bg
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / "policy.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        self.policy = load_policy(path)
        self.metrics = Metrics()
        self.state = build_state(self.policy, data_dir=tmp / "data", metrics=self.metrics)
        self.server = Server(self.state, "127.0.0.1:0", "127.0.0.1:0")

    def start(self) -> "ProxyServer":
        self.bg.run(self.server.start())
        return self

    def stop(self) -> None:
        if self.state.upstream is not None and not self.state.upstream.closed:
            self.bg.run(self.server.drain())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.server.ops_port}"

    @property
    def port(self) -> int:
        return self.server.port


def token(tenant: str = "acme", scopes: tuple[str, ...] = ("ai:completion", "ai:embed"), **kw: Any) -> str:
    kw.setdefault("issuer", "https://issuer.test")
    return mint(HMAC_SECRET.encode(), tenant=tenant, scopes=scopes, **kw)


def headers(tenant: str = "acme", tok: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok or token(tenant)}", "X-Tenant-ID": tenant, "Content-Type": "application/json"}


def chat(content: str = "hello", stream: bool = False, **extra: Any) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "stream": stream, **extra})
