"""Security scene: what an attacker's request looks like on the wire, and what the proxy does with it.

Each attempt shows the status, the OpenAI-shaped error, and how many calls reached
the provider (always zero for a refusal). The last one shows the SDK raising on a
stream the provider cut, where an unprotected client would finish silently.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import openai

from proxy.demo.context import DemoContext


async def _raw(base_url: str, data: bytes) -> tuple[int, dict]:
    """Send exact bytes to the proxy; return the status and the JSON error body."""
    u = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status = int(head.split(b" ", 2)[1])
        length = next((int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b"{}"
        return status, json.loads(body)
    finally:
        writer.close()


async def scene(ctx: DemoContext) -> None:
    ctx.heading("Security: smuggling, SSRF via the body, and a cut stream")
    token = ctx.token("acme")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    dup = b'{"model":"gpt-4o-mini","model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {token}\r\n"
            "X-Tenant-ID: acme\r\nContent-Type: application/json\r\n").encode()
    attempts = {
        "CL.TE smuggling (Content-Length and Transfer-Encoding)":
            head + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
        "absolute-form target to the cloud metadata address":
            head.replace(b"/v1/chat/completions", b"http://169.254.169.254/latest/meta-data") + b"Content-Length: %d\r\n\r\n" % len(body) + body,
        "duplicate key: the proxy would read one model, the provider another":
            head + b"Content-Length: %d\r\n\r\n" % len(dup) + dup,
    }
    for title, raw in attempts.items():
        before = len(ctx.provider_log())
        status, err = await _raw(ctx.base_url, raw)
        if status < 400:
            raise SystemExit(f"demo: {title} was accepted")
        ctx.say(title, status=status, error=err.get("error"), provider_calls_made=len(ctx.provider_log()) - before)

    before = len(ctx.provider_log())
    try:
        await ctx.client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                                 extra_body={"api_base": "http://127.0.0.2:8080/v1"})
        raise SystemExit("demo: a body field chose the upstream")
    except openai.BadRequestError as e:
        ctx.say("SDK extra_body={'api_base': 'http://127.0.0.2:8080/v1'}", status=e.status_code, error=e.body,
                provider_calls_made=len(ctx.provider_log()) - before)

    got: list[str] = []
    try:
        stream = await ctx.client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three four five six seven eight mock:reset"}], stream=True)
        async for chunk in stream:
            got.extend(c.delta.content or "" for c in chunk.choices)
        raise SystemExit("demo: a stream cut by the provider finished silently")
    except openai.APIError as e:
        ctx.say("provider resets the connection mid-stream: the SDK raises instead of finishing silently",
                partial_text_received="".join(got), sdk_error=type(e).__name__, error=e.body)
