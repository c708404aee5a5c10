"""Load a policy file: every error at once, each with its YAML line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from proxy.config.policy import CompiledPolicy, PolicyModel, TenantPolicy, policy_digest, reference_errors
from proxy.config.secret import SecretError
from proxy.pipeline.registry import stage_class

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class PolicyError:
    line: int | None
    loc: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "policy"
        return f"{where}: {self.loc}: {self.message}" if self.loc else f"{where}: {self.message}"


class PolicyInvalid(Exception):
    def __init__(self, errors: list[PolicyError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node: yaml.Node | None, path: Loc = (), out: dict[Loc, int] | None = None) -> dict[Loc, int]:
    """YAML path -> 1-based line of the node (keys map to their key's line)."""
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[path + (key,)] = k.start_mark.line + 1
            _line_map(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)
    return out


def _line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _errors_from(exc: ValidationError, prefix: Loc, lines: dict[Loc, int]) -> list[PolicyError]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        out.append(PolicyError(_line_for(lines, loc), ".".join(str(p) for p in loc), msg))
    return out


def parse_policy_text(raw: bytes, source: Path | None = None) -> tuple[PolicyModel, tuple[Any, ...]]:
    """Validate the file; raise PolicyInvalid listing every error with its line."""
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError:
        raise PolicyInvalid([PolicyError(None, "", "the policy file is not UTF-8")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        raise PolicyInvalid([PolicyError(mark.line + 1 if mark else None, "", str(getattr(e, "problem", e)))]) from None
    if not isinstance(data, dict):
        raise PolicyInvalid([PolicyError(1, "", "the policy file must be a YAML mapping")])
    lines = _line_map(node)
    errors: list[PolicyError] = []
    model = None
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as e:
        errors.extend(_errors_from(e, (), lines))
    for loc, msg in reference_errors(data):
        errors.append(PolicyError(_line_for(lines, loc), ".".join(str(p) for p in loc), msg))
    if errors:
        model = None
    stage_configs = []
    for i, entry in enumerate(data.get("pipeline") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            continue
        try:
            cls = stage_class(entry["type"])
        except KeyError as e:
            errors.append(PolicyError(_line_for(lines, ("pipeline", i, "type")), f"pipeline.{i}.type", str(e.args[0])))
            continue
        try:
            stage_configs.append(cls.Config.model_validate(entry))
        except ValidationError as e:
            errors.extend(_errors_from(e, ("pipeline", i), lines))
    if model is not None:
        types = [c.type for c in stage_configs]
        dupes = {t for t in types if types.count(t) > 1}
        for t in sorted(dupes):
            errors.append(PolicyError(None, "pipeline", f"stage type {t!r} appears more than once"))
        if "tenant" in types and types[0] != "tenant":
            errors.append(PolicyError(_line_for(lines, ("pipeline",)), "pipeline", "the tenant stage must come first: nothing may run before identity is known"))
        if "tenant" not in types:
            errors.append(PolicyError(_line_for(lines, ("pipeline",)), "pipeline", "the pipeline must start with {type: tenant}: anonymous access is never allowed"))
        if "egress" not in types:
            errors.append(PolicyError(_line_for(lines, ("pipeline",)), "pipeline", "the pipeline needs an egress stage: it chooses the provider"))
    if errors:
        raise PolicyInvalid(errors)
    return model, tuple(stage_configs)


def compile_policy(raw: bytes, source: Path | None = None, resolve_secrets: bool = True) -> CompiledPolicy:
    model, stage_configs = parse_policy_text(raw, source)
    base = source.parent if source else Path.cwd()
    errors: list[PolicyError] = []
    keys: dict[str, str | None] = {}
    for name, prov in model.providers.items():
        keys[name] = None
        if prov.api_key is not None and resolve_secrets:
            try:
                keys[name] = prov.api_key.resolve(base)
            except SecretError as e:
                errors.append(PolicyError(None, f"providers.{name}.api_key", str(e)))
    if errors:
        raise PolicyInvalid(errors)
    tenants = {tid: TenantPolicy(tid, t, t.plan, model.plans[t.plan]) for tid, t in model.tenants.items()}
    return CompiledPolicy(model=model, source_path=source, digest=policy_digest(raw), tenants=tenants,
                          provider_keys=keys, stage_configs=stage_configs)


def load_policy(path: str | Path, resolve_secrets: bool = True) -> CompiledPolicy:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PolicyInvalid([PolicyError(None, "", f"cannot read {path}: {e.strerror}")]) from None
    return compile_policy(raw, path.resolve(), resolve_secrets)
