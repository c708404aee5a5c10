"""The security demo scene runs against a real proxy and mock provider and finds every attempt refused."""

from __future__ import annotations

import pytest

from proxy.demo.context import DemoContext
from proxy.demo.security import scene
from tests.harness import HMAC_SECRET
from tests.integration.servers import BackgroundLoop, MockServer, ProxyServer, policy_for


@pytest.fixture
def servers(tmp_path):
    bg = BackgroundLoop()
    mock = MockServer(bg).start()
    proxy = ProxyServer(bg, policy_for(mock.port), tmp_path).start()
    yield proxy, mock
    proxy.stop()
    mock.stop()
    bg.close()


async def test_security_scene(servers, capsys):
    proxy, mock = servers
    ctx = DemoContext(base_url=proxy.base_url, provider_log=lambda: mock.log, secret=HMAC_SECRET.encode(), issuer="https://issuer.test")
    await scene(ctx)  # raises SystemExit if any attempt got through
    out = capsys.readouterr().out
    assert out.count("provider_calls_made:\n      0") == 4
    assert "upstream_reset" in out and "APIError" in out
    assert len(mock.log) == 1  # only the streamed call reached the provider
