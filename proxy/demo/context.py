"""What every demo scene gets: clients for the proxy, the provider's log, and a printer."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import openai

from proxy.devtoken import mint


@dataclass
class DemoContext:
    base_url: str
    provider_log: Callable[[], list[dict[str, Any]]]
    secret: bytes
    data_dir: Path = Path("data/demo")
    issuer: str = "https://issuer.local"
    audience: str = "ramparts"
    color: bool = False

    def token(self, tenant: str, scopes: tuple[str, ...] | list[str] = ("ai:completion", "ai:embed")) -> str:
        return mint(self.secret, tenant=tenant, scopes=list(scopes), issuer=self.issuer, audience=self.audience, subject=f"{tenant}-demo-user")

    def client_for(self, tenant: str, scopes: tuple[str, ...] | list[str] | None = None, *, header_tenant: str | None = None,
                   api_key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key or self.token(tenant, scopes or ("ai:completion", "ai:embed")),
                                  default_headers={"X-Tenant-ID": header_tenant or tenant}, max_retries=0)

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.client_for("acme")

    def heading(self, title: str) -> None:
        bar = "=" * len(title)
        print(f"\n{bar}\n{title}\n{bar}", flush=True)

    def say(self, title: str, **kv: Any) -> None:
        print(f"\n--- {title}", flush=True)
        for k, v in kv.items():
            if not isinstance(v, str):
                v = json.dumps(v, indent=2, ensure_ascii=False, default=str)
            body = textwrap.indent(v, "      ")
            print(f"  {k}:\n{body}", flush=True)


def demo_env() -> dict[str, str]:
    """Demo-only secrets: fine for an offline demo, never for a deployment."""
    return {
        "RAMPARTS_JWT_SECRET": "demo-only-hs256-secret-0123456789-abcdef",
        "DEMO_OPENAI_KEY": "sk-demo-openai-000000000000000000000001",
        "DEMO_AZURE_KEY": "demo-azure-key-00000000000000000000002",
        "DEMO_ANTHROPIC_KEY": "sk-ant-demo-0000000000000000000000003",
        "RAMPARTS_PII_SECRET": "demo-only-pii-hmac-secret-0123456789abcdef",
    }


def apply_demo_env() -> None:
    for k, v in demo_env().items():
        os.environ.setdefault(k, v)
