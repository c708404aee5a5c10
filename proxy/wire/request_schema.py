"""What a request body may contain, per route: an allowlist with types and ranges.

Unknown top-level fields are refused (a proxy that forwards fields it does not
understand cannot promise what the provider will do with them). Fields that try
to choose the upstream (api_base, base_url, extra_headers, ...) get their own
error code: the client never chooses where a request goes.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

Check = Callable[[Any], str | None]  # returns an error message or None

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_CTL = re.compile(r"[\x00-\x1f\x7f]")

UPSTREAM_OVERRIDES = frozenset({
    "api_base", "base_url", "api_key", "api_version", "extra_headers", "extra_body", "extra_query",
    "headers", "url", "endpoint", "proxy", "organization", "custom_llm_provider", "litellm_params",
    "deployment_id", "azure_endpoint", "azure_deployment", "aws_region_name", "vertex_location",
})


class SchemaRejected(ValueError):
    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


def _int(lo: int, hi: int) -> Check:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer between {lo} and {hi}"
    return check


def _num(lo: float, hi: float) -> Check:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            return f"must be a number between {lo} and {hi}"
    return check


def _bool(v):
    if not isinstance(v, bool):
        return "must be a boolean"


def _dict(v):
    if not isinstance(v, dict):
        return "must be an object"


def _list(v):
    if not isinstance(v, list):
        return "must be an array"


def _any(v):
    return None


def _short_str(limit: int) -> Check:
    def check(v):
        if not isinstance(v, str) or len(v) > limit or _CTL.search(v):
            return f"must be a string of at most {limit} characters without control characters"
    return check


def _stop(v):
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, list) and len(v) <= 4 and all(isinstance(s, str) for s in v):
        return None
    return "must be a string or an array of at most 4 strings"


def _stream_options(v):
    if not isinstance(v, dict) or set(v) - {"include_usage", "include_obfuscation"} or not all(isinstance(x, bool) for x in v.values()):
        return "must be an object like {\"include_usage\": true}"


def _metadata(v):
    if not isinstance(v, dict) or len(v) > 16:
        return "must be an object of at most 16 string values"
    for k, x in v.items():
        if k in UPSTREAM_OVERRIDES:
            return f"may not carry {k!r}"
        if not isinstance(x, str) or len(k) > 64 or len(x) > 512:
            return "must map short keys to strings"


_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _messages(v):
    if not isinstance(v, list) or not v:
        return "must be a non-empty array of messages"
    if len(v) > 4096:
        return "has too many messages (at most 4096)"
    for i, m in enumerate(v):
        if not isinstance(m, dict):
            return f"[{i}] must be an object"
        if m.get("role") not in _ROLES:
            return f"[{i}].role must be one of {sorted(_ROLES)}"
        c = m.get("content")
        if c is not None and not isinstance(c, (str, list)):
            return f"[{i}].content must be a string, an array of parts, or null"
        if isinstance(c, list) and not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in c):
            return f"[{i}].content parts must be objects with a type"
        if "name" in m and (not isinstance(m["name"], str) or len(m["name"]) > 256):
            return f"[{i}].name must be a short string"
        tc = m.get("tool_calls")
        if tc is not None and not (isinstance(tc, list) and all(isinstance(t, dict) for t in tc)):
            return f"[{i}].tool_calls must be an array of objects"


def _prompt(v):
    if isinstance(v, str):
        return None
    if isinstance(v, list) and v and (all(isinstance(x, str) for x in v) or all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
        return None
    return "must be a string or a non-empty array of strings or token ids"


def _embedding_input(v):
    if isinstance(v, str):
        return None if v else "must not be empty"
    if isinstance(v, list) and v and len(v) <= 2048:
        if all(isinstance(x, str) for x in v) or all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return None
        if all(isinstance(x, list) and all(isinstance(y, int) and not isinstance(y, bool) for y in x) for x in v):
            return None
    return "must be a string or an array (at most 2048) of strings or token ids"


_COMMON: dict[str, Check] = {
    "model": _short_str(128), "user": _short_str(256), "stream": _bool, "stream_options": _stream_options,
    "max_tokens": _int(1, 1_000_000), "temperature": _num(0, 2), "top_p": _num(0, 1),
    "n": _int(1, 16), "stop": _stop, "presence_penalty": _num(-2, 2), "frequency_penalty": _num(-2, 2),
    "logit_bias": _dict, "seed": _int(-(2**63), 2**63 - 1),
}

FIELDS: dict[str, dict[str, Check]] = {
    "chat": {
        **_COMMON, "messages": _messages, "max_completion_tokens": _int(1, 1_000_000),
        "logprobs": _bool, "top_logprobs": _int(0, 20), "tools": _list, "tool_choice": _any,
        "parallel_tool_calls": _bool, "response_format": _dict, "functions": _list, "function_call": _any,
        "store": _bool, "metadata": _metadata, "service_tier": _short_str(32), "reasoning_effort": _short_str(16),
        "modalities": _list, "audio": _dict, "prediction": _dict, "verbosity": _short_str(16),
        "prompt_cache_key": _short_str(256), "safety_identifier": _short_str(256), "web_search_options": _dict,
    },
    "completions": {
        **_COMMON, "prompt": _prompt, "suffix": _short_str(100_000), "logprobs": _int(0, 5), "echo": _bool,
        "best_of": _int(1, 16),
    },
    "embeddings": {
        "model": _short_str(128), "input": _embedding_input, "user": _short_str(256),
        "encoding_format": lambda v: None if v in ("float", "base64") else "must be float or base64",
        "dimensions": _int(1, 65536),
    },
}

REQUIRED = {"chat": ("model", "messages"), "completions": ("model", "prompt"), "embeddings": ("model", "input")}


def validate_request(route: str, body: Any) -> None:
    """Raise SchemaRejected naming the first bad field."""
    if not isinstance(body, dict):
        raise SchemaRejected("the request body must be a JSON object")
    fields = FIELDS[route]
    for key in body:
        if key in UPSTREAM_OVERRIDES:
            raise SchemaRejected(f"the field {key!r} is not allowed: the upstream is chosen by the proxy's policy, never by the client",
                                 "upstream_override_forbidden", key)
        if key not in fields:
            raise SchemaRejected(f"unknown field {key[:64]!r} for this endpoint", "unknown_field", key[:64])
    for key in REQUIRED[route]:
        if key not in body:
            raise SchemaRejected(f"missing required field {key!r}", "missing_field", key)
    for key, value in body.items():
        if value is None and key not in ("model", "messages", "input", "prompt"):
            continue
        err = fields[key](value)
        if err:
            raise SchemaRejected(f"{key} {err}", "invalid_value", key)
    if not MODEL_NAME.match(body["model"]):
        raise SchemaRejected("model must be a plain model name", "invalid_value", "model")
