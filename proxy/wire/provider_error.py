"""Turn a provider's error answer into the client's: status mapped, key fragments scrubbed.

Providers echo parts of the API key in 401 bodies ("Incorrect API key provided:
sk-proj-****abcd"). The key is the proxy's, not the client's: no fragment of it
may reach the client.
"""

from __future__ import annotations

import re
from typing import Any

_KEYLIKE = re.compile(r"\b(?:sk|rk|pk)[-_][A-Za-z0-9_*.\-]{2,}|\bkey-[A-Za-z0-9*]{8,}|\bAKIA[0-9A-Z]{12,}")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
            for frag in {s[:8], s[-6:]}:  # the shapes providers print
                if len(frag) >= 6:
                    text = text.replace(frag, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


def client_status(upstream_status: int) -> int:
    """Provider auth errors are the proxy's problem, not the client's: 502."""
    if upstream_status == 429:
        return 429
    if upstream_status in (400, 404, 409, 413, 415, 422):
        return upstream_status
    if upstream_status in (503, 504):
        return upstream_status
    return 502


def client_error(upstream_status: int, payload: Any, secrets: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
    status = client_status(upstream_status)
    message, type_, code = None, "upstream_error", None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        if isinstance(err.get("message"), str):
            message = err["message"][:2000]
        if isinstance(err.get("type"), str) and len(err["type"]) <= 64:
            type_ = err["type"]
        if isinstance(err.get("code"), str) and len(err["code"]) <= 64:
            code = err["code"]
    if upstream_status in (401, 403):
        message, type_, code = "the provider rejected the proxy's credentials", "upstream_error", "upstream_auth_failed"
    elif message is None:
        message = f"the provider answered {upstream_status}"
    message = scrub(message, secrets)
    return status, {"error": {"message": message, "type": type_, "code": code, "param": None}}
