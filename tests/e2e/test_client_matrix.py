"""The client matrix: real SDKs through Ramparts to the mock provider, success and error paths.

Clients: openai-python sync and async, langchain-openai (ChatOpenAI sync and async), and the
npm `openai` package on Node (tests/e2e/node, `npm ci --prefix tests/e2e/node`). Each client runs
the same scenarios:

- chat non-stream and stream succeed with the mock's echo;
- 401 (not a JWT) and 403 (tenant header != token tenant) raise the SDK's auth errors, 0 upstream calls;
- 429 on every attempt: the SDK retries (max_retries=2), the proxy answers all 3 attempts 429
  (its own request counter and the provider both see 3), and the final RateLimitError raises;
- 429 twice then 200: the retries go through the proxy and only the success returns;
- a stream cut by the provider (TCP reset, or clean EOF without [DONE]) raises in the SDK after
  the partial text, never finishing silently.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.integration.servers import token

NODE_DIR = Path(__file__).parent / "node"
MODEL = "gpt-4o-mini"
# one loop for every async client call: langchain-openai caches its httpx async client per
# process, so a fresh asyncio.run() per call would find that client bound to a closed loop
_LOOP = asyncio.new_event_loop()


@dataclass
class Outcome:
    ok: bool
    text: str = ""
    name: str = ""
    status: int | None = None
    code: str | None = None
    partial: str = ""


def _err(e: Exception, partial: str) -> Outcome:
    body = getattr(e, "body", None)
    code = body.get("code") if isinstance(body, dict) else None
    if code is None and isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
    # langchain-openai raises its own subclasses (OpenAIRateLimitError(openai.RateLimitError, ...)):
    # report the openai SDK class they derive from
    name = next(c.__name__ for c in type(e).__mro__ if c.__module__.split(".")[0] == "openai")
    return Outcome(False, name=name, status=getattr(e, "status_code", None), code=code, partial=partial)


# ------------------------------------------------------------------ one runner per client

def run_openai_sync(base_url, key, tenant, text, stream, retries) -> Outcome:
    c = openai.OpenAI(base_url=base_url, api_key=key, default_headers={"X-Tenant-ID": tenant}, max_retries=retries, timeout=20)
    partial = ""
    try:
        if stream:
            for ch in c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], stream=True):
                partial += "".join(x.delta.content or "" for x in ch.choices)
            return Outcome(True, partial)
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return Outcome(True, r.choices[0].message.content)
    except openai.APIError as e:
        return _err(e, partial)


def run_openai_async(base_url, key, tenant, text, stream, retries) -> Outcome:
    async def go() -> Outcome:
        c = openai.AsyncOpenAI(base_url=base_url, api_key=key, default_headers={"X-Tenant-ID": tenant}, max_retries=retries, timeout=20)
        partial = ""
        try:
            if stream:
                s = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], stream=True)
                async for ch in s:
                    partial += "".join(x.delta.content or "" for x in ch.choices)
                return Outcome(True, partial)
            r = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
            return Outcome(True, r.choices[0].message.content)
        except openai.APIError as e:
            return _err(e, partial)
        finally:
            await c.close()
    return _LOOP.run_until_complete(go())


def _chat_openai(base_url, key, tenant, retries):
    from langchain_openai import ChatOpenAI
    return ChatOpenAI(model=MODEL, base_url=base_url, api_key=key, default_headers={"X-Tenant-ID": tenant},
                      max_retries=retries, timeout=20)


def run_langchain_sync(base_url, key, tenant, text, stream, retries) -> Outcome:
    llm = _chat_openai(base_url, key, tenant, retries)
    partial = ""
    try:
        if stream:
            for ch in llm.stream(text):
                partial += ch.content if isinstance(ch.content, str) else ""
            return Outcome(True, partial)
        return Outcome(True, llm.invoke(text).content)
    except openai.APIError as e:
        return _err(e, partial)


def run_langchain_async(base_url, key, tenant, text, stream, retries) -> Outcome:
    async def go() -> Outcome:
        llm = _chat_openai(base_url, key, tenant, retries)
        partial = ""
        try:
            if stream:
                async for ch in llm.astream(text):
                    partial += ch.content if isinstance(ch.content, str) else ""
                return Outcome(True, partial)
            return Outcome(True, (await llm.ainvoke(text)).content)
        except openai.APIError as e:
            return _err(e, partial)
    return _LOOP.run_until_complete(go())


def run_node(base_url, key, tenant, text, stream, retries) -> Outcome:
    scenario = {"base_url": base_url, "api_key": key, "tenant": tenant, "text": text, "stream": stream, "max_retries": retries}
    p = subprocess.run(["node", str(NODE_DIR / "client.mjs"), json.dumps(scenario)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if out["ok"]:
        return Outcome(True, out["text"])
    return Outcome(False, name=out["name"], status=out["status"], code=out["code"], partial=out.get("partial", ""))


def _node_ready() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm are not installed (apt-get install nodejs npm)"
    return None


CLIENTS = {
    "openai-sync": run_openai_sync,
    "openai-async": run_openai_async,
    "langchain-sync": run_langchain_sync,
    "langchain-async": run_langchain_async,
    "node-openai": run_node,
}


@pytest.fixture(params=list(CLIENTS))
def run(request, proxy):
    name = request.param
    if name == "node-openai":
        reason = _node_ready()
        if reason:
            pytest.skip(reason)
        # node and npm are here, so the package must be too: a missing install is a failure, not a skip
        assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run `npm ci --prefix tests/e2e/node` first (.ci/run does)"
    fn = CLIENTS[name]

    def call(text, *, stream=False, retries=0, tenant="acme", key=None):
        return fn(proxy.base_url, key or token("acme"), tenant, text, stream, retries)
    call.client = name
    return call


def proxy_count(proxy, status: str) -> float:
    total = 0.0
    for metric in proxy.metrics.registry.collect():
        if metric.name == "ramparts_requests":
            total += sum(s.value for s in metric.samples if s.name == "ramparts_requests_total" and s.labels.get("status") == status)
    return total


# ------------------------------------------------------------------ success paths

def test_non_stream_succeeds(run, up):
    out = run("hello from the matrix")
    assert out == Outcome(True, "Echo: hello from the matrix")
    assert len(up.log) == 1 and up.log[0]["headers"]["Authorization"] == "Bearer sk-test-provider-key-0000"


def test_stream_succeeds(run, up):
    out = run("stream to the matrix please", stream=True)
    assert out == Outcome(True, "Echo: stream to the matrix please")
    assert up.log[0]["body"]["stream"] is True


# ------------------------------------------------------------------ 401 / 403: refused before any upstream call

@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_401_not_a_jwt(run, up, stream):
    out = run("x", stream=stream, key="not-a-jwt")
    assert (out.ok, out.status, out.name) == (False, 401, "AuthenticationError")
    assert up.log == []


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_403_tenant_mismatch(run, up, stream):
    out = run("x", stream=stream, tenant="globex")
    assert (out.ok, out.status, out.name, out.code) == (False, 403, "PermissionDeniedError", "tenant_mismatch")
    assert up.log == []


# ------------------------------------------------------------------ 429: SDK retries through the proxy

@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_429_every_attempt_retries_then_raises(run, proxy, up, stream):
    up.fail_429 = 100
    before = proxy_count(proxy, "429")
    out = run("x", stream=stream, retries=2)
    assert (out.ok, out.status, out.name) == (False, 429, "RateLimitError")
    assert out.code == "rate_limit_exceeded"
    assert up.refused == 3  # 1 try + 2 retries reached the provider ...
    assert proxy_count(proxy, "429") - before == 3  # ... through the proxy, which answered each one 429


def test_429_twice_then_success(run, proxy, up):
    up.fail_429 = 2
    before = proxy_count(proxy, "429")
    out = run("third time lucky", retries=2)
    assert out == Outcome(True, "Echo: third time lucky")
    assert up.refused == 2 and len(up.log) == 1
    assert proxy_count(proxy, "429") - before == 2


# ------------------------------------------------------------------ cut streams raise

@pytest.mark.parametrize("mode,code", [("reset", "upstream_reset"), ("nodone", "upstream_truncated")])
def test_cut_stream_raises_after_the_partial_text(run, up, mode, code):
    out = run(f"one two three four five six seven eight mock:{mode}", stream=True)
    assert not out.ok, f"{run.client} finished silently on a cut stream"
    assert out.partial  # the text before the cut came through
    if mode == "reset":
        assert len(out.partial) < len("Echo: one two three four five six seven eight")
    assert code in (out.code or "") or out.name in ("APIError", "APIConnectionError"), out
