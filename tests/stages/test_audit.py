"""Stage `audit` through the real chain: one record per exchange, nothing secret in it."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.audit import verify
from proxy.audit.content import SubjectKeys
from proxy.audit.digest import ResponseDigest
from proxy.audit.keyring import Keyring, key_id
from proxy.audit.query import Query, iter_records
from proxy.config.policy import ProviderTarget
from proxy.leak.secret import redact_text, secret_detector
from proxy.metrics import Metrics
from proxy.pipeline.chain import Chain
from proxy.pipeline.deny import Deny
from proxy.pii.detector import Detector
from proxy.pii.settings import DetectionSettings
from proxy.pipeline.stage import Stage
from proxy.stages.audit import AuditStage
from proxy.wire.event import Event
from tests.harness import chat_body, chat_chunk, make_exchange, make_policy, make_services, make_stage, run_response

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnQiOiJhY21lIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"
PROVIDER_KEY = "sk-test-provider-key-0000"
PII = {"card": "4111 1111 1111 1111", "ssn": "078-05-1120", "iban": "DE89 3704 0044 0532 0130 00",
       "email": "jane.roe@example.org"}


def _records(audit_dir: Path) -> list[dict]:
    out = []
    for path in sorted((audit_dir / "records").rglob("*.jsonl")):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [r for r in out if r["type"] == "exchange"]


async def _stage(tmp_path: Path, **cfg) -> AuditStage:
    stage = make_stage(AuditStage, {"type": "audit", "chain_id": "t1", **cfg}, make_policy(),
                       make_services(tmp_path, Metrics()))
    await stage.start()
    return stage


class Settling(Stage):
    """Stands in for budget/pii: records decisions the way real stages do."""

    type = "budget"

    async def on_request(self, ex):
        ex.decide("budget", "reserve", cost_usd=0.0042, tokens=100)
        return None

    async def on_complete(self, ex):
        ex.decide("budget", "settle", cost_usd=0.0011)
        ex.decide("pii", "tokenized", counts={"EMAIL_ADDRESS": 1}, leaked_key=PROVIDER_KEY)  # a buggy stage


async def _exchange(chain: Chain, policy, *, stream=True, text="Hello world", headers=None, subject="user-1",
                    tenant="acme", prompt="hi"):
    ex = make_exchange(policy, {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": prompt}]},
                       headers=headers or {"Authorization": f"Bearer {JWT}", "X-Tenant-ID": tenant},
                       subject=subject, tenant=tenant)
    ex.provider = ProviderTarget("openai", policy.model.providers["openai"], "127.0.0.1", 9, "http", PROVIDER_KEY, "gpt-4o-mini")
    deny = await chain.run_request(ex)
    if deny is None:
        ex.response_status = 200
        events = [Event.sse_json(chat_chunk(text[:5])), Event.sse_json(chat_chunk(text[5:], finish="stop"))] if stream \
            else [Event.body(chat_body(text))]
        out = await run_response(chain, ex, events)
        assert [e.data for e in out] == [e.data for e in events]  # audit never changes the response
        ex.completion_id = "chatcmpl-1"
        ex.usage.prompt_tokens, ex.usage.completion_tokens, ex.usage.reported = 10, 5, True
        ex.outcome = "ok"
    else:
        ex.outcome = "denied"
    await chain.run_complete(ex)
    return ex


async def test_one_record_per_exchange_with_what_stages_decided(tmp_path):
    stage = await _stage(tmp_path)
    chain = Chain([Settling(Settling.Config(type="budget"), stage.policy, stage.services), stage])
    await _exchange(chain, stage.policy, stream=True)
    await _exchange(chain, stage.policy, stream=False)
    await stage.stop()
    recs = _records(tmp_path / "audit")
    assert len(recs) == 2
    r = recs[0]
    assert (r["tenant"], r["subject"], r["jti"], r["route"], r["model"], r["provider"], r["status"], r["outcome"]) == \
        ("acme", "user-1", "jti-1", "chat", "gpt-4o-mini", "openai", 200, "ok")
    assert r["completion_id"] == "chatcmpl-1" and r["usage"]["completion_tokens"] == 5
    assert [(d["stage"], d["decision"]) for d in r["decisions"]] == [("budget", "reserve"), ("budget", "settle"), ("pii", "tokenized")]
    assert r["decisions"][0]["detail"]["cost_usd"] == 0.0042 and r["decisions"][2]["detail"]["counts"] == {"EMAIL_ADDRESS": 1}
    assert r["policy"] == stage.policy.digest and len(r["prompt_digest"]) == 64
    # stream and JSON body of the same text: the same response digest (I2 parity)
    assert recs[0]["response_digest"] == recs[1]["response_digest"]
    expected = ResponseDigest()
    expected.feed(chat_body("Hello world"))
    assert r["response_digest"] == expected.hexdigest()
    assert verify.verify_dir(tmp_path / "audit", Keyring.from_dir(tmp_path / "audit" / "keys")).status == verify.OK


async def test_no_jwt_provider_key_or_pii_in_any_record(tmp_path):
    """L7 / D2: grep the files, and scan them with the proxy's own detectors."""
    stage = await _stage(tmp_path)
    chain = Chain([Settling(Settling.Config(type="budget"), stage.policy, stage.services), stage])
    planted = " ".join(f"my {k} is {v}" for k, v in PII.items())
    await _exchange(chain, stage.policy, prompt=planted, text=f"Sure: {planted}")
    ex = make_exchange(stage.policy, None, tenant=None, headers={"Authorization": f"Bearer {JWT}", "X-Tenant-ID": "acme"})
    await chain.run_complete(ex)
    await stage.stop()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "audit").rglob("*.jsonl")).decode()
    for secret in (JWT, JWT.split(".")[1], PROVIDER_KEY, *PII.values()):
        assert secret not in raw
    assert "[redacted]" in raw  # the buggy stage's detail was scrubbed, not dropped
    # the proxy's own detectors: the pii engine (Presidio recognizers) and the leak engine's secret patterns
    detector = Detector(DetectionSettings())
    assert {s.entity for s in detector.find(planted)} >= {"CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE"}  # it would see them
    text = raw.replace("\\n", " ")
    assert [(s.entity, text[s.start:s.end]) for s in detector.find(text)] == []
    assert redact_text(text, secret_detector())[1] == []


async def test_denied_requests_are_audited_with_the_claimed_tenant(tmp_path):
    stage = await _stage(tmp_path)
    policy = stage.policy

    class Tenant(Stage):
        type = "tenant"

        async def on_request(self, ex):
            return Deny(401, "bad token", "authentication_error", "invalid_token", reason="invalid_token")

    chain = Chain([Tenant(Tenant.Config(type="tenant"), policy, stage.services), stage])
    ex = make_exchange(policy, None, tenant=None, headers={"authorization": "Bearer forged", "x-tenant-id": "globex"})
    assert (await chain.run_request(ex)).status == 401
    ex.outcome = "denied"
    await chain.run_complete(ex)
    ex2 = make_exchange(policy, None, tenant=None, headers={"X-Tenant-ID": "Аcme\u200b"})  # homoglyph + zero-width
    ex2.outcome = "denied"
    await chain.run_complete(ex2)
    await stage.stop()
    r, r2 = _records(tmp_path / "audit")
    assert (r["tenant"], r["claimed_tenant"], r["subject"], r["outcome"]) == (None, "globex", None, "denied")
    assert r["denied"] == {"stage": "tenant", "reason": "invalid_token"}
    assert r["prompt_digest"] is None and r2["claimed_tenant"] == "<invalid>"
    # an unverified claim never shows up in that tenant's query results
    assert list(iter_records(tmp_path / "audit", Query("globex"))) == []


async def test_fail_closed_when_the_sink_is_overloaded(tmp_path):
    stage = await _stage(tmp_path, queue_size=1)
    chain = Chain([stage])
    stage.writer._set_health(False)  # as after a failed write
    ex = make_exchange(stage.policy, {"model": "gpt-4o-mini", "messages": []})
    deny = await chain.run_request(ex)
    assert deny.status == 503 and deny.code == "audit_unavailable" and "Retry-After" in deny.headers
    ex.outcome = "denied"
    await chain.run_complete(ex)  # the refusal itself is still recorded
    stage.writer._set_health(True)
    await stage.stop()
    assert _records(tmp_path / "audit")[0]["denied"]["reason"] == "audit_unavailable"


async def test_alarm_mode_keeps_serving(tmp_path):
    stage = await _stage(tmp_path, on_error="open")
    stage.writer._set_health(False)
    assert await Chain([stage]).run_request(make_exchange(stage.policy, {"model": "gpt-4o-mini", "messages": []})) is None
    assert stage.services.metrics.audit_sink_healthy._value.get() == 0
    stage.writer._set_health(True)
    await stage.stop()


async def test_sigterm_with_open_streams_loses_no_record(tmp_path):
    """H10: 50 streams mid-flight; shutdown races their completion; every record lands."""
    stage = await _stage(tmp_path)
    chain = Chain([stage])
    exchanges = []
    for i in range(50):
        ex = make_exchange(stage.policy, {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": f"q{i}"}]})
        ex.request_id = f"req-{i}"
        assert await chain.run_request(ex) is None
        await chain.run_event(ex, Event.sse_json(chat_chunk("partial ")))
        exchanges.append(ex)

    async def finish(ex, delay):
        await asyncio.sleep(delay)
        ex.outcome = "cut_stream"
        await chain.run_complete(ex)

    await asyncio.gather(*(finish(ex, 0.001 * (i % 10)) for i, ex in enumerate(exchanges)), stage.stop())
    recs = _records(tmp_path / "audit")
    assert sorted(r["request_id"] for r in recs) == sorted(f"req-{i}" for i in range(50))
    rep = verify.verify_dir(tmp_path / "audit", Keyring.from_dir(tmp_path / "audit" / "keys"))
    assert rep.status == verify.OK and rep.chains[0].checkpoints_matched >= 1


async def test_query_endpoint_serves_only_the_callers_tenant(tmp_path):
    stage = await _stage(tmp_path)
    chain = Chain([stage])
    for tenant, subject in (("acme", "alice"), ("acme", "bob"), ("globex", "eve")):
        await _exchange(chain, stage.policy, tenant=tenant, subject=subject)
    await stage.writer.flush()
    caller = make_exchange(stage.policy, None, tenant="acme", scopes=("ai:audit",))
    status, body = await stage.serve_local(caller, {})
    assert status == 200 and {r["tenant"] for r in body["data"]} == {"acme"} and len(body["data"]) == 2
    status, body = await stage.serve_local(caller, {"subject": "eve"})
    assert status == 200 and body["data"] == []  # another tenant's subject: nothing
    status, body = await stage.serve_local(caller, {"subject": "bob", "from": "2000-01-01T00:00:00Z", "to": "2999-01-01"})
    assert [r["subject"] for r in body["data"]] == ["bob"]
    status, body = await stage.serve_local(caller, {"limit": "1"})
    assert len(body["data"]) == 1 and body["has_more"] is True
    assert (await stage.serve_local(caller, {"from": "2999-01-01"}))[1]["data"] == []
    for bad in ({"limit": "0"}, {"limit": "x"}, {"from": "yesterday"}, {"tenant": "globex"}):
        status, body = await stage.serve_local(caller, bad)
        assert status == 400 and body["error"]["code"] == "invalid_query"
    assert AuditStage.local_routes == {"/v1/audit": "ai:audit"}
    await stage.stop()


async def test_erase_keeps_the_chain_verifiable_without_the_content(tmp_path, monkeypatch):
    monkeypatch.setenv("RAMPARTS_TEST_AUDIT_KEK", "kek-for-tests-0123456789")
    stage = await _stage(tmp_path, retain_content=True, content_key={"from_env": "RAMPARTS_TEST_AUDIT_KEK"})
    chain = Chain([stage])
    await _exchange(chain, stage.policy, subject="alice", prompt="alice's question", text="alice's answer")
    await _exchange(chain, stage.policy, subject="bob", prompt="bob's question", text="bob's answer")
    await stage.stop()
    audit_dir = tmp_path / "audit"
    raw = b"".join(p.read_bytes() for p in (audit_dir / "records").rglob("*.jsonl"))
    assert b"alice's" not in raw and b"bob's" not in raw  # retained content is ciphertext only
    keys = SubjectKeys(audit_dir / "subject-keys", b"kek-for-tests-0123456789")
    alice, bob = _records(audit_dir)
    assert keys.decrypt("acme", "alice", alice["request_id"], alice["content"]) == \
        {"prompt": ["alice's question"], "response": {"0:content:-1": "alice's answer"}}
    assert keys.shred("acme", "alice", {}) is True
    assert keys.decrypt("acme", "alice", alice["request_id"], alice["content"]) is None
    assert keys.decrypt("acme", "bob", bob["request_id"], bob["content"])["prompt"] == ["bob's question"]
    assert verify.verify_dir(audit_dir, Keyring.from_dir(audit_dir / "keys")).status == verify.OK


async def test_keys_from_the_policy(tmp_path, monkeypatch):
    writer_key, acme_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pem = writer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "writer.pem").write_bytes(pem)
    raw = acme_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    monkeypatch.setenv("RAMPARTS_TEST_ACME_AUDIT_KEY", base64.b64encode(raw).decode())
    stage = await _stage(tmp_path, signing_key={"from_file": str(tmp_path / "writer.pem")},
                         tenant_keys={"acme": {"from_env": "RAMPARTS_TEST_ACME_AUDIT_KEY"}})
    await _exchange(Chain([stage]), stage.policy)
    await stage.stop()
    assert _records(tmp_path / "audit")[0]["kid"] == key_id(acme_key.public_key())
    assert not (tmp_path / "audit" / "keys" / "writer.key").exists()  # nothing generated when configured
    pinned = Keyring()
    pinned.add(writer_key.public_key())
    pinned.add(acme_key.public_key())
    assert verify.verify_dir(tmp_path / "audit", pinned).status == verify.OK


def test_config_rules():
    with pytest.raises(Exception, match="content_key"):
        AuditStage.Config.model_validate({"type": "audit", "retain_content": True})
    with pytest.raises(Exception):
        AuditStage.Config.model_validate({"type": "audit", "chain_id": "../escape"})
    with pytest.raises(Exception):
        AuditStage.Config.model_validate({"type": "audit", "signing_key": "literal-secret"})


def test_tenant_keys_must_name_known_tenants(tmp_path):
    with pytest.raises(ValueError, match="acm"):
        make_stage(AuditStage, {"type": "audit", "tenant_keys": {"acm": {"from_env": "X"}}}, make_policy(),
                   make_services(tmp_path))


async def test_missing_key_refuses_to_start(tmp_path):
    stage = make_stage(AuditStage, {"type": "audit", "signing_key": {"from_env": "RAMPARTS_TEST_UNSET_KEY"}},
                       make_policy(), make_services(tmp_path))
    with pytest.raises(Exception, match="RAMPARTS_TEST_UNSET_KEY"):
        await stage.start()
    assert os.environ.get("RAMPARTS_TEST_UNSET_KEY") is None


async def test_a_stage_that_never_started_counts_the_lost_record(tmp_path, caplog):
    stage = make_stage(AuditStage, {"type": "audit"}, make_policy(), make_services(tmp_path, Metrics()))
    ex = make_exchange(stage.policy, None)
    await Chain([stage]).run_complete(ex)
    assert stage.services.metrics.audit_failures._value.get() == 1 and "req-test" in caplog.text


async def test_process_sealer_gives_the_same_records(tmp_path, monkeypatch):
    """sealer: process — digests, encryption and signatures in a worker process; same chain, same content."""
    monkeypatch.setenv("RAMPARTS_TEST_AUDIT_KEK", "kek-for-tests-0123456789")
    stage = await _stage(tmp_path, sealer="process", retain_content=True,
                         content_key={"from_env": "RAMPARTS_TEST_AUDIT_KEK"})
    chain = Chain([stage])
    for i in range(3):
        await _exchange(chain, stage.policy, subject="alice", prompt=f"question {i}", text="Hello world")
    await stage.writer.flush()
    assert stage.writer.sealer.inline_batches == 0  # everything crossed to the worker
    await stage.stop()
    recs = _records(tmp_path / "audit")
    expected = ResponseDigest()
    expected.feed(chat_body("Hello world"))
    assert [r["response_digest"] for r in recs] == [expected.hexdigest()] * 3
    keys = SubjectKeys(tmp_path / "audit" / "subject-keys", b"kek-for-tests-0123456789")
    assert keys.decrypt("acme", "alice", recs[2]["request_id"], recs[2]["content"])["prompt"] == ["question 2"]
    assert verify.verify_dir(tmp_path / "audit", Keyring.from_dir(tmp_path / "audit" / "keys")).status == verify.OK


async def test_checkpoints_dir_from_the_policy(tmp_path):
    """`checkpoints_dir` puts the signed checkpoints on their own path (a volume shipped elsewhere)."""
    shipped = tmp_path / "shipped-checkpoints"
    stage = await _stage(tmp_path, checkpoints_dir=str(shipped))
    await _exchange(Chain([stage]), stage.policy)
    await stage.stop()
    assert (shipped / "t1.jsonl").exists() and not (tmp_path / "audit" / "checkpoints").exists()
    keys = Keyring.from_dir(tmp_path / "audit" / "keys")
    rep = verify.verify_dir(tmp_path / "audit", keys, shipped)
    assert rep.status == verify.OK and rep.chains[0].checkpoints_matched == 1
