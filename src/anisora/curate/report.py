"""`report.html`: one self-contained page that shows what a curation run kept and why it dropped the rest.

Sections: the run summary and the thresholds in force; the filter funnel (each dropped clip is charged to
the first rule it fails, in `FUNNEL_STAGES` order, so the funnel adds up); histograms of the scores, kept vs
dropped, with the thresholds drawn on them, and motion against quality; a sortable per-source table;
thumbnail grids of kept clips and of dropped clips per reason with their captions (at most `MAX_THUMBS` per
grid, sampled deterministically); the failures table.

This module turns the manifest rows into the page's figures; the template `curate_report.html` of
`anisora.reporting` lays them out (and escapes every text). No external resources except the thumbnails,
linked by their path relative to the output folder, so the folder can be moved or copied as a whole; a few
lines of inline JavaScript sort the per-source table (everything else works without it). It stays small for
big runs: thumbnails and scatter points are sampled, and the per-source table has one row per video.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import numpy as np

from ..files import atomic_output
from ..reporting import render
from ..reporting.charts import Histogram, Scatter, histogram, scatter
from .filters import REASONS, RULES, SCORES, Score

# (stage, rules of that stage) in the order the funnel charges a dropped clip to its first failing rule.
FUNNEL_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (stage, tuple(r.reason for r in RULES if r.stage == stage))
    for stage in dict.fromkeys(r.stage for r in RULES)
)
OTHER_STAGE = "other"  # dropped clips with no known reason (shown only when there are any)
# Score columns histogrammed without a rule of their own.
EXTRA_HISTOGRAMS = ("motion_held_share",)
MAX_THUMBS = 24  # thumbnails per grid
MAX_SCATTER = 2000  # points of the motion x quality scatter (sampled like the thumbnails beyond that)
MAX_FAILURES = 1000  # rows of the failures table
MAX_ERROR = 2000  # characters of an error shown
KEPT_COLOUR = "#2f9e5b"
DROPPED_COLOUR = "#e07a5f"
THRESHOLD_COLOUR = "#1d4ed8"


# ---------------------------------------------------------------------------------------------- helpers


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, infinite, booleans and non-numbers."""
    if type(value) is float:  # most values: checked first, as big reports call this for every score
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


def _reasons(row: dict) -> list[str]:
    value = row.get("reasons")
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(r) for r in value]


def _keep(row: dict) -> bool:
    return bool(row.get("keep"))


def fmt_number(value: Any, key: str = "") -> str:
    """Numbers for people: thousands separators, a few significant digits, rates also as percent."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    v = _number(value)
    if v is None:
        return "–" if value is None or isinstance(value, (float, np.floating)) else str(value)
    if v == int(v) and abs(v) < 1e15 and not key.endswith(("rate", "share", "seconds")):
        text = f"{int(v):,}"
    elif abs(v) >= 100:
        text = f"{v:,.1f}"
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    elif abs(v) >= 1:
        text = f"{v:.2f}"
    elif v == 0:
        text = "0"
    else:
        text = f"{v:.3g}"
    if key.endswith(("rate", "share")) and 0 <= v <= 1:
        text += f" ({v * 100:.1f} %)"
    elif key.endswith("seconds") and v >= 120:
        minutes, seconds = divmod(v, 60)
        text += f" ({int(minutes // 60)}:{int(minutes % 60):02d}:{seconds:04.1f})"
    return text


def _setting(value: Any) -> str:
    """A threshold setting for people: "off" for None or False."""
    if value is None or value is False:
        return "off"
    return "on" if value is True else fmt_number(value)


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "–"


def _relative_url(path: Any, out_dir: Path) -> str | None:
    """A link relative to the report for a file in the output folder (None when there is none)."""
    if not path:
        return None
    p = PurePath(str(path))
    if p.is_absolute():
        try:
            p = PurePath(os.path.relpath(str(p), str(out_dir)))
        except ValueError:  # another drive on Windows
            return None
        if p.parts and p.parts[0] == "..":
            return None
    return quote(p.as_posix(), safe="/")


def _file_name(source: Any) -> str:
    text = "" if source is None else str(source)
    return text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or text


# ----------------------------------------------------------------------------------------------- funnel


def _stage_of(reason: str) -> str | None:
    for stage, rules in FUNNEL_STAGES:
        if reason in rules:
            return stage
    return None


def funnel(rows: Iterable[dict]) -> list[tuple[str, int, int]]:
    """(stage, removed by this stage, fails this stage's rules at all) for each stage of `FUNNEL_STAGES`.

    A dropped clip is removed by the first stage, in funnel order, whose rule it fails, so
    candidates - sum(removed) == kept. Dropped clips without a known reason are charged to a final
    `OTHER_STAGE` row, present only when there are such clips."""
    order = {stage: i for i, (stage, _) in enumerate(FUNNEL_STAGES)}
    removed = {stage: 0 for stage, _ in FUNNEL_STAGES}
    fails = dict(removed)
    other = 0
    for row in rows:
        stages = {s for s in (_stage_of(r) for r in _reasons(row)) if s is not None}
        for s in stages:
            fails[s] += 1
        if _keep(row):
            continue
        if stages:
            removed[min(stages, key=order.__getitem__)] += 1
        else:
            other += 1
    out = [(stage, removed[stage], fails[stage]) for stage, _ in FUNNEL_STAGES]
    if other:
        out.append((OTHER_STAGE, other, other))
    return out


def _stage_rules(stage: str, filters: dict) -> str:
    """The rules of a funnel stage and their thresholds: "too_short, too_long (min_seconds = 2; ...)"."""
    if stage == OTHER_STAGE:
        return "dropped without a known reason"
    rules = [r for r in RULES if r.stage == stage]
    settings = [f"{r.setting} = {_setting(filters[r.setting])}" for r in rules if r.setting in filters]
    return ", ".join(r.reason for r in rules) + (f" ({'; '.join(settings)})" if settings else "")


def _funnel_view(rows: Sequence[dict], filters: dict) -> dict:
    """The funnel table: candidates, then per stage what it removes and what remains, then the kept clips;
    each row's bar as (remaining, removed) percent of the candidates."""
    n = len(rows)
    kept = sum(1 for r in rows if _keep(r))
    share = (lambda x: 100 * x / n) if n else (lambda x: 0.0)
    stages, remaining = [], n
    for stage, removed, fails in funnel(rows):
        remaining -= removed
        stages.append(
            {
                "stage": stage,
                "rules": _stage_rules(stage, filters),
                "removed": removed,
                "removed_pct": _percent(removed, n),
                "fails": fails,
                "fails_pct": _percent(fails, n),
                "remaining": remaining,
                "bar": (share(remaining), share(removed)),
            }
        )
    return {
        "candidates": n,
        "candidates_bar": (share(n), 0.0),
        "stages": stages,
        "kept": kept,
        "kept_pct": _percent(kept, n),
        "kept_bar": (share(kept), 0.0),
        "left": remaining,  # differs from `kept` for rows marked kept while carrying reasons, or the reverse
        "has_rows": bool(n),
    }


# ------------------------------------------------------------------------------------------- histograms


def histogram_columns(rows: Sequence[dict]) -> list[tuple[str, tuple[str, ...]]]:
    """(score column, the settings drawn on it): the column each threshold rule reads (the first of its
    columns the rows have), then `EXTRA_HISTOGRAMS`."""
    drawn: dict[str, list[str]] = {}
    for rule in RULES:
        if rule.test != "flag":
            scored = (c for c in rule.columns if any(_number(r.get(c)) is not None for r in rows))
            drawn.setdefault(next(scored, rule.columns[0]), []).append(rule.setting)
    for column in EXTRA_HISTOGRAMS:
        drawn.setdefault(column, [])
    return [(column, tuple(keys)) for column, keys in drawn.items()]


def score_histogram(
    column: str, kept: np.ndarray, dropped: np.ndarray, thresholds: dict[str, float]
) -> Histogram:
    """A score's stacked histogram (kept below, dropped above) with its thresholds drawn."""
    unit = SCORES[column].unit if column in SCORES else None
    return histogram(
        column,
        [("kept", kept, KEPT_COLOUR), ("dropped", dropped, DROPPED_COLOUR)],
        [(key, t, fmt_number(t)) for key, t in thresholds.items()],
        x_label=f"{column} ({unit})" if unit else column,
        y_label="clips",
    )


def _histogram_views(rows: Sequence[dict], filters: dict) -> list[dict]:
    views = []
    for column, keys in histogram_columns(rows):
        kept, dropped, missing = [], [], 0
        for row in rows:
            v = _number(row.get(column))
            if v is None:
                missing += 1
            else:
                (kept if _keep(row) else dropped).append(v)
        if not kept and not dropped:
            continue
        thresholds = {key: t for key in keys if (t := _number(filters.get(key))) is not None}
        chart = score_histogram(
            column, np.asarray(kept, np.float64), np.asarray(dropped, np.float64), thresholds
        )
        values = np.asarray(kept + dropped, np.float64)
        stats = (
            f"min {fmt_number(float(values.min()))} · median {fmt_number(float(np.median(values)))} · "
            f"max {fmt_number(float(values.max()))}"
        )
        note = chart.note + (f"; {missing:,} missing" if missing else "")
        views.append({"column": column, "stats": stats, "chart": chart, "note": note})
    return views


def _scatter_view(ordered: Sequence[dict], filters: dict) -> tuple[Scatter | None, str]:
    """Motion score (x) against quality score (y), kept and dropped, with the two thresholds, and a note;
    `ordered`: the rows in sampling order."""
    scored = [
        r for r in ordered if None not in (_number(r.get("motion_score")), _number(r.get("quality_score")))
    ]
    if not scored:
        return None, "No clip has both a motion and a quality score."
    drawn = _spread(scored, MAX_SCATTER)
    xs = np.array([_number(r["motion_score"]) for r in scored], np.float64)
    x_hi = float(np.percentile(xs, 99.5)) if len(xs) >= 50 else float(xs.max())
    x_hi = max(x_hi, _number(filters.get("min_motion")) or 0.0, 1e-6)

    def markers(key: str) -> list[tuple[str, float, str]]:
        t = _number(filters.get(key))
        return [] if t is None else [(key, t, fmt_number(t))]

    chart = scatter(
        [
            (
                _number(r["motion_score"]),
                _number(r["quality_score"]),
                KEPT_COLOUR if _keep(r) else DROPPED_COLOUR,
            )
            for r in drawn
        ],
        x_range=(0.0, x_hi),
        y_range=(0.0, 10.0),
        x_markers=markers("min_motion"),
        y_markers=markers("min_quality"),
        x_label="motion_score (max optical flow, 480p pixels; the top 0.5 % at the right edge)",
        y_label="quality_score (0-10)",
    )
    note = f"{len(scored):,} clips" + (
        f", {len(drawn):,} drawn (spread evenly)" if len(drawn) < len(scored) else ""
    )
    return chart, note


# ------------------------------------------------------------------------------------------- thumbnails


def _position(row: dict) -> tuple:
    """A clip's place in the sampling order: (source, start frame, clip id)."""
    start = _number(row.get("start_frame"))
    return (str(row.get("source") or ""), start if start is not None else -1.0, str(row.get("clip_id")))


def _spread(ordered: Sequence[dict], limit: int) -> list[dict]:
    """At most `limit` of the rows, evenly spaced."""
    if len(ordered) <= limit:
        return list(ordered)
    return [ordered[i] for i in np.linspace(0, len(ordered) - 1, limit).round().astype(int)]


def sample_rows(rows: Sequence[dict], limit: int = MAX_THUMBS) -> list[dict]:
    """At most `limit` rows, spread evenly over the rows sorted by (source, start frame, clip id)."""
    return _spread(sorted(rows, key=_position), limit)


def card_scores(row: dict) -> list[tuple[Score, float | None, bool]]:
    """(score, value, whether a rule on it fails) for a clip card: the value each threshold rule reads, once
    per labelled score."""
    failing = set(_reasons(row))
    shown: dict[str, tuple[Score, float | None, bool]] = {}
    for rule in RULES:
        column = next((c for c in rule.columns if row.get(c) is not None), rule.columns[0])
        score = SCORES.get(column)
        if rule.test == "flag" or score is None or not score.label:
            continue
        _, value, fails = shown.get(score.label, (score, _number(row.get(column)), False))
        shown[score.label] = (score, value, fails or rule.reason in failing)
    return list(shown.values())


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}:{rest:05.2f}"
    return f"{int(minutes // 60)}:{int(minutes % 60):02d}:{rest:05.2f}"


def _card(row: dict, out_dir: Path, group_reason: str | None) -> dict:
    t0, t1 = _number(row.get("start_time")), _number(row.get("end_time"))
    scores = [
        (score.label, "–" if v is None else f"{v:{score.fmt}}{score.suffix}", failing)
        for score, v, failing in card_scores(row)
        if score.card_when_zero or v or failing
    ]
    return {
        "clip_id": row.get("clip_id"),
        "source": row.get("source"),
        "name": _file_name(row.get("source")),
        "times": f"{_clock(t0)} – {_clock(t1)} s" if t0 is not None and t1 is not None else "",
        "caption": row.get("caption") or "",
        "thumb": _relative_url(row.get("thumb"), out_dir),
        "clip": _relative_url(row.get("clip_path"), out_dir),
        "scores": scores,
        "reasons": [(r, r == group_reason) for r in _reasons(row)],
    }


def _group(title: str, anchor: str, rows: list[dict], out_dir: Path, reason: str | None = None) -> dict:
    shown = _spread(rows, MAX_THUMBS)
    count = f"{len(rows):,} clips" + (f", showing {len(shown)}" if len(shown) < len(rows) else "")
    cards = [_card(r, out_dir, reason) for r in shown]
    return {"title": title, "anchor": anchor, "count": count, "cards": cards}


def _thumb_groups(ordered: Sequence[dict], out_dir: Path) -> list[dict]:
    """The kept clips, then the dropped clips per reason (in `REASONS` order, unknown reasons after);
    `ordered`: the rows in sampling order."""
    by_reason: dict[str, list[dict]] = {}
    for row in ordered:
        if not _keep(row):
            for reason in dict.fromkeys(_reasons(row) or ["(no reason)"]):
                by_reason.setdefault(reason, []).append(row)
    order = [r for r in REASONS if r in by_reason] + sorted(r for r in by_reason if r not in REASONS)
    kept = [r for r in ordered if _keep(r)]
    return [_group("kept", "thumbs-kept", kept, out_dir)] + [
        _group(f"dropped: {reason}", f"thumbs-{reason}", by_reason[reason], out_dir, reason)
        for reason in order
    ]


# --------------------------------------------------------------------------------------- tables, page


def source_table(rows: Sequence[dict]) -> list[dict]:
    """Per source video: clips, kept, kept seconds, mean motion and quality, the commonest reason."""
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(str(row.get("source") or ""), []).append(row)
    table = []
    for source, clips in sorted(by_source.items()):
        kept = [r for r in clips if _keep(r)]
        reasons = [reason for r in clips for reason in _reasons(r)]
        spans = ((_number(r.get("end_time")) or 0.0) - (_number(r.get("start_time")) or 0.0) for r in kept)
        table.append(
            {
                "source": source,
                "clips": len(clips),
                "kept": len(kept),
                "kept_seconds": sum(spans),
                "motion": _mean(r.get("motion_score") for r in clips),
                "quality": _mean(r.get("quality_score") for r in clips),
                "top_reason": max(set(reasons), key=lambda x: (reasons.count(x), x)) if reasons else "",
            }
        )
    return table


def _mean(values: Iterable[Any]) -> float | None:
    numbers = [v for v in (_number(v) for v in values) if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


SOURCE_COLUMNS = (  # (heading, key, format); the keep rate is computed
    ("clips", "clips", ",d"),
    ("kept", "kept", ",d"),
    ("keep rate", "rate", ".0%"),
    ("kept seconds", "kept_seconds", ".1f"),
    ("mean motion", "motion", ".2f"),
    ("mean quality", "quality", ".1f"),
)


def _source_rows(rows: Sequence[dict]) -> list[dict]:
    """The per-source table's rows: each cell as (shown, sort value)."""
    out = []
    for t in source_table(rows):
        t = {**t, "rate": t["kept"] / t["clips"]}
        cells = [
            ("–", "") if t[key] is None else (format(t[key], style), t[key])
            for _, key, style in SOURCE_COLUMNS
        ]
        out.append(
            {
                "source": t["source"],
                "name": _file_name(t["source"]),
                "cells": cells,
                "reason": t["top_reason"],
            }
        )
    return out


def _summary_rows(summary: dict) -> list[tuple[str, str | list[tuple[str, str]]]]:
    """(key, shown): a dict value as its (key, value) pairs, anything else as text."""
    out: list[tuple[str, str | list[tuple[str, str]]]] = []
    for key, value in summary.items():
        if isinstance(value, dict):
            out.append((key, [(str(k), fmt_number(v, str(k))) for k, v in value.items()]))
        elif isinstance(value, (list, tuple)):
            out.append((key, ", ".join(fmt_number(v) if _number(v) is not None else str(v) for v in value)))
        elif isinstance(value, str):
            out.append((key, value))
        else:
            out.append((key, fmt_number(value, str(key))))
    return out


def _filter_rows(filters: dict) -> list[dict]:
    describe = {r.setting: r.describe() for r in RULES}
    return [
        {"key": key, "shown": _setting(v), "off": v is None or v is False, "rule": describe.get(key, "")}
        for key, v in filters.items()
    ]


def _failure_rows(failures: Sequence[dict]) -> list[dict]:
    out = []
    for f in failures[:MAX_FAILURES]:
        error = str(f.get("error") or "")
        out.append(
            {
                "source": f.get("source"),
                "stage": f.get("stage"),
                "error": error[:MAX_ERROR] + " …" if len(error) > MAX_ERROR else error,
            }
        )
    return out


def render_report(
    out_dir: Path, rows: Sequence[dict], failures: Sequence[dict], summary: dict, filters: dict
) -> str:
    """The report page as a string (`write_report` writes it)."""
    out_dir = Path(out_dir)
    rows = list(rows)
    failures = list(failures or [])
    filters = dict(filters or {})
    kept = sum(1 for r in rows if _keep(r))
    title = f"Curation report: {out_dir.name}" if out_dir.name else "Curation report"
    subtitle = f"{len(rows):,} candidate clips, {kept:,} kept" + (
        f" ({100 * kept / len(rows):.1f} %)" if rows else ""
    )
    if failures:
        subtitle += f", {len(failures):,} failures"
    ordered = sorted(rows, key=_position)  # for sampling thumbnails and scatter points
    scatter_chart, scatter_note = _scatter_view(ordered, filters)
    return render(
        "curate_report.html",
        title=title,
        subtitle=subtitle,
        nav=[
            ("summary", "summary"),
            ("funnel", "funnel"),
            ("scores", "scores"),
            ("sources", "sources"),
            ("thumbs", "thumbnails"),
            ("failures", "failures"),
        ],
        summary=_summary_rows(dict(summary or {})),
        filters=_filter_rows(filters),
        funnel=_funnel_view(rows, filters),
        histograms=_histogram_views(rows, filters),
        colours={"kept": KEPT_COLOUR, "dropped": DROPPED_COLOUR, "threshold": THRESHOLD_COLOUR},
        scatter=scatter_chart,
        scatter_note=scatter_note,
        source_heads=["source", *(h for h, _, _ in SOURCE_COLUMNS), "top reason"],
        sources=_source_rows(rows),
        max_thumbs=MAX_THUMBS,
        groups=_thumb_groups(ordered, out_dir),
        failures=_failure_rows(failures),
        failure_count=len(failures),
        max_failures=MAX_FAILURES,
    )


def write_report(out_dir: Path, rows: list[dict], failures: list[dict], summary: dict, filters: dict) -> Path:
    """Write `out_dir/report.html` atomically and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    with atomic_output(path) as tmp:  # not mkstemp: its files are private (0600), a report is for sharing
        tmp.write_text(render_report(out_dir, rows, failures, summary, filters), encoding="utf-8")
    return path
