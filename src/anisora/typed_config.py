"""Typed configs from YAML: nested frozen dataclasses built from plain mappings, unknown keys refused.

Every key is optional in a user's file; an unknown key is an error, so a typo never silently falls back to a
default. Curation and training configs are built this way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from None
    if not isinstance(values, dict):
        raise InputError(f"config {path}: expected a mapping at the top, got {type(values).__name__}")
    return values


def build(cls, values: Any, where: str):
    """An instance of dataclass `cls` from `values` (a mapping, or None for the defaults), recursively."""
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            value = build(type(default), value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def dump_yaml(config) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
