"""Apply per-slot streaming text rewriters to OpenAI response events.

Used by every stage that edits response text (pii restore, leak filtering). A
rewriter sees one logical text stream (choice i's content, choice i's tool call
j arguments, ...) as a sequence of `feed` calls and one `finish`. The same code
handles a JSON body (feed the whole text, then finish) and a stream, so both
give the same verdicts by construction.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from proxy.wire.event import Event
from proxy.wire.openai import SlotKey, finished_choices, get_at, lone_text, response_slots, set_at, text_chunk


class SlotRewriter(Protocol):
    def feed(self, text: str) -> str:
        """New text of the slot; returns what may be emitted now (possibly rewritten)."""

    def finish(self) -> str:
        """The slot ended; returns whatever was held back, rewritten."""


class TextStreamEditor:
    def __init__(self, make_rewriter: Callable[[SlotKey], SlotRewriter]) -> None:
        self._make = make_rewriter
        self._rewriters: dict[SlotKey, SlotRewriter] = {}
        self._template: Any = None

    @property
    def template(self) -> Any:
        """The last streamed chunk with text (or a finish): the shape (id, model) of chunks a stage adds."""
        return self._template

    def _rewriter(self, key: SlotKey) -> SlotRewriter:
        rw = self._rewriters.get(key)
        if rw is None:
            rw = self._rewriters[key] = self._make(key)
        return rw

    def edit(self, event: Event) -> list[Event]:
        payload = event.payload
        if event.kind == "sse" and isinstance(payload, dict):
            one = lone_text(payload)
            if one is not None:  # the common chunk: one choice, one text slot, not finished
                self._template = payload
                key, holder, field = one
                rw = self._rewriters.get(key)
                if rw is None:
                    rw = self._rewriters[key] = self._make(key)
                text = holder[field]
                new = rw.feed(text)
                if new != text:
                    holder[field] = new
                    event.mark_changed()
                return [event]
        if event.is_done:
            return self._flush(lambda key: True) + [event]
        slots = response_slots(payload)
        if not slots and not finished_choices(payload):
            return [event]
        if event.kind == "sse":
            self._template = payload
        changed = False
        for slot in slots:
            text = get_at(payload, slot.path)
            new = self._rewriter(slot.key).feed(text)
            if new != text:
                set_at(payload, slot.path, new)
                changed = True
        before: list[Event] = []
        if event.kind == "body":
            # A whole response: every slot ends here.
            for slot in slots:
                tail = self._rewriters.pop(slot.key).finish()
                if tail:
                    set_at(payload, slot.path, get_at(payload, slot.path) + tail)
                    changed = True
        else:
            done = set(finished_choices(payload))
            if done:
                present = {s.key: s for s in slots}
                for key in [k for k in self._rewriters if k[0] in done]:
                    tail = self._rewriters.pop(key).finish()
                    if not tail:
                        continue
                    if key in present:
                        path = present[key].path
                        set_at(payload, path, get_at(payload, path) + tail)
                        changed = True
                    else:
                        before.append(Event.sse_json(text_chunk(payload, key, tail)))
        if changed:
            event.mark_changed()
        return before + [event]

    def edit_many(self, events: list[Event], out: list[Event], stop: Callable[[], bool] | None = None) -> int:
        """edit() for events that arrived together, appended to `out` (returned): consecutive common
        chunks of one slot go to its rewriter as one text, one feed. The rewriter's output is laid
        back over those chunks in order (its `held_len`, if it has one, is how much of the output is
        text held from before); a chunk whose text comes out the same keeps its bytes, the one where
        held-back text starts is cut, the ones after it are sent empty, as edit() does with a held
        chunk. Output that is not laid out that way (a redaction marker) goes whole into the first
        chunk of the run. If a rewriter raises, `out` holds what was decided before that run.
        Returns how many events were done: after each run or other event, `stop()` true ends the
        call early (the caller takes the rest one by one, e.g. once a choice was cut)."""
        run: list[tuple[Event, dict[str, Any], str]] = []
        run_key: Any = None
        for i, ev in enumerate(events):
            payload = ev.payload
            one = lone_text(payload) if ev.kind == "sse" and isinstance(payload, dict) else None
            if one is not None:
                if run and one[0] != run_key:
                    self._feed_run(run_key, run, out)
                    run = []
                    if stop is not None and stop():
                        return i
                run_key = one[0]
                run.append((ev, one[1], one[2]))
                self._template = payload
                continue
            if run:
                self._feed_run(run_key, run, out)
                run = []
                if stop is not None and stop():
                    return i
            out.extend(self.edit(ev))
            if stop is not None and stop():
                return i + 1
        if run:
            self._feed_run(run_key, run, out)
        return len(events)

    def _feed_run(self, key: SlotKey, run: list[tuple[Event, dict[str, Any], str]], out: list[Event]) -> None:
        rw = self._rewriters.get(key)
        if rw is None:
            rw = self._rewriters[key] = self._make(key)
        if len(run) == 1:
            ev, holder, field = run[0]
            text = holder[field]
            new = rw.feed(text)
            if new != text:
                holder[field] = new
                ev.mark_changed()
            out.append(ev)
            return
        texts = [holder[field] for _, holder, field in run]
        joined = "".join(texts)
        before = getattr(rw, "held_len", 0)
        new = rw.feed(joined)
        if new == joined:
            out.extend(ev for ev, _, _ in run)
            return
        head, rest = new[:before], new[before:]
        if not joined.startswith(rest):
            head, rest = new, ""
        pos = 0
        for (ev, holder, field), text in zip(run, texts):
            piece = rest[pos:pos + len(text)]
            pos += len(text)
            if head:
                piece, head = head + piece, ""
            if piece != text:
                holder[field] = piece
                ev.mark_changed()
            out.append(ev)

    def end(self) -> list[Event]:
        """The upstream ended (with or without [DONE]): flush every open slot."""
        return self._flush(lambda key: True)

    def _flush(self, which: Callable[[SlotKey], bool]) -> list[Event]:
        out = []
        for key in [k for k in self._rewriters if which(k)]:
            tail = self._rewriters.pop(key).finish()
            if tail:
                out.append(Event.sse_json(text_chunk(self._template, key, tail)))
        return out
