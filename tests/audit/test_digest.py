from __future__ import annotations

import hashlib

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.audit.digest import ResponseDigest, strings_digest, texts_of
from tests.harness import chat_body, chat_chunk

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(_text, max_size=8))
def test_fast_prompt_digest_is_rfc8785(texts):
    assert strings_digest(texts) == hashlib.sha256(rfc8785.dumps(texts)).hexdigest()


def test_prompt_carriers_in_order():
    body = {"model": "m", "messages": [{"role": "system", "content": "sys"},
                                        {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert texts_of("chat", body) == ["sys", "hi"]
    assert texts_of("embeddings", {"input": ["a", "b"]}) == ["a", "b"]
    assert texts_of("chat", None) == []


def test_stream_and_body_give_the_same_response_digest():
    """I2 parity: one verdict whatever the transport."""
    body = ResponseDigest()
    body.feed(chat_body("Hello there, world"))
    stream = ResponseDigest()
    for piece in ("Hel", "lo there", ", world"):
        stream.feed(chat_chunk(piece))
    stream.feed(chat_chunk(finish="stop"))
    assert body.hexdigest() == stream.hexdigest() and stream.chars == 18
    expected = hashlib.sha256(rfc8785.dumps({"0:content:-1": hashlib.sha256(b"Hello there, world").hexdigest()})).hexdigest()
    assert body.hexdigest() == expected


def test_slots_are_separate_and_text_kept_only_on_request():
    d = ResponseDigest(keep_text=True)
    d.feed(chat_chunk("a", index=0))
    d.feed(chat_chunk("b", index=1))
    d.feed(chat_chunk(tool_args='{"x":1}'))
    assert d.texts() == {"0:content:-1": "a", "1:content:-1": "b", "0:tool_arguments:0": '{"x":1}'}
    plain = ResponseDigest()
    plain.feed(chat_chunk("a"))
    assert plain.texts() == {} and ResponseDigest().hexdigest() is None


def test_capture_digests_in_the_writer_what_the_provider_sent():
    import orjson

    from proxy.audit.digest import Capture
    cap = Capture(["hi"])
    for c in (chat_chunk("Hello"), chat_chunk(" there, world", finish="stop")):
        cap.response.append(orjson.dumps(c).decode())
    cap.response.append("[DONE]")
    body: dict = {}
    content = cap.apply(body, keep_text=True)
    whole = ResponseDigest()
    whole.feed(chat_body("Hello there, world"))
    assert body["response_digest"] == whole.hexdigest() and body["response_chars"] == 18
    assert body["prompt_digest"] == strings_digest(["hi"])
    assert content == {"prompt": ["hi"], "response": {"0:content:-1": "Hello there, world"}}
    empty: dict = {}
    assert Capture(None).apply(empty, keep_text=False) is None
    assert empty == {"prompt_digest": None, "response_digest": None, "response_chars": 0, "tool_calls": []}


def test_tool_calls_are_named_not_copied():
    import orjson

    from proxy.audit.digest import Capture
    first = chat_chunk(tool_args='{"city": "Par')
    first["choices"][0]["delta"]["tool_calls"][0].update(id="call_1", type="function")
    first["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] = "get_weather"
    cap = Capture(["weather?"])
    cap.response += [orjson.dumps(first).decode(), orjson.dumps(chat_chunk(tool_args='is"}')).decode()]
    body: dict = {}
    cap.apply(body, keep_text=False)
    assert body["tool_calls"] == ["get_weather"] and "Par" not in str(body)


def _shapes():
    plain = chat_chunk("Hello")
    first = chat_chunk("Hi", role="assistant")
    first["choices"][0]["delta"].update(refusal=None, tool_calls=None)
    indexed = chat_chunk("second", index=1)
    no_index = chat_chunk("x")
    del no_index["choices"][0]["index"]
    bad_index = chat_chunk("y")
    bad_index["choices"][0]["index"] = "1"
    reasoning = chat_chunk("think")
    reasoning["choices"][0]["delta"]["reasoning_content"] = "hmm"
    two = chat_chunk("a")
    two["choices"].append({"index": 1, "delta": {"content": "b"}, "finish_reason": None})
    completion = {"choices": [{"index": 0, "text": "legacy", "finish_reason": None}]}
    tool = chat_chunk(tool_args='{"q": 1}')
    return [plain, first, indexed, no_index, bad_index, reasoning, two, completion, tool, chat_chunk(finish="stop"),
            chat_chunk(""), chat_body("whole body"), {"choices": "nope"}, {"usage": {"prompt_tokens": 1}}, [], None]


def test_fast_path_equals_the_general_walk():
    fast, general = ResponseDigest(keep_text=True), ResponseDigest(keep_text=True)
    for payload in _shapes():
        fast.feed(payload)
        general.feed_general(payload)
    assert fast.hexdigest() == general.hexdigest() and fast.texts() == general.texts()
    assert fast.chars == general.chars and fast.tool_names == general.tool_names
