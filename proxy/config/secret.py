"""One shape for every secret: {from_env: NAME} or {from_file: PATH}. Never a literal."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator


class SecretError(ValueError):
    pass


class SecretSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    from_env: str | None = None
    from_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_literal(cls, value):
        if isinstance(value, (str, bytes, int)):
            raise ValueError("secrets may not be written in the policy file; use {from_env: NAME} or {from_file: PATH}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.from_env is None) == (self.from_file is None):
            raise ValueError("a secret needs exactly one of from_env or from_file")
        return self

    def describe(self) -> str:
        return f"env {self.from_env}" if self.from_env else f"file {self.from_file}"

    def resolve_bytes(self, base_dir: Path | None = None) -> bytes:
        if self.from_env is not None:
            value = os.environ.get(self.from_env)
            if value is None or value == "":
                raise SecretError(f"environment variable {self.from_env} is not set")
            return value.encode()
        path = Path(self.from_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            data = path.read_bytes()
        except OSError as e:
            raise SecretError(f"cannot read secret file {path}: {e.strerror}") from None
        data = data.strip(b"\r\n")
        if not data:
            raise SecretError(f"secret file {path} is empty")
        return data

    def resolve(self, base_dir: Path | None = None) -> str:
        return self.resolve_bytes(base_dir).decode()
