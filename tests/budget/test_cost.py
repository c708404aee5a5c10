"""Prices to integer nano-USD; rounding never favours the caller; unknown models have no price."""

from __future__ import annotations

from proxy.budget.cost import PriceTable, nano, usd
from tests.harness import make_policy


def test_prices_from_the_policy():
    table = PriceTable(make_policy().model.models)
    p = table.get("gpt-4o-mini")
    assert p.cost(1_000_000, 0) == 150_000_000 == nano(0.15)
    assert p.cost(0, 1_000_000) == nano(0.60)
    assert p.cost(1, 1) == 750
    assert table.get("gpt-5-ultra") is None and table.get(None) is None
    assert table.encodings(["gpt-4o-mini", "text-embedding-3-small"]) == {"o200k_base", "cl100k_base"}
    assert table.encodings(["gpt-4o-mini", "unknown"]) == {"o200k_base"}


def test_rounding_up_and_affordable_output():
    table = PriceTable(make_policy(models={"odd": {"input_per_1m_usd": 0.0375, "output_per_1m_usd": 0.0375}}).model.models)
    p = table.get("odd")
    assert p.cost(1, 0) == 38  # 37.5 rounds up
    assert p.output_tokens_for(375) == 10
    assert p.output_tokens_for(-5) == 0
    free_out = PriceTable(make_policy().model.models).get("text-embedding-3-small")
    assert free_out.output_tokens_for(0) == free_out.max_output_tokens
    assert usd(nano(1.25)) == 1.25
