"""Typed configs from YAML: nested frozen dataclasses built from plain mappings, every value checked.

Every key is optional in a user's file; an unknown key is an error, so a typo never silently falls back to a
default. Each value must fit its field's annotation: bool, int, float (int allowed), str, Literal[...],
`X | None`, list[X], tuple[X, ...], dict[K, V], Any or a nested dataclass; numbers must be finite, and a field
annotated `Annotated[float, Range(gt=0)]` must also lie in that range. A value that does not fit is a
one-line InputError naming the key ("filters.min_motion: expected a number, got 'high'"), raised at load time,
before any work. Curation and training configs are built this way.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml

from .errors import InputError

_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Range:
    """Bounds of a number field, `Annotated[float, Range(gt=0)]`; a bound left None is open."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, value: float, where: str) -> None:
        for sign, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if bound is not None and not _COMPARE[sign](value, bound):
                raise InputError(f"{where}: must be {sign} {bound:g}, got {value!r}")


POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)
SHARE = Range(ge=0, le=1)

# YAML 1.1 reads 2e-4 (no dot) as text: worth saying when a number field gets one
_DOTLESS_EXPONENT = re.compile(r"[-+]?\d+[eE][-+]?\d+")


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from None
    if not isinstance(values, dict):
        raise InputError(f"config {path}: expected a mapping at the top, got {type(values).__name__}")
    return values


def build(cls, values: Any, where: str = ""):
    """An instance of dataclass `cls` from `values` (a mapping, or None for the defaults), recursively, every
    value checked against its field's annotation. `where` names the section in messages ("" at the top)."""
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise InputError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known), key=str)
    if unknown:
        raise InputError(
            f"{where or 'config'}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(known)}"
        )
    return cls(**{name: _fit(value, hints[name], _key(where, name)) for name, value in values.items()})


def _key(where: str, name: Any) -> str:
    return f"{where}.{name}" if where else str(name)


def _fit(value: Any, hint: Any, where: str) -> Any:
    """`value` if it fits the annotation `hint` (YAML lists become tuples for tuples), else InputError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        value = _fit(value, args[0], where)
        for rule in args[1:]:
            if isinstance(rule, Range) and value is not None:
                rule.check(value, where)
        return value
    if origin in (Union, types.UnionType):
        return _fit_union(value, args, where)
    if origin is Literal:
        if not any(value == choice and type(value) is type(choice) for choice in args):
            raise InputError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    container = origin or hint
    if container in (list, tuple):
        return _fit_sequence(value, container, args, where)
    if container is dict:
        return _fit_mapping(value, args, where)
    return _fit_scalar(value, hint, where)


def _fit_union(value: Any, args: tuple, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:  # X | None: X's own message
        return _fit(value, options[0], where)
    for option in options:
        try:
            return _fit(value, option, where)
        except InputError:
            continue
    raise InputError(f"{where}: expected {' or '.join(map(_describe, options))}, got {value!r}")


def _fit_sequence(value: Any, container: type, args: tuple, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{where}: expected a list, got {value!r}")
    if container is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
        raise InputError(f"{where}: expected {len(args)} values, got {len(value)}")
    items = args[:1] * len(value) if container is list or args[-1:] == (Ellipsis,) else args
    if items:
        value = [_fit(v, item, f"{where}[{i}]") for i, (v, item) in enumerate(zip(value, items, strict=True))]
    return container(value)


def _fit_mapping(value: Any, args: tuple, where: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a mapping, got {type(value).__name__}")
    if not args:
        return value
    key_hint, value_hint = args
    return {_fit(k, key_hint, where): _fit(v, value_hint, _key(where, k)) for k, v in value.items()}


def _fit_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        fits = isinstance(value, bool)
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        if fits and not math.isfinite(value):
            raise InputError(f"{where}: expected a finite number, got {value!r}")
    else:
        fits = isinstance(value, hint)
    if not fits:
        note = ""
        if hint is float and isinstance(value, str) and _DOTLESS_EXPONENT.fullmatch(value):
            note = " (YAML reads an exponent without a dot as text: write 2.0e-4, not 2e-4)"
        raise InputError(f"{where}: expected {_describe(hint)}, got {value!r}{note}")
    return value


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) is Annotated:
        return _describe(typing.get_args(hint)[0])
    return getattr(hint, "__name__", str(hint))


def dump_yaml(config) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
