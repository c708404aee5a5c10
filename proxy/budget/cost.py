"""Prices and costs. Money is kept as integer nano-USD (1e-9 USD) so stores add integers.

Prices come from the policy's `models` table (USD per 1M tokens); a model with no
price is never free: `PriceTable.get` returns None and the budget stage refuses.
Costs round up, never in the caller's favour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

NANO_PER_USD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Price:
    input_nano: float  # nano-USD per input token
    output_nano: float  # nano-USD per output token
    max_output_tokens: int
    encoding: str

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        return math.ceil(prompt_tokens * self.input_nano + completion_tokens * self.output_nano)

    def output_tokens_for(self, nano: int) -> int:
        """How many output tokens `nano` pays for (unbounded when output is free)."""
        if self.output_nano <= 0:
            return self.max_output_tokens
        return max(0, math.floor(nano / self.output_nano))


class PriceTable:
    """Compiled once from the policy; lookups on the hot path are one dict get."""

    def __init__(self, models: Mapping[str, object]) -> None:
        self._prices = {
            name: Price(m.input_per_1m_usd * 1000.0, m.output_per_1m_usd * 1000.0, m.max_output_tokens, m.encoding)
            for name, m in models.items()
        }

    def get(self, model: str | None) -> Price | None:
        return self._prices.get(model) if model else None

    def encodings(self, models) -> frozenset[str]:
        """The tokenizers the given models need (a stage loads only those its plans can reach)."""
        return frozenset(self._prices[m].encoding for m in models if m in self._prices)


def usd(nano: int) -> float:
    return nano / NANO_PER_USD


def nano(usd_amount: float) -> int:
    return math.floor(usd_amount * NANO_PER_USD)
