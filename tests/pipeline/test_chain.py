"""Chain: request hooks in policy order, response hooks in reverse, flushes pass outer stages, on_complete always."""

import asyncio

from proxy.pipeline.chain import Chain
from proxy.pipeline.deny import Deny, DenyError
from proxy.pipeline.stage import Stage
from proxy.wire.event import Event
from tests.harness import make_exchange, make_policy, make_services, run_response


def recorder(name, log, deny_request=False, hold=False, raise_on_event=False):
    class S(Stage):
        type = name

        async def on_request(self, ex):
            log.append(("req", name))
            return Deny(403, "no", code="nope") if deny_request else None

        async def on_response_event(self, ex, event):
            log.append(("evt", name, event.data))
            if raise_on_event:
                raise DenyError(Deny(400, "cut", code="cut"))
            if hold:
                ex.state.setdefault(name, []).append(event)
                return []
            return [event]

        async def on_response_end(self, ex):
            log.append(("end", name))
            return ex.state.pop(name, [])

        async def on_complete(self, ex):
            log.append(("done", name))
    return S(None, make_policy(), make_services())


async def test_order_is_onion():
    log = []
    chain = Chain([recorder("a", log), recorder("b", log), recorder("c", log)])
    ex = make_exchange(make_policy(), {"model": "gpt-4o-mini"})
    assert await chain.run_request(ex) is None
    await run_response(chain, ex, [Event(kind="sse", data="1")])
    await chain.run_complete(ex)
    assert log == [("req", "a"), ("req", "b"), ("req", "c"),
                   ("evt", "c", "1"), ("evt", "b", "1"), ("evt", "a", "1"),
                   ("end", "c"), ("end", "b"), ("end", "a"),
                   ("done", "a"), ("done", "b"), ("done", "c")]


async def test_a_deny_stops_later_request_hooks_but_every_on_complete_runs():
    log = []
    chain = Chain([recorder("a", log), recorder("b", log, deny_request=True), recorder("c", log)])
    ex = make_exchange(make_policy(), {})
    deny = await chain.run_request(ex)
    assert deny.status == 403 and ex.denied == ("b", "nope")
    await chain.run_complete(ex)
    assert [e for e in log if e[0] == "req"] == [("req", "a"), ("req", "b")]
    assert [e for e in log if e[0] == "done"] == [("done", "a"), ("done", "b"), ("done", "c")]


async def test_what_an_inner_stage_flushes_passes_the_outer_stages():
    log = []
    chain = Chain([recorder("outer", log), recorder("inner", log, hold=True)])
    ex = make_exchange(make_policy(), {})
    out = await run_response(chain, ex, [Event(kind="sse", data="x")])
    assert [e.data for e in out] == ["x"]
    assert ("evt", "outer", "x") in log and log.index(("end", "inner")) < log.index(("evt", "outer", "x"))


async def test_deny_during_response_marks_the_exchange():
    chain = Chain([recorder("a", []), recorder("b", [], raise_on_event=True)])
    ex = make_exchange(make_policy(), {})
    try:
        await chain.run_event(ex, Event(kind="sse", data="x"))
        raise AssertionError("expected DenyError")
    except DenyError as e:
        assert e.deny.code == "cut"
    assert ex.denied == ("b", "cut")


async def test_on_complete_survives_cancellation_of_the_caller():
    finished = asyncio.Event()

    class Slow(Stage):
        type = "slow"

        async def on_complete(self, ex):
            await asyncio.sleep(0.05)
            finished.set()

    chain = Chain([Slow(None, make_policy(), make_services())])
    ex = make_exchange(make_policy(), {})
    task = asyncio.ensure_future(chain.run_complete(ex))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.wait_for(finished.wait(), 1)


async def test_a_failing_on_complete_does_not_skip_the_others():
    log = []

    class Broken(Stage):
        type = "broken"

        async def on_complete(self, ex):
            raise RuntimeError("backend down")

    chain = Chain([Broken(None, make_policy(), make_services()), recorder("after", log)])
    await chain.run_complete(make_exchange(make_policy(), {}))
    assert ("done", "after") in log


async def test_stages_without_hooks_are_not_called():
    class Quiet(Stage):
        type = "quiet"

    chain = Chain([Quiet(None, make_policy(), make_services())])
    assert not chain.touches_events
    ex = make_exchange(make_policy(), {})
    ev = Event(kind="sse", data="x")
    assert await chain.run_event(ex, ev) == [ev]


async def test_decisions_are_counted_in_metrics():
    from proxy.metrics import Metrics
    metrics = Metrics()

    class Decider(Stage):
        type = "decider"

        async def on_request(self, ex):
            ex.decide("decider", "flag", score=0.7)

    chain = Chain([Decider(None, make_policy(), make_services())], metrics)
    ex = make_exchange(make_policy(), {})
    await chain.run_request(ex)
    await chain.run_complete(ex)
    assert metrics.registry.get_sample_value("ramparts_stage_decisions_total", {"stage": "decider", "decision": "flag"}) == 1


async def test_on_complete_finishes_before_a_twice_cancelled_caller_goes_on():
    finished = []

    class Slow(Stage):
        type = "slow"

        async def on_complete(self, ex):
            await asyncio.sleep(0.1)
            finished.append(True)

    chain = Chain([Slow(None, make_policy(), make_services())])
    ex = make_exchange(make_policy(), {})
    task = asyncio.ensure_future(chain.run_complete(ex))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert finished == [True]  # the caller only moved on after settle/audit finished


async def test_on_complete_is_skipped_for_stages_with_nothing_to_do(monkeypatch):
    """wants_complete(ex) False: that stage's on_complete is not called, and with none left no task is made."""
    log = []
    a, b = recorder("a", log), recorder("b", log)
    b.wants_complete = lambda ex: "b" in ex.state
    chain = Chain([a, b])
    await chain.run_complete(make_exchange(make_policy(), {}))
    assert log == [("done", "a")]
    log.clear()
    ex = make_exchange(make_policy(), {})
    ex.state["b"] = True
    await chain.run_complete(ex)
    assert log == [("done", "a"), ("done", "b")]

    made = []
    real = asyncio.ensure_future
    monkeypatch.setattr(asyncio, "ensure_future", lambda coro: made.append(1) or real(coro))
    a.wants_complete = lambda ex: False
    log.clear()
    await chain.run_complete(make_exchange(make_policy(), {}))
    assert log == [] and made == []


async def test_several_events_from_one_stage_each_pass_the_next():
    log = []

    class Split(Stage):
        type = "split"

        async def on_response_event(self, ex, event):
            return [Event(kind="sse", data=event.data + "1"), Event(kind="sse", data=event.data + "2")]

    chain = Chain([recorder("outer", log), Split(None, make_policy(), make_services())])
    out = await chain.run_event(make_exchange(make_policy(), {}), Event(kind="sse", data="x"))
    assert [e.data for e in out] == ["x1", "x2"]
    assert [entry for entry in log if entry[0] == "evt"] == [("evt", "outer", "x1"), ("evt", "outer", "x2")]


async def test_touches_events_of_asks_every_stage_with_response_hooks():
    log = []
    a, b = recorder("a", log), recorder("b", log)
    chain = Chain([a, b])
    ex = make_exchange(make_policy(), {})
    assert chain.touches_events and chain.touches_events_of(ex)
    a.wants_events = lambda ex: False
    assert chain.touches_events_of(ex)  # b still wants them
    b.wants_events = lambda ex: False
    assert not chain.touches_events_of(ex)


def denier(name, log, deny_on: str):
    """Passes events (logging them) until one whose data is `deny_on`."""
    class S(Stage):
        type = name

        async def on_response_event(self, ex, event):
            log.append((name, event.data))
            if event.data == deny_on:
                raise DenyError(Deny(429, "cut", code=name))
            return [event]
    return S(None, make_policy(), make_services())


def batcher(name, log, deny_on: str | None = None):
    """Takes the events of a read at once; denies at `deny_on`, saying what passed before it."""
    class S(Stage):
        type = name

        async def on_response_event(self, ex, event):
            log.append((name, "one", event.data))
            return [event]

        async def on_response_events(self, ex, events):
            log.append((name, "many", [e.data for e in events]))
            datas = [e.data for e in events]
            if deny_on in datas:
                e = DenyError(Deny(403, "no", code=name))
                e.passed = events[:datas.index(deny_on)]
                raise e
            return list(events)
    return S(None, make_policy(), make_services())


async def test_run_events_gives_a_batching_stage_the_read_and_the_others_each_event():
    log = []
    chain = Chain([recorder("outer", log), batcher("b", log)])
    ex = make_exchange(make_policy(), {})
    out = await chain.run_events(ex, [Event(kind="sse", data=d) for d in "xyz"])
    assert [e.data for e in out] == ["x", "y", "z"]
    assert log == [("b", "many", ["x", "y", "z"]), ("evt", "outer", "x"), ("evt", "outer", "y"), ("evt", "outer", "z")]
    log.clear()
    assert [e.data for e in await chain.run_events(ex, [Event(kind="sse", data="w")])] == ["w"]
    assert log == [("b", "one", "w"), ("evt", "outer", "w")]  # one event: the per-event path


async def test_run_events_deny_passes_what_came_before_it_through_the_outer_stages():
    log = []
    chain = Chain([recorder("outer", log), batcher("b", log, deny_on="z")])
    ex = make_exchange(make_policy(), {})
    try:
        await chain.run_events(ex, [Event(kind="sse", data=d) for d in "xyzw"])
        raise AssertionError("expected DenyError")
    except DenyError as e:
        assert e.deny.code == "b" and [ev.data for ev in e.passed] == ["x", "y"]
    assert ("evt", "outer", "x") in log and ("evt", "outer", "z") not in log and ex.denied == ("b", "b")


async def test_run_events_deny_of_a_per_event_stage_is_the_same_as_event_by_event():
    for events in (["a", "b", "STOP", "c"], ["STOP"], ["a", "STOP"]):
        results = []
        for batched in (False, True):
            log = []
            chain = Chain([recorder("outer", log), denier("d", log, "STOP"), batcher("inner", log)])
            ex = make_exchange(make_policy(), {})
            sent = []
            try:
                if batched:
                    sent += await chain.run_events(ex, [Event(kind="sse", data=d) for d in events])
                else:
                    for d in events:
                        sent += await chain.run_event(ex, Event(kind="sse", data=d))
            except DenyError as e:
                sent += getattr(e, "passed", None) or []
                results.append(([ev.data for ev in sent], e.deny.code, ex.denied))
        assert len(results) == 2
        assert results[0] == results[1] == (events[:events.index("STOP")], "d", ("d", "d"))


async def test_an_outer_deny_on_what_an_inner_stage_passed_wins():
    log = []
    chain = Chain([denier("outer", log, "x"), batcher("inner", log, deny_on="z")])
    ex = make_exchange(make_policy(), {})
    try:
        await chain.run_events(ex, [Event(kind="sse", data=d) for d in "wxyz"])
        raise AssertionError("expected DenyError")
    except DenyError as e:
        assert e.deny.code == "outer" and [ev.data for ev in e.passed] == ["w"]
    assert ex.denied == ("outer", "outer")
