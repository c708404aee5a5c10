"""Score bands: which action a score earns. Thresholds are inclusive lower bounds."""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("allow", "flag", "reinforce", "block")


@dataclass(frozen=True, slots=True)
class Bands:
    flag: float = 0.5
    reinforce: float = 0.5
    block: float = 0.9

    def __post_init__(self) -> None:
        for name in ("flag", "reinforce", "block"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"band {name} must be in [0, 1], got {v}")
        if not self.reinforce <= self.block:
            raise ValueError("band reinforce must not be above block")

    def action(self, score: float) -> str:
        """The strongest action whose threshold the score reaches."""
        if score >= self.block:
            return "block"
        if score >= self.reinforce:
            return "reinforce"
        if score >= self.flag:
            return "flag"
        return "allow"

    def thresholds(self) -> dict[str, float]:
        return {"flag": self.flag, "reinforce": self.reinforce, "block": self.block}
