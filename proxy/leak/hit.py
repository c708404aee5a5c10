"""What a detector found, and what the policy does about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["redact", "replace", "block", "off"]
ACTIONS: tuple[str, ...] = ("redact", "replace", "block", "off")
# Overlapping hits take the strictest action.
SEVERITY = {"off": 0, "redact": 1, "replace": 2, "block": 3}

DETECTORS: tuple[str, ...] = (
    "secret", "system_prompt", "canary", "cross_tenant", "moderation", "markdown_image", "ansi",
)


@dataclass(frozen=True, slots=True)
class Hit:
    """A complete match: text[start:end] in the scanned buffer. Never logged: it may be the secret."""

    detector: str  # family, one of DETECTORS (bounded metric label)
    kind: str  # finer name from the code or the policy (e.g. openai_key), never the matched value
    start: int
    end: int


class LeakBlocked(Exception):
    """A `block` hit: the exchange must end with an error (raised out of a rewriter)."""

    def __init__(self, hit: Hit) -> None:
        super().__init__(f"{hit.detector}:{hit.kind}")
        self.hit = hit
