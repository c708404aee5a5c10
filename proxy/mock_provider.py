"""An OpenAI-compatible fake provider with fault modes, for tests, the bench and the demo.

Modes are chosen per request by directives in the last user message (the proxy
forwards the body, never client headers): `mock:MODE` words, e.g.

    mock:stream-chunks=20  mock:delay=0.2  mock:reset  mock:stall  mock:nodone
    mock:badsse  mock:huge  mock:http429  mock:http500  mock:http401  mock:html
    mock:redirect  mock:bomb  mock:nousage  mock:split=3  mock:say=<urlsafe base64>
    mock:echo (default: the reply echoes the last user message)  mock:system (reply = system prompt)

or for the next N requests by POST /_mock/mode {"mode": "...", "count": N}. Every
request is logged (path, headers, body): GET /_mock/log, DELETE /_mock/log.
Every response also carries Set-Cookie, Server and openai-organization headers,
which a proxy must not pass on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_DIRECTIVE = re.compile(r"mock:([a-z0-9_-]+)(?:=([A-Za-z0-9_.=-]+))?")
PROVIDER_KEY_HINT = "sk-proj-****-mockkey-abcd"


@dataclass
class MockState:
    log: list[dict[str, Any]] = field(default_factory=list)
    queued: list[tuple[str, int]] = field(default_factory=list)
    log_bodies: bool = True
    disconnects: int = 0  # streams the client (the proxy) closed before the end
    max_log: int = 10_000


def _last_user_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        for msg in reversed(body.get("messages") or []):
            if isinstance(msg, dict) and msg.get("role") == "user":
                c = msg.get("content")
                if isinstance(c, str):
                    return c
                if isinstance(c, list):
                    return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        return ""
    p = body.get("prompt")
    return p if isinstance(p, str) else " ".join(x for x in p or [] if isinstance(x, str))


def _system_text(body: dict[str, Any]) -> str:
    for msg in body.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") in ("system", "developer") and isinstance(msg.get("content"), str):
            return msg["content"]
    return ""


def parse_modes(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) or "" for m in _DIRECTIVE.finditer(text)}


def _reply_text(body: dict[str, Any], modes: dict[str, str]) -> str:
    if "say" in modes:
        raw = modes["say"]
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8", "replace")
    if "system" in modes:
        return _system_text(body)
    user = _DIRECTIVE.sub("", _last_user_text(body)).strip()
    return f"Echo: {user}" if user else "Hello from the mock provider."


def say(text: str) -> str:
    """The directive that makes the mock answer exactly `text`."""
    return "mock:say=" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _pieces(text: str, modes: dict[str, str]) -> list[str]:
    if "split" in modes:
        n = max(1, int(modes["split"] or 1))
        return [text[i:i + n] for i in range(0, len(text), n)] or [""]
    n = max(1, int(modes.get("stream-chunks") or 8))
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


_HEADERS = {"Set-Cookie": "session=upstream-secret; Path=/", "openai-organization": "org-mock-secret", "X-Mock": "1"}


class MockProvider:
    def __init__(self, state: MockState | None = None) -> None:
        self.state = state or MockState()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        app.router.add_get("/_mock/log", self.get_log)
        app.router.add_delete("/_mock/log", self.clear_log)
        app.router.add_post("/_mock/mode", self.set_mode)
        return app

    async def _record(self, request: web.Request) -> tuple[dict[str, Any], dict[str, str]]:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {"_invalid_json": raw[:200].decode("utf-8", "replace")}
        entry = {"path": request.path_qs, "method": request.method, "headers": dict(request.headers), "body": body if self.state.log_bodies else None, "time": time.time()}
        self.state.log.append(entry)
        del self.state.log[: max(0, len(self.state.log) - self.state.max_log)]
        modes = parse_modes(_last_user_text(body)) if isinstance(body, dict) else {}
        if self.state.queued:
            mode, count = self.state.queued[0]
            modes.update(parse_modes(mode))
            if count <= 1:
                self.state.queued.pop(0)
            else:
                self.state.queued[0] = (mode, count - 1)
        return body, modes

    async def _fault_before(self, request: web.Request, modes: dict[str, str]) -> web.StreamResponse | None:
        if "http429" in modes:
            return web.json_response({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}, status=429, headers={"Retry-After": "7", **_HEADERS})
        if "http500" in modes:
            return web.json_response({"error": {"message": "The server had an error", "type": "server_error", "code": None}}, status=500, headers=_HEADERS)
        if "http401" in modes:
            return web.json_response({"error": {"message": f"Incorrect API key provided: {PROVIDER_KEY_HINT}. You can find your API key at https://example.invalid.", "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401, headers=_HEADERS)
        if "html" in modes:
            return web.Response(text="<html><body><h1>502 Bad Gateway</h1></body></html>", status=502, content_type="text/html")
        if "redirect" in modes:
            return web.Response(status=302, headers={"Location": "http://127.0.0.2:9/v1/chat/completions"})
        if "bomb" in modes:
            payload = gzip.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}", compresslevel=9)
            return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        if "delay" in modes and "stream" not in modes:
            await asyncio.sleep(float(modes["delay"] or 0.1))
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, modes = await self._record(request)
        fault = await self._fault_before(request, modes)
        if fault is not None:
            return fault
        text = _reply_text(body, modes)
        n = int(body.get("n") or 1) if isinstance(body.get("n"), int) else 1
        model = body.get("model", "mock")
        prompt_tokens = _tokens(orjson.dumps(body.get("messages", [])).decode())
        if body.get("stream"):
            return await self._stream(request, body, modes, text, n, model, prompt_tokens, chat=True)
        choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None} for i in range(n)]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": _tokens(text) * n, "total_tokens": prompt_tokens + _tokens(text) * n}
        out = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": int(time.time()), "model": model, "choices": choices}
        if "nousage" not in modes:
            out["usage"] = usage
        return web.Response(body=orjson.dumps(out), content_type="application/json", headers=_HEADERS)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, modes = await self._record(request)
        fault = await self._fault_before(request, modes)
        if fault is not None:
            return fault
        text = _reply_text(body, modes)
        model = body.get("model", "mock")
        prompt_tokens = _tokens(_last_user_text(body))
        if body.get("stream"):
            return await self._stream(request, body, modes, text, 1, model, prompt_tokens, chat=False)
        out = {"id": "cmpl-" + uuid.uuid4().hex[:24], "object": "text_completion", "created": int(time.time()), "model": model,
               "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
               "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": _tokens(text), "total_tokens": prompt_tokens + _tokens(text)}}
        return web.Response(body=orjson.dumps(out), content_type="application/json", headers=_HEADERS)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, modes = await self._record(request)
        fault = await self._fault_before(request, modes)
        if fault is not None:
            return fault
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = int(body.get("dimensions") or 8)
        data = [{"object": "embedding", "index": i, "embedding": [((hash(str(x)) >> k) % 1000) / 1000 for k in range(dims)]} for i, x in enumerate(inputs)]
        toks = sum(_tokens(str(x)) for x in inputs)
        out = {"object": "list", "data": data, "model": body.get("model", "mock"), "usage": {"prompt_tokens": toks, "total_tokens": toks}}
        return web.Response(body=orjson.dumps(out), content_type="application/json", headers=_HEADERS)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "mock"}]})

    async def _stream(self, request, body, modes, text, n, model, prompt_tokens, chat: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **_HEADERS})
        await resp.prepare(request)
        cid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        delay = float(modes.get("delay") or 0)
        eol = b"\r\n" if "crlf" in modes else b"\n"

        def frame(payload: Any) -> bytes:
            return b"data: " + orjson.dumps(payload) + eol + eol

        def chunk(i: int, piece: str | None, finish: str | None = None, role: bool = False) -> dict:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else ({"content": piece} if piece is not None else {})
                choice = {"index": i, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": i, "text": piece or "", "finish_reason": finish, "logprobs": None}
            return {"id": cid, "object": obj, "created": created, "model": model, "choices": [choice]}

        try:
            if "huge" in modes:
                await resp.write(b"data: " + b"x" * (8 * 1024 * 1024) + b"\n\n")
                return resp
            if chat:
                for i in range(n):
                    await resp.write(frame(chunk(i, None, role=True)))
            sent = 0
            for piece in _pieces(text, modes):
                for i in range(n):
                    await resp.write(frame(chunk(i, piece)))
                sent += 1
                if "badsse" in modes and sent == 2:
                    await resp.write(b"data: {not json\n\n")
                if "reset" in modes and sent == 2:
                    request.transport.abort()
                    return resp
                if "stall" in modes and sent == 2:
                    await asyncio.sleep(3600)
                if delay:
                    await asyncio.sleep(delay)
            for i in range(n):
                await resp.write(frame(chunk(i, None if chat else "", finish="stop")))
            opts = body.get("stream_options") or {}
            if opts.get("include_usage") and "nousage" not in modes:
                c = _tokens(text) * n
                await resp.write(frame({"id": cid, "object": obj, "created": created, "model": model, "choices": [],
                                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": c, "total_tokens": prompt_tokens + c}}))
            if "nodone" not in modes:
                await resp.write(b"data: [DONE]" + eol + eol)
            if "unterminated" in modes:
                await resp.write(b"data: {\"tail\": true}")
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.disconnects += 1
            raise
        return resp

    async def get_log(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.state.log), content_type="application/json")

    async def clear_log(self, request: web.Request) -> web.Response:
        self.state.log.clear()
        return web.json_response({"ok": True})

    async def set_mode(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.state.queued.append((str(data.get("mode", "")), int(data.get("count", 1))))
        return web.json_response({"ok": True})


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts mock-provider", description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:9999", help="HOST:PORT to listen on")
    ap.add_argument("--no-log-bodies", action="store_true", help="do not keep request bodies (long benchmarks)")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    provider = MockProvider(MockState(log_bodies=not args.no_log_bodies, max_log=1000))
    web.run_app(provider.app(), host=host, port=int(port), access_log=None, print=lambda *a: print(f"mock provider on http://{args.listen}", flush=True))
    return 0
