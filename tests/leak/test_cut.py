from proxy.leak.cut import CONTENT_FILTER, cut_body_choice, cut_chunk, drop_choices, is_empty_chunk
from tests.harness import chat_body, chat_chunk


def test_cut_chunk_carries_message_and_content_filter():
    c = cut_chunk(chat_chunk("x"), 1, "nope", "chat")
    assert c["choices"] == [{"index": 1, "delta": {"content": "nope"}, "finish_reason": CONTENT_FILTER}]
    assert c["id"] == "chatcmpl-1"
    t = cut_chunk({"id": "c"}, 0, "nope", "completions")
    assert t["choices"][0]["text"] == "nope"


def test_drop_choices_removes_cut_and_clears_finish():
    p = chat_chunk("a", index=0, finish="stop")
    p["choices"].append({"index": 1, "delta": {"content": "b"}, "finish_reason": "stop"})
    assert drop_choices(p, [1], [0])
    assert [c["index"] for c in p["choices"]] == [0] and p["choices"][0]["finish_reason"] is None
    assert not drop_choices({"choices": [{"index": 2, "delta": {}}]}, [1])
    assert not drop_choices({"no": "choices"}, [0])


def test_empty_chunk():
    assert is_empty_chunk({"choices": []})
    assert not is_empty_chunk({"choices": [], "usage": {"prompt_tokens": 1}})


def test_cut_body_choice():
    b = chat_body("before ")
    b["choices"][0]["message"]["tool_calls"] = [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]
    assert cut_body_choice(b, 0, "nope")
    m = b["choices"][0]["message"]
    assert m["content"] == "before nope" and "tool_calls" not in m
    assert b["choices"][0]["finish_reason"] == CONTENT_FILTER
    assert not cut_body_choice(b, 3, "nope")
    c = {"choices": [{"index": 0, "text": "t", "finish_reason": "stop"}]}
    assert cut_body_choice(c, 0, "!") and c["choices"][0]["text"] == "t!"
