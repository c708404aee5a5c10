"""Demo scene: PII is tokenized before the provider sees it and restored in the streamed answer.

Needs the `pii` stage in the demo policy's pipeline (after injection, before leak/audit):
    - {type: pii, secret: {from_env: RAMPARTS_PII_SECRET}}
and a tenant with `pii: block` (mercy-health in policies/demo.yaml).
"""

from __future__ import annotations

import json

import openai

from proxy.demo.context import DemoContext

EMAIL, PHONE, CARD = "jane.doe@example.com", "+1-415-555-0134", "4111 1111 1111 1111"
VALUES = (EMAIL, PHONE, CARD)


def _messages_seen(entry: dict) -> list[dict]:
    return [{"role": m.get("role"), "content": m.get("content")} for m in entry["body"].get("messages", [])]


async def scene(ctx: DemoContext) -> None:
    ctx.heading("PII tokenization: the provider sees tokens, the app gets its data back (streamed)")
    messages = [
        {"role": "system", "content": f"You are Acme support. Escalations: {EMAIL}."},
        # mock:split=3 makes the mock stream 3 characters per SSE event, so tokens arrive split.
        {"role": "user", "content": f"Please call me on {PHONE} about card {CARD}, or mail {EMAIL}. mock:split=3"},
    ]
    before = len(ctx.provider_log())
    stream = await ctx.client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    deltas = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    seen = ctx.provider_log()[before]
    seen_text = json.dumps(seen["body"])
    if any(v in seen_text for v in VALUES):
        raise SystemExit("demo: a PII value reached the provider")
    answer = "".join(deltas)
    if any(v not in answer for v in (EMAIL, PHONE, CARD)) or "<" in answer:
        raise SystemExit(f"demo: the streamed answer was not restored: {answer!r}")
    ctx.say("app sent (tenant acme)", messages=[{"role": m["role"], "content": m["content"]} for m in messages])
    ctx.say("provider received", messages=_messages_seen(seen))
    ctx.say("app got, streamed", sse_events=len(deltas), first_events=deltas[:12], text=answer)

    r = await ctx.client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "my iban is GB56HXDO88167774656119, ssn 460-89-9847"}])
    ctx.say("non-stream (a new request, its own token map)", provider_received=_messages_seen(ctx.provider_log()[-1]),
            app_got=r.choices[0].message.content)

    before = len(ctx.provider_log())
    try:
        await ctx.client_for("mercy-health").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Patient SSN 460-89-9847, phone {PHONE}"}])
        raise SystemExit("demo: a pii:block tenant's PII was sent")
    except openai.BadRequestError as e:
        if len(ctx.provider_log()) != before:
            raise SystemExit("demo: the blocked request reached the provider") from None
        ctx.say("tenant mercy-health (pii: block)", status=e.status_code, error=e.body, provider_calls=0)
