"""Fixtures for the end-to-end client matrix: the mock provider (with a switch that answers
429 + `Retry-After: 0` for the next N requests, so SDK retries are fast) and a proxy in front."""

from __future__ import annotations

import orjson
import pytest
from aiohttp import web

from tests.integration.servers import BackgroundLoop, MockServer, ProxyServer, policy_for


class FlakyMock(MockServer):
    """MockServer whose next `fail_429` requests are answered 429 with Retry-After: 0
    (the stock mock:http429 says Retry-After: 7, which makes every SDK sleep 7 s per retry)."""

    def __init__(self, bg: BackgroundLoop) -> None:
        super().__init__(bg)
        self.fail_429 = 0
        self.refused = 0

    async def _start(self) -> None:
        app = self.provider.app()

        @web.middleware
        async def flaky(request: web.Request, handler):
            if self.fail_429 > 0 and request.path.startswith("/v1/"):
                self.fail_429 -= 1
                self.refused += 1
                body = {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}
                return web.Response(body=orjson.dumps(body), status=429, content_type="application/json",
                                    headers={"Retry-After": "0"})
            return await handler(request)

        app.middlewares.append(flaky)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def clear(self) -> None:
        super().clear()
        self.fail_429 = 0
        self.refused = 0


@pytest.fixture(scope="module")
def bg():
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def mock(bg):
    server = FlakyMock(bg).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(bg, mock, tmp_path_factory):
    p = ProxyServer(bg, policy_for(mock.port), tmp_path_factory.mktemp("e2e")).start()
    yield p
    p.stop()


@pytest.fixture
def up(mock):
    mock.clear()
    return mock


@pytest.fixture
def make_proxy(bg, mock, tmp_path):
    """make_proxy(**policy_overrides) -> a started ProxyServer in front of the mock."""
    started = []

    def make(**overrides):
        mock.clear()
        p = ProxyServer(bg, policy_for(mock.port, **overrides), tmp_path / f"p{len(started)}").start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()
