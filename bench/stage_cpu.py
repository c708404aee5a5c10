"""One stage's CPU per request on bench.fullstack's 2 KB prompt with PII, in process.

    .venv/bin/python -m bench.stage_cpu --stages injection,pii,budget [--runs 7] [--requests 300]
    .venv/bin/python -m bench.stage_cpu --profile pii [--mode json]

bench.core / bench.fullstack measure the whole server over sockets (noisy on a shared 2-core VM);
this runs only the chain's per-request work (handler.py: `chain.run_request`, the answer through
`chain.run_event`/`run_events` and `run_end`, then `run_complete`) for the policy bench.core
builds with `--stages X`, against the core chain (tenant, egress) in the same run, on the
fullstack prompt (`bench.fullstack.prompt(2048, 20)`) and the answer the mock sends for it
(an echo of the user message as the upstream receives it, i.e. after pii tokenized it).
CPU time of this process (time.process_time, all threads: SQLite and to_thread work count),
median of `--runs` interleaved runs of `--requests` requests; "added" = stage chain minus core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import orjson

from bench.fullstack import prompt
from bench.core import SYSTEM
from bench.leak_core import chain_for
from proxy.mock_provider import _DIRECTIVE, _pieces, parse_modes
from proxy.wire.event import Event
from proxy.wire.sse import SSEDecoder, encode_event

PROMPT = prompt(2048, 20)


def request_body(stream: bool) -> dict:
    return {"model": "gpt-4o-mini", "stream": stream, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]}


def answer_frames(upstream_body: dict, stream: bool) -> list[bytes]:
    """What the mock writes back for the body the proxy sent upstream (proxy/mock_provider.py)."""
    user = next(m["content"] for m in reversed(upstream_body["messages"]) if m.get("role") == "user")
    text = "Echo: " + _DIRECTIVE.sub("", user).strip()
    cid, created, model = "chatcmpl-0123456789abcdef01234567", 1_700_000_000, "gpt-4o-mini"
    if not stream:
        body = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 600, "completion_tokens": len(text) // 4, "total_tokens": 600 + len(text) // 4}}
        return [orjson.dumps(body)]

    def chunk(delta, finish=None):
        return b"data: " + orjson.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}) + b"\n\n"
    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": p}) for p in _pieces(text, parse_modes(user))]
    frames.append(chunk({}, "stop"))
    frames.append(b"data: [DONE]\n\n")
    return frames


async def one(policy, chain, stream: bool) -> bytes:
    """The handler's work on one exchange after authentication; returns what the client gets."""
    from tests.harness import make_exchange
    ex = make_exchange(policy, request_body(stream))
    deny = await chain.run_request(ex, start=1)
    assert deny is None, deny
    upstream = orjson.dumps(ex.body)  # the handler serialises the (possibly edited) body for upstream
    frames = answer_frames(orjson.loads(upstream), stream)
    ex.response_status = 200
    touch = chain.touches_events and chain.touches_events_of(ex)
    parts: list[bytes] = []
    if not stream:
        ev = Event(kind="body", data=frames[0].decode(), raw=frames[0])
        out = (await chain.run_event(ex, ev) + await chain.run_end(ex)) if touch else [ev]
        final = next(e for e in out if e.kind == "body")
        parts.append(final.raw if final.raw is not None else final.data.encode())
    else:
        dec = SSEDecoder()
        for f in frames:
            evs = dec.feed(f)
            out = await chain.run_events(ex, evs) if touch else evs
            parts.extend(encode_event(o) for o in out if not o.is_done)
        if touch:
            parts.extend(encode_event(e) for e in await chain.run_end(ex) if not e.is_done)
    await chain.run_complete(ex)
    return b"".join(parts)


async def measure(stages: list[str], runs: int, requests: int, modes: list[str]) -> dict:
    chains = {"core": chain_for([])} | {s: chain_for([s]) for s in stages}
    for _policy, chain in chains.values():
        await chain.start()
    res: dict = {}
    for mode in modes:
        stream = mode == "stream"
        for pc in chains.values():
            for _ in range(30):
                await one(*pc, stream)
        acc: dict[str, list[float]] = {k: [] for k in chains}
        for _ in range(runs):
            for name, pc in chains.items():
                t0 = time.process_time()
                for _ in range(requests):
                    await one(*pc, stream)
                acc[name].append((time.process_time() - t0) / requests * 1e6)
        res[mode] = {k: statistics.median(v) for k, v in acc.items()}
    for _policy, chain in chains.values():
        await chain.stop()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="injection,pii,budget")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--modes", default="json")
    ap.add_argument("--profile", help="cProfile this stage's chain instead (writes /tmp/stage_cpu.prof)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    if args.profile:
        import cProfile
        import pstats
        pc = chain_for([args.profile])
        stream = modes[0] == "stream"

        async def many(prof=None):
            await pc[1].start()
            for _ in range(30):
                await one(*pc, stream)
            if prof:
                prof.enable()
            for _ in range(args.requests):
                await one(*pc, stream)
            if prof:
                prof.disable()
            await pc[1].stop()
        prof = cProfile.Profile()
        asyncio.run(many(prof))
        prof.dump_stats("/tmp/stage_cpu.prof")
        pstats.Stats("/tmp/stage_cpu.prof").sort_stats("cumulative").print_stats(45)
        return
    res = asyncio.run(measure([s for s in args.stages.split(",") if s], args.runs, args.requests, modes))
    print(f"In-process CPU per request, fullstack 2 KB prompt (median of {args.runs} x {args.requests})")
    print("| mode | chain | µs/req | added vs core µs |\n|---|---|---:|---:|")
    for mode, row in res.items():
        for k, v in row.items():
            print(f"| {mode} | {k} | {v:.1f} | {v - row['core']:+.1f} |")


if __name__ == "__main__":
    main()
