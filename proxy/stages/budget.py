"""Stage `budget`: plans, prices and a ledger that never overspends.

Before the call (on_request): the plan allows the model; max tokens is the plan's
cap unless the client asked for less (asking for more is clamped or refused per
plan); the worst case (prompt tokens + max tokens x n) is reserved atomically,
and if less is left, max tokens is lowered to what the budget can pay (or the
request is refused when not even `min_output_tokens` fit). The upstream is asked
for usage on streams. Nothing reaches the provider unless a hold exists.

After the call (on_complete, shielded): settle with the provider's usage; when it
sent none, with the prompt count and the output this stage counted while it
streamed. Upstream error or a refusal before any output: release. Client gone
mid-stream: settle what was generated. A store failure is a 503 (fail closed).

The engines are in proxy/budget/; this file only wires them to the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from proxy.budget.cost import Price, PriceTable, usd
from proxy.budget.ledger import Balance, Hold, Ledger, Limits, StoreUnavailable
from proxy.budget.period import period_of, period_reset, period_start, reset_date
from proxy.budget.plan import PlanRule, Refusal
from proxy.budget.redis_client import check_redis_url
from proxy.budget.sizing import prompt_parts, size_request
from proxy.budget.store import open_ledger
from proxy.budget.tokenizer import TokenCounter
from proxy.config.secret import SecretSource
from proxy.pipeline.deny import Deny, DenyError, unavailable
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage, StageConfig
from proxy.wire.event import Event
from proxy.wire.openai import get_at, response_slots

log = logging.getLogger("ramparts.budget")

_ROUTES = ("chat", "completions", "embeddings")
_THREAD_CHARS = 32_768  # prompts larger than this are tokenized off the event loop


class BudgetConfig(StageConfig):
    type: str = "budget"
    on_error: Literal["closed"] = "closed"  # a budget never fails open
    store: str = "embedded"  # embedded (SQLite under the data dir) | redis://host:port/db
    redis_password: SecretSource | None = None
    store_timeout_s: float = Field(1.0, gt=0, le=10)
    pool_size: int = Field(32, ge=1, le=1024)
    retry_after_s: int = Field(2, ge=1, le=600)  # on a store failure
    hold_ttl_s: float = Field(120.0, ge=1, le=86400)  # renewed every ttl/3 while a response is live
    reclaim_interval_s: float = Field(30.0, ge=1, le=3600)
    warn_at: float = Field(0.8, gt=0, le=1)
    append_notice: bool = False  # also append the heads-up to the answer text
    notice: str = Field("Heads-up: your {plan} plan has used {percent}% of this month's {what}; it resets on {reset}.",
                        max_length=1000)
    min_output_tokens: int = Field(16, ge=1)  # refuse when the budget cannot pay even this many
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"  # chat key written when the client sent neither
    cut_slack_tokens: int = Field(16, ge=0)  # counted output above the reserve before a stream is cut

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        return v if v == "embedded" else check_redis_url(v)

    @field_validator("notice")
    @classmethod
    def _notice(cls, v: str) -> str:
        try:  # unknown fields fail at load, not on the 80 % request
            v.format(plan="p", percent=80, what="budget", reset="2026-01-01")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"notice may use {{plan}}, {{percent}}, {{what}}, {{reset}}: {e}") from None
        return v


@dataclass
class _Hold:
    """What the stage remembers about one exchange (ex.state["budget"])."""

    hold: Hold
    price: Price
    prompt_tokens: int
    max_tokens: int
    n: int
    inject_usage: bool
    renew_at: float
    notice: str | None = None
    notice_sent: bool = False
    output_tokens: int = 0  # counted exactly so far (see `pending`)
    finished: bool = False
    # Output text not tokenized yet, and its UTF-8 length: BPE never yields more tokens than bytes,
    # so while output_tokens + pending_bytes stays within the cut limit no count can reach it and
    # counting waits. It happens when the bound crosses the limit (then per event, as before) or at
    # the end when the provider sent no usage; with usage (the budget asks for it) it never happens.
    pending: list[str] | None = None
    pending_bytes: int = 0

    def count_pending(self, counter: TokenCounter) -> None:
        if self.pending:
            self.output_tokens += counter.count_many(self.pending, self.price.encoding)
        self.pending, self.pending_bytes = None, 0


class BudgetStage(Stage):
    type = "budget"
    Config = BudgetConfig
    local_routes = {"/v1/usage": "ai:completion"}

    def __init__(self, config: BudgetConfig, policy, services) -> None:
        super().__init__(config, policy, services)
        self.prices = PriceTable(policy.model.models)
        self.plans = {name: PlanRule.from_config(name, p) for name, p in policy.model.plans.items()}
        # shared when the app offers one (extras["token_counter"]): the encodings are ~1 s to load and ~100 MB
        self.counter: TokenCounter = services.extras.get("token_counter") or TokenCounter()
        self.ledger: Ledger | None = None
        self._password = config.redis_password.resolve(policy.base_dir) if config.redis_password else None
        self._reclaimer: asyncio.Task | None = None
        m = services.metrics  # label children bound once: labels() costs more than inc()
        self._m_reserved = m.budget_reservations.labels("reserved")
        self._m_settled = m.budget_reservations.labels("settled")
        self._m_released = m.budget_reservations.labels("released")
        self._resets: dict[str, str] = {}  # period -> X-Ramparts-Budget-Reset value

    async def start(self) -> None:
        """Open the ledger, load the tokenizers (off the loop) and start the reclaimer."""
        c = self.config
        self.ledger = open_ledger(c.store, self.services.data_dir, password=self._password, timeout=c.store_timeout_s,
                                  tenants=tuple(self.policy.tenants), pool_size=c.pool_size)
        await self.ledger.start()
        reachable = {m for p in self.plans.values() for m in p.models}
        await asyncio.to_thread(self.counter.warm, self.prices.encodings(reachable))
        self._reclaimer = asyncio.create_task(self._reclaim_loop())

    async def stop(self) -> None:
        """Stop reclaiming and close the ledger."""
        if self._reclaimer is not None:
            self._reclaimer.cancel()
            await asyncio.gather(self._reclaimer, return_exceptions=True)
        if self.ledger is not None:
            await self.ledger.close()

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reclaim_interval_s)
            try:
                n = await self.ledger.reclaim()
                if n:
                    self.services.metrics.budget_reservations.labels("reclaimed").inc(n)
            except StoreUnavailable:
                self.services.metrics.budget_store_errors.labels(self._store_label).inc()

    @property
    def _store_label(self) -> str:
        return "embedded" if self.config.store == "embedded" else "redis"

    # ------------------------------------------------------------------ request

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Check the plan, size the worst case, reserve it, clamp max tokens, ask for usage."""
        if ex.route not in _ROUTES or ex.body is None:
            return None
        tenant = ex.tenant
        if tenant is None:  # only a verified tenant has a budget: refuse rather than spend unaccounted
            return Deny(403, "no verified tenant for this request", "permission_error", "no_tenant", reason="no_tenant")
        plan = self.plans[tenant.plan_name]
        refusal = plan.check_model(ex.model)
        if refusal is not None:
            return self._refuse(refusal)
        price = self.prices.get(ex.model)
        if price is None:  # never free: a model without a price is refused
            return self._refuse(Refusal(403, "model_unpriced", f"model {ex.model!r} has no price in the policy; refused"))
        sizing = size_request(ex.route, ex.body, plan, price, self.config.max_tokens_field)
        if isinstance(sizing, Refusal):
            return self._refuse(sizing)
        prompt_tokens = await self._count_prompt(ex.route, ex.body, price.encoding)
        out_tokens = sizing.max_tokens * sizing.n
        want = price.cost(prompt_tokens, out_tokens)
        least = price.cost(prompt_tokens, min(self.config.min_output_tokens, sizing.max_tokens) * sizing.n)
        period = period_of(time.time())
        try:
            grant = await self.ledger.reserve(tenant.id, period, want, least, sizing.interactions, plan.limits,
                                              self.config.hold_ttl_s)
        except StoreUnavailable as e:
            log.warning("budget store unavailable: %s", e)
            self.services.metrics.budget_store_errors.labels(self._store_label).inc()
            self.services.metrics.budget_reservations.labels("store_error").inc()
            return unavailable("the budget store is unavailable; retry shortly", "budget_store_unavailable",
                               self.config.retry_after_s)
        if grant.hold is None:
            self.services.metrics.budget_reservations.labels("refused").inc()
            r = plan.exhausted(grant.refused, reset_date(period))
            # x-should-retry: the OpenAI SDKs would otherwise retry a 429 that cannot succeed before the reset
            return Deny(r.status, r.message, "insufficient_quota", r.code,
                        {**self._headers(plan, grant.balance, period), "x-should-retry": "false"}, r.code)
        hold = grant.hold
        max_tokens = sizing.max_tokens
        if sizing.field is not None:
            # max(1, ...): rounding up both costs can leave one token less than `least` paid for
            affordable = max(1, price.output_tokens_for(hold.amount - price.cost(prompt_tokens, 0)) // sizing.n)
            if affordable < max_tokens:
                max_tokens = affordable
                ex.decide(self.type, "clamp", reason="budget", max_tokens=max_tokens)
            elif sizing.clamped and sizing.asked is not None:
                ex.decide(self.type, "clamp", reason="plan", max_tokens=max_tokens, asked=sizing.asked)
            if max_tokens != sizing.asked:
                ex.body[sizing.field] = max_tokens  # the provider enforces the ceiling
        inject = False
        if ex.stream and ex.route != "embeddings":
            opts = ex.body.get("stream_options") if isinstance(ex.body.get("stream_options"), dict) else {}
            ex.client_wants_usage = bool(opts.get("include_usage"))
            if not ex.client_wants_usage:
                ex.body["stream_options"] = {**opts, "include_usage": True}
                inject = True
        state = _Hold(hold, price, prompt_tokens, max_tokens, sizing.n, inject,
                      time.monotonic() + self.config.hold_ttl_s / 3)
        ex.state[self.type] = state
        headers = self._headers(plan, grant.balance, period, self._resets)
        used = self._used_fraction(plan.limits, grant.balance)
        if used is not None and used[0] >= self.config.warn_at:
            text = self.config.notice.format(plan=plan.name, percent=int(used[0] * 100), what=used[1], reset=reset_date(period))
            headers["X-Ramparts-Budget-Warning"] = text
            if self.config.append_notice and ex.route != "embeddings":
                state.notice = text
            ex.decide(self.type, "warn", used_percent=int(used[0] * 100), what=used[1])
        ex.extra_response_headers.update(headers)
        self._m_reserved.inc()
        ex.decide(self.type, "reserve", reserved_usd=usd(hold.amount), prompt_tokens=prompt_tokens,
                  max_tokens=max_tokens, n=sizing.n, period=period)
        return None

    async def _count_prompt(self, route: str, body: dict[str, Any], encoding: str) -> int:
        texts, fixed = prompt_parts(route, body)
        if sum(map(len, texts)) > _THREAD_CHARS:  # tiktoken releases the GIL: big prompts do not stall the loop
            return fixed + await asyncio.to_thread(self.counter.count_many, texts, encoding)
        return fixed + self.counter.count_many(texts, encoding)

    @staticmethod
    def _refuse(r: Refusal) -> Deny:
        type_ = {400: "invalid_request_error", 403: "permission_error", 429: "insufficient_quota"}.get(r.status, "invalid_request_error")
        return Deny(r.status, r.message, type_, r.code, reason=r.code)

    @staticmethod
    def _used_fraction(limits: Limits, bal: Balance) -> tuple[float, str] | None:
        parts = []
        if limits.budget:
            parts.append(((bal.spent + bal.held) / limits.budget, "budget"))
        if limits.interactions:
            parts.append(((bal.used + bal.held_interactions) / limits.interactions, "interactions"))
        return max(parts) if parts else None

    @staticmethod
    def _headers(plan: PlanRule, bal: Balance, period: str, resets: dict[str, str] | None = None) -> dict[str, str]:
        reset = resets.get(period) if resets is not None else None
        if reset is None:
            reset = period_reset(period).strftime("%Y-%m-%dT%H:%M:%SZ")
            if resets is not None and len(resets) < 64:
                resets[period] = reset
        h = {"X-Ramparts-Plan": plan.name, "X-Ramparts-Budget-Reset": reset}
        left = bal.budget_left(plan.limits)
        if left is not None:
            h["X-Ramparts-Budget-Remaining"] = f"{max(0, left) / 1e9:.6f}"
        ileft = bal.interactions_left(plan.limits)
        if ileft is not None:
            h["X-Ramparts-Interactions-Remaining"] = str(max(0, ileft))
        return h

    # ------------------------------------------------------------------ response

    async def on_response_event(self, ex: Exchange, event: Event) -> list[Event]:
        """Count streamed output, renew the hold, cut a stream over its reserve, drop the injected usage chunk."""
        st: _Hold | None = ex.state.get(self.type)
        payload = event.payload
        if st is None or not isinstance(payload, dict):
            return [event]
        limit = st.max_tokens * st.n + self.config.cut_slack_tokens
        if not ex.usage.reported or event.kind == "sse":
            texts = [t for s in response_slots(payload) if isinstance(t := get_at(payload, s.path), str) and t]
            if texts:
                if st.pending is None:
                    st.pending = texts
                else:
                    st.pending.extend(texts)
                st.pending_bytes += sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts)
                if st.output_tokens + st.pending_bytes > limit:  # a cut is possible: count exactly now
                    st.count_pending(self.counter)
        if time.monotonic() >= st.renew_at:
            st.renew_at = time.monotonic() + self.config.hold_ttl_s / 3
            try:
                await self.ledger.extend(st.hold, self.config.hold_ttl_s)
            except StoreUnavailable:  # the hold may lapse; settle still charges what was generated
                self.services.metrics.budget_store_errors.labels(self._store_label).inc()
        if event.kind == "sse" and st.output_tokens > limit:
            ex.decide(self.type, "cut", output_tokens=st.output_tokens, reserved_tokens=st.max_tokens * st.n)
            raise DenyError(Deny(429, "the answer reached the output this request's budget reserved; the stream was cut",
                                 "insufficient_quota", "output_budget_reached", reason="output_budget_reached"))
        out = [event]
        if st.inject_usage and payload.get("usage") is not None:
            if not payload.get("choices"):
                return []  # the usage-only chunk the client did not ask for
            del payload["usage"]
            event.mark_changed()
        if st.notice and not st.notice_sent:
            out = self._with_notice(ex, st, event, payload)
        return out

    def _with_notice(self, ex: Exchange, st: _Hold, event: Event, payload: dict) -> list[Event]:
        choices = payload.get("choices")
        first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if first is None or first.get("index", 0) != 0:
            return [event]
        text = "\n\n" + st.notice
        if event.kind == "body":
            msg = first.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                msg["content"] += text
            elif isinstance(first.get("text"), str):
                first["text"] += text
            else:
                return [event]
            st.notice_sent = True
            event.mark_changed()
            return [event]
        if first.get("finish_reason") is None:
            return [event]
        # a stream: one extra chunk just before choice 0 finishes
        chunk = {k: payload[k] for k in ("id", "object", "created", "model") if k in payload}
        part = {"index": 0, "delta": {"content": text}, "finish_reason": None} if ex.route == "chat" else \
            {"index": 0, "text": text, "finish_reason": None}
        chunk["choices"] = [part]
        st.notice_sent = True
        return [Event.sse_json(chunk), event]

    # ------------------------------------------------------------------ complete

    async def on_complete(self, ex: Exchange) -> None:
        """Settle with real (or counted) usage, or release when nothing was produced. Shielded."""
        st: _Hold | None = ex.state.get(self.type)
        if st is None or st.finished:
            return
        st.finished = True
        m = self.services.metrics
        if not ex.usage.reported:  # the counted output is what gets charged
            st.count_pending(self.counter)
        produced = ex.usage.reported or st.output_tokens > 0 or ex.usage.streamed_chars > 0
        called = ex.upstream_started is not None
        if ex.response_status is None:
            settle = called and ex.outcome == "client_disconnect"  # the prompt reached the provider
        elif ex.response_status >= 400:
            settle = False
        else:
            settle = produced or ex.outcome != "upstream_error"
        if not settle:
            if await self._finish(ex, st.hold, None):
                self._m_released.inc()
                ex.decide(self.type, "release", reason=ex.outcome, upstream_status=ex.response_status)
            return
        if ex.usage.reported:
            prompt, completion, estimated = ex.usage.prompt_tokens, ex.usage.completion_tokens, False
        else:
            prompt, completion, estimated = st.prompt_tokens, st.output_tokens or ex.usage.streamed_chars, True
        cost = st.price.cost(prompt, completion)
        if await self._finish(ex, st.hold, cost):
            self._m_settled.inc()
            spent = m.budget_spent_usd.labels(*m.tenant(ex.tenant_id)) if m.tenant_label else m.budget_spent_usd
            spent.inc(usd(cost))
            ex.decide(self.type, "settle", settled_usd=usd(cost), reserved_usd=usd(st.hold.amount), prompt_tokens=prompt,
                      completion_tokens=completion, estimated=estimated, outcome=ex.outcome)

    async def _finish(self, ex: Exchange, hold: Hold, cost: int | None) -> bool:
        """Settle (cost) or release (None), retrying a store hiccup briefly; the hold's deadline is the backstop."""
        for attempt in range(3):
            try:
                return await (self.ledger.release(hold) if cost is None else self.ledger.settle(hold, cost))
            except StoreUnavailable as e:
                self.services.metrics.budget_store_errors.labels(self._store_label).inc()
                log.warning("budget %s failed (attempt %d, request %s): %s", "release" if cost is None else "settle",
                            attempt + 1, ex.request_id, e)
                await asyncio.sleep(0.05 * (attempt + 1))
        ex.decide(self.type, "settle_failed", reserved_usd=usd(hold.amount))
        return False

    # ------------------------------------------------------------------ /v1/usage

    async def serve_local(self, ex: Exchange, query: dict[str, str]) -> tuple[int, Any]:
        """GET /v1/usage: the calling tenant's own period usage and limits (no other tenant is reachable)."""
        tenant = ex.tenant
        plan = self.plans[tenant.plan_name]
        period = period_of(time.time())
        try:
            bal = await self.ledger.balance(tenant.id, period)
        except StoreUnavailable:
            self.services.metrics.budget_store_errors.labels(self._store_label).inc()
            d = unavailable("the budget store is unavailable; retry shortly", "budget_store_unavailable")
            return 503, d.body()
        lim = plan.limits
        return 200, {
            "object": "usage",
            "tenant": tenant.id,
            "plan": plan.name,
            "period": {"start": period_start(period).isoformat(), "resets_at": period_reset(period).isoformat()},
            "interactions": {"used": bal.used, "in_flight": bal.held_interactions, "limit": lim.interactions,
                             "remaining": bal.interactions_left(lim)},
            "budget_usd": {"spent": usd(bal.spent), "in_flight": usd(bal.held),
                           "limit": None if lim.budget is None else usd(lim.budget),
                           "remaining": None if lim.budget is None else usd(bal.budget_left(lim))},
            "max_tokens_per_request": plan.max_tokens_per_request,
            "models": sorted(plan.models),
        }


STAGE = BudgetStage
