"""Digests of prompt and response text: what was said, provable, without keeping it.

prompt digest   = SHA-256 of the RFC 8785 JSON array of the request's text
                  carriers (wire.openai.request_carriers order), as the
                  provider received them (after tokenization by earlier stages).
response digest = SHA-256 of the RFC 8785 JSON object {"<choice>:<field>:<tool>":
                  SHA-256 hex of that slot's concatenated text}; slots are
                  hashed incrementally, so memory stays flat however long the
                  stream is.

The request path only keeps references (`Capture`): the parsing and hashing
happen in the sink's writer thread, off the event loop (bench/audit_hot_path.py).

For an array of strings orjson's output is byte-identical to RFC 8785 (no key
order, no numbers; both escape only `"`, `\\` and control characters), and it
is ~50x faster on the request path; tests/audit/test_digest.py holds the proof.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from proxy.audit.canonical import canonical
from proxy.wire.openai import get_at, request_carriers, response_slots


def texts_of(route: str, body: dict[str, Any] | None) -> list[str]:
    if not isinstance(body, dict):
        return []
    out = []
    for c in request_carriers(route, body):
        value = get_at(body, c.path)
        if isinstance(value, str):
            out.append(value)
    return out


def strings_digest(texts: list[str]) -> str:
    try:
        data = orjson.dumps(texts)
    except TypeError:  # lone surrogates: orjson refuses; the JCS encoder decides
        data = canonical(texts)
    return hashlib.sha256(data).hexdigest()


class ResponseDigest:
    """Per-slot incremental SHA-256 of the response text; optionally keeps the text."""

    __slots__ = ("_slots", "_keep", "chars", "tool_names")

    def __init__(self, keep_text: bool = False) -> None:
        self._slots: dict[str, list] = {}  # key -> [sha256 object, kept parts or None]
        self._keep = keep_text
        self.chars = 0
        self.tool_names: list[str] = []  # functions the model called, in order (names, not arguments)

    def feed(self, payload: Any) -> None:
        # Fast path for the chunk shape that makes up nearly every stream: one choice whose delta
        # holds only content (role and null fields aside). Anything else takes wire.openai's
        # general walk; tests/audit/test_digest.py checks both give the same digest.
        choices = payload.get("choices") if type(payload) is dict else None
        if type(choices) is list and len(choices) == 1:
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if type(delta) is dict and "text" not in choice and "message" not in choice \
                    and all(v is None or k == "content" or k == "role" for k, v in delta.items()):
                text = delta.get("content")
                if type(text) is str and text:
                    idx = choice.get("index", 0)
                    self._add("%d:content:-1" % (idx if type(idx) is int else 0), text)
                return
        self.feed_general(payload)

    def feed_general(self, payload: Any) -> None:
        self._tool_names(payload)
        for slot in response_slots(payload):
            text = get_at(payload, slot.path)
            if text:
                self._add("%d:%s:%d" % slot.key, text)

    def _add(self, key: str, text: str) -> None:
        entry = self._slots.get(key)
        if entry is None:
            entry = self._slots[key] = [hashlib.sha256(), [] if self._keep else None]
        entry[0].update(text.encode("utf-8", "surrogatepass"))
        if entry[1] is not None:
            entry[1].append(text)
        self.chars += len(text)

    def _tool_names(self, payload: Any) -> None:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            msg = (choice.get("delta") or choice.get("message")) if isinstance(choice, dict) else None
            calls = msg.get("tool_calls") if isinstance(msg, dict) else None
            for call in calls if isinstance(calls, list) else ():
                fn = call.get("function") if isinstance(call, dict) else None
                name = fn.get("name") if isinstance(fn, dict) else None
                if isinstance(name, str) and name and len(self.tool_names) < 64:
                    self.tool_names.append(name[:128])

    def hexdigest(self) -> str | None:
        if not self._slots:
            return None
        per_slot = {k: v[0].hexdigest() for k, v in self._slots.items()}
        return hashlib.sha256(canonical(per_slot)).hexdigest()

    def texts(self) -> dict[str, str]:
        return {k: "".join(v[1]) for k, v in self._slots.items() if v[1] is not None}


class Capture:
    """What one exchange said, held by reference until the writer digests it.

    `prompt`: the request's text carriers as sent upstream; `response`: the raw
    data strings of the response events as the provider sent them (the audit
    stage is first on the way out). Strings are immutable, so later stages'
    edits never reach what is digested here.
    """

    __slots__ = ("prompt", "response")

    def __init__(self, prompt: list[str] | None = None) -> None:
        self.prompt = prompt
        self.response: list[str] = []

    def apply(self, body: dict[str, Any], keep_text: bool) -> dict[str, Any] | None:
        """Fill the record's digest fields; return the content to retain (when asked)."""
        body["prompt_digest"] = strings_digest(self.prompt) if self.prompt is not None else None
        rd = ResponseDigest(keep_text)
        for data in self.response:
            try:
                rd.feed(orjson.loads(data))
            except orjson.JSONDecodeError:  # [DONE], comments, a provider's non-JSON line
                continue
        body["response_digest"] = rd.hexdigest()
        body["response_chars"] = rd.chars
        body["tool_calls"] = rd.tool_names
        return {"prompt": self.prompt or [], "response": rd.texts()} if keep_text else None
