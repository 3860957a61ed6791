"""RUN/report.html: one page that shows what an `anisora evaluate` run measured.

Sections: the run (model, bench, settings) and its metrics with version and weights; the overall mean of
every metric with what it measures; one section per task with a table of means per action label, a bar
chart per metric across labels and a card per case: a strip of 8 frames, the prompt and the scores. The
strips are the only files besides the page (RUN/strips/<case>.jpg, linked relatively, kept while newer than
their video), so the run folder can be moved as a whole. No JavaScript. This module gathers the figures; the
template `evaluate_report.html` of `anisora.reporting` lays them out and escapes every text. `format_value`,
`metric_chart` and `frame_strip` also serve compare.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..media import contact_sheet, probe, read_frames, save_image
from ..media.compare import PSNR_CAP
from ..reporting import render
from ..reporting.charts import BarChart, bar_chart
from .results import (
    DESCRIPTIONS,
    UNBOUNDED,
    direction,
    load_run,
    metric_order,
    number,
    record_values,
    run_file,
    summarize,
    write_text_atomic,
)

TASKS: tuple[tuple[str | None, str], ...] = (
    ("i2v", "Image to video"),
    ("interpolation", "Keyframe interpolation"),
    ("region", "Motion-region control"),
    ("motion", "Motion control"),
    ("t2v", "Text to video"),
    (None, "Videos"),
)
# PSNR metrics, in dB: identical frames score the cap (`PSNR_CAP`) instead of infinity.
CAPPED = frozenset({"psnr", "psnr_unguided", "psnr_moving", "guide_fidelity"})
STRIP_FRAMES = 8
TILE_WIDTH = 160  # px, the widest a strip's tile gets
OPEN_CARDS = 24  # a task's case cards start unfolded up to this many cases
NO_LABEL = "(no label)"
ALL_ROW = "all"


def format_value(metric: str, value: Any) -> str:
    """A metric value for people: 3 decimals in [0, 1], 2 for unbounded metrics, "–" when missing."""
    v = number(value)
    if v is None:
        return "–"
    return f"{v:.2f}" if metric in UNBOUNDED else f"{v:.3f}"


def task_title(task: str | None) -> str:
    return dict(TASKS).get(task, str(task))


def task_anchor(task: str | None) -> str:
    return f"task-{task}" if task is not None else "task-videos"


def task_order(tasks: Sequence[str | None]) -> list[str | None]:
    """Known tasks in `TASKS` order, then unknown ones sorted, then None (videos without a task)."""
    known = [t for t, _ in TASKS if t is not None and t in tasks]
    unknown = sorted(t for t in set(tasks) if t is not None and t not in dict(TASKS))
    return known + unknown + ([None] if None in tasks else [])


def metric_chart(metric: str, rows: Sequence[tuple[str, Any]], best: Sequence[str] = ()) -> BarChart:
    """Bars of one metric, one per (label, value): [0, 1] metrics on a 0-1 axis, others on their own axis,
    where a PSNR at the cap (identical frames) is drawn broken rather than setting the axis."""
    return bar_chart(
        metric,
        [(label, number(v), format_value(metric, v)) for label, v in rows],
        best=best,
        bounded=metric not in UNBOUNDED,
        cap=PSNR_CAP if metric in CAPPED else None,
        cap_label="identical frames",
    )


def motion_control_text(control: dict) -> str:
    """The motion-control figures of `summarize` in one sentence."""
    rho = "–" if control["spearman"] is None else f"{control['spearman']:.2f}"
    asked = " / ".join(f"{level:g}" for level in control["levels"])
    measured = " / ".join(f"{value:.2f}" for value in control["measured_mean"])
    return (
        f"over {control['cases']} motion cases: Spearman rank correlation of asked and measured motion_score "
        f"{rho}; the measured motion rises with the asked score in {control['rising_shots']} of "
        f"{control['shots']} shots; asked {asked} gives {measured} on average."
    )


# ------------------------------------------------------------------------------------------- strips


def write_strip(video: Path, out: Path, frames: int = STRIP_FRAMES) -> None:
    """`frames` frames of `video`, evenly spread, side by side (each at most `TILE_WIDTH` px wide), as a
    JPEG at `out`. Unreadable videos raise MediaError."""
    count = probe(video).frame_count
    indices = np.unique(np.linspace(0, count - 1, min(frames, count)).round().astype(int))
    images = read_frames(video, indices, max_side=2 * TILE_WIDTH)
    width = min(TILE_WIDTH, images.shape[2])
    save_image(out, contact_sheet(list(images), columns=len(images), tile_width=width, gap=2))


@dataclass(frozen=True)
class Strip:
    """A case video's frame strip as a page shows it: links relative to the page, or why there is none."""

    name: str
    image: str | None
    video: str | None
    problem: str | None


def _link(path: Path, page_dir: Path) -> str:
    try:
        return quote(Path(os.path.relpath(path, page_dir)).as_posix())
    except ValueError:  # another drive on Windows
        return path.as_uri()


def frame_strip(run: Path, value: Any, name: str, page_dir: Path) -> Strip:
    """The strip of the video a record names (`value`, relative to the run), RUN/strips/<name>.jpg, made
    when missing or older than the video, for a page in `page_dir`."""
    video = run_file(run, value)
    if video is None:
        return Strip(name, None, None, "no video in the record")
    if not video.is_file():
        return Strip(name, None, None, f"the video cannot be read: {value} does not exist")
    out = run / "strips" / f"{name}.jpg"
    try:
        if not (out.is_file() and out.stat().st_mtime >= video.stat().st_mtime):
            write_strip(video, out)
    # A report must not fail on one bad video, and decoders raise many kinds of errors.
    except Exception as error:
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        return Strip(name, None, None, f"the video cannot be read: {reason}")
    return Strip(name, _link(out, page_dir), _link(video, page_dir), None)


# ------------------------------------------------------------------------------------------- page parts


def _run_rows(info: dict, records: Sequence[dict]) -> list[tuple[str, Any]]:
    settings = info.get("settings") or {}
    rows = [
        ("name", info.get("name")),
        ("kind", info.get("kind")),
        ("model", info.get("model")),
        ("bench", info.get("bench")),
        ("cases", f"{len(records):,}"),
        ("settings", ", ".join(f"{k} = {v}" for k, v in settings.items()) if settings else None),
        ("created", info.get("created")),
        ("anisora version", info.get("anisora_version")),
    ]
    return [(k, v) for k, v in rows if v not in (None, "")]


def _overall_rows(summary: dict) -> list[dict]:
    return [
        {
            "metric": metric,
            "shown": f"{format_value(metric, s['mean'])} ± {format_value(metric, s['std'])}"
            if s["n"]
            else "–",
            "n": s["n"],
            "description": DESCRIPTIONS.get(metric, ""),
            "direction": direction(metric),
        }
        for metric, s in summary["overall"].items()
    ]


def _label_groups(records: Sequence[dict]) -> list[tuple[str, list[dict]]]:
    """(row name, records) per action label, sorted, then the unlabelled records, then all records (only
    the last when there is a single group)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(str(r["label"]) if r.get("label") is not None else NO_LABEL, []).append(r)
    rows = sorted((k, v) for k, v in groups.items() if k != NO_LABEL)
    if NO_LABEL in groups:
        rows.append((NO_LABEL, groups[NO_LABEL]))
    return [*rows, (ALL_ROW, list(records))] if len(rows) > 1 else [(ALL_ROW, list(records))]


def _label_rows(stats: list[tuple[str, int, dict]], metrics: list[str]) -> list[dict]:
    """The per-label table: each cell (mean, tooltip, n when not every case has the metric)."""
    rows = []
    for name, cases, overall in stats:
        cells = []
        for m in metrics:
            s = overall.get(m, {"mean": None, "std": None, "n": 0})
            tip = f"{format_value(m, s['mean'])} ± {format_value(m, s['std'])} (n={s['n']})"
            cells.append((format_value(m, s["mean"]), tip, s["n"] if s["n"] != cases else None))
        rows.append({"name": name, "total": name == ALL_ROW, "cases": cases, "cells": cells})
    return rows


def _card(run: Path, record: dict) -> dict:
    case = record["case"]
    values = record_values(record)
    timing = [
        f"{what} {v:.1f} s"
        for what, v in (
            ("generated in", number(record.get("seconds_generate"))),
            ("scored in", number(record.get("seconds_score"))),
        )
        if v is not None
    ]
    return {
        "case": case,
        "strip": frame_strip(run, record.get("video"), case, run),
        # the ground truth under the generated frames, to compare by eye
        "truth": frame_strip(run, record["reference"], f"{case}.truth", run)
        if record.get("reference")
        else None,
        "tags": [record[k] for k in ("label", "dim") if record.get(k) is not None],
        "prompt": record.get("prompt"),
        "scores": [(m, format_value(m, values[m])) for m in metric_order(values)],
        "timing": ", ".join(timing),
    }


def _task(run: Path, task: str | None, records: Sequence[dict]) -> dict:
    metrics = list(summarize(records)["overall"])
    stats = [(name, len(group), summarize(group)["overall"]) for name, group in _label_groups(records)]
    charts = []
    if len(stats) > 1:  # one row, nothing to compare
        for m in metrics:
            chart = metric_chart(m, [(name, overall.get(m, {}).get("mean")) for name, _, overall in stats])
            charts.append({"metric": m, "axis": "own axis" if m in UNBOUNDED else "0 to 1", "chart": chart})
    return {
        "anchor": task_anchor(task),
        "task": task,
        "title": task_title(task),
        "count": len(records),
        "metrics": metrics,
        "labels": _label_rows(stats, metrics),
        "charts": charts,
        "cards": [_card(run, r) for r in records],
        "open": len(records) <= OPEN_CARDS,
    }


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write RUN/report.html (and the frame strips under RUN/strips) for a finished run; return its path."""
    run = Path(run_dir)
    info, records, summary = load_run(run)
    by_task: dict[str | None, list[dict]] = {}
    for r in records:
        by_task.setdefault(r.get("task"), []).append(r)
    tasks = task_order(list(by_task))
    page = render(
        "evaluate_report.html",
        title=f"Evaluation: {info.get('name') or run.name}",
        subtitle=f"{info.get('kind') or 'run'} · {len(records):,} cases",
        nav=[("run", "run"), ("overall", "overall")] + [(task_anchor(t), task_title(t)) for t in tasks],
        run_rows=_run_rows(info, records),
        metrics=[m for m in info.get("metrics") or [] if isinstance(m, dict)],
        overall=_overall_rows(summary),
        motion_control=motion_control_text(summary["motion_control"])
        if summary.get("motion_control")
        else "",
        tasks=[_task(run, t, by_task[t]) for t in tasks],
    )
    return write_text_atomic(run / "report.html", page)
