"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from typing import Mapping

# Response headers from the provider that the client may see. Everything else
# (Set-Cookie, Server, openai-organization, framing, provider rate-limit
# details of the shared provider account) is dropped; framing is regenerated.
RESPONSE_ALLOW = frozenset({"content-type", "retry-after", "openai-processing-ms", "x-request-id", "openai-version"})

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})


def client_response_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in upstream.items():
        lname = name.lower()
        if lname in RESPONSE_ALLOW and "\r" not in value and "\n" not in value:
            out["X-Upstream-Request-ID" if lname == "x-request-id" else name] = value
    return out
