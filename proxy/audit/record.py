"""The audit record of one exchange: what happened, who asked, what each stage decided.

Built from the Exchange after every other stage finished. It holds digests,
counts and verdicts, never raw prompts, JWTs, provider keys or PII values:
decision details are copied as the stages reported them, bounded, and any
string that contains a credential this exchange carried is replaced.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable

from proxy.pipeline.exchange import Exchange

RECORD_VERSION = 1
MAX_DETAIL_STRING = 256  # longer strings in a decision detail are cut (verdicts are short)
MAX_DETAIL_ITEMS = 64
_CLAIMED_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.")  # any JWT, not only this caller's
REDACTED = "[redacted]"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def credentials_of(ex: Exchange, provider_keys: Iterable[str | None]) -> tuple[str, ...]:
    """Secrets that must never appear in a record: the caller's bearer token, provider keys."""
    out = [k for k in provider_keys if k and len(k) >= 8]
    auth = _header(ex.client_headers, "Authorization")
    if auth:
        token = auth.split(None, 1)[-1]
        if len(token) >= 8:
            out.append(token)
    return tuple(out)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if hasattr(headers, "get") else None
    if value is None and isinstance(headers, dict):  # plain dicts in tests are case-sensitive
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value if isinstance(value, str) else None


def _clean(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of a decision detail (JCS needs finite numbers)."""
    if value is None or isinstance(value, bool) or isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(s in value for s in secrets) or ("eyJ" in value and _JWT_SHAPE.search(value)):
            return REDACTED
        return value if len(value) <= MAX_DETAIL_STRING else value[:MAX_DETAIL_STRING] + "…"
    if depth >= 4:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_DETAIL_ITEMS]
        return {str(k): _clean(v, secrets, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v, secrets, depth + 1) for v in list(value)[:MAX_DETAIL_ITEMS]]
    return _clean(str(value), secrets, depth)


def summarize(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdicts a compliance officer asks for first, lifted from the stages' decisions.

    Read by stage name and detail key as the stages report them (budget: reserved_usd /
    settled_usd; pii: counts; injection: score; leak: detector/kind/count); the full
    `decisions` list stays in the record whatever this finds.
    """
    out: dict[str, Any] = {"reserved_usd": None, "settled_usd": None, "pii_counts": {}, "pii_action": None,
                           "injection_score": None, "injection_action": None, "leak_hits": []}
    for d in decisions:
        stage, what, detail = d["stage"], d["decision"], d["detail"]
        if stage == "budget":
            if "reserved_usd" in detail:
                out["reserved_usd"] = detail["reserved_usd"]
            if what == "settle" and "settled_usd" in detail:
                out["settled_usd"] = detail["settled_usd"]
            elif what == "release":
                out["settled_usd"] = 0
        elif stage == "pii" and what in ("tokenized", "blocked") and isinstance(detail.get("counts"), dict):
            for k, v in detail["counts"].items():
                if isinstance(v, int):
                    out["pii_counts"][k] = out["pii_counts"].get(k, 0) + v
            out["pii_action"] = what
        elif stage == "injection" and what != "deny":
            out["injection_action"] = what
            if isinstance(detail.get("score"), (int, float)):
                out["injection_score"] = detail["score"]
        elif stage == "leak" and what != "deny":
            out["leak_hits"].append({"action": what, "detector": detail.get("detector"), "kind": detail.get("kind"),
                                     "count": detail.get("count")})
    return out


def build_record(ex: Exchange, *, secrets: tuple[str, ...], at: str | None = None) -> dict[str, Any]:
    """The record's facts; digest fields stay None until digest.Capture.apply fills them."""
    ident = ex.identity
    claimed = None
    if ident is None:
        raw = _header(ex.client_headers, ex.policy.model.auth.tenant_header)
        if raw is not None:
            claimed = raw if _CLAIMED_TENANT.match(raw) else "<invalid>"
    usage = ex.usage
    started, finished = ex.started, ex.finished
    decisions = [{"stage": d.stage, "decision": d.decision, "detail": _clean(dict(d.detail), secrets)} for d in ex.decisions]
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "type": "exchange",
        "time": at or utc_now(),
        "request_id": ex.request_id,
        "completion_id": _clean(ex.completion_id, secrets),
        "tenant": ident.tenant if ident else None,
        "claimed_tenant": claimed,  # unverified: the header of a request whose JWT failed
        "subject": _clean(ident.subject, secrets) if ident else None,
        "jti": _clean(ident.jti, secrets) if ident else None,
        "route": ex.route,
        "path": ex.path,  # e.g. /v1/audit: who read the audit log is itself audited
        "method": ex.method,
        "model": _clean(ex.model, secrets),
        "stream": bool(ex.stream),
        "provider": ex.provider.name if ex.provider is not None else None,
        "status": ex.response_status,
        "outcome": ex.outcome,
        "denied": {"stage": ex.denied[0], "reason": _clean(ex.denied[1], secrets)} if ex.denied else None,
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "reported": usage.reported, "streamed_chars": usage.streamed_chars},
        "decisions": decisions,
        "verdicts": summarize(decisions),
        "policy": ex.policy.digest,
        "tools_offered": _tools_offered(ex.body, secrets),
        "tool_calls": [],  # filled by the writer from the response
        "prompt_digest": None,
        "response_digest": None,
        "response_chars": 0,
        "duration_us": int(((finished or time.perf_counter()) - started) * 1e6),
    }
    if ident is None:  # refused at authentication: who knocked (the socket's peer, never a header)
        record["client"] = ex.peer[:64] or None
    return record



def _tools_offered(body: Any, secrets: tuple[str, ...]) -> list[str]:
    """Names of the functions the request offered the model (names only, never schemas)."""
    tools = body.get("tools") if isinstance(body, dict) else None
    out = []
    for tool in tools if isinstance(tools, list) else ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out.append(_clean(fn["name"][:128], secrets))
    return out[:64]
