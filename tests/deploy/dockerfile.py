"""Read the root Dockerfile: instructions with continuations joined, per build stage."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from tests.deploy.release import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    stage: int
    op: str
    args: str


def instructions() -> list[Instruction]:
    """Dockerfile instructions with continuations joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        op, _, args = pending.strip().partition(" ")
        if op.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage, op.upper(), " ".join(args.split())))
        pending = ""
    return out


def final_stage() -> list[Instruction]:
    ins = instructions()
    last = max(i.stage for i in ins)
    return [i for i in ins if i.stage == last]


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec form: {args}"
    return yaml.safe_load(args)


def runtime_env() -> dict[str, str]:
    """The ENV of the runtime stage (KEY=value pairs; $PATH references left as written)."""
    env: dict[str, str] = {}
    for i in final_stage():
        if i.op == "ENV":
            for pair in i.args.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env
