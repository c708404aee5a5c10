"""Core scenes: the SDK through the proxy, stream and not; a wrong tenant; no token; egress denied."""

from __future__ import annotations

import openai

from proxy.demo.context import DemoContext


def _provider_view(entry: dict) -> dict:
    h = entry["headers"]
    return {"path": entry["path"], "authorization": h.get("Authorization") or h.get("api-key"),
            "body": entry["body"]}


async def scene(ctx: DemoContext) -> None:
    ctx.heading("1. Core proxy: tenant binding, egress, streaming")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    before = len(ctx.provider_log())
    r = await ctx.client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    ctx.say("non-stream chat (tenant acme)", app_sent=messages, provider_received=_provider_view(ctx.provider_log()[before]),
            app_got=r.choices[0].message.content)

    stream = await ctx.client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Stream a short answer"}], stream=True)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    ctx.say("streamed chat", chunks_received=len(pieces), app_got="".join(pieces))

    bad = ctx.client_for("acme", header_tenant="globex")
    try:
        await bad.chat.completions.create(model="gpt-4o-mini", messages=messages)
        raise SystemExit("demo: a wrong tenant header was accepted")
    except openai.PermissionDeniedError as e:
        ctx.say("token for acme, header X-Tenant-ID: globex", status=e.status_code, error=e.body)

    anon = ctx.client_for("acme", api_key="no-token")
    try:
        await anon.chat.completions.create(model="gpt-4o-mini", messages=messages)
        raise SystemExit("demo: a request without a JWT was accepted")
    except openai.AuthenticationError as e:
        ctx.say("no JWT", status=e.status_code, error=e.body)

    n = len(ctx.provider_log())
    try:
        await ctx.client.chat.completions.create(model="claude-sonnet", messages=messages)
        raise SystemExit("demo: a call to a host outside egress.allow went through")
    except openai.PermissionDeniedError as e:
        ctx.say("model served only by a provider outside egress.allow", status=e.status_code, error=e.body,
                provider_calls_made=len(ctx.provider_log()) - n)

    hipaa = ctx.client_for("mercy-health")
    r = await hipaa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise our visiting hours."}])
    ctx.say("HIPAA tenant (require: baa) is routed to the BAA provider only",
            provider_path=ctx.provider_log()[-1]["path"], app_got=r.choices[0].message.content)
