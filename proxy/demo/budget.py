"""Budget scene: a small plan runs out. Headers count down, 80 % brings a heads-up, 100 % a clear 429.

Needs (policies/demo.yaml): plan `starter-demo` (5 interactions), tenant `initech` on it,
the `budget` stage with `append_notice: true`, and a `rate_limit` stage giving initech
6 chat requests per minute.
"""

from __future__ import annotations

import aiohttp
import openai

from proxy.demo.context import DemoContext

TENANT = "initech"
_HEADERS = ("x-ramparts-plan", "x-ramparts-interactions-remaining", "x-ramparts-budget-remaining",
            "x-ramparts-budget-warning", "x-ratelimit-remaining-requests")


async def scene(ctx: DemoContext) -> None:
    ctx.heading("Budgets, plans and rate limits: plan 'starter-demo' (5 interactions a month) runs out")
    client = ctx.client_for(TENANT)
    before = len(ctx.provider_log())
    for i in range(1, 6):
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}])
        reply = raw.parse()
        sent = ctx.provider_log()[-1]["body"]
        shown = {h: raw.headers[h] for h in _HEADERS if h in raw.headers}
        ctx.say(f"request {i}", response_headers=shown, max_tokens_sent_upstream=sent.get("max_tokens"),
                app_got=reply.choices[0].message.content)
        if i >= 4 and "x-ramparts-budget-warning" not in raw.headers:
            raise SystemExit("demo: no heads-up at 80 % of the plan")

    calls = len(ctx.provider_log())
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "One more?"}])
        raise SystemExit("demo: a request past the plan's limit went through")
    except openai.RateLimitError as e:
        ctx.say("request 6: the plan is used up", status=e.status_code, error=e.body,
                retry_hint=e.response.headers.get("x-should-retry"), provider_calls_made=len(ctx.provider_log()) - calls)
        message = (e.body or {}).get("message", "") if isinstance(e.body, dict) else ""
        if "resets on" not in message or "Upgrade" not in message:  # the 100 % message: reset date and the way up
            raise SystemExit(f"demo: the refusal does not name the reset date and the upgrade path: {message!r}")
    if len(ctx.provider_log()) != calls:
        raise SystemExit("demo: the provider was called for a refused request")

    async with aiohttp.ClientSession() as http:
        async with http.get(ctx.base_url + "/usage", headers={"Authorization": f"Bearer {ctx.token(TENANT, ['ai:completion'])}",
                                                             "X-Tenant-ID": TENANT}) as r:
            ctx.say("GET /v1/usage (the tenant's own period)", status=r.status, body=await r.json())

    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "And again?"}])
        raise SystemExit("demo: the rate limit did not apply")
    except openai.RateLimitError as e:
        ctx.say("request 7: 6 chat requests per minute for initech", status=e.status_code, error=e.body,
                retry_after=e.response.headers.get("retry-after"))
    ctx.say("provider calls for initech", total=len(ctx.provider_log()) - before, expected=5)
