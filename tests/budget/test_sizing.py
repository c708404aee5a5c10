"""The worst case of a request: prompt tokens + max tokens x n; caps, clamps and refusals."""

from __future__ import annotations

import pytest

from proxy.budget.cost import PriceTable
from proxy.budget.plan import PlanRule, Refusal
from proxy.budget.sizing import IMAGE_TOKENS, PER_MESSAGE_TOKENS, REPLY_PRIMING_TOKENS, prompt_parts, size_request
from tests.harness import make_policy

POL = make_policy(plans={"p": {"models": ["gpt-4o-mini"], "max_tokens_per_request": 2000},
                         "r": {"models": ["gpt-4o-mini"], "max_tokens_per_request": 2000, "over_cap": "reject"}},
                  models={"small-out": {"input_per_1m_usd": 1, "output_per_1m_usd": 1, "max_output_tokens": 500}})
PRICES = PriceTable(POL.model.models)
P = PlanRule.from_config("p", POL.model.plans["p"])
R = PlanRule.from_config("r", POL.model.plans["r"])
MINI = PRICES.get("gpt-4o-mini")


@pytest.mark.parametrize("body,max_tokens,n,field,clamped", [
    ({}, 2000, 1, "max_tokens", True),  # no max_tokens: the plan's cap
    ({"max_tokens": 100}, 100, 1, "max_tokens", False),
    ({"max_tokens": 9000}, 2000, 1, "max_tokens", True),
    ({"max_completion_tokens": 50, "n": 3}, 50, 3, "max_completion_tokens", False),
])
def test_chat_sizing(body, max_tokens, n, field, clamped):
    s = size_request("chat", {"messages": [], **body}, P, MINI)
    assert (s.max_tokens, s.n, s.field, s.clamped) == (max_tokens, n, field, clamped)


def test_the_chat_field_written_when_the_client_named_none():
    assert size_request("chat", {"messages": []}, P, MINI, "max_completion_tokens").field == "max_completion_tokens"
    assert size_request("chat", {"max_tokens": 5}, P, MINI, "max_completion_tokens").field == "max_tokens"
    assert size_request("completions", {"prompt": "x"}, P, MINI, "max_completion_tokens").field == "max_tokens"


def test_model_max_output_caps_below_the_plan():
    assert size_request("chat", {"messages": []}, P, PRICES.get("small-out")).max_tokens == 500


def test_reject_plan_refuses_above_its_cap_only():
    assert isinstance(size_request("chat", {"max_tokens": 2001}, R, MINI), Refusal)
    assert size_request("chat", {"max_tokens": 2000}, R, MINI).max_tokens == 2000


def test_completions_best_of_and_embeddings():
    assert size_request("completions", {"prompt": "x", "n": 1, "best_of": 4, "max_tokens": 10}, P, MINI).n == 4
    e = size_request("embeddings", {"input": "x"}, P, PRICES.get("text-embedding-3-small"))
    assert (e.max_tokens, e.field, e.interactions) == (0, None, 0)


def test_prompt_parts_cover_every_carrier():
    body = {"messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:,"}}]},
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
    ], "tools": [{"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}}}]}
    texts, fixed = prompt_parts("chat", body)
    assert {"sys", "look", "{\"a\":1}"} <= set(texts)
    assert any("does f" in t for t in texts)  # tool definitions as JSON
    assert fixed == 3 * PER_MESSAGE_TOKENS + REPLY_PRIMING_TOKENS + IMAGE_TOKENS
    assert prompt_parts("embeddings", {"input": [[1, 2, 3], [4]]}) == ([], 4)
