import json

from proxy.pii.evaluate import main, measure, read_rows
from proxy.pii.detector import Detector
from proxy.pii.settings import DetectionSettings

ROWS = [
    {"text": "Mail jane@example.com now", "entities": [{"start": 5, "end": 21, "type": "EMAIL_ADDRESS"}]},
    {"text": "I am Ada from London", "entities": [{"start": 5, "end": 8, "type": "PERSON"}]},
    {"text": "card 4111 1111 1111 1111 and 460-89-9847", "entities": [{"start": 5, "end": 24, "type": "CREDIT_CARD"}]},
]


def write(tmp_path, rows):
    p = tmp_path / "rows.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def test_metrics_per_type_and_type_agnostic(tmp_path):
    rep = measure(read_rows(write(tmp_path, ROWS)), Detector(DetectionSettings()).find)
    s = rep.summary()
    assert s["rows"] == 3 and s["roundtrip_ok"] is True
    assert s["by_type"]["EMAIL_ADDRESS"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert s["by_type"]["PERSON"]["recall"] == 0.0  # pattern-only default: no names
    assert s["by_type"]["US_SSN"]["precision"] == 0.0  # found, but not in this gold
    assert s["span_recall"] == round(2 / 3, 4) and s["span_precision"] == round(2 / 3, 4)


def test_cli_prints_a_table_and_ends_with_one_json_line(tmp_path, capsys):
    assert main([str(write(tmp_path, ROWS))]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "P exact" in out[0]
    last = json.loads(out[-1])
    assert set(last) == {"span_recall", "span_precision", "by_type", "roundtrip_ok", "rows"}


def test_cli_takes_a_tenants_settings_from_a_policy(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text("""
version: 1
auth: {issuer: https://i, audience: a, algorithms: [HS256], key: {from_env: RAMPARTS_TEST_JWT_SECRET}}
providers: {p: {base_url: "http://127.0.0.1:9", models: {m: m}}}
egress: {allow: ["127.0.0.1:9"]}
models: {m: {input_per_1m_usd: 1, output_per_1m_usd: 1}}
plans: {basic: {models: [m]}}
tenants: {acme: {plan: basic}}
pipeline:
  - {type: tenant}
  - {type: egress}
  - {type: pii, secret: {from_env: RAMPARTS_TEST_JWT_SECRET}, tenants: {acme: {entities: [CREDIT_CARD]}}}
""")
    assert main([str(write(tmp_path, ROWS)), "--policy", str(policy), "--tenant", "acme"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["by_type"]["EMAIL_ADDRESS"]["recall"] == 0.0  # acme only tokenizes cards
    assert last["by_type"]["CREDIT_CARD"]["recall"] == 1.0


def test_bad_rows_are_reported(tmp_path, capsys):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"entities": []}\n')
    assert main([str(p)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_cli_reference_engine_is_presidio(tmp_path, capsys):
    assert main([str(write(tmp_path, ROWS)), "--engine", "presidio"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["by_type"]["EMAIL_ADDRESS"]["recall"] == 1.0 and last["roundtrip_ok"] is True
