"""Which resolved addresses an upstream connection may reach (SECURITY_TESTS C5, C6).

Unit checks of AddressPolicy, then the real UpstreamClient from proxy.upstream
with real resolvers: the numeric host spellings glibc accepts, IP-literal URLs
that skip the resolver, and a resolver that rebinds to a private address on the
second lookup. Trap listeners must see no connection.
"""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest
from aiohttp.abc import AbstractResolver

from proxy.config.policy import ServerConfig
from proxy.egress.address import AddressPolicy, is_ip_literal
from proxy.upstream import EgressBlocked, GuardedResolver, UpstreamClient, UpstreamError

DENIED = [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1", "::ffff:7f00:1", "::7f00:1", "64:ff9b::7f00:1",
    "2002:7f00:1::", "2002:a00:1::", "169.254.169.254", "fe80::1", "fe80::1%eth0", "fd00:ec2::254", "10.0.0.1", "172.16.0.1",
    "192.168.1.1", "100.64.0.1", "198.18.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1", "2001:db8::1", "0.1.2.3",
    # spellings that are not IP addresses to Python (glibc's inet_aton would accept some): never permitted as such
    "2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "localhost", "", "[::1]", "127.0.0.1 ", "1.1.1.1/32",
]
PERMITTED = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize("address", DENIED)
def test_c5_private_loopback_metadata_and_odd_spellings_are_denied(address):
    assert AddressPolicy().permits(address) is False


@pytest.mark.parametrize("address", PERMITTED)
def test_c5_public_unicast_is_permitted(address):
    assert AddressPolicy().permits(address) is True


def test_c5_allow_private_ips_opens_exactly_the_listed_cidrs():
    p = AddressPolicy.from_cidrs(["127.0.0.0/8", "fd00::/8"])
    assert p.permits("127.0.0.1") and p.permits("::ffff:127.0.0.1") and p.permits("fd12::1")
    assert not p.permits("10.0.0.1") and not p.permits("169.254.169.254") and not p.permits("::1")


@pytest.mark.parametrize("host,literal", [("127.0.0.1", True), ("[::1]", True), ("::1", True), ("2130706433", False),
                                          ("api.openai.com", False), ("0177.0.0.1", False)])
def test_c5_ip_literal_detection(host, literal):
    assert is_ip_literal(host) is literal


# ---------------------------------------------------------------- real resolvers and connections

class Listener:
    """A loopback HTTP listener that counts connections and answers 200 with Connection: close."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host, self.port, self.connections = host, port, 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "Listener":
        async def serve(reader, writer):
            self.connections += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()
        self.server = await asyncio.start_server(serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f000001", "127.1", "localhost"])
async def test_c5_numeric_spellings_resolve_and_are_checked(host):
    resolver = GuardedResolver(AddressPolicy())
    with pytest.raises(EgressBlocked):
        await resolver.resolve(host, 443)
    await resolver.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "localhost"])
async def test_c5_no_connection_to_loopback_whatever_the_url_spelling(host):
    async with Listener("127.0.0.1") as trap:
        client = UpstreamClient(ServerConfig(), AddressPolicy())
        try:
            with pytest.raises(EgressBlocked):
                await client.post(f"http://{host}:{trap.port}/v1/chat/completions", {}, b"{}")
        finally:
            await client.close()
        assert trap.connections == 0


async def test_c5_ip_literal_url_inside_the_allowed_cidr_connects():
    policy = AddressPolicy.from_cidrs(["127.0.0.0/8"])
    async with Listener("127.0.0.1") as ok:
        client = UpstreamClient(ServerConfig(), policy)
        try:
            resp = await client.post(f"http://127.0.0.1:{ok.port}/v1/x", {}, b"{}")
            assert resp.status == 200 and await resp.readany() == b"ok"
            resp.close()
        finally:
            await client.close()
        assert ok.connections == 1


class Rebinding(AbstractResolver):
    """A DNS server under attack: each lookup gets the next answer set."""

    def __init__(self, *answers: list[str]) -> None:
        self._answers = itertools.cycle(answers)
        self.lookups = 0

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.lookups += 1
        return [{"hostname": host, "host": ip, "port": port, "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}
                for ip in next(self._answers)]

    async def close(self) -> None:
        pass


async def test_c6_dns_rebinding_second_resolution_to_a_private_ip_is_blocked():
    policy = AddressPolicy.from_cidrs(["127.0.0.1/32"])  # the "public" address of this test
    async with Listener("127.0.0.1") as good:
        async with Listener("127.0.0.2", good.port) as trap:
            resolver = Rebinding(["127.0.0.1"], ["127.0.0.2"])
            client = UpstreamClient(ServerConfig(), policy, resolver)
            url = f"http://provider.test:{good.port}/v1/chat/completions"
            try:
                resp = await client.post(url, {}, b"{}")
                assert resp.status == 200
                resp.close()
                client.clear_dns_cache()  # the TTL ran out; the attacker's record now points inside
                with pytest.raises(EgressBlocked):
                    await client.post(url, {}, b"{}")
            finally:
                await client.close()
            assert resolver.lookups == 2 and good.connections == 1 and trap.connections == 0


async def test_c6_mixed_answers_connect_only_to_permitted_addresses():
    policy = AddressPolicy.from_cidrs(["127.0.0.1/32"])
    async with Listener("127.0.0.1") as good:
        async with Listener("127.0.0.2", good.port) as trap:
            client = UpstreamClient(ServerConfig(), policy, Rebinding(["127.0.0.2", "127.0.0.1", "127.0.0.2"]))
            try:
                for _ in range(3):
                    resp = await client.post(f"http://provider.test:{good.port}/x", {}, b"{}")
                    assert resp.status == 200
                    resp.close()
            finally:
                await client.close()
            assert good.connections == 3 and trap.connections == 0


async def test_c8_environment_proxies_are_ignored(monkeypatch):
    """HTTP(S)_PROXY in the pod's environment must not reroute provider traffic (trust_env=False)."""
    policy = AddressPolicy.from_cidrs(["127.0.0.0/8"])
    async with Listener("127.0.0.1") as direct:
        async with Listener("127.0.0.2") as env_proxy:
            for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
                monkeypatch.setenv(var, f"http://127.0.0.2:{env_proxy.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            client = UpstreamClient(ServerConfig(), policy)
            try:
                resp = await client.post(f"http://127.0.0.1:{direct.port}/v1/x", {}, b"{}")
                assert resp.status == 200
                resp.close()
            finally:
                await client.close()
            assert direct.connections == 1 and env_proxy.connections == 0
