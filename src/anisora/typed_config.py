"""Typed configs: pydantic models read from YAML, every value checked when the file loads.

A `Config` is frozen and strict: a number must be a number ("5" is not one; a whole number is a fine
decimal), true/false must be a boolean, numbers must be finite, and an unknown key is an error, so a typo
never silently falls back to a default. Ranges are `Field(gt=..., le=...)` constraints, choices are
`Literal[...]`. Whatever does not fit is one InputError line naming the key, raised before any work, e.g.
`filters.min_motion: expected a number, got 'high'`. Several problems are joined with "; ".

`--set key.path=value` overrides (`parse_setting`, `apply_settings`) change the mapping read from YAML before
it is checked, so they are checked the same way. Curation, training and bench configs are built this way.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InputError

POSITIVE = Field(gt=0)
NON_NEGATIVE = Field(ge=0)
SHARE = Field(ge=0, le=1)
_SOMETHING = r"\S"
NOT_BLANK = Field(pattern=_SOMETHING)  # text with something in it besides spaces

Setting = tuple[tuple[str, ...], Any]  # a parsed `--set`: key path and value

# YAML 1.1 reads 2e-4 (no dot) as text: worth saying when a number field gets one
_DOTLESS_EXPONENT = re.compile(r"[-+]?\d+[eE][-+]?\d+")
_EXPECTED = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_BOUND_KEYS = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}


class Config(BaseModel):
    """Base of typed configs. Values from a user go through `load` (InputError); constructing one in code
    with a bad value raises pydantic's ValidationError."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    @classmethod
    def load(cls, values: Any, where: str = "", source: str | Path | None = None):
        """An instance from `values` (a mapping; None: the defaults). `where` names the section in messages,
        `source` the file the values come from."""
        try:
            return cls.model_validate({} if values is None else values)
        except ValidationError as error:
            problems = explain(error, cls, where)
            raise InputError(f"{source}: {problems}" if source is not None else problems) from None


ConfigT = TypeVar("ConfigT", bound=Config)


def load_config_file(
    model: type[ConfigT],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    settings: Iterable[Setting] = (),
) -> ConfigT:
    """`model`'s defaults, updated by the YAML file at `path`, then by `overrides` (same nesting, merged per
    section), then by `--set` settings. Problems name the file."""
    values: dict[str, Any] = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    values = apply_settings(values, settings, model().model_dump())
    return model.load(values, source=path)


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"cannot read config {path}: {yaml_problem(exc)}") from None
    if not isinstance(values, dict):
        raise InputError(f"config {path}: expected a mapping at the top, got {type(values).__name__}")
    return values


def dump_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The model's JSON Schema (draft 2020-12) for editors, e.g. a `# yaml-language-server: $schema=` line."""
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}


def parse_setting(text: str) -> Setting:
    """`key.path=value` -> (("key", "path"), value), the value read as YAML (`0.5`, `content`, `[[80, 48]]`,
    `null`; nothing after `=` is null)."""
    key, sep, raw = text.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise InputError(f"--set expects KEY.PATH=VALUE such as filters.min_motion=0.5, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise InputError(f"--set {key.strip()}: the value is not YAML ({yaml_problem(exc)})") from None
    return path, value


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's error in one line: where and what (its own message draws the spot over several lines)."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return str(error).splitlines()[0]
    what = ", ".join(part for part in (error.context, error.problem) if part)
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}"


def apply_settings(values: dict[str, Any], settings: Iterable[Setting], defaults: dict[str, Any]) -> dict:
    """A copy of `values` with each setting applied. A section missing from `values` starts from its
    `defaults` (so `--set scorers.aesthetic.clip_path=...` adds a scorer to the default ones)."""
    values = copy.deepcopy(values)
    for path, value in settings:
        node: Any = values
        base: Any = defaults
        for depth, key in enumerate(path[:-1]):
            base = base.get(key) if isinstance(base, dict) else None
            if node.get(key) is None:
                node[key] = copy.deepcopy(base) if isinstance(base, dict) else {}
            node = node[key]
            if not isinstance(node, dict):
                where = ".".join(path[: depth + 1])
                raise InputError(f"--set {'.'.join(path)}: {where} is a value, not a section")
        node[path[-1]] = value
    return values


def explain(error: ValidationError, model: type[BaseModel], where: str = "") -> str:
    """One line for all the problems pydantic found: `key.path: what is wrong, got what`."""
    lines = []
    for problem in error.errors(include_url=False):
        loc = problem["loc"]
        key = _dotted(where, loc)
        text = _describe(problem, model, loc)
        lines.append(f"{key}: {text}" if key else text)
    return "; ".join(dict.fromkeys(lines))


def _dotted(where: str, loc: tuple) -> str:
    key = where
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key = f"{key}.{part}" if key else str(part)
    return key


def _describe(problem: dict, model: type[BaseModel], loc: tuple) -> str:
    kind, value, ctx = problem["type"], problem.get("input"), problem.get("ctx") or {}
    got = f"got {_short(value)}"
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _model_at(model, loc[:-1]))
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}, {got}"
    if kind in _BOUNDS:
        sign = _BOUNDS[kind]
        return f"must be {sign} {ctx[_BOUND_KEYS[sign]]:g}, {got}"
    if kind in ("too_short", "too_long"):
        short = kind == "too_short"
        bound, size = ("at least", ctx["min_length"]) if short else ("at most", ctx["max_length"])
        return f"expected {bound} {size} value{'' if size == 1 else 's'}, got {len(value)}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _SOMETHING:
        return f"must not be blank, {got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}, {got}"
    if kind == "multiple_of":
        return f"must be a multiple of {ctx['multiple_of']}, {got}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", problem["msg"]))
    if kind in _EXPECTED:
        if kind in ("dict_type", "model_type", "model_attributes_type"):
            got = f"got {type(value).__name__}"
        note = ""
        if kind == "float_type" and isinstance(value, str) and _DOTLESS_EXPONENT.fullmatch(value):
            note = " (YAML reads an exponent without a dot as text: write 2.0e-4, not 2e-4)"
        return f"expected {_EXPECTED[kind]}, {got}{note}"
    return f"{problem['msg'][:1].lower()}{problem['msg'][1:]}, {got}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    known = list(model.model_fields) if model is not None else []
    if not known:
        return "unknown key; this section takes none"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key{hint}; known: {', '.join(known)}"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that the location `loc` inside `model` holds (None: not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # list items: the model is the item type, found from the field's annotation
        if not _is_model(current) or part not in current.model_fields:
            return None
        current = _model_in(current.model_fields[part].annotation)
    return current if _is_model(current) else None


def _model_in(annotation: Any) -> Any:
    """The first model class in an annotation such as `X`, `X | None` or `list[X]`."""
    if _is_model(annotation):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType, list, tuple, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
