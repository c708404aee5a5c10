"""Stage `pii`: tokenize every carrier, block restricted tenants, restore streams exactly."""

from __future__ import annotations

import asyncio
import copy
import json
import time

import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.pipeline.chain import Chain
from proxy.stages.pii import PiiStage
from proxy.wire.event import Event
from tests.harness import chat_body, chat_chunk, client_text, make_exchange, make_policy, make_stage, run_response

SECRET = {"from_env": "RAMPARTS_TEST_JWT_SECRET"}  # the tests' env var (conftest), 44 bytes
EMAIL, PHONE, CARD, SSN = "jane.doe@example.com", "+1-415-555-0134", "4111 1111 1111 1111", "460-89-9847"
VALUES = (EMAIL, PHONE, CARD, SSN)


@pytest.fixture(scope="module")
def policy():
    return make_policy()


@pytest.fixture(scope="module")
def stage(policy):
    return make_stage(PiiStage, {"type": "pii", "secret": SECRET,
                                 "tenants": {"globex": {"allow_list": ["help@globex.com"]}}}, policy)


def chat(*messages, **extra):
    return {"model": "gpt-4o-mini", "messages": list(messages), **extra}


async def tokenized(stage, policy, body, tenant="acme", route="chat"):
    ex = make_exchange(policy, body, tenant=tenant, route=route)
    deny = await Chain([stage]).run_request(ex)
    return ex, deny


def no_values(obj) -> bool:
    blob = json.dumps(obj)
    return not any(v in blob for v in VALUES)


async def test_every_carrier_is_tokenized(stage, policy):
    body = chat(
        {"role": "system", "content": f"Escalations go to {EMAIL}."},
        {"role": "user", "name": "x", "content": [{"type": "text", "text": f"My card is {CARD}"}, {"type": "image_url", "image_url": {"url": "http://x"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"ssn": SSN})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"found: phone {PHONE}"},
        tools=[{"type": "function", "function": {"name": "lookup", "description": f"look up a customer, e.g. {EMAIL}", "parameters": {"type": "object"}}}],
    )
    ex, deny = await tokenized(stage, policy, body)
    assert deny is None
    assert no_values(ex.body)
    assert ex.body["messages"][0]["content"] == "Escalations go to <EMAIL_ADDRESS_1>."
    assert ex.body["messages"][1]["content"][0]["text"] == "My card is <CREDIT_CARD_1>"
    assert json.loads(ex.body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {"ssn": "<US_SSN_1>"}
    assert ex.body["messages"][3]["content"] == "found: phone <PHONE_NUMBER_1>"
    assert ex.body["tools"][0]["function"]["description"] == "look up a customer, e.g. <EMAIL_ADDRESS_1>"  # same value, same token
    assert ex.decisions[-1].decision == "tokenized"
    assert ex.decisions[-1].detail == {"counts": {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "US_SSN": 1, "PHONE_NUMBER": 1}}
    await Chain([stage]).run_complete(ex)


async def test_completions_and_embeddings(stage, policy):
    ex, _ = await tokenized(stage, policy, {"model": "gpt-4o-mini", "prompt": [f"mail {EMAIL}", "plain"]}, route="completions")
    assert ex.body["prompt"] == ["mail <EMAIL_ADDRESS_1>", "plain"]
    assert "pii" in ex.state
    ex, _ = await tokenized(stage, policy, {"model": "text-embedding-3-small", "input": f"ssn {SSN}"}, route="embeddings")
    assert ex.body["input"] == "ssn <US_SSN_1>"
    assert "pii" not in ex.state  # one-way: nothing kept to restore


async def test_no_pii_means_no_change_and_no_state(stage, policy):
    body = chat({"role": "user", "content": "What is the capital of France?"})
    ex, deny = await tokenized(stage, policy, body)
    assert deny is None and ex.body == body and ex.state == {} and ex.decisions == []
    ev = Event.sse_json(chat_chunk("Paris"))
    raw = ev.data
    assert await stage.on_response_event(ex, ev) == [ev] and ev.data == raw
    assert not stage.wants_complete(ex)  # no vault to wipe: the chain makes no completion task
    assert not stage.wants_events(ex)  # nothing to restore: the answer may pass without the stage


async def test_a_tokenized_request_is_wiped_on_complete(stage, policy):
    ex, deny = await tokenized(stage, policy, chat({"role": "user", "content": f"mail {EMAIL}"}))
    assert deny is None and stage.wants_complete(ex) and stage.wants_events(ex)
    vault = ex.state["pii"].vault
    await Chain([stage]).run_complete(ex)
    assert len(vault) == 0 and "pii" not in ex.state and not stage.wants_complete(ex)


async def test_block_mode_names_types_never_values(stage, policy):
    before = stage.services.metrics.pii_entities.labels("US_SSN", "blocked")._value.get()
    ex, deny = await tokenized(stage, policy, chat({"role": "user", "content": f"my ssn is {SSN}, mail {EMAIL}"}), tenant="mercy")
    assert deny is not None and deny.status == 400 and deny.code == "pii_blocked"
    assert "EMAIL_ADDRESS" in deny.message and "US_SSN" in deny.message
    assert SSN not in deny.message and EMAIL not in deny.message
    assert ex.decisions[0].decision == "blocked" and ex.decisions[0].detail == {"counts": {"US_SSN": 1, "EMAIL_ADDRESS": 1}}
    assert ex.body["messages"][0]["content"].endswith(EMAIL)  # untouched: it never leaves anyway
    assert stage.services.metrics.pii_entities.labels("US_SSN", "blocked")._value.get() == before + 1
    ok, deny = await tokenized(stage, policy, chat({"role": "user", "content": "hello"}), tenant="mercy")
    assert deny is None


async def test_tenant_overrides_apply(stage, policy):
    ex, _ = await tokenized(stage, policy, chat({"role": "user", "content": "write help@globex.com or bob@globex.com"}), tenant="globex")
    assert ex.body["messages"][0]["content"] == "write help@globex.com or <EMAIL_ADDRESS_1>"


async def _answer(stage, policy, answer_pieces, *, text=f"mail {EMAIL} call {PHONE}", stream=True, tenant="acme"):
    ex, _ = await tokenized(stage, policy, chat({"role": "user", "content": text}, stream=stream), tenant=tenant)
    chain = Chain([stage])
    events = [Event.sse_json(chat_chunk(p)) for p in answer_pieces] + [Event.sse_json(chat_chunk(finish="stop"))]
    out = await run_response(chain, ex, events)
    await chain.run_complete(ex)
    return ex, out


async def test_token_split_at_every_position_is_restored(stage, policy):
    answer = "I'll write to <EMAIL_ADDRESS_1> and ring PHONE_NUMBER_1 today."
    want = f"I'll write to {EMAIL} and ring {PHONE} today."
    for k in range(len(answer) + 1):
        ex, out = await _answer(stage, policy, [answer[:k], answer[k:]])
        assert client_text(out) == want, k
    assert ex.decisions[-1].decision == "restored"
    assert ex.decisions[-1].detail == {"counts": {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}}
    assert "pii" not in ex.state  # the vault is gone after completion


async def test_non_stream_body_restores(stage, policy):
    ex, _ = await tokenized(stage, policy, chat({"role": "user", "content": f"mail {EMAIL}"}))
    out = await run_response(Chain([stage]), ex, [Event.body(chat_body("Sent to <EMAIL_ADDRESS_1>."))])
    assert out[0].payload["choices"][0]["message"]["content"] == f"Sent to {EMAIL}."


async def test_choices_and_tool_call_deltas_restore_independently(stage, policy):
    ex, _ = await tokenized(stage, policy, chat({"role": "user", "content": f"mail {EMAIL} ssn {SSN}"}, stream=True, n=2))
    chunks = [
        chat_chunk("To <EMAIL_", index=0), chat_chunk("SSN <US_S", index=1),
        chat_chunk(None, index=0, tool_args='{"to": "<EMAIL'), chat_chunk("SN_1>.", index=1),
        chat_chunk("ADDRESS_1>", index=0), chat_chunk(None, index=0, tool_args='_ADDRESS_1>"}'),
        chat_chunk(None, index=0, finish="tool_calls"), chat_chunk(None, index=1, finish="stop"),
    ]
    out = await run_response(Chain([stage]), ex, [Event.sse_json(c) for c in chunks] + [Event(kind="sse", data="[DONE]")])
    assert client_text(out, 0) == f"To {EMAIL}"
    assert client_text(out, 1) == f"SSN {SSN}."
    assert json.loads(client_text(out, 0, "tool_arguments")) == {"to": EMAIL}
    assert out[-1].is_done


async def test_dangling_partial_token_flushes_as_written(stage, policy):
    ex, out = await _answer(stage, policy, ["bye <EMAIL_ADD"])
    assert client_text(out) == "bye <EMAIL_ADD"


async def test_foreign_tokens_never_restore(stage, policy):
    # acme's request issues <EMAIL_ADDRESS_1>; a globex request replays that token text.
    await _answer(stage, policy, ["ok"], tenant="acme")
    ex, out = await _answer(stage, policy, ["echo <EMAIL_ADDRESS_1> and <PHONE_NUMBER_1>"], text="hello, no pii here", tenant="globex")
    assert client_text(out) == "echo <EMAIL_ADDRESS_1> and <PHONE_NUMBER_1>"
    # A token forged inside the request itself is reserved: ours gets the next number.
    ex, out = await _answer(stage, policy, ["<EMAIL_ADDRESS_1> / <EMAIL_ADDRESS_2>"], text=f"say <EMAIL_ADDRESS_1> to {EMAIL}")
    assert ex.body["messages"][0]["content"] == "say <EMAIL_ADDRESS_1> to <EMAIL_ADDRESS_2>"
    assert client_text(out) == f"<EMAIL_ADDRESS_1> / {EMAIL}"


def test_config_is_checked_at_startup(policy, monkeypatch):
    with pytest.raises(ValueError, match="secret"):
        make_stage(PiiStage, {"type": "pii"}, policy)
    monkeypatch.setenv("SHORT_PII_SECRET", "too-short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        make_stage(PiiStage, {"type": "pii", "secret": {"from_env": "SHORT_PII_SECRET"}}, policy)
    with pytest.raises(ValueError, match="not in the policy"):
        make_stage(PiiStage, {"type": "pii", "secret": SECRET, "tenants": {"nobody": {}}}, policy)
    with pytest.raises(Exception, match="secrets may not be written"):
        make_stage(PiiStage, {"type": "pii", "secret": "literal"}, policy)


async def _max_loop_gap(stage, policy, body) -> tuple[float, object]:
    """Run on_request while a 1 ms ticker measures how long the event loop went unserved."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    ex, deny = await tokenized(stage, policy, body)
    stop.set()
    await task
    assert deny is None and EMAIL not in ex.body["messages"][0]["content"]
    return max(gaps), ex


async def test_large_bodies_do_not_stall_the_event_loop(policy):
    line = f"Customer {EMAIL} called from {PHONE} about card {CARD} and order 12345. "
    body = chat({"role": "user", "content": line * 800})  # ~64 KB, 3,200 hits
    stage = make_stage(PiiStage, {"type": "pii", "secret": SECRET}, policy)
    t0 = time.perf_counter()
    stage.detector_for("acme").find(body["messages"][0]["content"])
    blocked = time.perf_counter() - t0  # what one synchronous call would stall the loop for
    # The best of three runs: a detector that did not yield stalls every run, while a run on the busy
    # 2-core CI box can lose 50 ms to another process or a GC pass (seen once in the full parallel suite).
    served = min([(await _max_loop_gap(stage, policy, body))[0] for _ in range(3)])
    assert blocked > 0.02
    assert served < blocked / 2, (served, blocked)  # detection yields every window: the loop keeps ticking


# ------------------------------------------------------------------ property: any stream split

PLANTS = st.sampled_from([EMAIL, PHONE, CARD, SSN, "ann@example.org", "GB56HXDO88167774656119"])
WORDS = st.sampled_from(["hello", "please", "call", "me", "at", "or", "mail", "the", "order", "12", "ok", ",", ".", "\n"])


@st.composite
def planted_text(draw):
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        parts.extend(draw(st.lists(WORDS, max_size=4)))
        parts.append(draw(PLANTS))
    parts.extend(draw(st.lists(WORDS, max_size=3)))
    return " ".join(parts)


def echo_provider(body: dict) -> str:
    """What the mock provider answers: it echoes the (tokenized) user message it received."""
    return "Echo: " + body["messages"][-1]["content"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(planted_text(), st.data())
def test_any_split_equals_the_non_stream_restore(stage, policy, text, data):
    async def run() -> None:
        ex, _ = await tokenized(stage, policy, chat({"role": "user", "content": text}, stream=True))
        seen_by_provider = copy.deepcopy(ex.body)
        answer = echo_provider(seen_by_provider)
        issued = [f"<{c}>" for c in ex.state["pii"].vault.cores()]
        for v in (EMAIL, PHONE, CARD, SSN):
            assert v not in json.dumps(seen_by_provider)
        cuts = sorted(set(data.draw(st.lists(st.integers(0, len(answer)), max_size=12))))
        pieces = [answer[a:b] for a, b in zip([0] + cuts, cuts + [len(answer)])]
        streamed = await run_response(Chain([stage]), ex, [Event.sse_json(chat_chunk(p)) for p in pieces]
                                      + [Event.sse_json(chat_chunk(finish="stop"))])
        await Chain([stage]).run_complete(ex)
        ex2, _ = await tokenized(stage, policy, chat({"role": "user", "content": text}))
        whole = await run_response(Chain([stage]), ex2, [Event.body(chat_body(echo_provider(ex2.body)))])
        await Chain([stage]).run_complete(ex2)
        got = client_text(streamed)
        assert got == whole[0].payload["choices"][0]["message"]["content"] == "Echo: " + text
        assert not any(t in got for t in issued)

    asyncio.run(run())


# ------------------------------------------------------------------ through the real proxy and mock


@pytest.fixture(scope="module")
def servers():
    from tests.integration.servers import BackgroundLoop, MockServer

    bg = BackgroundLoop()
    mock = MockServer(bg).start()
    yield bg, mock
    mock.stop()
    bg.close()


@pytest.fixture
def proxy(servers, tmp_path):
    from tests.integration.servers import ProxyServer, policy_for

    bg, mock = servers
    mock.clear()
    pipeline = [{"type": "tenant"}, {"type": "egress"}, {"type": "pii", "secret": SECRET}]
    p = ProxyServer(bg, policy_for(mock.port, pipeline=pipeline), tmp_path).start()
    yield p, mock
    p.stop()


def _client(p, tenant="acme"):
    from tests.integration.servers import token

    return openai.OpenAI(base_url=p.base_url, api_key=token(tenant), default_headers={"X-Tenant-ID": tenant}, max_retries=0)


def test_end_to_end_provider_sees_tokens_client_gets_values(proxy):
    p, mock = proxy
    text = f"Reach me at {EMAIL} or {PHONE}. mock:split=3"
    r = _client(p).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    assert r.choices[0].message.content == f"Echo: Reach me at {EMAIL} or {PHONE}."
    s = _client(p).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == f"Echo: Reach me at {EMAIL} or {PHONE}."
    assert len(mock.log) == 2
    for entry in mock.log:
        sent = orjson.dumps(entry["body"]).decode()
        assert EMAIL not in sent and PHONE not in sent
        assert "<EMAIL_ADDRESS_1>" in sent and "<PHONE_NUMBER_1>" in sent


def test_end_to_end_block_mode_makes_no_upstream_call(proxy):
    p, mock = proxy
    with pytest.raises(openai.BadRequestError) as e:
        _client(p, "mercy").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"ssn {SSN}"}])
    assert e.value.body["code"] == "pii_blocked" and "US_SSN" in e.value.body["message"] and SSN not in e.value.body["message"]
    assert mock.log == []


async def test_dense_adversarial_text_hits_the_cpu_budget_and_fails_closed(policy):
    stage = make_stage(PiiStage, {"type": "pii", "secret": SECRET, "max_detect_seconds": 0.05, "executor_min_chars": 0}, policy)
    ex, deny = await tokenized(stage, policy, chat({"role": "user", "content": "4111 " * 40_000}))
    assert deny is not None and deny.status == 413 and deny.code == "pii_scan_limit"
    assert ex.body["messages"][0]["content"].startswith("4111 4111")  # nothing was sent anyway


async def test_detector_failure_fails_closed_unless_configured_open(policy, monkeypatch):
    closed = make_stage(PiiStage, {"type": "pii", "secret": SECRET}, policy)
    opened = make_stage(PiiStage, {"type": "pii", "secret": SECRET, "on_error": "open"}, policy)

    def broken(text, budget_s=None):
        raise RuntimeError("detector backend broke")
        yield  # a generator, like Detector.steps

    for st_ in (closed, opened):
        monkeypatch.setattr(st_.detector_for("acme"), "steps", broken)
    ex, deny = await tokenized(closed, policy, chat({"role": "user", "content": f"mail {EMAIL}"}))
    assert deny is not None and deny.status == 503 and deny.code == "pii_unavailable"
    ex, deny = await tokenized(opened, policy, chat({"role": "user", "content": f"mail {EMAIL}"}))
    assert deny is None and ex.decisions[-1].decision == "error_open"


async def test_ner_model_runs_in_a_worker_thread_for_large_text(policy, tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": [{"LOWER": "ada"}, {"LOWER": "lovelace"}]}])
    nlp.to_disk(tmp_path / "tiny_ner")
    stage = make_stage(PiiStage, {"type": "pii", "secret": SECRET, "executor_min_chars": 0,
                                  "tenants": {"acme": {"ner_model": str(tmp_path / "tiny_ner")}}}, policy)
    ex, deny = await tokenized(stage, policy, chat({"role": "user", "content": f"Ada Lovelace, {EMAIL}"}))
    assert deny is None and ex.body["messages"][0]["content"] == "<PERSON_1>, <EMAIL_ADDRESS_1>"
    ex, _ = await tokenized(stage, policy, chat({"role": "user", "content": "Ada Lovelace"}), tenant="globex")
    assert ex.body["messages"][0]["content"] == "Ada Lovelace"  # NER is acme's override only


def test_end_to_end_replayed_token_from_another_tenant_stays_literal(proxy):
    p, mock = proxy
    _client(p, "acme").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    assert "<EMAIL_ADDRESS_1>" in orjson.dumps(mock.log[-1]["body"]).decode()
    r = _client(p, "globex").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "say <EMAIL_ADDRESS_1>"}])
    assert r.choices[0].message.content == "Echo: say <EMAIL_ADDRESS_1>"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=planted_text(), split=st.integers(1, 7))
def test_end_to_end_property_provider_never_sees_values_and_stream_restores(proxy, text, split):
    p, mock = proxy
    before = len(mock.log)
    s = _client(p).chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": f"{text} mock:split={split}"}])
    got = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert got == f"Echo: {text.strip()}"  # the mock echoes the stripped message without its directive
    sent = orjson.dumps(mock.log[before]["body"]).decode()
    assert not any(v in sent for v in (EMAIL, PHONE, CARD, SSN, "ann@example.org", "GB56HXDO88167774656119"))


async def test_no_identity_fails_closed(stage, policy):
    ex = make_exchange(policy, chat({"role": "user", "content": f"mail {EMAIL}"}), tenant=None)
    deny = await stage.on_request(ex)
    assert deny is not None and deny.status == 500


# Unicode case folding: "İ".lower() is two code points, so context words looked up in text.lower() at
# the original offsets were shifted ("İSTANBUL İLETİŞİM phone 5551234567": "phone" was cut to "ph" and the
# number, which needs its context word, reached the provider); under IGNORECASE the IBAN's [A-Z0-9]
# look-arounds took "ı", "İ", "ſ" and the Kelvin sign for letters.
@pytest.mark.parametrize("text,value", [
    ("İSTANBUL İLETİŞİM phone 5551234567 please", "5551234567"),
    ("İİ call 555 12345 today", "555 12345"),
    ("Kontakt İİİİ mobile: 4155550134", "4155550134"),
    ("IBAN ıDE89370400440532013000 ok", "DE89370400440532013000"),
    ("IBAN DE89370400440532013000ı ok", "DE89370400440532013000"),
    ("IBAN \u212aDE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00"),
    ("IBAN ſDE89370400440532013000 ok", "DE89370400440532013000"),
])
async def test_pii_next_to_a_character_whose_case_mapping_changes_length_or_folds_to_ascii_is_tokenized(stage, policy, text, value):
    ex, deny = await tokenized(stage, policy, chat({"role": "user", "content": text}))
    assert deny is None
    sent = ex.body["messages"][0]["content"]
    assert value not in sent and "_1>" in sent, sent
    await Chain([stage]).run_complete(ex)
