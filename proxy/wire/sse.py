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
    __slots__ = ("_buf", "_scan", "_event_start", "_fields", "_max_line", "_max_event", "_lf_only")

    def __init__(self, max_line: int = 1_048_576, max_event: int = 4 * 1_048_576) -> None:
        self._buf = bytearray()
        self._scan = 0  # where the current (unfinished) line starts
        self._event_start = 0  # where the current event's raw bytes start
        self._fields: list[tuple[bytes, bytes]] = []
        self._max_line = max_line
        self._max_event = max_event
        self._lf_only = True  # no CR seen yet: events end in exactly b"\n\n"

    def feed(self, chunk: bytes) -> list[Event]:
        if self._lf_only and b"\r" in chunk:
            self._lf_only = False
        if self._lf_only and self._event_start == len(self._buf) and not self._fields:
            return self._whole_events(chunk)  # the usual read: nothing pending before this chunk
        old_len = len(self._buf)
        self._buf += chunk
        if self._lf_only and not self._fields and self._scan == self._event_start:
            return self._scan_events(old_len)
        return self._scan_lines(final=False)

    def _whole_events(self, chunk: bytes) -> list[Event]:
        """LF-only chunk with nothing pending before it: one split, no buffer copies; only an
        unfinished last event is buffered. Same events, raw bytes and limits as the other paths
        (blank lines between events dispatch nothing)."""
        parts = chunk.split(b"\n\n")
        tail = parts.pop().lstrip(b"\n")
        events: list[Event] = []
        for piece in parts:
            if piece[:1] == b"\n":
                piece = piece.lstrip(b"\n")
            if not piece:
                continue
            raw = piece + b"\n\n"
            if piece[:6] == b"data: " and piece.find(b"\n", 6) < 0:  # one data line: most events
                events.append(Event(kind="sse", data=piece[6:].decode("utf-8", "replace"), raw=raw))
            else:
                self._fields = [_split_field(line) for line in piece.split(b"\n")]
                ev = self._dispatch(raw)
                if ev is not None:
                    events.append(ev)
        buf = self._buf
        buf.clear()
        self._scan = self._event_start = 0
        if tail:
            buf += tail
            line_start = tail.rfind(b"\n") + 1  # the unfinished line
            if len(tail) - line_start > self._max_line:
                raise SSEError(f"SSE line longer than {self._max_line} bytes")
            if line_start > self._max_event:
                raise SSEError(f"SSE event larger than {self._max_event} bytes")
        return events

    def _scan_events(self, old_len: int) -> list[Event]:
        """Fast path for LF-only streams (what providers send): split whole events at b"\n\n"
        with one memchr-style search instead of a regex per line; same events, same limits.
        Invariant on return: buf[_event_start:] holds no complete event and _scan == _event_start."""
        events: list[Event] = []
        buf = self._buf
        start = self._event_start
        search = max(start, old_len - 1)  # what was buffered before had no b"\n\n"
        while True:
            while start < len(buf) and buf[start] == 0x0A:  # blank lines between events dispatch nothing
                start += 1
            end = buf.find(b"\n\n", max(start, search))
            if end < 0:
                break
            raw = bytes(buf[start:end + 2])
            if raw[:6] == b"data: " and raw.find(b"\n", 6) == len(raw) - 2:  # one data line: most events
                events.append(Event(kind="sse", data=raw[6:-2].decode("utf-8", "replace"), raw=raw))
            else:
                self._fields = [_split_field(line) for line in raw[:-2].split(b"\n")]
                ev = self._dispatch(raw)
                if ev is not None:
                    events.append(ev)
            start = end + 2
        line_start = max(start, buf.rfind(b"\n", start) + 1)  # the unfinished line
        if len(buf) - line_start > self._max_line:
            raise SSEError(f"SSE line longer than {self._max_line} bytes")
        if line_start - start > self._max_event:
            raise SSEError(f"SSE event larger than {self._max_event} bytes")
        if start > 65536:  # compact: drop bytes already emitted
            del buf[:start]
            start = 0
        self._scan = self._event_start = start
        return events

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
        if len(fields) == 1 and fields[0][0] == b"data":  # the usual event: one data line
            return Event(kind="sse", data=fields[0][1].decode("utf-8", "replace"), raw=raw)
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
    data = ev.data
    if (data is not None and ev.comment is None and ev.event is None and ev.id is None and ev.retry is None
            and "\n" not in data and "\r" not in data):
        return b"data: " + data.encode() + b"\n\n"  # a re-encoded JSON chunk: one line
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
