"""`ramparts demo`: mock provider + proxy + the real openai SDK, offline, then exit 0."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import sys
from pathlib import Path

from aiohttp import web

from proxy.app import build_state
from proxy.config.loader import PolicyInvalid, load_policy
from proxy.demo.context import DemoContext, apply_demo_env
from proxy.mock_provider import MockProvider
from proxy.serve import Server, split_listen

# Scenes in order; each module exposes `async def scene(ctx)`.
SCENES = ("proxy.demo.core", "proxy.demo.security", "proxy.demo.injection", "proxy.demo.pii", "proxy.demo.leak", "proxy.demo.budget", "proxy.demo.audit")


def _default_policy() -> Path:
    here = Path(__file__).resolve().parents[2] / "policies" / "demo.yaml"
    return here if here.exists() else Path("policies/demo.yaml")


async def run(policy_path: Path, data_dir: Path) -> int:
    policy = load_policy(policy_path)
    mock_host, mock_port = split_listen(policy.model.providers["openai"].base_url.split("//", 1)[1].split("/", 1)[0])
    provider = MockProvider()
    mock_runner = web.AppRunner(provider.app(), access_log=None)
    await mock_runner.setup()
    await web.TCPSite(mock_runner, mock_host, mock_port).start()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    state = build_state(policy, data_dir=data_dir)
    server = Server(state, policy.server.listen, policy.server.ops_listen)
    await server.start()
    ctx = DemoContext(base_url=f"http://{policy.server.listen}/v1", provider_log=lambda: provider.state.log,
                      secret=os.environ["RAMPARTS_JWT_SECRET"].encode(), data_dir=data_dir)
    print(f"Ramparts demo: proxy on http://{policy.server.listen}, mock provider on {mock_host}:{mock_port}, policy {policy_path}")
    try:
        for name in SCENES:
            await importlib.import_module(name).scene(ctx)
    finally:
        await server.drain()
        await mock_runner.cleanup()
    print("\nDemo finished: every scene behaved as expected.")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts demo")
    ap.add_argument("--policy", type=Path, default=_default_policy())
    ap.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    args = ap.parse_args(argv)
    apply_demo_env()
    try:
        return asyncio.run(run(args.policy, args.data_dir))
    except PolicyInvalid as e:
        print(f"ramparts demo: invalid policy:\n{e}", file=sys.stderr)
        return 2
