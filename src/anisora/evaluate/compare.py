"""Side-by-side comparison of finished `anisora evaluate` runs: metric means per run, overall and per task,
and each case's frames from every run.

Only the cases present in every run are compared (matched by case id), so each run is measured on the same
videos; the comparison says how many cases were left out. `compare_runs` builds the comparison (and writes
compare.json and compare.html when given a folder), `format_table` renders it for a terminal. compare.html
shows the runs' own frame strips (RUN/strips, made where missing), linked relative to it: it stays readable
while the runs keep their place next to it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..files import shareable_path
from ..reporting import render
from .report import OPEN_CARDS, format_value, frame_strip, metric_chart, task_anchor, task_order, task_title
from .results import (
    UNRANKED,
    load_run,
    metric_order,
    names_a_path,
    record_values,
    run_file,
    summarize,
    to_json,
    write_text_atomic,
)

OVERALL = "overall"


def _names(infos: Sequence[dict], dirs: Sequence[Path]) -> list[str]:
    """Each run's name; names shared by several runs get the directory name (or the path) appended."""
    base = [str(info.get("name") or d.name) for info, d in zip(infos, dirs, strict=True)]
    counts = Counter(base)
    with_dir = [f"{n} ({d.name})" if counts[n] > 1 else n for n, d in zip(base, dirs, strict=True)]
    clashes = Counter(with_dir)
    return [f"{n} ({d})" if clashes[w] > 1 else w for n, w, d in zip(base, with_dir, dirs, strict=True)]


def _best(metric: str, means: dict[str, float | None]) -> list[str]:
    """The runs with the highest mean, where higher is better and at least two runs have a value."""
    known = {run: v for run, v in means.items() if v is not None}
    if metric in UNRANKED or len(known) < 2:
        return []
    top = max(known.values())
    return [run for run, v in known.items() if v == top]


def _table(cases: int, stats: dict[str, dict]) -> dict:
    metrics = metric_order({m for s in stats.values() for m in s})
    rows = {}
    for m in metrics:
        means = {run: s.get(m, {}).get("mean") for run, s in stats.items()}
        rows[m] = {
            "means": means,
            "n": {run: s.get(m, {}).get("n", 0) for run, s in stats.items()},
            "best": _best(m, means),
        }
    return {"cases": cases, "metrics": rows}


def compare_runs(
    run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None
) -> dict:
    """Compare finished runs on their cases in common; with `out`, also write out/compare.json and
    out/compare.html. Returns {"runs": [{name, dir, model, cases, not_in_common}], "cases_in_common",
    "cases_left_out" (cases missing from at least one run), "tables": {"overall" and each task:
    {"cases", "metrics": {metric: {"means": {run: mean}, "n": {run: n}, "best": [runs]}}}}}."""
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        raise InputError("compare needs at least two run directories")
    seen: set[str] = set()
    for d in dirs:
        if os.path.realpath(d) in seen:  # realpath: a symlink loop is a folder that holds no run
            raise InputError(f"{d} is given twice")
        seen.add(os.path.realpath(d))
    loaded = [load_run(d) for d in dirs]
    names = _names([info for info, _, _ in loaded], dirs)
    ids = [{r["case"] for r in records} for _, records, _ in loaded]
    common = set.intersection(*ids)
    kept = {
        name: [r for r in records if r["case"] in common]
        for name, (_, records, _) in zip(names, loaded, strict=True)
    }
    summaries = {name: summarize(records) for name, records in kept.items()}
    task_of = Counter(r.get("task") for r in kept[names[0]])
    tables = {OVERALL: _table(len(common), {n: s["overall"] for n, s in summaries.items()})}
    for task in task_order([t for t in task_of if t is not None]):
        stats = {n: s["by_task"].get(task, {}) for n, s in summaries.items()}
        tables[task] = _table(task_of[task], stats)
    comparison = {
        "runs": [
            {
                "name": name,
                "dir": str(d),
                "model": _model_of(info, d),
                "cases": len(case_ids),
                "not_in_common": len(case_ids - common),
            }
            for name, d, (info, _, _), case_ids in zip(names, dirs, loaded, ids, strict=True)
        ],
        "cases_in_common": len(common),
        "cases_left_out": len(set.union(*ids) - common),
        "tables": tables,
    }
    if out is not None:
        folder = Path(out)
        shared = _shareable(comparison, folder)
        write_text_atomic(folder / "compare.json", to_json(shared, indent=1) + "\n")
        frames = _frames(names, dirs, [records for _, records, _ in loaded], common, folder)
        write_text_atomic(folder / "compare.html", render_html(shared, frames))
    return comparison


def _model_of(info: dict, run_dir: Path) -> str | None:
    """The run's model from here (run.json holds it relative to the run folder), or a shipped name."""
    model = info.get("model")
    path = run_file(run_dir, model)
    return str(path) if path else model


def _shareable(comparison: dict, folder: Path) -> dict:
    """The comparison as written to `folder`: run and model paths relative to it, so the files name no
    machine's folders."""

    def shareable(value: str | None) -> str | None:
        return shareable_path(value, folder) if names_a_path(value) else value

    runs = [{**r, "dir": shareable(r["dir"]), "model": shareable(r["model"])} for r in comparison["runs"]]
    return {**comparison, "runs": runs}


def _block_title(key: str) -> str:
    return "Overall" if key == OVERALL else f"{task_title(key)} ({key})"


def _left_out_line(comparison: dict) -> str:
    left = comparison["cases_left_out"]
    line = f"{comparison['cases_in_common']:,} cases in common"
    return line + (f"; {left:,} cases left out (not in every run)" if left else "")


def format_table(comparison: dict) -> str:
    """The comparison as fixed-width text: one block per table, rows = metrics, columns = runs; `*` marks
    the best run of a row where higher is better."""
    names = [r["name"] for r in comparison["runs"]]
    lines = ["runs:"]
    lines += [f"  {r['name']}: {r['dir']} ({r['cases']:,} cases)" for r in comparison["runs"]]
    lines.append(_left_out_line(comparison))
    for key, table in comparison["tables"].items():
        rows = table["metrics"]
        first = max([len("metric"), *(len(m) for m in rows)])
        widths = [max(len(n), 8) + 1 for n in names]
        lines += ["", f"{_block_title(key)}: {table['cases']:,} cases"]
        lines.append(
            "  ".join(["metric".ljust(first), *(n.rjust(w) for n, w in zip(names, widths, strict=True))])
        )
        for metric, row in rows.items():
            cells = [
                (format_value(metric, row["means"][n]) + ("*" if n in row["best"] else " ")).rjust(w)
                for n, w in zip(names, widths, strict=True)
            ]
            lines.append("  ".join([metric.ljust(first), *cells]))
    lines += ["", "* best where higher is better (motion_score and dynamic_degree are not ranked)"]
    return "\n".join(lines) + "\n"


def _frames(
    names: Sequence[str], dirs: Sequence[Path], records: Sequence[list[dict]], common: set[str], folder: Path
) -> list[dict]:
    """Per task, each case in common (in the first run's order): its prompt, the ground-truth strip where the
    case has one, and each run's strip and scores, linked for a page in `folder`."""
    by_case = [{r["case"]: r for r in run_records} for run_records in records]
    tasks: dict[str | None, list[dict]] = {}
    for first in records[0]:
        case = first["case"]
        if case not in common:
            continue
        runs = [(run_dir, cases[case]) for run_dir, cases in zip(dirs, by_case, strict=True)]
        truth = next(((d, r["reference"]) for d, r in runs if r.get("reference")), None)
        cells = []
        for name, (run_dir, record) in zip(names, runs, strict=True):
            values = record_values(record)
            scores = [(m, format_value(m, values[m])) for m in metric_order(values)]
            strip = frame_strip(run_dir, record.get("video"), case, folder)
            cells.append({"run": name, "strip": strip, "scores": scores})
        tasks.setdefault(first.get("task"), []).append(
            {
                "case": case,
                "label": first.get("label"),
                "prompt": first.get("prompt"),
                "truth": frame_strip(truth[0], truth[1], f"{case}.truth", folder) if truth else None,
                "cells": cells,
            }
        )
    return [
        {
            "anchor": task_anchor(t),
            "title": task_title(t),
            "cases": tasks[t],
            "open": len(tasks[t]) <= OPEN_CARDS,
        }
        for t in task_order(list(tasks))
    ]


def render_html(comparison: dict, frames: Sequence[dict] = ()) -> str:
    """compare.html: the runs, per table the means (best in bold) and a bar chart per metric, then the frames
    of each case from each run side by side (`frames`, from `_frames`)."""
    names = [r["name"] for r in comparison["runs"]]
    tables = []
    for key, table in comparison["tables"].items():
        rows = table["metrics"]
        tables.append(
            {
                "anchor": f"t-{key}",
                "title": _block_title(key),
                "cases": table["cases"],
                "rows": [
                    {
                        "metric": m,
                        "cells": [
                            (format_value(m, row["means"][n]), f"n={row['n'][n]}", n in row["best"])
                            for n in names
                        ],
                    }
                    for m, row in rows.items()
                ],
                "charts": [
                    metric_chart(m, [(n, row["means"][n]) for n in names], best=row["best"])
                    for m, row in rows.items()
                ],
            }
        )
    nav = [("runs", "runs"), *((t["anchor"], t["title"]) for t in tables)]
    if frames:
        nav.append(("frames", "frames"))
    return render(
        "compare.html",
        title="Comparison: " + " vs ".join(names),
        subtitle=_left_out_line(comparison),
        nav=nav,
        runs=comparison["runs"],
        names=names,
        left_out=_left_out_line(comparison),
        tables=tables,
        frames=frames,
        with_truth=any(case["truth"] for task in frames for case in task["cases"]),
    )
