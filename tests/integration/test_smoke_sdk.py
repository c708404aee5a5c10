"""The real openai SDK through the proxy to the mock provider: sync and async, stream and not."""

import openai
import pytest

from tests.integration.servers import token


def client(proxy, tenant="acme", **kw):
    return openai.OpenAI(base_url=proxy.base_url, api_key=token(tenant), default_headers={"X-Tenant-ID": tenant}, max_retries=0, **kw)


def aclient(proxy, tenant="acme", **kw):
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key=token(tenant), default_headers={"X-Tenant-ID": tenant}, max_retries=0, **kw)


def test_sync_non_stream(proxy, mock):
    r = client(proxy).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}])
    assert r.choices[0].message.content == "Echo: hi there"
    assert r.usage.total_tokens > 0
    sent = mock.log[-1]
    assert sent["headers"]["Authorization"] == "Bearer sk-test-provider-key-0000"  # provider key injected, JWT never forwarded
    assert sent["body"]["store"] is False  # no_train provider attribute


def test_sync_stream(proxy, mock):
    stream = client(proxy).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me please"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: stream me please"


async def test_async_non_stream_and_stream(proxy):
    c = aclient(proxy)
    r = await c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async"}])
    assert r.choices[0].message.content == "Echo: async"
    s = await c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async stream"}], stream=True)
    parts = [ch.choices[0].delta.content or "" async for ch in s if ch.choices]
    assert "".join(parts) == "Echo: async stream"


def test_embeddings_and_completions_and_models(proxy):
    c = client(proxy)
    e = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.data) == 2
    r = c.completions.create(model="gpt-4o-mini", prompt="complete this")
    assert r.choices[0].text == "Echo: complete this"
    ids = {m.id for m in c.models.list()}
    assert ids == {"gpt-4o-mini", "text-embedding-3-small"}


def test_wrong_tenant_and_missing_token(proxy, mock):
    bad = openai.OpenAI(base_url=proxy.base_url, api_key=token("acme"), default_headers={"X-Tenant-ID": "globex"}, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as e:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "tenant_mismatch"
    anon = openai.OpenAI(base_url=proxy.base_url, api_key="not-a-jwt", default_headers={"X-Tenant-ID": "acme"}, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anon.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert mock.log == []  # rejected requests make zero upstream calls
