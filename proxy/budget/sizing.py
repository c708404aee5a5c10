"""The worst case of one request, before the call: prompt tokens + max output tokens x n.

Prompt tokens are counted with the model's tokenizer over every text carrier of
the request (message texts, names, tool-call arguments), plus the JSON of tool
definitions and response formats, plus a per-message framing allowance; images
count a fixed upper bound each. Output is what the request may generate:
max_tokens (or max_completion_tokens) per choice, defaulting to the plan's
per-request cap and clamped to it (or refused, per the plan's over_cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.budget.cost import Price
from proxy.budget.plan import PlanRule, Refusal, interactions_of
from proxy.wire.openai import get_at, request_carriers

PER_MESSAGE_TOKENS = 4  # role and separators around each message
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS = 1500  # a high-detail image at the largest tiling costs ~1,445 tokens
_IMAGE_PARTS = ("image_url", "input_image")


@dataclass(frozen=True, slots=True)
class Sizing:
    max_tokens: int  # per choice, after the plan's cap (0 for embeddings)
    n: int
    field: str | None  # body key that carries max tokens upstream (None: embeddings)
    asked: int | None  # what the client asked for
    clamped: bool  # the plan's cap lowered (or supplied) the client's value
    interactions: int


def prompt_parts(route: str, body: dict[str, Any]) -> tuple[list[str], int]:
    """(texts to tokenize, tokens known without tokenizing: framing, images, token arrays)."""
    texts: list[str] = []
    fixed = 0
    for c in request_carriers(route, body):
        if c.kind == "schema" or c.kind == "tool_description":
            continue  # counted below as whole JSON
        value = get_at(body, c.path)
        if isinstance(value, str):
            texts.append(value)
    if route == "chat":
        messages = body.get("messages") or []
        fixed += PER_MESSAGE_TOKENS * len(messages) + REPLY_PRIMING_TOKENS
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                fixed += IMAGE_TOKENS * sum(1 for p in content if isinstance(p, dict) and p.get("type") in _IMAGE_PARTS)
        for key in ("tools", "functions", "response_format"):
            if body.get(key):
                texts.append(orjson.dumps(body[key]).decode())
    elif route in ("embeddings", "completions"):
        value = body.get("input" if route == "embeddings" else "prompt")
        if isinstance(value, list):  # token arrays are already tokens
            for item in value:
                if isinstance(item, int):
                    fixed += 1
                elif isinstance(item, list):
                    fixed += len(item)
    return texts, fixed


def size_request(route: str, body: dict[str, Any], plan: PlanRule, price: Price,
                 chat_field: str = "max_tokens") -> Sizing | Refusal:
    """`chat_field`: the key to write when a chat request names neither (o-series models want max_completion_tokens)."""
    interactions = interactions_of(route, body)
    if route == "embeddings":
        return Sizing(0, 1, None, None, False, interactions)
    if route != "chat":
        field = "max_tokens"
    elif "max_completion_tokens" in body or ("max_tokens" not in body and chat_field == "max_completion_tokens"):
        field = "max_completion_tokens"
    else:
        field = "max_tokens"
    asked = body.get(field)
    asked = asked if isinstance(asked, int) and not isinstance(asked, bool) else None
    n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
    if route == "completions" and isinstance(body.get("best_of"), int):
        n = max(n, body["best_of"])  # best_of choices are generated (and billed) server-side
    if asked is not None and asked > plan.max_tokens_per_request and plan.over_cap == "reject":
        return plan.over_cap_refusal(asked)
    cap = min(plan.max_tokens_per_request, price.max_output_tokens)
    max_tokens = cap if asked is None else min(asked, cap)
    return Sizing(max_tokens, n, field, asked, max_tokens != asked, interactions)
