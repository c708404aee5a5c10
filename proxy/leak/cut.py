"""Reshape OpenAI responses when a choice's answer is replaced (finish_reason "content_filter").

Pure functions over parsed payloads: the stage applies them to events.
"""

from __future__ import annotations

from typing import Any, Iterable

from proxy.wire.openai import text_chunk

CONTENT_FILTER = "content_filter"


def cut_chunk(template: Any, index: int, message: str, route: str) -> dict[str, Any]:
    """The streamed chunk that ends choice `index`: the generic message and content_filter."""
    field = "text" if route == "completions" else "content"
    chunk = text_chunk(template, (index, field, -1), message)
    chunk["choices"][0]["finish_reason"] = CONTENT_FILTER
    return chunk


def _index(choice: dict, pos: int) -> int:
    idx = choice.get("index", pos)
    return idx if isinstance(idx, int) else pos


def drop_choices(payload: Any, indexes: Iterable[int], keep_finish: Iterable[int] = ()) -> bool:
    """Remove later deltas of cut choices from a chunk; for choices cut in this very chunk
    (`keep_finish`... their text stays) the upstream finish_reason is cleared. True if changed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        return False
    gone = set(indexes)
    clear = set(keep_finish)
    changed = False
    kept = []
    for pos, choice in enumerate(payload["choices"]):
        if not isinstance(choice, dict):
            kept.append(choice)
            continue
        idx = _index(choice, pos)
        if idx in gone:
            changed = True
            continue
        if idx in clear and choice.get("finish_reason") is not None:
            choice["finish_reason"] = None  # the cut chunk that follows carries content_filter
            changed = True
        kept.append(choice)
    if changed:
        payload["choices"] = kept
    return changed


def is_empty_chunk(payload: Any) -> bool:
    """A chunk left with no choices and nothing else a client needs (no usage)."""
    return isinstance(payload, dict) and payload.get("choices") == [] and not payload.get("usage")


def cut_body_choice(payload: Any, index: int, message: str) -> bool:
    """A whole (non-streamed) response: choice `index` ends with the message, no tool calls."""
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        return False
    for pos, choice in enumerate(payload["choices"]):
        if not isinstance(choice, dict) or _index(choice, pos) != index:
            continue
        if isinstance(choice.get("text"), str):
            choice["text"] += message
        msg = choice.get("message")
        if isinstance(msg, dict):
            content = msg.get("content")
            msg["content"] = (content if isinstance(content, str) else "") + message
            for k in ("tool_calls", "function_call"):
                msg.pop(k, None)
        choice["finish_reason"] = CONTENT_FILTER
        return True
    return False
