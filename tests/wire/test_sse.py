"""The SSE codec: any split of the byte stream decodes to the same events; untouched events stay byte-identical."""

import pytest
from hypothesis import given, settings, strategies as st

from proxy.wire.event import Event
from proxy.wire.sse import SSEDecoder, SSEError, encode_event


def decode(chunks, **kw):
    d = SSEDecoder(**kw)
    out = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.flush())
    return out


def fields(events):
    return [(e.event, e.data, e.id, e.retry, e.comment) for e in events]


STREAM = (b": hello\n\n"
          b"event: message\nid: 7\nretry: 1000\ndata: {\"a\": 1}\n\n"
          b"data: line one\ndata: line two\n\n"
          b"data:no-space\n\n"
          b"data: [DONE]\n\n")


def test_fields_comments_multiline_and_done():
    evs = decode([STREAM])
    assert fields(evs) == [
        (None, None, None, None, "hello"),
        ("message", '{"a": 1}', "7", "1000", None),
        (None, "line one\nline two", None, None, None),
        (None, "no-space", None, None, None),
        (None, "[DONE]", None, None, None),
    ]
    assert evs[1].payload == {"a": 1}
    assert evs[-1].is_done


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol):
    raw = STREAM.replace(b"\n", eol)
    assert fields(decode([raw])) == fields(decode([STREAM]))


def test_untouched_events_are_byte_identical():
    evs = decode([STREAM])
    assert b"".join(encode_event(e) for e in evs) == STREAM


def test_changed_event_is_reencoded():
    ev = decode([b"data: {\"x\": 1}\r\n\r\n"])[0]
    ev.payload["x"] = 2
    ev.mark_changed()
    assert encode_event(ev) == b'data: {"x":2}\n\n'


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    d = SSEDecoder()
    assert d.feed(b"data: a\r") == []
    evs = d.feed(b"\n\r\n")
    assert [e.data for e in evs] == ["a"]


def test_unterminated_final_event_is_returned_by_flush_not_lost():
    d = SSEDecoder()
    assert d.feed(b"data: {\"tail\": 1}") == []
    tail = d.flush()
    assert [e.payload for e in tail] == [{"tail": 1}]
    assert tail[0].raw is None  # re-encoded with a terminator


def test_line_too_long_is_an_error():
    d = SSEDecoder(max_line=1024)
    with pytest.raises(SSEError):
        d.feed(b"data: " + b"x" * 2000)


def test_event_too_large_is_an_error():
    d = SSEDecoder(max_line=1024, max_event=4096)
    with pytest.raises(SSEError):
        for _ in range(10):
            d.feed(b"data: " + b"y" * 1000 + b"\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12), st.sampled_from([b"\n", b"\r", b"\r\n"]))
def test_any_split_gives_the_same_events(cuts, eol):
    raw = STREAM.replace(b"\n", eol)
    points = sorted(set(min(c, len(raw)) for c in cuts))
    chunks, prev = [], 0
    for p in points + [len(raw)]:
        chunks.append(raw[prev:p])
        prev = p
    evs = decode(chunks)
    assert fields(evs) == fields(decode([STREAM]))
    assert b"".join(encode_event(e) for e in evs) == raw


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=7))
def test_roundtrip_of_encoded_events(datas, step):
    events = [Event(kind="sse", data=d) for d in datas]
    wire = b"".join(encode_event(e) for e in events)
    chunks = [wire[i:i + step] for i in range(0, len(wire), step)]
    assert [e.data for e in decode(chunks)] == datas


def _decode_ref(chunks, **kw):
    """The line-by-line path only (what CR streams take): the reference for the LF fast path."""
    d = SSEDecoder(**kw)
    d._lf_only = False
    out = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.flush())
    return out


_PIECES = [b"data: {\"a\": 1}\n\n", b"\n", b": ping\n\n", b"event: e\ndata: x\n\n", b"data: [DONE]\n\n",
           b"data: one\ndata: two\n\n", b"id: 3\n", b"data: tail", b"data: c\r\n\r\n", b"retry: 5\n\n"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=10), st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_lf_fast_path_matches_the_line_path_for_any_stream_and_split(pieces, cuts):
    raw = b"".join(pieces)
    points = sorted(set(min(c, len(raw)) for c in cuts))
    chunks, prev = [], 0
    for p in points + [len(raw)]:
        chunks.append(raw[prev:p])
        prev = p
    fast, ref = decode(chunks), _decode_ref(chunks)
    assert fields(fast) == fields(ref)
    assert [e.raw for e in fast] == [e.raw for e in ref]


def test_large_event_in_small_chunks_and_compaction():
    big = b"data: " + b"z" * 200_000 + b"\n\n"
    stream = b"data: first\n\n" * 5000 + big + b"data: [DONE]\n\n"
    evs = decode([stream[i:i + 1000] for i in range(0, len(stream), 1000)])
    assert len(evs) == 5002 and evs[-2].data == "z" * 200_000 and evs[-1].is_done
    assert b"".join(encode_event(e) for e in evs) == stream


@settings(max_examples=300, deadline=None)
@given(data=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), named=st.booleans())
def test_a_data_only_event_encodes_as_its_lines(data, named):
    """The one-line shortcut for re-encoded JSON chunks writes what the line-by-line path writes."""
    ev = Event(kind="sse", data=data, event="message" if named else None)
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = "event: message\n" if named else ""
    assert encode_event(ev) == (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()
