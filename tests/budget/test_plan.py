"""Plan rules: models per plan, refusals that name the plan, reset date and upgrade path; interactions."""

from __future__ import annotations

import pytest

from proxy.budget.cost import nano
from proxy.budget.plan import PlanRule, interactions_of
from tests.harness import make_policy

PLANS = {  # the tiers
    "free": {"models": ["gpt-4o-mini"], "monthly_interactions": 50, "max_tokens_per_request": 2000, "upgrade_hint": "Upgrade at /billing."},
    "starter": {"models": ["gpt-4o-mini"], "monthly_interactions": 500, "max_tokens_per_request": 4000},
    "pro": {"models": ["gpt-4o-mini", "text-embedding-3-small"], "monthly_interactions": 5000, "max_tokens_per_request": 8000, "monthly_budget_usd": 100},
    "business": {"models": ["gpt-4o-mini", "text-embedding-3-small"], "max_tokens_per_request": 16000},
}


def rules():
    pol = make_policy(plans=PLANS)
    return {n: PlanRule.from_config(n, p) for n, p in pol.model.plans.items()}


def test_limits_per_tier():
    r = rules()
    assert (r["free"].limits.interactions, r["free"].max_tokens_per_request) == (50, 2000)
    assert (r["starter"].limits.interactions, r["starter"].max_tokens_per_request) == (500, 4000)
    assert (r["pro"].limits.interactions, r["pro"].limits.budget) == (5000, nano(100))
    assert (r["business"].limits.interactions, r["business"].limits.budget, r["business"].max_tokens_per_request) == (None, None, 16000)


def test_model_outside_the_plan_names_the_plan_and_the_way_up():
    r = rules()["free"]
    assert r.check_model("gpt-4o-mini") is None
    refusal = r.check_model("text-embedding-3-small")
    assert refusal.status == 403 and "'free'" in refusal.message and "Upgrade at /billing." in refusal.message
    assert r.check_model(None).status == 403


@pytest.mark.parametrize("what,code", [("interactions", "interactions_exhausted"), ("budget", "budget_exhausted")])
def test_exhausted_names_the_reset_date(what, code):
    refusal = rules()["free"].exhausted(what, "2026-12-01")
    assert refusal.status == 429 and refusal.code == code
    assert "2026-12-01" in refusal.message and "Upgrade at /billing." in refusal.message


@pytest.mark.parametrize("route,body,count", [
    ("chat", {"messages": [{"role": "user", "content": "hi"}]}, 1),
    ("chat", {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": []},
                           {"role": "tool", "content": "42"}]}, 0),
    ("chat", {"messages": [{"role": "user", "content": "hi"}, {"role": "function", "content": "42"}]}, 0),
    ("chat", {"messages": []}, 1),
    ("completions", {"prompt": "x"}, 1),
    ("embeddings", {"input": "x"}, 0),
])
def test_one_interaction_per_user_turn(route, body, count):
    assert interactions_of(route, body) == count
