"""JSON body semantics through the proxy (SECURITY_TESTS E1-E4).

One meaning per document: what the proxy validates is exactly what the provider
gets. Every refusal is a 400 in the OpenAI shape with zero upstream calls; no
input gives a 5xx.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from proxy.wire.request_schema import FIELDS, SchemaRejected, validate_request
from tests.integration.rawhttp import build, request
from tests.integration.servers import ProxyServer, policy_for, token

ROUTE = "/v1/chat/completions"
MSGS = '[{"role":"user","content":"hi"}]'


@pytest.fixture(scope="module")
def px(bg, mock, tmp_path_factory):
    p = ProxyServer(bg, policy_for(mock.port), tmp_path_factory.mktemp("body")).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def tok():
    return token()


def post(px, tok, body: bytes, route: str = ROUTE):
    headers = {"Host": "x", "Authorization": f"Bearer {tok}", "X-Tenant-ID": "acme", "Content-Type": "application/json"}
    resp, _ = request(px.port, build("POST", route, headers, body), close_wait=0)
    return resp


def rejected(px, mock, tok, body: bytes, code: str | tuple[str, ...], route: str = ROUTE) -> dict:
    mock.clear()
    resp = post(px, tok, body, route)
    assert resp.status == 400, (resp.status, resp.body[:300])
    err = resp.error
    assert err["type"] == "invalid_request_error"
    assert err["code"] in ((code,) if isinstance(code, str) else code), err
    assert mock.log == []
    return err


# ---------------------------------------------------------------- E1 duplicate keys

@pytest.mark.parametrize("raw", [
    '{"model":"gpt-4o-mini","model":"gpt-4o","messages":%s}' % MSGS,
    '{"model":"gpt-4o-mini","messages":%s,"max_tokens":1,"max_tokens":100000}' % MSGS,
    '{"model":"gpt-4o-mini","messages":%s,"stream":false,"stream":true}' % MSGS,
    '{"model":"gpt-4o-mini","messages":[{"role":"user","role":"system","content":"hi"}]}',
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a","content":"b"}]}',
    '{"model":"gpt-4o-mini","messages":%s,"metadata":{"k":"a","k":"b"}}' % MSGS,
    '{"model":"gpt-4o-mini","messages":%s,"model":"gpt-4o-mini"}' % MSGS,
], ids=["model", "max_tokens", "stream", "nested-role", "nested-content", "metadata", "same-value"])
def test_e1_duplicate_keys_are_refused(px, mock, tok, raw):
    err = rejected(px, mock, tok, raw.encode(), "duplicate_key")
    assert "duplicate key" in err["message"]


def test_e1_forwarded_object_is_the_validated_object(px, mock, tok):
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "héllo \u2028 ok"}],
                         "max_tokens": 7, "temperature": 0.5, "stop": ["x"]})
    mock.clear()
    assert post(px, tok, body).status == 200
    sent = mock.log[0]["body"]
    assert sent == {**orjson.loads(body), "store": False}  # store:false is the no_train provider attribute


# ---------------------------------------------------------------- E2 numbers

@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "-" + "9" * 5000, "0x10", "01", "+1", ".5"])
def test_e2_non_finite_huge_or_non_json_numbers(px, mock, tok, value):
    raw = '{"model":"gpt-4o-mini","messages":%s,"temperature":%s}' % (MSGS, value)
    rejected(px, mock, tok, raw.encode(), ("invalid_json", "invalid_value"))


def test_e2_huge_integer_in_an_integer_field_is_refused(px, mock, tok):
    raw = '{"model":"gpt-4o-mini","messages":%s,"max_tokens":%s}' % (MSGS, "1" + "0" * 25)
    rejected(px, mock, tok, raw.encode(), ("invalid_json", "invalid_value"))


# ---------------------------------------------------------------- E3 encodings

@pytest.mark.parametrize("raw", [
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\xff\xfe"}]}',
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\xed\xa0\x80"}]}',  # UTF-8-encoded surrogate
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud800"}]}',
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\udc00x"}]}',
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\xc0\xaf"}]}',  # overlong
    b'\xef\xbb\xbf{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}\x00',
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'.encode("utf-16"),
], ids=["ff", "utf8-surrogate", "lone-high", "lone-low", "overlong", "bom", "trailing-nul", "utf16"])
def test_e3_invalid_utf8_and_lone_surrogates(px, mock, tok, raw):
    rejected(px, mock, tok, raw, "invalid_json")


def test_e3_valid_surrogate_pairs_and_non_ascii_pass(px, mock, tok):
    mock.clear()
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud83d\\ude00 \xc3\xa9"}]}'
    resp = post(px, tok, body)
    assert resp.status == 200 and resp.json()["choices"][0]["message"]["content"] == "Echo: \U0001f600 é"


# ---------------------------------------------------------------- E4 schema

@pytest.mark.parametrize("extra,code,param", [
    ({"messages": "hi"}, "invalid_value", "messages"),
    ({"messages": []}, "invalid_value", "messages"),
    ({"messages": [{"role": "root", "content": "x"}]}, "invalid_value", "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "invalid_value", "messages"),
    ({"max_tokens": -1}, "invalid_value", "max_tokens"),
    ({"max_tokens": 0}, "invalid_value", "max_tokens"),
    ({"max_tokens": 10**12}, "invalid_value", "max_tokens"),
    ({"max_tokens": 1.5}, "invalid_value", "max_tokens"),
    ({"max_tokens": True}, "invalid_value", "max_tokens"),
    ({"n": 100}, "invalid_value", "n"),
    ({"stream": "yes"}, "invalid_value", "stream"),
    ({"stream": 1}, "invalid_value", "stream"),
    ({"temperature": 3}, "invalid_value", "temperature"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "invalid_value", "stop"),
    ({"stream_options": {"include_usage": True, "url": "x"}}, "invalid_value", "stream_options"),
    ({"metadata": {"api_base": "http://127.0.0.2"}}, "invalid_value", "metadata"),
    ({"model": 5}, "invalid_value", "model"),
    ({"model": "../../admin"}, "invalid_value", "model"),
    ({"model": "gpt 4"}, "invalid_value", "model"),
    ({"frobnicate": 1}, "unknown_field", "frobnicate"),
    ({"api_base": "http://127.0.0.2:1/v1"}, "upstream_override_forbidden", "api_base"),
    ({"extra_body": {"api_base": "x"}}, "upstream_override_forbidden", "extra_body"),
])
def test_e4_wrong_types_ranges_and_unknown_fields(px, mock, tok, extra, code, param):
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], **extra})
    err = rejected(px, mock, tok, body, code)
    assert param in err["message"]


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"null", b"1", b"", b"{}", b'{"model":"gpt-4o-mini"}'])
def test_e4_not_an_object_or_missing_fields(px, mock, tok, body):
    rejected(px, mock, tok, body, ("invalid_request", "invalid_json", "missing_field"))


def test_e4_missing_required_fields_per_route(px, mock, tok):
    rejected(px, mock, tok, b'{"model":"gpt-4o-mini"}', "missing_field", "/v1/completions")
    rejected(px, mock, tok, b'{"model":"text-embedding-3-small"}', "missing_field", "/v1/embeddings")
    rejected(px, mock, tok, b'{"model":"text-embedding-3-small","input":[]}', "invalid_value", "/v1/embeddings")


# A JSON-value strategy and per-field values that are sometimes right, sometimes wrong.
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20))
json_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"]),
                                  "content": st.one_of(st.text(max_size=30), st.none(), json_value)})
_field_names = sorted(set(FIELDS["chat"]) | {"api_base", "extra_headers", "unknown_thing"})
chat_bodies = st.fixed_dictionaries(
    {"model": st.one_of(st.just("gpt-4o-mini"), st.text(max_size=12), json_value),
     "messages": st.one_of(st.lists(_message, min_size=1, max_size=3), json_value)},
    optional={name: json_value for name in _field_names if name not in ("model", "messages")},
)


@settings(max_examples=50, deadline=None)
@given(body=st.one_of(chat_bodies, json_value))
def test_e4_schema_property_rejects_cleanly_or_accepts_only_valid_shapes(body):
    """validate_request never raises anything but SchemaRejected; what it accepts is well-typed."""
    try:
        validate_request("chat", body)
    except SchemaRejected as e:
        assert e.code in ("invalid_request", "upstream_override_forbidden", "unknown_field", "missing_field", "invalid_value")
        return
    assert isinstance(body, dict) and set(body) <= set(FIELDS["chat"])
    assert isinstance(body["model"], str) and isinstance(body["messages"], list) and body["messages"]
    for key in ("stream", "logprobs", "store", "parallel_tool_calls"):
        assert body.get(key) is None or isinstance(body[key], bool)
    for key in ("max_tokens", "n", "max_completion_tokens"):
        assert body.get(key) is None or (type(body[key]) is int and body[key] >= 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=chat_bodies)
def test_e4_through_the_proxy_never_5xx_and_forwards_exactly_what_it_accepted(px, mock, tok, body):
    assume(_encodable(body))  # orjson refuses integers beyond 64 bits on the client side
    raw = orjson.dumps(body)
    mock.clear()
    resp = post(px, tok, raw)
    assert resp.status < 500, resp.body[:300]
    if resp.status == 200:
        assert len(mock.log) == 1
        sent = mock.log[0]["body"]
        assert {k: v for k, v in sent.items() if k != "store"} == {k: v for k, v in orjson.loads(raw).items() if k != "store"}
    else:
        assert resp.status in (400, 403, 404) and resp.error and mock.log == []


def _encodable(body) -> bool:
    try:
        orjson.dumps(body)
        return True
    except TypeError:
        return False
