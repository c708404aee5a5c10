"""One unit of response flowing through the stages.

A JSON response is one Event (kind="body"); an SSE response is N events
(kind="sse"). Stages never branch on streaming: they read and change
`payload` (the parsed JSON object, or None for `[DONE]`/comments/non-JSON data)
and call `mark_changed()`; untouched SSE events keep their original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

_UNPARSED = object()


@dataclass(eq=False)
class Event:
    kind: Literal["sse", "body"]
    data: str | None = None  # SSE: joined data lines (None for a comment-only frame)
    event: str | None = None  # SSE event name
    id: str | None = None
    retry: str | None = None
    comment: str | None = None
    raw: bytes | None = None  # original bytes; None once changed (then re-encoded)
    _payload: Any = field(default=_UNPARSED, repr=False)

    @property
    def is_done(self) -> bool:
        data = self.data
        return self.kind == "sse" and data is not None and "[DONE]" in data and data.strip() == "[DONE]"  # no copy per chunk

    @property
    def payload(self) -> Any:
        """Parsed JSON of the data (None if absent, `[DONE]` or not JSON)."""
        if self._payload is _UNPARSED:
            self._payload = None
            if self.data and not self.is_done:
                try:
                    self._payload = orjson.loads(self.data)
                except orjson.JSONDecodeError:
                    self._payload = None
        return self._payload

    def set_payload(self, obj: Any) -> None:
        self._payload = obj
        self.data = orjson.dumps(obj).decode()
        self.raw = None

    def mark_changed(self) -> None:
        """Call after mutating `payload` in place: the event is re-encoded."""
        if self._payload is not _UNPARSED and self._payload is not None:
            self.data = orjson.dumps(self._payload).decode()
        self.raw = None

    @classmethod
    def body(cls, obj: Any) -> "Event":
        ev = cls(kind="body")
        ev.set_payload(obj)
        return ev

    @classmethod
    def sse_json(cls, obj: Any, event: str | None = None) -> "Event":
        ev = cls(kind="sse", event=event)
        ev.set_payload(obj)
        return ev
