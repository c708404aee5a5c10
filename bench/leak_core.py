"""The leak stage's CPU per request on bench.core's exact request and answer, in process.

    .venv/bin/python -m bench.leak_core [--runs 7] [--requests 400] [--profile]

bench.core measures the whole server (sockets, aiohttp, the other stages); this runs
only what the handler does per request after the upstream answered (handler.py:
`chain.run_events` per upstream read, `encode_event`, `chain.run_end`) for the
policy bench.core builds with `--stages leak`, with and without the leak stage, on the
bytes the mock sends for bench.core's request (22 frames: role, 19 content chunks of ~150 characters, finish, [DONE];
the JSON answer in one body). CPU time of this process (time.process_time), median of
`--runs` runs of `--requests` requests each; "added" = with leak minus without, the
number to hold against bench.core's budget (issue 5: within 20 % of the core stack's
RPS, ~40 µs per JSON answer and ~98 µs per streamed answer on the quiet machine).
`--reads` sets how many events arrive per upstream read (the mock writes one
frame per write; under load several frames coalesce).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import orjson
import yaml

from bench.core import SYSTEM, USER, bench_policy, extra_pipeline, ROOT
from proxy.app import build_state
from proxy.config.loader import compile_policy
from proxy.mock_provider import _pieces, parse_modes
from proxy.pipeline.exchange import Exchange
from proxy.wire.event import Event
from proxy.wire.sse import SSEDecoder, encode_event



def answer_frames(stream: bool) -> list[bytes]:
    """What the mock writes for bench.core's request (see proxy/mock_provider.py)."""
    text = "Echo: " + USER.replace("mock:stream-chunks=20", "").strip()
    cid, created, model = "chatcmpl-0123456789abcdef01234567", 1_700_000_000, "gpt-4o-mini"
    if not stream:
        body = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 40, "completion_tokens": len(text) // 4, "total_tokens": 40 + len(text) // 4}}
        return [orjson.dumps(body)]

    def chunk(delta, finish=None):
        return b"data: " + orjson.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}) + b"\n\n"
    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": p}) for p in _pieces(text, parse_modes(USER))]
    frames.append(chunk({}, "stop"))
    frames.append(b"data: [DONE]\n\n")
    return frames


def chain_for(stages: list[str]):
    os.environ.setdefault("RAMPARTS_BENCH_JWT_SECRET", "bench-jwt-secret-that-is-at-least-32-bytes!")
    os.environ.setdefault("RAMPARTS_BENCH_PROVIDER_KEY", "sk-bench-provider-key")
    os.environ.setdefault("RAMPARTS_BENCH_STAGE_SECRET", os.urandom(32).hex())
    extra, tenant_extra = extra_pipeline(stages, ROOT / "bench/stages.yaml") if stages else ([], {})
    raw = yaml.safe_dump(bench_policy(9, extra, tenant_extra)).encode()
    policy = compile_policy(raw)
    import tempfile
    return policy, build_state(policy, data_dir=tempfile.mkdtemp(prefix="leak-core-")).chain


def request_body(stream: bool) -> dict:
    return {"model": "gpt-4o-mini", "stream": stream, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]}


async def one(policy, chain, stream: bool, frames: list[bytes], reads: int) -> None:
    """The handler's work on one exchange after authentication (tenant already known)."""
    from tests.harness import make_exchange
    ex: Exchange = make_exchange(policy, request_body(stream))
    await chain.run_request(ex, start=1)
    ex.response_status = 200
    touch = chain.touches_events and chain.touches_events_of(ex)
    if not stream:
        raw = frames[0]
        ev = Event(kind="body", data=raw.decode(), raw=raw)
        assert isinstance(ev.payload, dict)
        out = await chain.run_event(ex, ev) + await chain.run_end(ex) if touch else [ev]
        final = next(e for e in out if e.kind == "body")
        body = final.raw if final.raw is not None else final.data.encode()
        assert body
    else:
        dec = SSEDecoder()
        parts: list[bytes] = []
        for i in range(0, len(frames), reads):
            evs = dec.feed(b"".join(frames[i:i + reads]))
            for ev in evs:
                assert ev.is_done or isinstance(ev.payload, dict)
            out = await chain.run_events(ex, evs) if touch else evs
            parts.extend(encode_event(o) for o in out if not o.is_done)
        end = await chain.run_end(ex) if touch else []
        parts.extend(encode_event(e) for e in end if not e.is_done)
    await chain.run_complete(ex)


async def measure(runs: int, requests: int, reads: int) -> dict:
    core = chain_for([])
    leak = chain_for(["leak"])
    res: dict = {}
    for stream in (False, True):
        frames = answer_frames(stream)
        for _ in range(20):  # warm caches (fingerprint of the request's system prompt, ...)
            await one(*core, stream, frames, reads)
            await one(*leak, stream, frames, reads)
        c, l = [], []
        for _ in range(runs):
            for name, (policy, chain), acc in (("core", core, c), ("leak", leak, l)):
                t0 = time.process_time()
                for _ in range(requests):
                    await one(policy, chain, stream, frames, reads)
                acc.append((time.process_time() - t0) / requests * 1e6)
        res["stream" if stream else "json"] = (statistics.median(c), statistics.median(l))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--reads", type=int, default=1, help="events per upstream read (1 = one frame per read)")
    ap.add_argument("--profile", choices=["json", "stream"], help="cProfile the leak chain's requests of this mode instead")
    args = ap.parse_args()
    if args.profile:
        import cProfile
        import pstats
        policy, chain = chain_for(["leak"])
        stream = args.profile == "stream"
        frames = answer_frames(stream)

        async def many():
            for _ in range(args.requests):
                await one(policy, chain, stream, frames, args.reads)
        asyncio.run(many())
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, many())
        prof.dump_stats("/tmp/leak_core.prof")
        pstats.Stats("/tmp/leak_core.prof").sort_stats("tottime").print_stats(30)
        return
    res = asyncio.run(measure(args.runs, args.requests, args.reads))
    print(f"In-process CPU per request (median of {args.runs} x {args.requests}; {args.reads} event(s) per read)")
    print("| mode | without leak µs | with leak µs | added µs |\n|---|---:|---:|---:|")
    for mode, (c, l) in res.items():
        print(f"| {mode} | {c:.1f} | {l:.1f} | {l - c:.1f} |")


if __name__ == "__main__":
    main()
