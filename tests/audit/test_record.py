from __future__ import annotations

import math

from proxy.audit.record import MAX_DETAIL_STRING, REDACTED, build_record, credentials_of
from proxy.audit.canonical import canonical
from tests.harness import make_exchange, make_policy


def test_details_are_bounded_json_safe_and_scrubbed():
    policy = make_policy()
    ex = make_exchange(policy, {"model": "gpt-4o-mini", "messages": []},
                       headers={"Authorization": "Bearer tok.en.value-123"})
    ex.decide("leak", "cut", hits=[{"kind": "secret", "sample": "sk-test-provider-key-0000"}],
              note="x" * 1000, ratio=math.inf, big=2**70, nested={"a": {"b": {"c": {"d": {"e": 1}}}}}, tags={"t"})
    ex.decide("tenant", "allow", token="tok.en.value-123", other="saw eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig here")
    secrets = credentials_of(ex, policy.provider_keys.values())
    assert "tok.en.value-123" in secrets and "sk-test-provider-key-0000" in secrets
    rec = build_record(ex, secrets=secrets)
    d = rec["decisions"][0]["detail"]
    assert d["hits"][0]["sample"] == REDACTED and rec["decisions"][1]["detail"]["token"] == REDACTED
    assert rec["decisions"][1]["detail"]["other"] == REDACTED  # someone else's JWT, by its shape
    assert len(d["note"]) == MAX_DETAIL_STRING + 1 and d["ratio"] == "inf" and d["big"] == str(2**70)
    assert d["tags"] == ["t"] and d["nested"]["a"]["b"]["c"] == "…"
    canonical(rec)  # JCS accepts it: no NaN/inf, no oversized ints


def test_unauthenticated_record():
    policy = make_policy()
    ex = make_exchange(policy, None, tenant=None, headers={"X-Tenant-ID": "acme"})
    ex.outcome = "denied"
    rec = build_record(ex, secrets=())
    assert (rec["tenant"], rec["claimed_tenant"], rec["subject"], rec["jti"]) == (None, "acme", None, None)
    assert rec["v"] == 1 and rec["type"] == "exchange" and rec["time"].endswith("Z")


def test_verdicts_summarize_what_the_stages_decided():
    """Decision shapes as proxy/stages/{budget,pii,injection,leak}.py report them."""
    policy = make_policy()
    ex = make_exchange(policy, {"model": "gpt-4o-mini", "messages": []})
    ex.decide("budget", "reserve", reserved_usd=0.0098, prompt_tokens=12)
    ex.decide("pii", "tokenized", counts={"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1})
    ex.decide("injection", "flag", score=0.61, carrier_kind="user", signals=["ignore_previous"])
    ex.decide("leak", "redact", detector="secret", kind="aws_access_key", count=1)
    ex.decide("pii", "restored", counts={"EMAIL_ADDRESS": 2})
    ex.decide("budget", "settle", settled_usd=0.0004, reserved_usd=0.0098)
    v = build_record(ex, secrets=())["verdicts"]
    assert v == {"reserved_usd": 0.0098, "settled_usd": 0.0004, "pii_counts": {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1},
                 "pii_action": "tokenized", "injection_score": 0.61, "injection_action": "flag",
                 "leak_hits": [{"action": "redact", "detector": "secret", "kind": "aws_access_key", "count": 1}]}
    denied = make_exchange(policy, None)
    denied.decide("budget", "reserve", reserved_usd=0.01)
    denied.decide("budget", "release", reason="upstream_error")
    assert build_record(denied, secrets=())["verdicts"]["settled_usd"] == 0


def test_tools_offered_are_listed_by_name():
    policy = make_policy()
    body = {"model": "gpt-4o-mini", "messages": [], "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "secret internals", "parameters": {}}},
        {"type": "function", "function": {"name": "send_email"}}]}
    rec = build_record(make_exchange(policy, body), secrets=())
    assert rec["tools_offered"] == ["get_weather", "send_email"] and "secret internals" not in str(rec)
