"""A stage's refusal, rendered as an OpenAI-shaped error."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deny:
    """Returned (or raised as DenyError) by a stage to stop an exchange.

    status/type/code follow the OpenAI error shape; `headers` are added to the
    error response (e.g. Retry-After); `reason` is a short machine-readable cause
    recorded in metrics and audit (never a secret or a PII value).
    """

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": None}}


class DenyError(Exception):
    """Raised from deep inside a stage or engine call path to deny."""

    def __init__(self, deny: Deny):
        super().__init__(deny.message)
        self.deny = deny


def bad_request(message: str, code: str = "invalid_request", reason: str = "") -> Deny:
    return Deny(400, message, "invalid_request_error", code, reason=reason or code)


def unauthorized(message: str, code: str = "invalid_token") -> Deny:
    return Deny(401, message, "authentication_error", code, {"WWW-Authenticate": 'Bearer realm="ramparts"'}, reason=code)


def forbidden(message: str, code: str = "forbidden") -> Deny:
    return Deny(403, message, "permission_error", code, reason=code)


def unavailable(message: str, code: str = "unavailable", retry_after: int = 1) -> Deny:
    return Deny(503, message, "service_unavailable", code, {"Retry-After": str(retry_after)}, reason=code)
