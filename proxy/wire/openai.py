"""Where text lives in OpenAI requests and responses.

Request side: `request_carriers(route, body)` lists every string a detector must
see (message content strings and parts, names, tool_calls arguments, tool
results, tool descriptions, response_format schemas, completions prompt,
embeddings input) with a path to read and write it.

Response side: `response_slots(payload)` lists the text fields of a JSON
response or of one streamed chunk, keyed so that the same logical stream
(choice i's content, choice i's tool call j arguments, ...) gets the same key
across chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import orjson

Path = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Carrier:
    """One string inside a request body."""

    path: Path
    kind: str  # content | name | tool_arguments | tool_description | schema | prompt | input
    role: str | None  # system | developer | user | assistant | tool | function | None

    @property
    def is_system(self) -> bool:
        return self.role in ("system", "developer")


def get_at(obj: Any, path: Path) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def set_at(obj: Any, path: Path, value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def request_carriers(route: str, body: dict[str, Any]) -> list[Carrier]:
    out: list[Carrier] = []
    if route == "chat":
        for i, msg in enumerate(body.get("messages") or ()):
            if not isinstance(msg, dict):
                continue
            role = msg.get("role") if isinstance(msg.get("role"), str) else None
            _message_carriers(out, ("messages", i), msg, role)
        for i, tool in enumerate(body.get("tools") or ()):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict):
                if isinstance(fn.get("description"), str):
                    out.append(Carrier(("tools", i, "function", "description"), "tool_description", None))
                if isinstance(fn.get("parameters"), dict):
                    out.extend(_strings_in(fn["parameters"], ("tools", i, "function", "parameters"), "schema"))
        rf = body.get("response_format")
        if isinstance(rf, dict):
            out.extend(_strings_in(rf, ("response_format",), "schema"))
    elif route == "completions":
        out.extend(_string_or_list(body, "prompt", "prompt", "user"))
        if isinstance(body.get("suffix"), str):
            out.append(Carrier(("suffix",), "prompt", "user"))
    elif route == "embeddings":
        out.extend(_string_or_list(body, "input", "input", "user"))
    return out


def _message_carriers(out: list[Carrier], base: Path, msg: dict, role: str | None) -> None:
    content = msg.get("content")
    if isinstance(content, str):
        out.append(Carrier(base + ("content",), "content", role))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
                out.append(Carrier(base + ("content", j, "text"), "content", role))
            elif isinstance(part, dict) and part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                out.append(Carrier(base + ("content", j, "refusal"), "content", role))
    if isinstance(msg.get("name"), str):
        out.append(Carrier(base + ("name",), "name", role))
    for k, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            out.append(Carrier(base + ("tool_calls", k, "function", "arguments"), "tool_arguments", role))
    fc = msg.get("function_call")
    if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
        out.append(Carrier(base + ("function_call", "arguments"), "tool_arguments", role))


def _string_or_list(body: dict, key: str, kind: str, role: str) -> Iterator[Carrier]:
    value = body.get(key)
    if isinstance(value, str):
        yield Carrier((key,), kind, role)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield Carrier((key, i), kind, role)


def _strings_in(obj: Any, base: Path, kind: str) -> Iterator[Carrier]:
    """Every string value nested in a JSON schema-like object (descriptions, enums)."""
    stack: list[tuple[Any, Path]] = [(obj, base)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str):
                    if k in ("description", "title", "default", "const", "pattern"):
                        yield Carrier(path + (k,), kind, None)
                elif isinstance(v, (dict, list)):
                    stack.append((v, path + (k,)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    yield Carrier(path + (i,), kind, None)
                elif isinstance(v, (dict, list)):
                    stack.append((v, path + (i,)))


# ---------------------------------------------------------------- responses

SlotKey = tuple[int, str, int]  # (choice index, field, tool call index or -1)

_DELTA_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")
_TEXT_FIELD_SET = frozenset(_DELTA_TEXT_FIELDS)


@dataclass(frozen=True, slots=True)
class Slot:
    key: SlotKey
    path: Path


def response_slots(payload: Any) -> list[Slot]:
    """Text fields of a chat/completions JSON response or of one streamed chunk."""
    out: list[Slot] = []
    if not isinstance(payload, dict):
        return out
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return out
    for pos, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        idx = choice.get("index", pos)
        idx = idx if isinstance(idx, int) else pos
        if isinstance(choice.get("text"), str):  # completions
            out.append(Slot((idx, "text", -1), ("choices", pos, "text")))
        for holder in ("delta", "message"):
            msg = choice.get(holder)
            if not isinstance(msg, dict):
                continue
            for f in _DELTA_TEXT_FIELDS:
                if isinstance(msg.get(f), str):
                    out.append(Slot((idx, f, -1), ("choices", pos, holder, f)))
            calls = msg.get("tool_calls")
            for tpos, call in enumerate(calls if isinstance(calls, list) else ()):  # a provider's 5 is no list
                if not isinstance(call, dict):
                    continue
                fn = call.get("function")
                tidx = call.get("index", tpos)
                tidx = tidx if isinstance(tidx, int) else tpos
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    out.append(Slot((idx, "tool_arguments", tidx), ("choices", pos, holder, "tool_calls", tpos, "function", "arguments")))
            fc = msg.get("function_call")
            if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
                out.append(Slot((idx, "function_arguments", -1), ("choices", pos, holder, "function_call", "arguments")))
    return out


_OTHER_DELTA_SLOTS = frozenset(("reasoning_content", "reasoning", "refusal", "tool_calls", "function_call"))


def lone_text(payload: dict[str, Any]) -> tuple[SlotKey, dict[str, Any], str] | None:
    """The common streamed chunk in one look, for the per-event hot path.

    When `payload` has one choice without a finish_reason whose only text slot is
    `delta.content` (chat) or `text` (completions), returns (key, holder, field): the slot
    response_slots(payload) would list alone, with holder[field] its text. None for
    anything else (the caller then takes response_slots and finished_choices).
    """
    choices = payload.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or choice.get("finish_reason"):
        return None
    idx = choice.get("index", 0)
    if not isinstance(idx, int):
        idx = 0
    delta = choice.get("delta")
    if isinstance(choice.get("message"), dict):
        return None
    if isinstance(delta, dict):
        if isinstance(choice.get("text"), str) or not isinstance(delta.get("content"), str):
            return None
        for k in delta:
            if k in _OTHER_DELTA_SLOTS and delta[k] is not None:
                return None  # maybe another slot: the general path decides
        return (idx, "content", -1), delta, "content"
    if isinstance(choice.get("text"), str):
        return (idx, "text", -1), choice, "text"
    return None


def text_length(payload: Any) -> int:
    """Characters in all text slots of a response or chunk: the sum of len(get_at(payload, s.path))
    over response_slots(payload), without building slots (the handler counts every event, so
    this walks only the keys a chunk has: a delta is usually just {"content": ...})."""
    if not isinstance(payload, dict):
        return 0
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return 0
    n = 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        for key, value in choice.items():
            if key == "text":
                if isinstance(value, str):
                    n += len(value)
            elif (key == "delta" or key == "message") and isinstance(value, dict):
                for f, v in value.items():
                    if f in _TEXT_FIELD_SET:
                        if isinstance(v, str):
                            n += len(v)
                    elif f == "tool_calls":
                        if isinstance(v, list):
                            for call in v:
                                fn = call.get("function") if isinstance(call, dict) else None
                                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                                    n += len(fn["arguments"])
                    elif f == "function_call" and isinstance(v, dict) and isinstance(v.get("arguments"), str):
                        n += len(v["arguments"])
    return n


def finished_choices(payload: Any) -> list[int]:
    """Indexes of choices that carry a finish_reason in this chunk/response."""
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        return []
    out = []
    for pos, choice in enumerate(payload["choices"]):
        if isinstance(choice, dict) and choice.get("finish_reason"):
            idx = choice.get("index", pos)
            out.append(idx if isinstance(idx, int) else pos)
    return out


def text_chunk(template: Any, key: SlotKey, text: str) -> dict[str, Any]:
    """A streamed chunk carrying `text` in the slot `key`, shaped like `template`."""
    choice_idx, field, tool_idx = key
    base: dict[str, Any] = {}
    if isinstance(template, dict):
        for k in ("id", "object", "created", "model", "system_fingerprint"):
            if k in template:
                base[k] = template[k]
    if field == "text":
        choice: dict[str, Any] = {"index": choice_idx, "text": text, "finish_reason": None}
        base.setdefault("object", "text_completion")
    elif field == "tool_arguments":
        choice = {"index": choice_idx, "delta": {"tool_calls": [{"index": tool_idx, "function": {"arguments": text}}]}, "finish_reason": None}
    elif field == "function_arguments":
        choice = {"index": choice_idx, "delta": {"function_call": {"arguments": text}}, "finish_reason": None}
    else:
        choice = {"index": choice_idx, "delta": {field: text}, "finish_reason": None}
    base["choices"] = [choice]
    return base


def usage_of(payload: Any) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) if the payload carries a usage object."""
    if not isinstance(payload, dict):
        return None
    u = payload.get("usage")
    if not isinstance(u, dict):
        return None
    p, c = u.get("prompt_tokens"), u.get("completion_tokens", 0)
    if isinstance(p, int) and isinstance(c, int) and p >= 0 and c >= 0:
        return p, c
    return None


def error_payload(message: str, type_: str = "server_error", code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})
