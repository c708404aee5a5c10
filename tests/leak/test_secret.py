import orjson
import pytest

from proxy.leak.secret import check_pattern, entropy, redact_text, scrub_error_body, secret_detector

SAMPLES = {
    "openai_key": "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE",
    "anthropic_key": "sk-ant-api03-Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0GfEdCb",
    "stripe_key": "sk_live_51HfE9a2b3c4d5e6f7g8h9i0j",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack_token": "xoxb-1234567890-abcdefghij",
    "google_api_key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1b2c3\nd4e5f6==\n-----END RSA PRIVATE KEY-----",
    "generic_secret": 'client_secret = "q8Zr2Lm9Xv4Tb7Np1Kd6"',
}


@pytest.mark.parametrize("kind,value", SAMPLES.items())
def test_each_builtin_kind_is_found_whole(kind, value):
    text = f"Here you go: {value} -- done."
    hits, _ = secret_detector().scan(text, 0, final=True)
    assert {h.kind for h in hits} == {kind}
    start, end = min(h.start for h in hits), max(h.end for h in hits)
    assert text[start:end] in value and len(text[start:end]) >= len(value) // 2


@pytest.mark.parametrize("text", [
    "The task-based approach works; ask-me-anything sessions too.",
    "password = correcthorsebatterystaple",  # low entropy, letters only
    "Use the token: see the docs.",
    "The AKIA prefix marks AWS access keys.",
])
def test_clean_text_is_not_a_secret(text):
    assert secret_detector().scan(text, 0, final=True)[0] == []


def test_policy_patterns_join_the_same_pass():
    d = secret_detector([("acme_internal", r"ACME-INT-[0-9]{8}", 20, ("acme-int-",)), ("bare", r"zz[0-9]{3}zz", 7, ())])
    hits, _ = d.scan("ref ACME-INT-12345678 and sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7y zz123zz", 0, final=True)
    assert [h.kind for h in hits] == ["acme_internal", "openai_key", "bare"]
    assert secret_detector([], builtin=False) is None


@pytest.mark.parametrize("bad", ["(", "a*", "(a)b"])
def test_bad_policy_patterns_are_refused(bad):
    with pytest.raises(ValueError):
        check_pattern(bad)


def test_entropy():
    assert entropy("") == 0 and entropy("aaaa") == 0
    assert entropy("abcd") == pytest.approx(2.0)


def test_error_bodies_lose_keys_and_fragments():
    body = orjson.dumps({"error": {"message": "Incorrect API key provided: sk-proj-****abcd. Also AKIAIOSFODNN7EXAMPLE.",
                                   "type": "invalid_request_error", "code": "invalid_api_key"}})
    out = orjson.loads(scrub_error_body(body))
    msg = out["error"]["message"]
    assert "abcd" not in msg and "AKIA" not in msg and "[redacted]" in msg
    assert out["error"]["code"] == "invalid_api_key"
    assert scrub_error_body(b"plain sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7y text") == b"plain [redacted] text"
    clean = orjson.dumps({"error": {"message": "model not found"}})
    assert orjson.loads(scrub_error_body(clean)) == orjson.loads(clean)


def test_redact_text_reports_kinds_not_values():
    out, hits = redact_text("k=AKIAIOSFODNN7EXAMPLE", secret_detector())
    assert out == "k=[redacted]" and [h.kind for h in hits] == ["aws_access_key"]
