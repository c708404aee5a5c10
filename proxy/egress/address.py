"""Which resolved IP addresses an upstream connection may reach.

The host:port allowlist alone is not enough: a public name can resolve to a
private address (DNS rebinding, a compromised record), and aiohttp skips the
resolver entirely for IP-literal hosts. Every address a connection will use is
checked here: public unicast only, unless a CIDR in `allow_private_ips` says so.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressPolicy:
    allowed_private: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> "AddressPolicy":
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def permits(self, address: str) -> bool:
        try:
            ip: IP = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # [::ffff:127.0.0.1] is 127.0.0.1
        if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None and not self.permits(str(ip.sixtofour)):
            return False  # 6to4 2002:7f00:1:: carries 127.0.0.1; Python calls it global
        if any(ip in net for net in self.allowed_private if net.version == ip.version):
            return True
        if ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved:
            return False
        return ip.is_global


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False
