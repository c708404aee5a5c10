"""TextStreamEditor: per-slot rewriters, same result for a JSON body and any stream split."""

import re

from hypothesis import given, settings, strategies as st

from proxy.text.holdback import HoldBack, LiteralPrefixes
from proxy.wire.event import Event
from proxy.wire.text_stream import TextStreamEditor
from tests.harness import chat_body, chat_chunk, client_text

MAP = {"<NAME_1>": "Ada Lovelace", "<NAME_2>": "Alan Turing"}


class Restore:
    """A tiny rewriter: restore known tokens, holding back possible token prefixes."""

    def __init__(self):
        lp = LiteralPrefixes(MAP)
        self.hb = HoldBack(lp.hold_from, lp.max_len)

    def _apply(self, text):
        return re.sub("|".join(map(re.escape, MAP)), lambda m: MAP[m.group()], text)

    def feed(self, text):
        return self._apply(self.hb.push(text))

    def finish(self):
        return self._apply(self.hb.flush())


def run(events):
    ed = TextStreamEditor(lambda key: Restore())
    out = []
    for e in events:
        out.extend(ed.edit(e))
    out.extend(ed.end())
    return out


ANSWER = "Hello <NAME_1>, meet <NAME_2>. Bye <NAM"


def stream_of(pieces, finish=True, done=True):
    evs = [Event.sse_json(chat_chunk(role="assistant", text=""))]
    evs += [Event.sse_json(chat_chunk(p)) for p in pieces]
    if finish:
        evs.append(Event.sse_json(chat_chunk(finish="stop")))
    if done:
        evs.append(Event(kind="sse", data="[DONE]"))
    return evs


def test_body_event_is_rewritten_whole():
    out = run([Event.body(chat_body(ANSWER))])
    assert out[0].payload["choices"][0]["message"]["content"] == "Hello Ada Lovelace, meet Alan Turing. Bye <NAM"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(ANSWER)), max_size=10))
def test_stream_any_split_equals_body(cuts):
    points = sorted(set(cuts))
    pieces, prev = [], 0
    for p in points + [len(ANSWER)]:
        pieces.append(ANSWER[prev:p])
        prev = p
    out = run(stream_of(pieces))
    assert client_text(out) == "Hello Ada Lovelace, meet Alan Turing. Bye <NAM"
    assert out[-1].is_done
    # the held tail is emitted before the finish chunk and [DONE]
    finish_at = next(i for i, e in enumerate(out) if e.payload and e.payload["choices"][0].get("finish_reason"))
    assert client_text(out[:finish_at]) == client_text(out)


def test_untouched_events_keep_their_bytes():
    ev = Event(kind="sse", data='{"choices":[{"index":0,"delta":{"content":"plain"},"finish_reason":null}]}', raw=b"data: X\n\n")
    out = run([ev])
    assert out[0] is ev and ev.raw == b"data: X\n\n"


def test_stream_without_done_is_flushed_at_end():
    out = run(stream_of(["Hi <NAME_", "2> and <NA"], finish=False, done=False))
    assert client_text(out) == "Hi Alan Turing and <NA"


def test_choices_and_tool_arguments_are_independent():
    evs = [Event.sse_json(chat_chunk("A <NAME", index=0)), Event.sse_json(chat_chunk("B <NAME_2", index=1)),
           Event.sse_json(chat_chunk(tool_args='{"who": "<NA')), Event.sse_json(chat_chunk("_1>", index=0)),
           Event.sse_json(chat_chunk(">", index=1)), Event.sse_json(chat_chunk(tool_args='ME_1>"}'))]
    out = run(evs)
    assert client_text(out, 0) == "A Ada Lovelace"
    assert client_text(out, 1) == "B Alan Turing"
    assert client_text(out, 0, "tool_arguments") == '{"who": "Ada Lovelace"}'


class Held(Restore):
    """Restore that says how much it holds (held_len), as leak's slot filter does."""

    @property
    def held_len(self):
        return len(self.hb._held)


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(ANSWER)), max_size=10),
       sizes=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=4),
       with_held=st.booleans())
def test_edit_many_sends_what_edit_sends(cuts, sizes, with_held):
    """Differential: events in groups through edit_many give the client what edit() gives one by
    one (per slot text, finish and [DONE] order), and every event it leaves unchanged keeps its bytes."""
    points = sorted(set(cuts))
    pieces, prev = [], 0
    for p in points + [len(ANSWER)]:
        pieces.append(ANSWER[prev:p])
        prev = p
    pieces.insert(len(pieces) // 2, None)  # a tool-call chunk in the middle: not a lone text chunk
    def events():
        evs = stream_of([p for p in pieces if p is not None])
        evs.insert(len(evs) // 2, Event.sse_json(chat_chunk(tool_args='{"x": "<NAME_2>"}')))
        return [Event(kind="sse", data=e.data, raw=b"raw") for e in evs]
    one = run(events())
    make = Held if with_held else Restore
    ed = TextStreamEditor(lambda key: make())
    many, evs, i, k = [], events(), 0, 0
    while i < len(evs):
        n = sizes[k % len(sizes)]
        assert ed.edit_many(evs[i:i + n], many) == len(evs[i:i + n])
        i, k = i + n, k + 1
    many.extend(ed.end())
    assert client_text(many) == client_text(one) == "Hello Ada Lovelace, meet Alan Turing. Bye <NAM"
    args = lambda out: "".join(tc["function"]["arguments"] for e in out if isinstance(e.payload, dict)  # noqa: E731
                               for c in e.payload["choices"] for tc in (c.get("delta") or {}).get("tool_calls") or ())
    assert args(many) == args(one) == '{"x": "Alan Turing"}'
    assert many[-1].is_done
    for e in many:
        if e.raw == b"raw":  # untouched: its text is what it was
            assert e.data == next(x.data for x in events() if x.data == e.data)
