"""`ramparts check-policy FILE` and `ramparts schema`."""

from __future__ import annotations

import argparse
import json
import sys

from proxy.config.loader import PolicyInvalid, load_policy
from proxy.config.policy import PolicyModel, provider_endpoint
from proxy.pipeline.registry import known_types, stage_class


def policy_json_schema() -> dict:
    """JSON Schema of the policy file: the shared sections plus each stage type's config."""
    schema = PolicyModel.model_json_schema()
    variants = []
    for t in known_types():
        sub = stage_class(t).Config.model_json_schema()
        defs = sub.pop("$defs", {})
        schema.setdefault("$defs", {}).update(defs)
        sub["properties"]["type"] = {"const": t}
        sub["required"] = sorted(set(sub.get("required", [])) | {"type"})
        variants.append(sub)
    schema["properties"]["pipeline"] = {"type": "array", "items": {"oneOf": variants}, "title": "Pipeline"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Ramparts policy"
    return schema


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts check-policy", description="validate a policy file")
    ap.add_argument("file")
    ap.add_argument("--no-secrets", action="store_true", help="do not resolve from_env/from_file secrets")
    args = ap.parse_args(argv)
    try:
        policy = load_policy(args.file, resolve_secrets=not args.no_secrets)
    except PolicyInvalid as e:
        for err in e.errors:
            print(f"{args.file}: {err}", file=sys.stderr)
        print(f"{len(e.errors)} error(s)", file=sys.stderr)
        return 2
    allow = set(policy.model.egress.allow)
    for name, prov in policy.model.providers.items():
        _, host, port = provider_endpoint(prov)
        if f"{host}:{port}" not in allow:
            print(f"{args.file}: warning: provider {name!r} ({host}:{port}) is not in egress.allow; calls to it will be denied")
    print(f"{args.file}: ok ({len(policy.tenants)} tenants, {len(policy.stage_configs)} stages, policy {policy.digest[:12]})")
    return 0


def schema_main(argv: list[str]) -> int:
    json.dump(policy_json_schema(), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0
