"""Stage `budget` through the harness: plan rules, clamping, settle on every outcome, retries, fail closed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.budget.cost import usd
from proxy.budget.period import period_of
from proxy.pipeline.chain import Chain
from proxy.pipeline.deny import DenyError
from proxy.stages.budget import BudgetStage
from proxy.wire.event import Event
from proxy.wire.openai import get_at, response_slots, usage_of
from tests.budget.test_tokenizer import COUNTER  # one load per test process: ~1 s per encoding
from tests.harness import chat_body, chat_chunk, client_text, make_exchange, make_policy, make_services, make_stage
from tests.redis_server import redis_server  # noqa: F401  (fixture)

PLANS = {
    "free": {"models": ["gpt-4o-mini"], "monthly_interactions": 5, "max_tokens_per_request": 2000,
             "monthly_budget_usd": 1.0, "upgrade_hint": "Upgrade to Starter at https://acme.test/billing."},
    "strict": {"models": ["gpt-4o-mini"], "max_tokens_per_request": 1000, "over_cap": "reject", "monthly_budget_usd": 10},
    "tiny": {"models": ["gpt-4o-mini"], "max_tokens_per_request": 1000, "monthly_budget_usd": 0.001},
}
TENANTS = {"acme": {"plan": "free"}, "globex": {"plan": "strict"}, "mercy": {"plan": "tiny"}}
MSG = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the team."}]}


def policy(plans=None, tenants=None, models=None):
    over = {"plans": {**PLANS, **(plans or {})}, "tenants": {**TENANTS, **(tenants or {})}}
    if models:
        over["models"] = models
    return make_policy(**over)




def services(tmp_path):
    svc = make_services(tmp_path)
    svc.extras["token_counter"] = COUNTER
    return svc


async def make(tmp_path, cfg=None, pol=None) -> BudgetStage:
    s = make_stage(BudgetStage, {"type": "budget", **(cfg or {})}, pol or policy(), services(tmp_path))
    await s.start()
    return s


@pytest.fixture
async def stage(tmp_path):
    s = await make(tmp_path)
    yield s
    await s.stop()


async def respond(stage, ex, events, status=200, outcome="ok"):
    """What the handler does: observe usage before the chain, run the events, then complete."""
    chain = Chain([stage])
    ex.upstream_started = time.perf_counter()
    ex.response_status = status
    out = []
    try:
        for ev in events:
            p = ev.payload
            u = usage_of(p)
            if u is not None:
                ex.usage.prompt_tokens, ex.usage.completion_tokens = u
                ex.usage.reported = True
            for slot in response_slots(p):
                ex.usage.streamed_chars += len(get_at(p, slot.path))
            out.extend(await chain.run_event(ex, ev))
        out.extend(await chain.run_end(ex))
        ex.outcome = outcome
    except DenyError:
        ex.outcome = "cut_stream"
    await chain.run_complete(ex)
    return out


async def balance(stage, tenant="acme"):
    return await stage.ledger.balance(tenant, period_of(time.time()))


def stream(texts, usage=None):
    evs = [Event.sse_json(chat_chunk(t, role="assistant" if i == 0 else None)) for i, t in enumerate(texts)]
    evs.append(Event.sse_json(chat_chunk(finish="stop")))
    if usage:
        evs.append(Event.sse_json({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                                   "choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                                            "total_tokens": sum(usage)}}))
    evs.append(Event(kind="sse", data="[DONE]"))
    return evs


# ------------------------------------------------------------------ plan rules


async def test_model_outside_the_plan_is_403_naming_the_plan(stage):
    ex = make_exchange(stage.policy, {**MSG, "model": "text-embedding-3-small"})
    deny = await stage.on_request(ex)
    assert deny.status == 403 and "'free'" in deny.message and "Upgrade to Starter" in deny.message
    assert "budget" not in ex.state and (await balance(stage)).held == 0


async def test_missing_max_tokens_defaults_to_the_plan_cap(stage):
    ex = make_exchange(stage.policy, MSG)
    assert await stage.on_request(ex) is None
    assert ex.body["max_tokens"] == 2000
    assert ex.extra_response_headers["X-Ramparts-Plan"] == "free"
    assert ex.extra_response_headers["X-Ramparts-Interactions-Remaining"] == "4"
    assert [d.decision for d in ex.decisions] == ["reserve"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_asking_above_the_cap_is_clamped(stage, field):
    ex = make_exchange(stage.policy, {**MSG, field: 9000})
    assert await stage.on_request(ex) is None
    assert ex.body[field] == 2000
    assert any(d.decision == "clamp" and d.detail["reason"] == "plan" for d in ex.decisions)


async def test_asking_above_the_cap_is_refused_when_the_plan_says_reject(stage):
    ex = make_exchange(stage.policy, {**MSG, "max_tokens": 1001}, tenant="globex")
    deny = await stage.on_request(ex)
    assert deny.status == 400 and deny.code == "max_tokens_over_plan" and "'strict'" in deny.message
    ok = make_exchange(stage.policy, {**MSG, "max_tokens": 1000}, tenant="globex")
    assert await stage.on_request(ok) is None and ok.body["max_tokens"] == 1000


async def test_the_remaining_budget_clamps_max_tokens_then_refuses_with_the_reset_date(stage):
    # tiny: $0.001 = 1,000,000 nano; output costs 600 nano/token -> ~1,600 tokens fit, the cap is 1,000
    first = make_exchange(stage.policy, MSG, tenant="mercy")
    assert await stage.on_request(first) is None and first.body["max_tokens"] == 1000
    second = make_exchange(stage.policy, MSG, tenant="mercy")
    assert await stage.on_request(second) is None
    assert 16 <= second.body["max_tokens"] < 1000  # what the rest of the budget can pay
    assert any(d.decision == "clamp" and d.detail["reason"] == "budget" for d in second.decisions)
    third = make_exchange(stage.policy, MSG, tenant="mercy")
    deny = await stage.on_request(third)
    assert deny.status == 429 and deny.code == "budget_exhausted" and deny.type == "insufficient_quota"
    assert "resets on" in deny.message and "-01 (00:00 UTC)" in deny.message
    assert deny.headers["x-should-retry"] == "false"


async def test_interactions_run_out_at_the_plan_limit_and_tool_steps_count_once(stage):
    for _ in range(5):
        ex = make_exchange(stage.policy, MSG)
        assert await stage.on_request(ex) is None
        await respond(stage, ex, [Event.body(chat_body("hi"))])
    tool_step = {**MSG, "messages": MSG["messages"] + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    ex = make_exchange(stage.policy, tool_step)
    assert await stage.on_request(ex) is None  # the 5th interaction's tool step: no new interaction
    await respond(stage, ex, [Event.body(chat_body("the answer is 42"))])
    ex = make_exchange(stage.policy, MSG)
    deny = await stage.on_request(ex)
    assert deny.status == 429 and deny.code == "interactions_exhausted"
    assert "all 5 interactions" in deny.message and "Upgrade to Starter" in deny.message
    assert (await balance(stage)).used == 5


async def test_at_80_percent_a_header_and_the_appended_notice(tmp_path):
    stage = await make(tmp_path, {"append_notice": True})
    for i in range(4):
        ex = make_exchange(stage.policy, {**MSG, "stream": i == 3})
        assert await stage.on_request(ex) is None
        if i < 3:
            assert "X-Ramparts-Budget-Warning" not in ex.extra_response_headers
            await respond(stage, ex, [Event.body(chat_body("hi"))])
    warning = ex.extra_response_headers["X-Ramparts-Budget-Warning"]
    assert "80% of this month's interactions" in warning and "resets on" in warning
    out = await respond(stage, ex, stream(["Hel", "lo"], usage=(9, 2)))
    assert client_text(out).endswith("\n\n" + warning)
    assert client_text(out).startswith("Hello")
    assert out[-1].is_done
    await stage.stop()


# ------------------------------------------------------------------ settle


async def test_non_stream_settles_the_reported_usage(stage):
    ex = make_exchange(stage.policy, MSG)
    await stage.on_request(ex)
    reserved = ex.state["budget"].hold.amount
    await respond(stage, ex, [Event.body(chat_body("hello"))])  # usage 10 + 5
    bal = await balance(stage)
    assert bal.spent == stage.prices.get("gpt-4o-mini").cost(10, 5) < reserved and bal.held == 0 and bal.used == 1
    settle = [d for d in ex.decisions if d.decision == "settle"][0]
    assert settle.detail["prompt_tokens"] == 10 and settle.detail["completion_tokens"] == 5 and not settle.detail["estimated"]


async def test_stream_asks_for_usage_and_strips_the_extra_chunk(stage):
    ex = make_exchange(stage.policy, {**MSG, "stream": True})
    await stage.on_request(ex)
    assert ex.body["stream_options"] == {"include_usage": True} and ex.client_wants_usage is False
    out = await respond(stage, ex, stream(["Hi", " there"], usage=(12, 3)))
    assert not any(isinstance(e.payload, dict) and "usage" in e.payload for e in out)
    assert (await balance(stage)).spent == stage.prices.get("gpt-4o-mini").cost(12, 3)


async def test_stream_keeps_the_usage_chunk_when_the_client_asked(stage):
    ex = make_exchange(stage.policy, {**MSG, "stream": True, "stream_options": {"include_usage": True}})
    await stage.on_request(ex)
    assert ex.client_wants_usage is True
    out = await respond(stage, ex, stream(["Hi"], usage=(12, 1)))
    assert any(isinstance(e.payload, dict) and e.payload.get("usage") for e in out)


async def test_stream_without_usage_settles_the_counted_output(stage):
    ex = make_exchange(stage.policy, {**MSG, "stream": True})
    await stage.on_request(ex)
    prompt = ex.state["budget"].prompt_tokens
    await respond(stage, ex, stream(["Hello", " world", " how", " are", " you"]))
    settle = [d for d in ex.decisions if d.decision == "settle"][0]
    assert settle.detail["estimated"] and settle.detail["completion_tokens"] == 5 and settle.detail["prompt_tokens"] == prompt
    assert (await balance(stage)).spent == stage.prices.get("gpt-4o-mini").cost(prompt, 5)


async def test_client_disconnect_settles_what_was_generated(stage):
    ex = make_exchange(stage.policy, {**MSG, "stream": True})
    await stage.on_request(ex)
    await respond(stage, ex, stream(["Hello", " world"])[:2], outcome="client_disconnect")
    settle = [d for d in ex.decisions if d.decision == "settle"][0]
    assert settle.detail["completion_tokens"] == 2 and (await balance(stage)).spent > 0


async def test_disconnect_before_the_upstream_answered_still_pays_the_prompt(stage):
    ex = make_exchange(stage.policy, MSG)
    await stage.on_request(ex)
    ex.upstream_started = time.perf_counter()
    ex.outcome = "client_disconnect"
    await Chain([stage]).run_complete(ex)
    bal = await balance(stage)
    assert bal.spent == stage.prices.get("gpt-4o-mini").cost(ex.state["budget"].prompt_tokens, 0) and bal.held == 0


@pytest.mark.parametrize("status,outcome", [(500, "upstream_error"), (429, "upstream_error"), (None, "denied"), (200, "upstream_error")])
async def test_no_output_releases_the_hold(stage, status, outcome):
    ex = make_exchange(stage.policy, MSG)
    await stage.on_request(ex)
    ex.response_status = status
    ex.outcome = outcome
    if status is not None:
        ex.upstream_started = time.perf_counter()
    await Chain([stage]).run_complete(ex)
    assert await balance(stage) == type(await balance(stage))()  # nothing spent, nothing held, no interaction
    assert [d.decision for d in ex.decisions][-1] == "release"


async def test_upstream_failure_after_output_settles_what_was_generated(stage):
    """H1: the provider resets mid-stream after two chunks: no usage arrives, the counted output is charged."""
    ex = make_exchange(stage.policy, {**MSG, "stream": True})
    await stage.on_request(ex)
    await respond(stage, ex, stream(["Hello", " world"])[:2], outcome="upstream_error")
    settle = [d for d in ex.decisions if d.decision == "settle"][0]
    assert settle.detail["estimated"] and settle.detail["completion_tokens"] == 2 and settle.detail["outcome"] == "upstream_error"
    bal = await balance(stage)
    assert bal.spent == stage.prices.get("gpt-4o-mini").cost(ex.state["budget"].prompt_tokens, 2)
    assert bal.held == 0 and bal.used == 1


async def test_sdk_retries_each_reserve_and_release(stage):
    for status in (500, 429):
        ex = make_exchange(stage.policy, MSG)
        assert await stage.on_request(ex) is None
        await respond(stage, ex, [Event.body({"error": {"message": "boom", "type": "server_error"}})], status=status,
                      outcome="upstream_error")
    ex = make_exchange(stage.policy, MSG)
    assert await stage.on_request(ex) is None
    await respond(stage, ex, [Event.body(chat_body("ok"))])
    bal = await balance(stage)
    assert bal.spent == stage.prices.get("gpt-4o-mini").cost(10, 5) and bal.held == 0 and bal.used == 1


async def test_actual_above_the_reserve_is_charged_and_the_next_request_refused(tmp_path):
    stage = await make(tmp_path)
    ex = make_exchange(stage.policy, {**MSG, "max_tokens": 10}, tenant="mercy")
    await stage.on_request(ex)
    body = chat_body("x")
    body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5000, "total_tokens": 5010}  # the provider ignored max_tokens
    await respond(stage, ex, [Event.body(body)])
    assert (await balance(stage, "mercy")).spent > 1_000_000  # overspent: charged in full
    deny = await stage.on_request(make_exchange(stage.policy, MSG, tenant="mercy"))
    assert deny.status == 429
    await stage.stop()


async def test_a_stream_past_its_reserved_output_is_cut(stage):
    ex = make_exchange(stage.policy, {**MSG, "stream": True, "max_tokens": 20})
    await stage.on_request(ex)
    out = await respond(stage, ex, stream([" word"] * 100))  # a provider that ignores max_tokens
    assert ex.outcome == "cut_stream" and not any(e.is_done for e in out)
    assert any(d.decision == "cut" for d in ex.decisions)
    settle = [d for d in ex.decisions if d.decision == "settle"][0]
    assert 20 < settle.detail["completion_tokens"] <= 20 + 16 + 1


async def test_a_duplicate_complete_settles_once(stage):
    ex = make_exchange(stage.policy, MSG)
    await stage.on_request(ex)
    await respond(stage, ex, [Event.body(chat_body("hello"))])
    await stage.on_complete(ex)
    assert await stage.ledger.settle(ex.state["budget"].hold, 10**9) is False
    assert (await balance(stage)).spent == stage.prices.get("gpt-4o-mini").cost(10, 5)


async def test_unpriced_model_is_refused_never_free(tmp_path):
    pol = policy(plans={"free": {**PLANS["free"], "models": ["gpt-4o-mini"]}})
    stage = await make(tmp_path, pol=pol)
    stage.prices._prices.pop("gpt-4o-mini")  # as if the price table had no entry for a plan's model
    deny = await stage.on_request(make_exchange(stage.policy, MSG))
    assert deny.status == 403 and deny.code == "model_unpriced"
    await stage.stop()


# ------------------------------------------------------------------ failure


async def test_store_failure_fails_closed_with_retry_after(tmp_path):
    stage = make_stage(BudgetStage, {"type": "budget", "store": "redis://127.0.0.1:9/0", "store_timeout_s": 0.3},
                       policy(), services(tmp_path))
    from proxy.budget.store import open_ledger
    stage.ledger = open_ledger("redis://127.0.0.1:9/0", tmp_path, timeout=0.3)  # start() would refuse a dead store
    ex = make_exchange(stage.policy, MSG)
    t = time.perf_counter()
    deny = await stage.on_request(ex)
    assert time.perf_counter() - t < 2.0  # 0.3 s store deadline + slack
    assert deny.status == 503 and deny.headers["Retry-After"] == "2" and deny.code == "budget_store_unavailable"
    assert "budget" not in ex.state
    await stage.ledger.close()


async def test_start_refuses_an_unreachable_store(tmp_path):
    stage = make_stage(BudgetStage, {"type": "budget", "store": "redis://127.0.0.1:9/0", "store_timeout_s": 0.3},
                       policy(), services(tmp_path))
    from proxy.budget.ledger import StoreUnavailable
    with pytest.raises(StoreUnavailable):
        await stage.start()
    await stage.ledger.close()


def test_config_refuses_a_password_in_the_url_and_failing_open():
    with pytest.raises(ValueError):
        BudgetStage.Config.model_validate({"type": "budget", "store": "redis://:pw@127.0.0.1:6379/0"})
    with pytest.raises(ValueError):
        BudgetStage.Config.model_validate({"type": "budget", "on_error": "open"})
    with pytest.raises(ValueError):
        BudgetStage.Config.model_validate({"type": "budget", "notice": "{nope}"})


# ------------------------------------------------------------------ usage endpoint


async def test_usage_endpoint_reports_the_callers_own_period(stage):
    ex = make_exchange(stage.policy, MSG)
    await stage.on_request(ex)
    await respond(stage, ex, [Event.body(chat_body("hello"))])
    other = make_exchange(stage.policy, MSG, tenant="globex")
    await stage.on_request(other)  # in flight for another tenant
    status, body = await stage.serve_local(make_exchange(stage.policy, None), {"tenant": "globex"})
    assert status == 200 and body["tenant"] == "acme" and body["plan"] == "free"
    assert body["interactions"] == {"used": 1, "in_flight": 0, "limit": 5, "remaining": 4}
    assert body["budget_usd"]["spent"] == usd(stage.prices.get("gpt-4o-mini").cost(10, 5))
    assert body["period"]["resets_at"].endswith("-01T00:00:00+00:00")


# ------------------------------------------------------------------ concurrency


async def _hammer(stage: BudgetStage, tenant: str, n: int) -> int:
    async def one() -> int:
        ex = make_exchange(stage.policy, MSG, tenant=tenant)
        if await stage.on_request(ex) is not None:
            return 0
        await asyncio.sleep(0.001)
        await respond(stage, ex, [Event.body({**chat_body("x"), "usage": {"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}})])
        return 1
    return sum(await asyncio.gather(*(one() for _ in range(n))))


CAP_PLAN = {"models": ["gpt-4o-mini"], "max_tokens_per_request": 1000, "monthly_budget_usd": 0.0065}
CAP = 6_500_000  # nano-USD: fits 10 worst-case requests (~602,000 each), not 11


async def test_200_concurrent_requests_never_overspend_the_embedded_store(tmp_path):
    pol = policy(plans={"cap": CAP_PLAN}, tenants={"acme": {"plan": "cap"}})
    stage = await make(tmp_path, {"min_output_tokens": 1000}, pol)  # no clamping: a request fits whole or not at all
    worst = stage.prices.get("gpt-4o-mini").cost(ex_prompt(stage), 1000)
    admitted = await _hammer(stage, "acme", 200)
    bal = await balance(stage)
    assert admitted == CAP // worst == 10
    assert bal.held == 0 and bal.held_interactions == 0 and bal.spent <= CAP
    await stage.stop()


def ex_prompt(stage) -> int:
    ex = make_exchange(stage.policy, MSG)
    texts, fixed = __import__("proxy.budget.sizing", fromlist=["prompt_parts"]).prompt_parts("chat", ex.body)
    return fixed + stage.counter.count_many(texts, "o200k_base")


WORKER = r"""
import asyncio, sys
from tests.stages.test_budget import BudgetStage, make_stage, policy, services, _hammer, CAP_PLAN
from pathlib import Path

async def main(url, data_dir):
    # byte counting instead of tiktoken: three processes building o200k would dominate the test's time
    pol = policy(plans={"cap": CAP_PLAN, "pro": {"models": ["gpt-4o-mini"]}}, tenants={"acme": {"plan": "cap"}},
                 models={"gpt-4o-mini": {"encoding": "bytes"}})
    stage = make_stage(BudgetStage, {"type": "budget", "store": url, "min_output_tokens": 1000, "store_timeout_s": 10,
                                     "pool_size": 8}, pol, services(Path(data_dir)))
    await stage.start()
    print(await _hammer(stage, "acme", int(sys.argv[3])))
    await stage.stop()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("store", ["redis", "embedded"])
async def test_three_processes_sharing_a_store_never_overspend(store, tmp_path, request):
    if store == "redis":
        srv = request.getfixturevalue("redis_server")
        srv.flush()
        url = srv.url
    else:
        url = "embedded"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(tmp_path), n], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])
             for n in ("67", "67", "66")]
    admitted = sum(int(p.communicate(timeout=120)[0].split()[-1]) for p in procs)
    stage = await make(tmp_path, {"store": url}, policy(plans={"cap": CAP_PLAN}, tenants={"acme": {"plan": "cap"}}))
    bal = await balance(stage)
    await stage.stop()
    assert admitted == 10 and bal.spent <= CAP and bal.held == 0 and bal.held_interactions == 0


async def test_a_huge_prompt_is_counted_off_the_event_loop(stage):
    body = {**MSG, "messages": [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 20000}]}
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ex = make_exchange(stage.policy, body)
    assert await stage.on_request(ex) is None
    t.cancel()
    assert ex.state["budget"].prompt_tokens > 180_000
    assert ticks >= 3  # the loop kept running while ~100 ms of tokenizing happened in a thread


async def test_month_rollover_settles_into_the_admitting_month_and_starts_fresh(stage, monkeypatch):
    import proxy.stages.budget as budget_module
    monkeypatch.setattr(budget_module, "period_of", lambda ts: "2026-11")
    for _ in range(4):
        ex = make_exchange(stage.policy, MSG)
        assert await stage.on_request(ex) is None
        await respond(stage, ex, [Event.body(chat_body("hi"))])
    late = make_exchange(stage.policy, MSG)
    assert await stage.on_request(late) is None  # the 5th of November, answered after midnight
    monkeypatch.setattr(budget_module, "period_of", lambda ts: "2026-12")
    await respond(stage, late, [Event.body(chat_body("hi"))])
    nov = await stage.ledger.balance("acme", "2026-11")
    dec = await stage.ledger.balance("acme", "2026-12")
    assert (nov.used, nov.held_interactions) == (5, 0) and dec == type(dec)()
    fresh = make_exchange(stage.policy, MSG)
    assert await stage.on_request(fresh) is None
    assert fresh.extra_response_headers["X-Ramparts-Interactions-Remaining"] == "4"
    assert fresh.extra_response_headers["X-Ramparts-Budget-Reset"] == "2027-01-01T00:00:00Z"


async def test_without_a_verified_tenant_nothing_is_reserved(stage):
    deny = await stage.on_request(make_exchange(stage.policy, MSG, tenant=None))
    assert deny.status == 403 and deny.code == "no_tenant"


KILLED = r"""
import asyncio, os, signal, sys
from pathlib import Path
from tests.stages.test_budget import BudgetStage, make_stage, policy, services, MSG, make_exchange

async def main(url, data_dir):
    pol = policy(models={"gpt-4o-mini": {"encoding": "bytes"}}, plans={"pro": {"models": ["gpt-4o-mini"]}})
    stage = make_stage(BudgetStage, {"type": "budget", "store": url, "hold_ttl_s": 2}, pol, services(Path(data_dir)))
    await stage.start()
    ex = make_exchange(stage.policy, MSG, tenant="mercy")
    assert await stage.on_request(ex) is None
    print("reserved", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the pod dies while the provider call is in flight

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("store", ["embedded", "redis"])
async def test_kill_9_of_a_proxy_between_reserve_and_settle(store, tmp_path, request):
    if store == "redis":
        srv = request.getfixturevalue("redis_server")
        srv.flush()
    url = srv.url if store == "redis" else "embedded"
    stage = await make(tmp_path, {"store": url})  # started first: its warm-up must not eat the 2 s deadline
    p = subprocess.run([sys.executable, "-c", KILLED, url, str(tmp_path)], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).parents[2])
    assert p.returncode == -9 and "reserved" in p.stdout, p.stderr[-2000:]
    held = await balance(stage, "mercy")
    assert held.held > 0 and held.held_interactions == 1  # the dead pod's hold still counts...
    await asyncio.sleep(2.1)
    after = await balance(stage, "mercy")
    assert after.held == 0 and after.held_interactions == 0 and after.spent == 0  # ...until its deadline: returned
    ex = make_exchange(stage.policy, MSG, tenant="mercy")
    assert await stage.on_request(ex) is None and ex.body["max_tokens"] == 1000  # the whole budget is usable again
    await stage.stop()


async def test_a_long_stream_keeps_its_hold_alive(tmp_path):
    stage = await make(tmp_path, {"hold_ttl_s": 1})
    ex = make_exchange(stage.policy, {**MSG, "stream": True})
    await stage.on_request(ex)
    chain = Chain([stage])
    for piece in ["a", " b", " c", " d", " e"]:  # 1.5 s of streaming against a 1 s hold
        await chain.run_event(ex, Event.sse_json(chat_chunk(piece)))
        await asyncio.sleep(0.3)
    assert (await balance(stage)).held > 0  # renewed every third of its TTL, not reclaimed mid-stream
    await respond(stage, ex, stream([], usage=(10, 5)))
    assert (await balance(stage)).held == 0
    await stage.stop()


async def test_the_periodic_sweep_reclaims_dead_holds(tmp_path):
    stage = await make(tmp_path, {"reclaim_interval_s": 1})
    await stage.ledger.reserve("globex", period_of(time.time()), 10, 10, 1, stage.plans["strict"].limits, 0.2)
    await asyncio.sleep(1.5)
    reclaimed = stage.services.metrics.budget_reservations.labels("reclaimed")._value.get()
    assert reclaimed == 1
    await stage.stop()


@pytest.mark.parametrize("seed", range(12))
async def test_deferred_output_counting_cuts_and_charges_exactly_like_counting_every_event(stage, seed):
    # Reference: count every streamed text as it arrives (the stage did so until 2026-12); the stage now
    # waits while a UTF-8 byte bound keeps a cut impossible. Same cut point, same charged count.
    import random
    rnd = random.Random(seed)
    pieces = [" word", "s", " 東京", " 🙂🙂", "\n\n", " refund", "ABC-123", " naïve", " x" * 7, "", " " * 5]
    texts = [rnd.choice(pieces) for _ in range(rnd.randint(1, 120))]
    max_tokens = rnd.choice([1, 5, 20, 60, 2000])
    limit = max_tokens + stage.config.cut_slack_tokens
    counted, cut_after = 0, None
    for i, t in enumerate(texts):
        counted += COUNTER.count(t, "o200k_base")
        if counted > limit:
            cut_after = i
            break
    ex = make_exchange(stage.policy, {**MSG, "stream": True, "max_tokens": max_tokens})
    await stage.on_request(ex)
    out = await respond(stage, ex, stream(texts))
    if cut_after is None:
        assert ex.outcome == "ok" and not any(d.decision == "cut" for d in ex.decisions)
    else:
        assert ex.outcome == "cut_stream"
        cut = [d for d in ex.decisions if d.decision == "cut"][0]
        assert cut.detail["output_tokens"] == counted
        assert sum(1 for e in out if e.payload and e.payload.get("choices") and
                   e.payload["choices"][0].get("delta", {}).get("content") is not None) <= cut_after + 1
    settle = [d for d in ex.decisions if d.decision == "settle"][0]
    assert settle.detail["estimated"] and settle.detail["completion_tokens"] == (counted or ex.usage.streamed_chars)
