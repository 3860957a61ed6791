"""Benchmark case files: what to generate and the ground truth to score it against.

A bench file is YAML (a mapping with `cases:` and optional `defaults:` and `name:`) or JSONL (one case per
line). Each case:

    id: interpolation-walking-03      # [A-Za-z0-9._-], unique; names the output files
    prompt: "a girl in a red coat walks to the right ..."
    guides:                           # frame: pixel index (negative: from the end) or "last";
      - {frame: 0, image: cases/interpolation-walking-03/first.png}     # or at: a time 0-1 (AniSora V3)
      - {frame: last, image: cases/interpolation-walking-03/last.png, strength: 1.0}
    mask: cases/interpolation-walking-03/mask.png    # optional motion-region mask (white = may move)
    reference: cases/interpolation-walking-03/truth.mp4   # optional ground-truth video
    moving: cases/interpolation-walking-03/moving.png     # optional: where the truth moves (white), for
                                      # the PSNR inside it and the motion mask's recall
    task: interpolation               # i2v | interpolation | region | motion | t2v; inferred when left out
    label: walking                    # action label
    dim: 2D                           # 2D | 3D
    motion: 9.5                       # optional motion score to ask for (required by a motion case)
    seed: 0
    frames: 17                        # optional; also fps, width, height (else `defaults:`, else the model's)

Relative paths are relative to the bench file's folder. The task, when left out, is "region" with a mask,
"interpolation" with a guide anywhere but frame 0, "i2v" with a guide at frame 0 only, else "t2v"; "motion"
(image to video at a requested motion score: the motion-control sweep, `results.motion_control`) is never
inferred. A case holds the generation `Request` it makes.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..files import atomic_output
from ..model.request import At, GuideSpec, Request

TASKS = ("i2v", "interpolation", "region", "motion", "t2v")
DIMS = ("2D", "3D")
CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SIZE_KEYS = ("frames", "fps", "width", "height")
CASE_KEYS = {
    "id",
    "prompt",
    "guides",
    "mask",
    "reference",
    "moving",
    "task",
    "label",
    "dim",
    "motion",
    "seed",
    *SIZE_KEYS,
}


@dataclass(frozen=True)
class Case:
    id: str
    request: Request  # guides and mask as paths; the run's settings (steps, guidance) come on top
    reference: Path | None = None
    task: str = "t2v"
    label: str | None = None
    dim: str | None = None
    moving: Path | None = None  # where the ground truth moves (white)

    def info(self) -> dict[str, Any]:
        """The fields a result record carries."""
        return {
            "case": self.id,
            "task": self.task,
            "label": self.label,
            "dim": self.dim,
            "prompt": self.request.prompt,
            "motion": self.request.motion,
            "reference": str(self.reference) if self.reference else None,
        }


@dataclass(frozen=True)
class Bench:
    name: str
    path: Path
    cases: tuple[Case, ...]

    def by_id(self) -> dict[str, Case]:
        return {case.id: case for case in self.cases}


def infer_task(guides: tuple[GuideSpec, ...], mask: Path | None) -> str:
    if mask is not None:
        return "region"
    if not guides:
        return "t2v"
    return "i2v" if all(g.at_start for g in guides) else "interpolation"


def load_bench(path: str | Path) -> Bench:
    """Read and check a bench file; every referenced file must exist. Errors name the case."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bench file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read bench file {path}: {exc}") from None
    if path.suffix.lower() == ".jsonl":
        name, defaults, raw = path.stem, {}, _jsonl_cases(text, path)
    else:
        name, defaults, items = _yaml_cases(text, path)
        raw = [(f"case {i + 1}", item) for i, item in enumerate(items)]
    cases = [parse_case(item, path.parent, defaults, f"{path}: {where}") for where, item in raw]
    if not cases:
        raise InputError(f"bench file {path} has no cases")
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise InputError(f"{path}: case id {case.id!r} appears twice")
        seen.add(case.id)
    return Bench(name, Path(os.path.realpath(path)), tuple(cases))


def _jsonl_cases(text: str, path: Path) -> list[tuple[str, Any]]:
    """(where: "line N", case) for every non-blank line."""
    cases = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                cases.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number}: not JSON ({exc.msg})") from None
    return cases


def _yaml_cases(text: str, path: Path) -> tuple[str, dict, list[Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise InputError(f"{path}: expected a mapping with a 'cases:' list")
    unknown = sorted(set(data) - {"name", "defaults", "cases"})
    if unknown:
        raise InputError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; known: name, defaults, cases"
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - set(SIZE_KEYS) - {"dim", "seed"}:
        raise InputError(f"{path}: defaults may set {', '.join(SIZE_KEYS)}, dim and seed")
    return str(data.get("name") or path.stem), defaults, data["cases"]


def parse_case(item: Any, root: Path, defaults: dict, where: str) -> Case:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a mapping, got {type(item).__name__}")
    case_id = item.get("id")
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):
        raise InputError(f"{where}: id must be 1-100 characters of A-Z a-z 0-9 . _ - (got {case_id!r})")
    where = f"{where} ({case_id})"
    unknown = sorted(set(item) - CASE_KEYS)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(CASE_KEYS))}"
        )
    values = {**defaults, **item}
    prompt = values.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: prompt must be a non-empty string")
    guides = tuple(
        _guide(g, root, f"{where} guide {j + 1}") for j, g in enumerate(values.get("guides") or [])
    )
    mask = _file(values.get("mask"), root, f"{where} mask")
    task = values.get("task") or infer_task(guides, mask)
    if task not in TASKS:
        raise InputError(f"{where}: task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "region" and mask is None:
        raise InputError(f"{where}: a region case needs a mask")
    if task in ("i2v", "interpolation", "region", "motion") and not guides:
        raise InputError(f"{where}: a {task} case needs guide images")
    dim = values.get("dim")
    if dim is not None and dim not in DIMS:
        raise InputError(f"{where}: dim must be 2D or 3D, got {dim!r}")
    label = values.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise InputError(f"{where}: label must be a non-empty string")
    motion = values.get("motion")
    if motion is not None and not (_number(motion) and math.isfinite(motion) and motion >= 0):
        raise InputError(f"{where}: motion must be a number >= 0, got {motion!r}")
    if task == "motion" and motion is None:
        raise InputError(f"{where}: a motion case needs the motion score to ask for")
    sizes = {key: _positive_int(values.get(key), f"{where} {key}") for key in SIZE_KEYS}
    seed = values.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    request = Request(
        guides=guides,
        mask=mask,
        prompt=prompt,
        motion=float(motion) if motion is not None else None,
        seed=seed,
        **sizes,
    )
    reference = _file(values.get("reference"), root, f"{where} reference")
    moving = _file(values.get("moving"), root, f"{where} moving")
    return Case(case_id, request, reference, task, label, dim, moving)


def _guide(item: Any, root: Path, where: str) -> GuideSpec:
    keys = set(item) if isinstance(item, dict) else set()
    if (
        not keys
        or keys - {"frame", "at", "image", "strength"}
        or "image" not in keys
        or {"frame", "at"} <= keys
    ):
        raise InputError(
            f"{where}: expected {{frame: N or last (or at: T in 0-1), image: PATH[, strength: S]}}, "
            f"got {item!r}"
        )
    if "at" in item:
        if not (_number(item["at"]) and 0 <= item["at"] <= 1):
            raise InputError(f"{where}: at must be a time in [0, 1], got {item['at']!r}")
        frame = At(float(item["at"]))
    else:
        frame = item.get("frame", 0)
        if not (frame == "last" or (isinstance(frame, int) and not isinstance(frame, bool))):
            raise InputError(f"{where}: frame must be an integer or 'last', got {frame!r}")
    strength = item.get("strength", 1.0)
    if not (_number(strength) and 0.0 < strength <= 1.0):
        raise InputError(f"{where}: strength must be in (0, 1], got {strength!r}")
    image = _file(item["image"], root, f"{where} image")
    return GuideSpec(image, frame, float(strength))


def _file(value: Any, root: Path, where: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: expected a file path, got {value!r}")
    path = Path(os.path.realpath(root / value))  # realpath: a symlink loop is a path that is no file
    if not path.is_file():
        raise InputError(f"{where}: {path} does not exist")
    return path


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(f"{where} must be a positive integer, got {value!r}")
    return value


def write_bench(path: Path, name: str, cases: list[dict], defaults: dict | None = None) -> None:
    """Write a YAML bench file (paths in `cases` as given, relative to the file's folder)."""
    data = {"name": name, **({"defaults": defaults} if defaults else {}), "cases": cases}
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
