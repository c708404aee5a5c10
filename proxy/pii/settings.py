"""PII detection settings: policy defaults, per-tenant overrides, and the resolved form.

The stage's YAML entry is parsed with `PiiSettings` (the stage's Config extends it);
`PiiSettings.for_tenant(tid)` merges a tenant's overrides into the defaults once, at
startup, giving the immutable `DetectionSettings` a detector is compiled from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxy.config.secret import SecretSource

# What the pattern-only default detects: the structured types the issue names.
DEFAULT_ENTITIES: tuple[str, ...] = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS")
# Built in, but off unless a policy lists it (URLs in prompts are rarely personal).
OPTIONAL_ENTITIES: tuple[str, ...] = ("URL",)
BUILTIN_ENTITIES: frozenset[str] = frozenset(DEFAULT_ENTITIES + OPTIONAL_ENTITIES)
ENTITY_NAME = r"^[A-Z][A-Z0-9_]{0,47}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionOverride(_Strict):
    """A tenant's overrides; a key left out keeps the policy default."""

    entities: list[str] | None = None
    score_threshold: float | None = Field(None, ge=0.0, le=1.0)
    allow_list: list[str] | None = None
    recognizers: list[dict[str, Any]] | None = None  # Presidio's YAML recognizer format
    ner_model: str | None = None

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, v: list[str] | None) -> list[str] | None:
        return _check_entities(v) if v is not None else v

    @field_validator("recognizers")
    @classmethod
    def _recognizers(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return _check_recognizers(v) if v is not None else v


class PiiSettings(_Strict):
    """Detection defaults plus `tenants: {id: overrides}`; the stage Config extends this."""

    secret: SecretSource | None = None  # per-tenant HMAC keys are derived from it
    entities: list[str] = list(DEFAULT_ENTITIES)
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    allow_list: list[str] = []
    recognizers: list[dict[str, Any]] = []
    ner_model: str | None = None  # an installed spaCy package name or a model directory
    executor_min_chars: int = Field(32768, ge=0)  # with ner_model: requests with more text run NER in a thread
    max_detect_seconds: float = Field(2.0, gt=0, le=60)  # CPU budget per request; past it: 413, fail closed
    tenants: dict[str, DetectionOverride] = {}

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, v: list[str]) -> list[str]:
        return _check_entities(v)

    @field_validator("recognizers")
    @classmethod
    def _recognizers(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _check_recognizers(v)

    def for_tenant(self, tenant: str | None) -> "DetectionSettings":
        o = self.tenants.get(tenant) if tenant else None
        pick = lambda name: getattr(o, name) if o is not None and getattr(o, name) is not None else getattr(self, name)  # noqa: E731
        return DetectionSettings(
            entities=tuple(pick("entities")),
            score_threshold=float(pick("score_threshold")),
            allow_list=tuple(pick("allow_list")),
            recognizers=tuple(pick("recognizers")),
            ner_model=pick("ner_model"),
        )


def _check_entities(v: list[str]) -> list[str]:
    import re

    for name in v:
        if not re.match(ENTITY_NAME, name):
            raise ValueError(f"entity {name!r} must be an upper-case name like EMAIL_ADDRESS")
    return v


def _check_recognizers(v: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Build them once now, so `ramparts check-policy` reports a bad recognizer with its line."""
    from proxy.pii.recognizer import custom_recognizers  # Presidio: heavy, only when used

    if v:
        custom_recognizers(v)
    return v


@dataclass(frozen=True)
class DetectionSettings:
    """What one detector is compiled from (one per tenant with overrides, one default)."""

    entities: tuple[str, ...] = DEFAULT_ENTITIES
    score_threshold: float = 0.4
    allow_list: tuple[str, ...] = ()
    recognizers: tuple[dict[str, Any], ...] = ()
    ner_model: str | None = None
