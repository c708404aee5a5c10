"""The `leak` stage's policy keys (pydantic, strict). Compiled once by `rules.compile_rules`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxy.leak.secret import check_pattern

ActionName = Literal["redact", "replace", "block", "off"]

DEFAULT_ACTIONS: dict[str, str] = {
    "secret": "redact",
    "system_prompt": "replace",
    "canary": "replace",
    "cross_tenant": "block",
    "moderation": "block",
    "markdown_image": "redact",
    "ansi": "redact",
    "markdown_link": "redact",
    "xss": "redact",
    "ansi_text": "redact",
    "overflow": "replace",  # a hold that outgrows max_hold_chars: replace or block, never redact
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeakPattern(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    regex: str = Field(min_length=1, max_length=2000)
    max_len: int = Field(256, ge=1, le=65536)  # longest text it can match: bounds the hold-back
    # Literals every match starts with (any case). With them, clean text skips this pattern; without, it
    # runs on every event.
    anchors: list[str] = []

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        check_pattern(v)
        return v


class LeakActions(Strict):
    secret: ActionName | None = None
    system_prompt: ActionName | None = None
    canary: ActionName | None = None
    cross_tenant: ActionName | None = None
    moderation: ActionName | None = None
    markdown_image: ActionName | None = None
    ansi: ActionName | None = None
    markdown_link: ActionName | None = None
    xss: ActionName | None = None
    ansi_text: ActionName | None = None
    overflow: Literal["replace", "block"] | None = None

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class LeakSecrets(Strict):
    builtin: bool = True
    patterns: list[LeakPattern] = []


class LeakPromptSettings(Strict):
    request: bool = True  # also fingerprint the system/developer messages sent in the request
    shingle: int = Field(5, ge=2, le=16)
    window: int = Field(12, ge=1, le=200)
    threshold: float = Field(0.9, gt=0, le=1)
    max_request_chars: int = Field(50_000, ge=0)  # longer sent prompts: only the first part is fingerprinted


class LeakCrossTenant(Strict):
    tenant_ids: bool = True  # other tenants' ids count as their identifiers (pick distinctive ids)


class LeakImages(Strict):
    allow_hosts: list[str] = []


class LeakModeration(Strict):
    terms: list[str] = []  # whole words/phrases, case-insensitive
    patterns: list[LeakPattern] = []


class LeakTenantSettings(Strict):
    actions: LeakActions = LeakActions()
    canaries: list[str] = []
    moderation: LeakModeration = LeakModeration()
    allow_image_hosts: list[str] = []
