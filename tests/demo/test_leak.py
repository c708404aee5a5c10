"""The leak demo scene against a real proxy (tenant, egress, leak) and the mock provider."""

from __future__ import annotations

import pytest

from proxy.demo.context import DemoContext
from proxy.demo.leak import KEY, scene
from tests.harness import HMAC_SECRET
from tests.integration.servers import BackgroundLoop, MockServer, ProxyServer, policy_for


@pytest.fixture
def servers(tmp_path):
    bg = BackgroundLoop()
    mock = MockServer(bg).start()
    policy = policy_for(mock.port, pipeline=[{"type": "tenant"}, {"type": "egress"},
                                             {"type": "leak", "cross_tenant": {"tenant_ids": False}}])
    proxy = ProxyServer(bg, policy, tmp_path).start()
    yield proxy, mock
    proxy.stop()
    mock.stop()
    bg.close()


async def test_leak_scene(servers, capsys):
    proxy, mock = servers
    ctx = DemoContext(base_url=proxy.base_url, provider_log=lambda: mock.log, secret=HMAC_SECRET.encode(), issuer="https://issuer.test")
    await scene(ctx)  # raises SystemExit if anything leaked
    out = capsys.readouterr().out
    received = out.split("app received (tenant acme)", 1)[1]
    assert KEY not in received and "[REDACTED:secret]" in received and "content_filter" in received
    assert "the answer was withheld" in out and "[REDACTED:markdown_image]" in out
    assert proxy.metrics.leak_hits.labels("cross_tenant", "block")._value.get() == 1
    assert len(mock.log) == 3
