"""Side-by-side comparison of finished `anisora evaluate` runs: metric means per run, overall and per task.

Only the cases present in every run are compared (matched by case id), so each run is measured on the same
videos; the comparison says how many cases were left out. `compare_runs` builds the comparison (and writes
compare.json and compare.html when given a folder), `format_table` renders it for a terminal.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..files import shareable_path
from .report import bar_chart_svg, format_value, html_page, task_order, task_title
from .results import (
    UNRANKED,
    load_run,
    metric_order,
    names_a_path,
    run_file,
    summarize,
    to_json,
    write_text_atomic,
)

OVERALL = "overall"


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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
        write_text_atomic(folder / "compare.html", render_html(shared))
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


def render_html(comparison: dict) -> str:
    """compare.html: the runs, then per table the means (best in bold) and a bar chart per metric."""
    runs = comparison["runs"]
    names = [r["name"] for r in runs]
    run_rows = "".join(
        f"<tr><td><b>{_esc(r['name'])}</b></td><td>{_esc(r['dir'])}</td><td>{_esc(r['model'])}</td>"
        f'<td class="num">{r["cases"]:,}</td><td class="num">{r["not_in_common"]:,}</td></tr>'
        for r in runs
    )
    body = [
        '<section id="runs"><h2>Runs</h2><table><thead><tr><th>name</th><th>directory</th><th>model</th>'
        '<th class="num">cases</th><th class="num">not in every run</th></tr></thead>'
        f"<tbody>{run_rows}</tbody></table><p>{_esc(_left_out_line(comparison))}. Only these are compared; "
        "the best run of a row is in bold (green bars) where higher is better; motion_score and "
        "dynamic_degree are not ranked.</p></section>"
    ]
    nav = [("runs", "runs")]
    for key, table in comparison["tables"].items():
        nav.append((f"t-{key}", _block_title(key)))
        head = "".join(f'<th class="num">{_esc(n)}</th>' for n in names)
        rows, charts = [], []
        for metric, row in table["metrics"].items():
            cells = []
            for n in names:
                text = _esc(format_value(metric, row["means"][n]))
                tip = f"n={row['n'][n]}"
                shown = f'<b class="best">{text}</b>' if n in row["best"] else text
                cells.append(f'<td class="num" title="{_esc(tip)}">{shown}</td>')
            rows.append(f'<tr data-metric="{_esc(metric)}"><td>{_esc(metric)}</td>{"".join(cells)}</tr>')
            bars = bar_chart_svg(metric, [(n, row["means"][n]) for n in names], best=row["best"])
            charts.append(
                f'<figure class="chart"><figcaption><b>{_esc(metric)}</b></figcaption>{bars}</figure>'
            )
        body.append(
            f'<section id="t-{_esc(key)}"><h2>{_esc(_block_title(key))} <small>{table["cases"]:,} cases'
            f'</small></h2><div class="scroll"><table><thead><tr><th>metric</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            f'<div class="charts">{"".join(charts)}</div></section>'
        )
    return html_page("Comparison: " + " vs ".join(names), _left_out_line(comparison), nav, "".join(body))
