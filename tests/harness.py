"""Run canned exchanges through stages without HTTP (cf. mitmproxy's taddons).

    policy = make_policy(tenants={"acme": {...}})
    stage = make_stage(PiiStage, {"type": "pii"}, policy)
    ex = make_exchange(policy, body={...}, tenant="acme")
    deny = await Chain([stage]).run_request(ex)
    out = await run_response(Chain([stage]), ex, [Event.sse_json(chunk), ...])
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from proxy.config.policy import CompiledPolicy, PolicyModel, TenantPolicy
from proxy.metrics import Metrics
from proxy.pipeline.chain import Chain
from proxy.pipeline.exchange import Exchange, Identity
from proxy.pipeline.stage import Stage, StageServices
from proxy.wire.event import Event

HMAC_SECRET = "test-secret-that-is-at-least-32-bytes-long!!"

BASE_POLICY: dict[str, Any] = {
    "version": 1,
    "auth": {"issuer": "https://issuer.test", "audience": "ramparts", "algorithms": ["HS256"],
             "key": {"from_env": "RAMPARTS_TEST_JWT_SECRET"}},
    "providers": {
        "openai": {"base_url": "http://127.0.0.1:9", "api_key": {"from_env": "RAMPARTS_TEST_PROVIDER_KEY"},
                   "attributes": {"baa": False, "region": "us", "no_train": True}, "models": {"gpt-4o-mini": "gpt-4o-mini", "text-embedding-3-small": "text-embedding-3-small"}},
        "azure": {"base_url": "http://127.0.0.1:10", "kind": "azure", "api_key": {"from_env": "RAMPARTS_TEST_PROVIDER_KEY"},
                  "attributes": {"baa": True, "region": "us"}, "models": {"gpt-4o-mini": "gpt4o-mini-deploy"}},
    },
    "egress": {"allow": ["127.0.0.1:9", "127.0.0.1:10"], "allow_private_ips": ["127.0.0.0/8"]},
    "models": {
        "gpt-4o-mini": {"input_per_1m_usd": 0.15, "output_per_1m_usd": 0.6, "max_output_tokens": 16384},
        "text-embedding-3-small": {"input_per_1m_usd": 0.02, "output_per_1m_usd": 0, "kind": "embedding", "encoding": "cl100k_base"},
    },
    "plans": {
        "pro": {"models": ["gpt-4o-mini", "text-embedding-3-small"], "monthly_interactions": 5000, "max_tokens_per_request": 8000, "monthly_budget_usd": 100},
    },
    "tenants": {
        "acme": {"plan": "pro", "system_prompt": "You are Acme's helpful support assistant. Never reveal internal pricing rules.", "identifiers": ["ACME-ACCT-0001"]},
        "globex": {"plan": "pro", "identifiers": ["GLOBEX-ACCT-7777"]},
        "mercy": {"plan": "pro", "require": ["baa"], "pii": "block"},
    },
    "pipeline": [{"type": "tenant"}, {"type": "egress"}],
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def make_policy(**overrides: Any) -> CompiledPolicy:
    """A compiled policy from BASE_POLICY deep-merged with overrides (pipeline not instantiated)."""
    data = _merge(BASE_POLICY, overrides)
    model = PolicyModel.model_validate(data)
    tenants = {tid: TenantPolicy(tid, t, t.plan, model.plans[t.plan]) for tid, t in model.tenants.items()}
    return CompiledPolicy(model=model, source_path=None, digest="0" * 64, tenants=tenants,
                          provider_keys={n: "sk-test-provider-key-0000" for n in model.providers})


def make_services(data_dir: Path | None = None, metrics: Metrics | None = None) -> StageServices:
    return StageServices(metrics=metrics or Metrics(), data_dir=data_dir or Path(tempfile.mkdtemp(prefix="ramparts-test-")))


def make_stage(cls: type[Stage], config: dict[str, Any], policy: CompiledPolicy | None = None,
               services: StageServices | None = None) -> Stage:
    policy = policy or make_policy()
    return cls(cls.Config.model_validate(config), policy, services or make_services())


def make_exchange(policy: CompiledPolicy, body: dict[str, Any] | None = None, *, tenant: str | None = "acme",
                  route: str = "chat", subject: str = "user-1", scopes: tuple[str, ...] = ("ai:completion", "ai:embed"),
                  headers: dict[str, str] | None = None) -> Exchange:
    ex = Exchange(request_id="req-test", route=route, method="POST", path="/v1/chat/completions",
                  client_headers=headers or {}, policy=policy)
    ex.body = copy.deepcopy(body) if body is not None else None
    ex.stream = bool(ex.body and ex.body.get("stream"))
    if tenant is not None:
        ex.set_identity(Identity(tenant=tenant, subject=subject, scopes=frozenset(scopes), issuer="https://issuer.test", jti="jti-1"))
    return ex


async def run_response(chain: Chain, ex: Exchange, events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        out.extend(await chain.run_event(ex, ev))
    out.extend(await chain.run_end(ex))
    return out


def chat_chunk(text: str | None = None, *, index: int = 0, finish: str | None = None, role: str | None = None,
               tool_args: str | None = None, tool_index: int = 0) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if text is not None:
        delta["content"] = text
    if tool_args is not None:
        delta["tool_calls"] = [{"index": tool_index, "function": {"arguments": tool_args}}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def chat_body(text: str, *, finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def client_text(events: list[Event], index: int = 0, field: str = "content") -> str:
    """Concatenate what a client would read from choice `index`'s `field`."""
    from proxy.wire.openai import response_slots, get_at
    parts = []
    for ev in events:
        for slot in response_slots(ev.payload):
            if slot.key[0] == index and slot.key[1] == field:
                parts.append(get_at(ev.payload, slot.path))
    return "".join(parts)
