"""bench.leak_core: the in-process per-request measurement runs and reports both modes."""

import asyncio

from bench.leak_core import answer_frames, chain_for, measure, one


def test_answer_frames_are_the_mocks_shape():
    from bench.core import USER
    from proxy.mock_provider import _pieces, parse_modes
    frames = answer_frames(True)
    pieces = _pieces("Echo: " + USER.replace("mock:stream-chunks=20", "").strip(), parse_modes(USER))
    assert len(frames) == len(pieces) + 3 and frames[-1] == b"data: [DONE]\n\n"  # role, content, finish, [DONE]
    assert answer_frames(False)[0].startswith(b'{"id":')


def test_one_request_per_mode_and_a_tiny_measure():
    async def run():
        policy, chain = chain_for(["leak"])
        for stream in (False, True):
            for reads in (1, 22):
                await one(policy, chain, stream, answer_frames(stream), reads)
        return await measure(1, 3, 22)
    res = asyncio.run(run())
    assert set(res) == {"json", "stream"} and all(c > 0 and leak > 0 for c, leak in res.values())
