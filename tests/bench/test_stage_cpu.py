"""bench.stage_cpu: the in-process per-stage harness runs the real stage paths (not a stub)."""

import asyncio

import orjson

from bench.fullstack import PII_LINE
from bench.stage_cpu import PROMPT, chain_for, measure, one


def test_pii_round_trip_through_the_harness_gives_the_values_back():
    """With pii on, the upstream sees tokens and the client gets the original values back."""
    async def run():
        policy, chain = chain_for(["pii"])
        await chain.start()
        try:
            return await one(policy, chain, False), await one(policy, chain, True)
        finally:
            await chain.stop()
    body, streamed = asyncio.run(run())
    text = orjson.loads(body)["choices"][0]["message"]["content"]
    assert "jane.roe@example.com" in PII_LINE and "jane.roe@example.com" in text and "<EMAIL_ADDRESS_" not in text
    assert text.startswith("Echo: ") and len(text) > 2000
    assert b"jane.roe@" in streamed and b"<EMAIL_ADDRESS_" not in streamed
    assert len(PROMPT) > 2048


def test_measure_reports_every_chain_with_the_core_first():
    res = asyncio.run(measure(["injection", "budget"], runs=1, requests=3, modes=["json"]))
    row = res["json"]
    assert list(row) == ["core", "injection", "budget"]
    assert all(v > 0 for v in row.values())
    assert row["injection"] > row["core"]  # scoring a 2 KB carrier costs something
