"""Policy loading: every error at once with its YAML line; secrets never literal."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config.check import policy_json_schema
from proxy.config.loader import PolicyInvalid, compile_policy, load_policy

ROOT = Path(__file__).resolve().parents[2]

GOOD = b"""version: 1
auth:
  issuer: https://i
  audience: ramparts
  algorithms: [HS256]
  key: {from_env: RAMPARTS_TEST_JWT_SECRET}
providers:
  openai: {base_url: "https://api.openai.com/v1", api_key: {from_env: RAMPARTS_TEST_PROVIDER_KEY}, models: {m: m}}
egress: {allow: ["api.openai.com:443"]}
models:
  m: {input_per_1m_usd: 1, output_per_1m_usd: 2}
plans:
  p: {models: [m]}
tenants:
  acme: {plan: p}
pipeline:
  - {type: tenant}
  - {type: egress}
"""


def errors_of(raw: bytes):
    with pytest.raises(PolicyInvalid) as e:
        compile_policy(raw)
    return e.value.errors


def test_good_policy_compiles():
    pol = compile_policy(GOOD)
    assert pol.tenants["acme"].plan_name == "p"
    assert pol.provider_keys["openai"] == "sk-test-provider-key-0000"
    assert [c.type for c in pol.stage_configs] == ["tenant", "egress"]
    assert len(pol.digest) == 64


def test_every_error_is_reported_with_its_line():
    raw = GOOD.replace(b"input_per_1m_usd: 1", b"input_per_1m_usd: -1").replace(b"acme: {plan: p}", b"acme: {plan: nope}") \
              .replace(b"- {type: egress}", b"- {type: egress, bogus: 1}")
    errs = errors_of(raw)
    text = "\n".join(map(str, errs))
    assert any(e.line == 11 and "input_per_1m_usd" in e.loc for e in errs), text
    assert "unknown plan 'nope'" in text
    assert any(e.line == 18 and "bogus" in e.loc for e in errs), text


def test_literal_secret_is_refused():
    raw = GOOD.replace(b"key: {from_env: RAMPARTS_TEST_JWT_SECRET}", b"key: hunter2-hunter2-hunter2-hunter2-hunter2")
    errs = errors_of(raw)
    assert any("may not be written in the policy file" in e.message and e.line == 6 for e in errs)


def test_missing_env_secret_is_an_error():
    raw = GOOD.replace(b"RAMPARTS_TEST_PROVIDER_KEY", b"RAMPARTS_DOES_NOT_EXIST")
    assert any("RAMPARTS_DOES_NOT_EXIST" in e.message for e in errors_of(raw))


def test_duplicate_yaml_keys_are_refused():
    raw = GOOD.replace(b"plans:\n", b"plans:\n  p: {models: [m]}\n")
    errs = errors_of(raw)
    assert "duplicate key 'p' (first on line 13)" in errs[0].message and errs[0].line == 14


def test_unknown_stage_type_and_pipeline_rules():
    raw = GOOD.replace(b"  - {type: tenant}\n  - {type: egress}\n", b"  - {type: egress}\n  - {type: nosuch}\n")
    text = "\n".join(map(str, errors_of(raw)))
    assert "unknown stage type 'nosuch'" in text
    assert "must start with {type: tenant}" in text


def test_mixing_hmac_and_public_key_algorithms_is_refused():
    raw = GOOD.replace(b"algorithms: [HS256]", b"algorithms: [HS256, RS256]")
    assert any("key confusion" in e.message for e in errors_of(raw))


def test_example_and_demo_policies_are_valid():
    for name in ("example.yaml", "demo.yaml"):
        load_policy(ROOT / "policies" / name, resolve_secrets=False)


def test_check_policy_cli_exits_2_with_lines(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(GOOD.replace(b"output_per_1m_usd: 2", b"output_per_1m_usd: lots"))
    r = subprocess.run([sys.executable, "-m", "proxy.cli", "check-policy", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "line 11" in r.stderr and "output_per_1m_usd" in r.stderr


def test_committed_json_schema_is_current():
    committed = json.loads((ROOT / "policies" / "ramparts-policy.schema.json").read_text())
    assert committed == json.loads(json.dumps(policy_json_schema())), "run: ramparts schema > policies/ramparts-policy.schema.json"


def test_schema_accepts_the_example_policy():
    import jsonschema
    import yaml
    data = yaml.safe_load((ROOT / "policies" / "example.yaml").read_text())
    jsonschema.validate(data, policy_json_schema())
