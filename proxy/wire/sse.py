"""Incremental Server-Sent Events codec (cf. httpx's decode()/flush() decoders).

`SSEDecoder.feed(bytes)` returns the events completed by that chunk, carrying
partial lines and partial events over to the next chunk, so a stream split at
any byte boundary decodes to the same events. Lines end in CR, LF or CRLF (a CR
at the end of a chunk waits to see whether an LF follows). Each event keeps its
original bytes, so untouched events pass through byte-identical.
"""

from __future__ import annotations

import re

from proxy.wire.event import Event

_EOL = re.compile(rb"\r\n|\r|\n")


class SSEError(ValueError):
    """The upstream stream is not valid SSE within our bounds (e.g. a line too long)."""


class SSEDecoder:
    __slots__ = ("_buf", "_scan", "_event_start", "_fields", "_max_line", "_max_event")

    def __init__(self, max_line: int = 1_048_576, max_event: int = 4 * 1_048_576) -> None:
        self._buf = bytearray()
        self._scan = 0  # where the current (unfinished) line starts
        self._event_start = 0  # where the current event's raw bytes start
        self._fields: list[tuple[bytes, bytes]] = []
        self._max_line = max_line
        self._max_event = max_event

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        return self._scan_lines(final=False)

    def _scan_lines(self, final: bool) -> list[Event]:
        events: list[Event] = []
        buf = self._buf
        pos = self._scan
        while True:
            m = _EOL.search(buf, pos)
            if m is None:
                break
            if m.group() == b"\r" and m.end() == len(buf) and not final:
                break  # a CR at the end may be the first half of CRLF: wait
            line = bytes(buf[pos:m.start()])
            pos = m.end()
            if line:
                self._fields.append(_split_field(line))
            else:
                ev = self._dispatch(bytes(buf[self._event_start:pos]))
                self._event_start = pos
                if ev is not None:
                    events.append(ev)
        self._scan = pos
        if len(buf) - self._scan > self._max_line:
            raise SSEError(f"SSE line longer than {self._max_line} bytes")
        if self._scan - self._event_start > self._max_event:
            raise SSEError(f"SSE event larger than {self._max_event} bytes")
        if self._event_start > 65536:  # compact: drop bytes already emitted
            del buf[: self._event_start]
            self._scan -= self._event_start
            self._event_start = 0
        return events

    def flush(self) -> list[Event]:
        """End of stream. An unterminated final event is returned (marked `unterminated`)
        so the stages still scan it: it is never passed on unscanned."""
        events = self._scan_lines(final=True)  # a trailing CR is a line end now
        tail = bytes(self._buf[self._scan:])
        if tail:
            self._fields.append(_split_field(tail))
        raw = bytes(self._buf[self._event_start:])
        self._buf.clear()
        self._scan = self._event_start = 0
        ev = self._dispatch(raw)
        if ev is not None:
            ev.raw = None  # re-encoded with a proper terminator
            events.append(ev)
        return events

    def _dispatch(self, raw: bytes) -> Event | None:
        fields, self._fields = self._fields, []
        if not fields:
            return None
        data: list[str] = []
        ev = Event(kind="sse", raw=raw)
        comments: list[str] = []
        for name, value in fields:
            v = value.decode("utf-8", "replace")
            if name == b"data":
                data.append(v)
            elif name == b"":
                comments.append(v)
            elif name == b"event":
                ev.event = v
            elif name == b"id":
                ev.id = v
            elif name == b"retry":
                ev.retry = v
        ev.data = "\n".join(data) if data else None
        ev.comment = "\n".join(comments) if comments else None
        return ev


def _split_field(line: bytes) -> tuple[bytes, bytes]:
    if line[:1] == b":":
        return b"", line[2:] if line[1:2] == b" " else line[1:]
    name, sep, value = line.partition(b":")
    if sep and value[:1] == b" ":
        value = value[1:]
    return name, value


def encode_event(ev: Event) -> bytes:
    """The event's bytes on the wire: its original bytes if untouched, else re-encoded."""
    if ev.raw is not None:
        return ev.raw
    out = []
    if ev.comment is not None:
        out.extend(f": {c}\n" for c in ev.comment.split("\n"))
    if ev.event is not None:
        out.append(f"event: {_one_line(ev.event)}\n")
    if ev.id is not None:
        out.append(f"id: {_one_line(ev.id)}\n")
    if ev.retry is not None:
        out.append(f"retry: {_one_line(ev.retry)}\n")
    if ev.data is not None:
        out.extend(f"data: {line}\n" for line in ev.data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    out.append("\n")
    return "".join(out).encode()


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def comment(text: str) -> bytes:
    return f": {_one_line(text)}\n\n".encode()
