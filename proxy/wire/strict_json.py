"""Strict JSON for request bodies: one meaning per document.

Rejects what Python's json (and a naive proxy) would accept and then misread:
duplicate keys (the proxy and the provider could read different values),
NaN/Infinity/1e999 (re-emitted as invalid JSON), invalid UTF-8 and lone
surrogates, and nesting deeper than a small limit (a 100k-deep array is a 500
in json, a CPU sink everywhere).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class JSONRejected(ValueError):
    def __init__(self, message: str, code: str = "invalid_json"):
        super().__init__(message)
        self.code = code


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # C speed; only a document with a duplicate pays for the search below
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise JSONRejected(f"duplicate key {k[:64]!r} in the JSON body", "duplicate_key")
            seen.add(k)
    return out


def _depth_ok(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return True


def loads_strict(raw: bytes, max_depth: int = 64) -> Any:
    try:
        obj = orjson.loads(raw)  # strict RFC 8259: no NaN/Infinity, UTF-8 only, bounded depth
    except orjson.JSONDecodeError as e:
        msg = str(e).split(":", 1)[0]
        raise JSONRejected(f"the request body is not valid JSON ({msg})") from None
    if not _depth_ok(obj, max_depth):
        raise JSONRejected(f"the JSON body is nested deeper than {max_depth} levels", "json_too_deep")
    if isinstance(obj, dict) and raw.count(b":") > len(obj):
        # Only documents with nested objects or colons in strings get the second,
        # duplicate-aware parse; depth is already bounded so it cannot recurse far.
        json.loads(raw, object_pairs_hook=_no_duplicates)
    return obj
