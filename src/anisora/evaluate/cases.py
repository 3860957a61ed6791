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
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from ..errors import InputError
from ..files import atomic_output
from ..model.request import At, GuideSpec, Request
from ..typed_config import NOT_BLANK, Config, json_schema, yaml_problem
from .tasks import Task

Dim = Literal["2D", "3D"]
CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SIZE_KEYS = ("frames", "fps", "width", "height")

Positive = Annotated[int, Field(gt=0)]
Text = Annotated[str, NOT_BLANK]


class GuideEntry(Config):
    """A guide image at a pixel frame (an index, negative from the end, or "last") or at a time `at`."""

    frame: int | Literal["last"] | None = None
    """pixel frame index (negative: from the end) or "last"; default 0"""
    at: Annotated[float, Field(ge=0, le=1)] | None = None
    """a time 0-1 of the clip, placed as AniSora V3 does (instead of frame)"""
    image: Text
    """image file, relative to the bench file's folder"""
    strength: Annotated[float, Field(gt=0, le=1)] = 1.0

    @field_validator("frame", mode="before")
    @classmethod
    def _index_or_last(cls, value: Any) -> Any:
        if value is None or value == "last" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"expected an integer or 'last', got {value!r}")

    @model_validator(mode="after")
    def _one_place(self) -> GuideEntry:
        if self.frame is not None and self.at is not None:
            raise ValueError("give frame or at, not both")
        return self


class BenchDefaults(Config):
    """Values every case of the file gets unless it sets its own."""

    frames: Positive | None = None
    fps: Positive | None = None
    width: Positive | None = None
    height: Positive | None = None
    dim: Dim | None = None
    seed: Annotated[int, Field(ge=0)] = 0


class CaseEntry(BenchDefaults):
    """One case of a bench file (paths relative to the file's folder)."""

    id: Annotated[str, Field(pattern=f"^{CASE_ID.pattern}$")]
    """names the output files"""
    prompt: Text
    guides: list[GuideEntry] = Field(default_factory=list)
    mask: Text | None = None
    """motion-region mask (white = may move)"""
    reference: Text | None = None
    """ground-truth video"""
    moving: Text | None = None
    """where the ground truth moves (white), for the PSNR inside it and the motion mask's recall"""
    task: Task | None = None
    """inferred when left out (never "motion"): region with a mask, interpolation with a guide after frame
    0, i2v with a guide at frame 0 only, else t2v"""
    label: Text | None = None
    """action label"""
    motion: Annotated[float, Field(ge=0)] | None = None
    """motion score to ask for (required by a motion case)"""


class BenchFile(Config):
    """A YAML bench file."""

    name: str | None = None
    """default: the file's name"""
    defaults: BenchDefaults | None = None
    cases: list[CaseEntry]


def bench_schema() -> dict[str, Any]:
    """JSON Schema of a YAML bench file, for editors."""
    return json_schema(BenchFile, "anisora evaluate bench file")


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
    """The bench's name, its defaults (only the keys it sets) and its raw cases."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML ({yaml_problem(exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise InputError(f"{path}: expected a mapping with a 'cases:' list")
    header = BenchFile.load({**data, "cases": []}, source=path)  # the cases are checked one by one
    defaults = header.defaults.model_dump(exclude_unset=True) if header.defaults else {}
    return header.name or path.stem, defaults, data["cases"]


def parse_case(item: Any, root: Path, defaults: dict, where: str) -> Case:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a mapping, got {type(item).__name__}")
    case_id = item.get("id")
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):
        raise InputError(f"{where}: id must be 1-100 characters of A-Z a-z 0-9 . _ - (got {case_id!r})")
    where = f"{where} ({case_id})"
    entry = CaseEntry.load({**defaults, **item}, source=where)
    guides = tuple(_guide(g, root, f"{where}: guides[{j}]") for j, g in enumerate(entry.guides))
    mask = _file(entry.mask, root, f"{where}: mask")
    task = entry.task or infer_task(guides, mask)
    if task == "region" and mask is None:
        raise InputError(f"{where}: a region case needs a mask")
    if task in ("i2v", "interpolation", "region", "motion") and not guides:
        raise InputError(f"{where}: a {task} case needs guide images")
    if task == "motion" and entry.motion is None:
        raise InputError(f"{where}: a motion case needs the motion score to ask for")
    request = Request(
        guides=guides,
        mask=mask,
        prompt=entry.prompt,
        motion=entry.motion,
        seed=entry.seed,
        **{key: getattr(entry, key) for key in SIZE_KEYS},
    )
    reference = _file(entry.reference, root, f"{where}: reference")
    moving = _file(entry.moving, root, f"{where}: moving")
    return Case(case_id, request, reference, task, entry.label, entry.dim, moving)


def _guide(entry: GuideEntry, root: Path, where: str) -> GuideSpec:
    frame = At(entry.at) if entry.at is not None else (0 if entry.frame is None else entry.frame)
    return GuideSpec(_file(entry.image, root, f"{where}.image"), frame, entry.strength)


def _file(value: str | None, root: Path, where: str) -> Path | None:
    if value is None:
        return None
    path = Path(os.path.realpath(root / value))  # realpath: a symlink loop is a path that is no file
    if not path.is_file():
        raise InputError(f"{where}: {path} does not exist")
    return path


def write_bench(path: Path, name: str, cases: list[dict], defaults: dict | None = None) -> None:
    """Write a YAML bench file (paths in `cases` as given, relative to the file's folder)."""
    data = {"name": name, **({"defaults": defaults} if defaults else {}), "cases": cases}
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
