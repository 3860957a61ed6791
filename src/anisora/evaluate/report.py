"""RUN/report.html: one page that shows what an `anisora evaluate` run measured.

Sections: the run (model, bench, settings) and its metrics with version and weights; the overall mean of
every metric with what it measures; one section per task with a table of means per action label, a bar
chart per metric across labels (inline SVG) and a card per case: a strip of 8 frames, the prompt and the
scores. The strips are the only files besides the page (RUN/strips/<case>.jpg, linked relatively, kept
while newer than their video), so the run folder can be moved as a whole. No JavaScript; every text from
the data goes through `html.escape`. `bar_chart_svg`, `html_page` and `format_value` also serve compare.py.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from .. import __version__
from ..media import contact_sheet, probe, read_frames, save_image
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
STRIP_FRAMES = 8
TILE_WIDTH = 160  # px, the widest a strip's tile gets
OPEN_CARDS = 24  # a task's case cards start unfolded up to this many cases
NO_LABEL = "(no label)"
ALL_ROW = "all"
NO_SCORES = '<p class="empty">No scores.</p>'
BAR_COLOUR = "#4c6ef5"
BEST_COLOUR = "#2f9e5b"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _breakable(name: str) -> str:
    """A metric name escaped, with line-break opportunities after its underscores (narrow table heads)."""
    return _esc(name).replace("_", "_<wbr>")


def format_value(metric: str, value: Any) -> str:
    """A metric value for people: 3 decimals in [0, 1], 2 for unbounded metrics, "–" when missing."""
    v = number(value)
    if v is None:
        return "–"
    return f"{v:.2f}" if metric in UNBOUNDED else f"{v:.3f}"


def task_title(task: str | None) -> str:
    return dict(TASKS).get(task, str(task))


def task_order(tasks: Sequence[str | None]) -> list[str | None]:
    """Known tasks in `TASKS` order, then unknown ones sorted, then None (videos without a task)."""
    known = [t for t, _ in TASKS if t is not None and t in tasks]
    unknown = sorted(t for t in set(tasks) if t is not None and t not in dict(TASKS))
    return known + unknown + ([None] if None in tasks else [])


# ------------------------------------------------------------------------------------------- charts


def _axis_ticks(largest: float) -> list[float]:
    """Ticks from 0 to a round number at or above `largest`, about 4 steps of 1, 2, 2.5 or 5 times a power of
    ten."""
    if largest <= 0:
        return [0.0, 0.25, 0.5, 0.75, 1.0]
    raw = largest / 4
    power = 10.0 ** np.floor(np.log10(raw))
    step = float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-12)))
    return [i * step for i in range(int(np.ceil(largest / step - 1e-9)) + 1)]


def bar_chart_svg(metric: str, rows: Sequence[tuple[str, Any]], best: Sequence[str] = ()) -> str:
    """Horizontal bars of one metric, one row per (label, value); values in [0, 1] on a fixed 0-1 axis,
    unbounded metrics on an axis from 0 to a round number at or above their largest value (values outside
    the axis are drawn at its ends). Rows in `best` are drawn in the highlight colour; missing values say
    "n/a"."""
    values = [(label, number(v)) for label, v in rows]
    known = [v for _, v in values if v is not None]
    ticks = _axis_ticks(max(known, default=0.0)) if metric in UNBOUNDED else [0.0, 0.25, 0.5, 0.75, 1.0]
    hi = ticks[-1]
    label_w, value_w, row_h, top, bottom, width = 118, 52, 18, 6, 22, 380
    plot_w = width - label_w - value_w
    height = top + row_h * len(values) + bottom

    def x_of(v: float) -> float:
        return label_w + min(max(v, 0.0), hi) / hi * plot_w

    parts = [
        f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_esc(metric)} by row" '
        f'data-metric="{_esc(metric)}">'
    ]
    base = top + row_h * len(values)
    for t in ticks:
        x = x_of(t)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{base}" class="grid"/>'
            f'<text x="{x:.1f}" y="{base + 14}" class="tick" text-anchor="middle">{t:g}</text>'
        )
    for i, (label, v) in enumerate(values):
        y = top + i * row_h
        short = label if len(label) <= 16 else label[:15] + "…"  # 16 characters fit the label column
        parts.append(
            f"<g><title>{_esc(label)}: {_esc(format_value(metric, v))}</title>"
            f'<text x="{label_w - 6}" y="{y + 13}" class="lab" text-anchor="end">{_esc(short)}</text>'
        )
        if v is not None:
            colour = BEST_COLOUR if label in best else BAR_COLOUR
            length = max(x_of(v) - label_w, 0.5)
            parts.append(
                f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 6}" '
                f'fill="{colour}" rx="2"/>'
            )
        shown = format_value(metric, v) if v is not None else "n/a"
        parts.append(f'<text x="{width - value_w + 4}" y="{y + 13}" class="val">{_esc(shown)}</text></g>')
    parts.append(f'<line x1="{label_w}" x2="{label_w}" y1="{top}" y2="{base}" class="axis"/></svg>')
    return "".join(parts)


# ------------------------------------------------------------------------------------------- strips


def write_strip(video: Path, out: Path, frames: int = STRIP_FRAMES) -> None:
    """`frames` frames of `video`, evenly spread, side by side (each at most `TILE_WIDTH` px wide), as a
    JPEG at `out`. Unreadable videos raise MediaError."""
    count = probe(video).frame_count
    indices = np.unique(np.linspace(0, count - 1, min(frames, count)).round().astype(int))
    images = read_frames(video, indices, max_side=2 * TILE_WIDTH)
    width = min(TILE_WIDTH, images.shape[2])
    save_image(out, contact_sheet(list(images), columns=len(images), tile_width=width, gap=2))


def _strip(run: Path, video: Path | None, name: str) -> tuple[str | None, str | None]:
    """(link to strips/<name>.jpg relative to the report, None) or (None, why there is none)."""
    if video is None:
        return None, "no video in the record"
    if not video.is_file():
        return None, f"the video cannot be read: {video} does not exist"
    out = run / "strips" / f"{name}.jpg"
    try:
        if not (out.is_file() and out.stat().st_mtime >= video.stat().st_mtime):
            write_strip(video, out)
    # A report must not fail on one bad video, and decoders raise many kinds of errors.
    except Exception as error:
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        return None, f"the video cannot be read: {reason}"
    return quote(out.relative_to(run).as_posix()), None


# ------------------------------------------------------------------------------------------- page parts


def _kv_table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    return f'<table class="kv">{body}</table>'


def _header_html(info: dict, records: Sequence[dict]) -> str:
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
    metrics = "".join(
        f"<tr><td>{_esc(m.get('name'))}</td><td>{_esc(m.get('version'))}</td>"
        f'<td class="weights">{_esc(m.get("weights"))}</td></tr>'
        for m in info.get("metrics") or []
        if isinstance(m, dict)
    )
    metric_table = (
        '<table class="metrics"><thead><tr><th>metric</th><th>version</th><th>weights</th></tr></thead>'
        f"<tbody>{metrics}</tbody></table>"
        if metrics
        else '<p class="empty">run.json lists no metrics.</p>'
    )
    return (
        f'<section id="run"><div class="cols"><div><h2>Run</h2>{_kv_table(rows)}</div>'
        f"<div><h2>Metrics</h2>{metric_table}</div></div></section>"
    )


def _overall_html(summary: dict) -> str:
    overall = summary["overall"]
    if not overall:
        return NO_SCORES
    rows = []
    for metric, s in overall.items():
        shown = f"{format_value(metric, s['mean'])} ± {format_value(metric, s['std'])}" if s["n"] else "–"
        rows.append(
            f'<tr data-metric="{_esc(metric)}"><td><b>{_esc(metric)}</b></td>'
            f'<td class="num">{_esc(shown)}</td><td class="num">{s["n"]:,}</td>'
            f"<td>{_esc(DESCRIPTIONS.get(metric, ''))}</td><td>{_esc(direction(metric))}</td></tr>"
        )
    return (
        '<table class="overall"><thead><tr><th>metric</th><th class="num">mean ± std</th>'
        '<th class="num">n</th><th>what it measures</th><th>direction</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{_motion_control_html(summary.get('motion_control'))}"
    )


def _motion_control_html(control: dict | None) -> str:
    if not control:
        return ""
    rho = "–" if control["spearman"] is None else f"{control['spearman']:.2f}"
    asked = " / ".join(f"{level:g}" for level in control["levels"])
    measured = " / ".join(f"{value:.2f}" for value in control["measured_mean"])
    return (
        f'<p class="motion-control"><b>Motion control</b> over {control["cases"]} motion cases: Spearman '
        f"rank correlation of asked and measured motion_score {rho}; the measured motion rises with the "
        f"asked score in {control['rising_shots']} of {control['shots']} shots; asked {_esc(asked)} gives "
        f"{_esc(measured)} on average.</p>"
    )


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


def _label_table(groups: list[tuple[str, list[dict]]], metrics: list[str]) -> str:
    head = "".join(f'<th class="num">{_breakable(m)}</th>' for m in metrics)
    rows = []
    for name, group in groups:
        stats = summarize(group)["overall"]
        cells = []
        for m in metrics:
            s = stats.get(m, {"mean": None, "std": None, "n": 0})
            n_note = f" <small>n={s['n']}</small>" if s["n"] != len(group) else ""
            tip = f"{format_value(m, s['mean'])} ± {format_value(m, s['std'])} (n={s['n']})"
            cells.append(
                f'<td class="num" title="{_esc(tip)}">{_esc(format_value(m, s["mean"]))}{n_note}</td>'
            )
        cls = ' class="all"' if name == ALL_ROW else ""
        rows.append(
            f'<tr{cls} data-label="{_esc(name)}"><td>{_esc(name)}</td><td class="num">{len(group)}</td>'
            f"{''.join(cells)}</tr>"
        )
    return (
        f'<div class="scroll"><table class="labels"><thead><tr><th>label</th><th class="num">cases</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _charts_html(groups: list[tuple[str, list[dict]]], metrics: list[str]) -> str:
    if len(groups) < 2:  # one row, nothing to compare
        return ""
    stats = [(name, summarize(group)["overall"]) for name, group in groups]
    cards = []
    for m in metrics:
        rows = [(name, s.get(m, {}).get("mean")) for name, s in stats]
        axis = "own axis" if m in UNBOUNDED else "0 to 1"
        cards.append(
            f'<figure class="chart"><figcaption><b>{_esc(m)}</b> <small>{_esc(axis)}</small></figcaption>'
            f"{bar_chart_svg(m, rows)}</figure>"
        )
    return f'<div class="charts">{"".join(cards)}</div>'


def _strip_html(run: Path, video: Path | None, name: str, target: str | None) -> str:
    link, problem = _strip(run, video, name)
    if not link:
        return f'<div class="noimg">{_esc(problem)}</div>'
    path = Path(str(target))
    href = path.as_uri() if path.is_absolute() else quote(path.as_posix())
    return f'<a href="{_esc(href)}"><img src="{_esc(link)}" alt="frames of {_esc(name)}" loading="lazy"></a>'


def _card(run: Path, record: dict) -> str:
    case = record["case"]
    image = _strip_html(run, run_file(run, record.get("video")), case, record.get("video"))
    if record.get("reference"):  # the ground truth under the generated frames, to compare by eye
        truth = _strip_html(run, run_file(run, record["reference"]), f"{case}.truth", record["reference"])
        image = f'<small>generated</small>{image}<div class="truth"><small>ground truth</small>{truth}</div>'
    tags = "".join(
        f'<span class="tag">{_esc(record[k])}</span>' for k in ("label", "dim") if record.get(k) is not None
    )
    values = record_values(record)
    scores = "".join(
        f"<span>{_esc(m)} <b>{_esc(format_value(m, values[m]))}</b></span>" for m in metric_order(values)
    )
    timing = [
        f"{what} {v:.1f} s"
        for what, v in (
            ("generated in", number(record.get("seconds_generate"))),
            ("scored in", number(record.get("seconds_score"))),
        )
        if v is not None
    ]
    prompt = record.get("prompt")
    return (
        f'<div class="case" id="case-{_esc(case)}">{image}<div class="meta">'
        f'<div><b class="cid">{_esc(case)}</b>{tags}</div>'
        + (f'<p class="prompt">{_esc(prompt)}</p>' if prompt else "")
        + f'<div class="scores">{scores or "<i>no scores</i>"}</div>'
        + (f"<small>{_esc(', '.join(timing))}</small>" if timing else "")
        + "</div></div>"
    )


def _task_html(run: Path, task: str | None, records: Sequence[dict]) -> str:
    groups = _label_groups(records)
    metrics = list(summarize(records)["overall"])
    anchor = f"task-{task}" if task is not None else "task-videos"
    opened = " open" if len(records) <= OPEN_CARDS else ""
    cards = "".join(_card(run, r) for r in records)
    return (
        f'<section id="{_esc(anchor)}" data-task="{_esc(task)}"><h2>{_esc(task_title(task))} '
        f"<small>{_esc(task or 'no task')} · {len(records):,} cases</small></h2>"
        f"{_label_table(groups, metrics) if metrics else NO_SCORES}"
        f"{_charts_html(groups, metrics)}"
        f'<details class="cases"{opened}><summary>{len(records):,} cases</summary>{cards}</details></section>'
    )


CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#1d2127;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header,section{max-width:1320px;margin:0 auto;padding:10px 24px}
h1{font-size:22px;margin:14px 0 2px}
h2{font-size:17px;margin:16px 0 8px;padding-bottom:4px;border-bottom:1px solid #d5d9df}
nav a{color:#2748c9;text-decoration:none;margin-right:14px}
small,.empty{color:#67707a}
.empty{font-style:italic}
.cols{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}
.cols>div{flex:1 1 440px}
table{border-collapse:collapse;background:#fff}
th,td{padding:4px 9px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
thead th{background:#eceff3;font-weight:600;vertical-align:bottom}
table.kv th{white-space:nowrap;font-weight:600}
td.weights{font-size:12px;color:#4a525c}
.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
tr.all td{font-weight:600;background:#f8f9fb}
b.best{color:#1e7b45}
.scroll{overflow-x:auto}
table.labels thead th.num{max-width:96px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(390px,1fr));gap:10px;margin:12px 0}
figure.chart{margin:0;padding:8px;background:#fff;border:1px solid #e3e6ea;border-radius:6px}
figure.chart svg{display:block;max-width:100%;height:auto}
svg .grid{stroke:#eceff2}
svg .axis{stroke:#59616b}
svg .tick{font-size:10px;fill:#59616b}
svg .lab,svg .val{font-size:11px;fill:#1d2127}
details.cases{margin:12px 0;padding:6px 10px;background:#fff;border:1px solid #e3e6ea;border-radius:6px}
details.cases summary{cursor:pointer;font-weight:600;padding:3px 0}
.case{display:flex;flex-direction:column;align-items:flex-start;gap:6px;padding:10px 0;
border-top:1px solid #eceff2}
.case img{display:block;max-width:100%;background:#181b20;border-radius:3px}
.case .truth{margin-top:4px}.case>small,.case .truth small{display:block;color:#656d76;font-size:11px}
.case .noimg{padding:18px 14px;background:#2a2e35;color:#f3b3a6;border-radius:3px;font-size:12px;
max-width:100%}
.case .meta{align-self:stretch;min-width:0}
.cid{margin-right:8px}
.tag{display:inline-block;margin-right:4px;padding:0 6px;border-radius:3px;background:#e6ebff;color:#2c3e9c;
font-size:12px}
.prompt{margin:3px 0;color:#353b44;overflow-wrap:anywhere}
.scores{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px}
.scores span{white-space:nowrap}
"""


def html_page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """A whole page in the evaluate style: `title`, `subtitle` and `nav` ((anchor, text) pairs) are text,
    `body` is HTML."""
    links = "".join(f'<a href="#{_esc(a)}">{_esc(t)}</a>' for a, t in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_esc(title)}</h1><div><small>{_esc(subtitle)}</small></div><nav>{links}</nav>"
        f"</header>{body}</body></html>\n"
    )


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write RUN/report.html (and the frame strips under RUN/strips) for a finished run; return its path."""
    run = Path(run_dir)
    info, records, summary = load_run(run)
    by_task: dict[str | None, list[dict]] = {}
    for r in records:
        by_task.setdefault(r.get("task"), []).append(r)
    tasks = task_order(list(by_task))
    name = info.get("name") or run.name
    subtitle = f"{info.get('kind') or 'run'} · {len(records):,} cases · report by anisora {__version__}"
    nav = [("run", "run"), ("overall", "overall")] + [
        (f"task-{t}" if t is not None else "task-videos", task_title(t)) for t in tasks
    ]
    body = (
        _header_html(info, records)
        + '<section id="overall"><h2>Overall</h2>'
        + "<p><small>Mean ± standard deviation over the cases a metric applies to (n); NaN values are "
        + "left out.</small></p>"
        + _overall_html(summary)
        + "</section>"
        + "".join(_task_html(run, t, by_task[t]) for t in tasks)
    )
    path = run / "report.html"
    write_text_atomic(path, html_page(f"Evaluation: {name}", subtitle, nav, body))
    return path
