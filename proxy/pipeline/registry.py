"""Stage types by YAML `type:`. A type's module is proxy/stages/<type>.py and exports STAGE."""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

import proxy.stages
from proxy.pipeline.stage import Stage

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@cache
def known_types() -> tuple[str, ...]:
    return tuple(sorted(m.name for m in pkgutil.iter_modules(proxy.stages.__path__) if not m.name.startswith("_")))


def stage_class(type_name: str) -> type[Stage]:
    if not _TYPE_NAME.match(type_name) or type_name not in known_types():
        raise KeyError(f"unknown stage type {type_name!r}; known: {', '.join(known_types())}")
    module = importlib.import_module(f"proxy.stages.{type_name}")
    cls = module.STAGE
    if cls.type != type_name:
        raise TypeError(f"proxy.stages.{type_name}.STAGE has type {cls.type!r}")
    return cls
