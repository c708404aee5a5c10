"""A port for a child process to listen on, chosen so nothing else takes it before the child binds.

Binding port 0 and closing hands back a port from the kernel's ephemeral range, which is also where
every outbound connection's source port comes from: a load generator opening hundreds of sockets
can take that port between the pick and the child's bind (seen in CI as EADDRINUSE). Ports below
the ephemeral range are never handed out implicitly, so a random one that binds now stays free
unless another process picks the same number on purpose. A process never hands out the same
port twice (a bench picks a dozen before any child binds). Two processes can still pick the same
number (about 1 in 12,000 per pair of picks): `bench.core.wait_listening` restarts a child whose
bind failed on fresh ports.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_FALLBACK_EPHEMERAL_LOW = 32768
_handed_out: set[int] = set()  # by this process: its children may not have bound them yet


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_LOW


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that binds now and lies below the ephemeral range."""
    high = _ephemeral_low() - 1
    low = max(1024, high - 12_000)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high} on {host}")
