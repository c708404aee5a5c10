import pytest

from tests.integration.servers import BackgroundLoop, MockServer, ProxyServer, policy_for


@pytest.fixture(scope="module")
def bg():
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def mock(bg):
    server = MockServer(bg).start()
    yield server
    server.stop()


@pytest.fixture
def make_proxy(bg, mock, tmp_path):
    """make_proxy(**policy_overrides) -> a started ProxyServer in front of the mock."""
    started = []

    def make(**overrides):
        mock.clear()
        proxy = ProxyServer(bg, policy_for(mock.port, **overrides), tmp_path / f"p{len(started)}").start()
        started.append(proxy)
        return proxy

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def proxy(make_proxy):
    return make_proxy()
