"""Plan rules, compiled once per plan: models, interactions, tokens per request, monthly USD.

One interaction is one user message and its answer. A chat request whose last
message is a tool (or function) result continues an interaction already counted
(the model is working through tool calls), so it counts 0. Embeddings count 0
interactions (they still cost money). Refusals are plain data; the stage turns
them into OpenAI-shaped errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.budget.cost import nano
from proxy.budget.ledger import Limits

_CONTINUATION_ROLES = ("tool", "function")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PlanRule:
    name: str
    models: frozenset[str]
    max_tokens_per_request: int
    over_cap: str  # clamp | reject
    upgrade_hint: str
    limits: Limits

    @classmethod
    def from_config(cls, name: str, plan: Any) -> "PlanRule":
        budget = None if plan.monthly_budget_usd is None else nano(plan.monthly_budget_usd)
        return cls(name, frozenset(plan.models), plan.max_tokens_per_request, plan.over_cap, plan.upgrade_hint,
                   Limits(budget, plan.monthly_interactions))

    def check_model(self, model: str | None) -> Refusal | None:
        if model is None or model not in self.models:
            allowed = ", ".join(sorted(self.models))
            return Refusal(403, "model_not_in_plan",
                           f"model {str(model)[:64]!r} is not included in plan {self.name!r} (allowed: {allowed}).{self._hint()}")
        return None

    def _hint(self) -> str:
        return f" {self.upgrade_hint}" if self.upgrade_hint else ""

    def exhausted(self, what: str, resets_on: str) -> Refusal:
        if what == "interactions":
            msg = (f"plan {self.name!r} has used all {self.limits.interactions} interactions for this month; "
                   f"the allowance resets on {resets_on} (00:00 UTC).")
            return Refusal(429, "interactions_exhausted", msg + self._hint())
        msg = (f"plan {self.name!r} has used its monthly budget; it resets on {resets_on} (00:00 UTC).")
        return Refusal(429, "budget_exhausted", msg + self._hint())

    def over_cap_refusal(self, asked: int) -> Refusal:
        return Refusal(400, "max_tokens_over_plan",
                       f"max tokens {asked} is above plan {self.name!r}'s limit of {self.max_tokens_per_request} "
                       f"per request.{self._hint()}")


def interactions_of(route: str, body: dict[str, Any]) -> int:
    if route == "embeddings":
        return 0
    if route == "chat":
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        if last.get("role") in _CONTINUATION_ROLES:
            return 0
    return 1
