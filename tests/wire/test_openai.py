"""Where text lives in requests and responses."""

from hypothesis import given, settings, strategies as st

from proxy.wire.openai import finished_choices, get_at, lone_text, request_carriers, response_slots, text_chunk, text_length, usage_of


def test_chat_request_carriers_cover_every_text_field():
    body = {"model": "m", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url", "image_url": {"url": "u"}}], "name": "bob"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": \"x\"}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "tool result"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "desc", "parameters": {"type": "object", "properties": {"a": {"type": "string", "description": "pdesc"}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": "rdesc"}}}}
    found = {(c.kind, c.role, get_at(body, c.path)) for c in request_carriers("chat", body)}
    assert ("content", "system", "sys") in found
    assert ("content", "user", "part") in found
    assert ("name", "user", "bob") in found
    assert ("tool_arguments", "assistant", "{\"a\": \"x\"}") in found
    assert ("content", "tool", "tool result") in found
    assert ("tool_description", None, "desc") in found
    assert ("schema", None, "pdesc") in found and ("schema", None, "rdesc") in found
    assert [c for c in request_carriers("chat", body) if c.is_system][0].path == ("messages", 0, "content")


def test_completions_and_embeddings_carriers():
    assert [get_at(b, c.path) for b in [{"prompt": ["a", "b"]}] for c in request_carriers("completions", b)] == ["a", "b"]
    assert [c.kind for c in request_carriers("embeddings", {"input": "x"})] == ["input"]
    assert request_carriers("embeddings", {"input": [1, 2, 3]}) == []


def test_response_slots_for_body_chunk_and_completions():
    body = {"choices": [{"index": 0, "message": {"content": "hi", "tool_calls": [{"function": {"arguments": "{}"}}]}, "finish_reason": "stop"},
                        {"index": 1, "message": {"content": "yo"}, "finish_reason": "stop"}]}
    keys = [s.key for s in response_slots(body)]
    assert keys == [(0, "content", -1), (0, "tool_arguments", 0), (1, "content", -1)]
    chunk = {"choices": [{"index": 2, "delta": {"reasoning_content": "r", "tool_calls": [{"index": 3, "function": {"arguments": "x"}}]}}]}
    assert [s.key for s in response_slots(chunk)] == [(2, "reasoning_content", -1), (2, "tool_arguments", 3)]
    assert [s.key for s in response_slots({"choices": [{"index": 0, "text": "t"}]})] == [(0, "text", -1)]
    assert finished_choices(body) == [0, 1]
    assert response_slots({"error": {}}) == [] and response_slots(None) == []


def test_text_chunk_mirrors_template():
    tpl = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m", "choices": []}
    c = text_chunk(tpl, (1, "tool_arguments", 2), "zz")
    assert c["id"] == "c1" and c["choices"][0]["delta"]["tool_calls"][0] == {"index": 2, "function": {"arguments": "zz"}}
    assert text_chunk(None, (0, "text", -1), "t")["choices"][0]["text"] == "t"


def test_usage_of():
    assert usage_of({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == (3, 4)
    assert usage_of({"usage": {"prompt_tokens": -1}}) is None and usage_of({"usage": None}) is None


_text = st.text(max_size=8)
_odd = st.one_of(st.none(), st.integers(-2, 5), _text, st.lists(st.integers(), max_size=2))
_call = st.one_of(_odd, st.fixed_dictionaries({"index": st.one_of(st.integers(0, 3), _odd)},
                                              optional={"function": st.one_of(_odd, st.fixed_dictionaries({}, optional={"arguments": st.one_of(_text, _odd)}))}))
_msg = st.one_of(_odd, st.fixed_dictionaries({}, optional={
    "content": st.one_of(_text, _odd), "refusal": st.one_of(_text, _odd), "reasoning_content": _text, "reasoning": _text,
    "tool_calls": st.one_of(st.lists(_call, max_size=3), _odd),
    "function_call": st.one_of(_odd, st.fixed_dictionaries({}, optional={"arguments": st.one_of(_text, _odd)}))}))
_choice = st.one_of(_odd, st.fixed_dictionaries({}, optional={"index": st.one_of(st.integers(0, 3), _odd), "text": st.one_of(_text, _odd),
                                                              "delta": _msg, "message": _msg,
                                                              "finish_reason": st.one_of(st.none(), st.just("stop"), _odd)}))
_payload = st.one_of(_odd, st.fixed_dictionaries({}, optional={"choices": st.one_of(st.lists(_choice, max_size=3), _odd)}))


@settings(max_examples=150, deadline=None)
@given(_payload)
def test_text_length_equals_the_sum_over_response_slots(payload):
    assert text_length(payload) == sum(len(get_at(payload, s.path)) for s in response_slots(payload))


def test_non_list_tool_calls_have_no_slots():
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi", "tool_calls": 5}}]}
    assert [s.key for s in response_slots(chunk)] == [(0, "content", -1)]
    assert text_length(chunk) == 2


_maybe = lambda inner: st.one_of(st.none(), inner)  # noqa: E731
_chunk_delta = st.fixed_dictionaries({"content": _text}, optional={
    "role": st.just("assistant"), "refusal": _maybe(_text), "reasoning": _maybe(_text), "reasoning_content": _maybe(_text),
    "tool_calls": _maybe(st.lists(_call, max_size=2)), "function_call": _maybe(st.fixed_dictionaries({"arguments": _text}))})
_chunk_choice = st.fixed_dictionaries({"delta": _chunk_delta}, optional={
    "index": st.one_of(st.integers(0, 3), _odd), "finish_reason": st.one_of(st.none(), st.just("stop"), st.just("")),
    "text": st.one_of(_text, _odd), "message": _msg, "logprobs": st.none()})
_chunk = st.fixed_dictionaries({"choices": st.one_of(st.lists(_chunk_choice, min_size=1, max_size=1),
                                                     st.lists(st.one_of(_chunk_choice, _choice), min_size=1, max_size=2))},
                               optional={"id": st.just("c1"), "usage": st.none()})


@settings(max_examples=600, deadline=None)
@given(st.one_of(_chunk, _payload))
def test_lone_text_is_the_only_slot_of_an_unfinished_chunk(payload):
    """The editor's fast path sees exactly what the general path would: one slot, nothing finished."""
    one = lone_text(payload) if isinstance(payload, dict) else None
    if one is None:
        return
    key, holder, field = one
    slots = response_slots(payload)
    assert [s.key for s in slots] == [key]
    assert get_at(payload, slots[0].path) is holder[field]
    assert finished_choices(payload) == []


def test_lone_text_takes_the_common_chunks_only():
    assert lone_text({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None, "logprobs": None}]})[0] == (0, "content", -1)
    assert lone_text({"choices": [{"index": 2, "delta": {"role": "assistant", "content": "", "refusal": None}}]})[0] == (2, "content", -1)
    assert lone_text({"choices": [{"index": 0, "text": "hi", "finish_reason": None}]})[0] == (0, "text", -1)
    assert lone_text({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}) is None
    assert lone_text({"choices": [{"index": 0, "delta": {"content": "hi", "tool_calls": []}}]}) is None
    assert lone_text({"choices": [{"index": 0, "delta": {"content": "a"}}, {"index": 1, "delta": {"content": "b"}}]}) is None
    assert lone_text({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}) is None
