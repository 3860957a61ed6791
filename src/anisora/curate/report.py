"""`report.html`: one self-contained page that shows what a curation run kept and why it dropped the rest.

Sections: the run summary and the thresholds in force; the filter funnel (each dropped clip is charged to
the first rule it fails, in `FUNNEL_STAGES` order, so the funnel adds up); histograms of the scores, kept vs
dropped, with the thresholds drawn on them, and motion against quality (inline SVG); a sortable per-source
table; thumbnail grids of kept clips and of dropped clips per reason with their captions (at most
`MAX_THUMBS` per grid, sampled deterministically); the failures table.

No external resources except the thumbnails, which are linked by their path relative to the output folder,
so the folder can be moved or copied as a whole; a few lines of inline JavaScript sort the per-source table
(everything else works without it). It stays small for big runs: thumbnails and scatter points are sampled,
and the per-source table has one row per video. Every piece of text that comes from the data (paths,
captions, errors) goes through `html.escape`.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import numpy as np

from ..files import atomic_output
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
MAX_FAILURES = 1000  # rows of the failures table
BINS = 30
KEPT_COLOUR = "#2f9e5b"
DROPPED_COLOUR = "#e07a5f"
THRESHOLD_COLOUR = "#1d4ed8"


# ---------------------------------------------------------------------------------------------- helpers


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, infinite, booleans and non-numbers."""
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


def _funnel_html(rows: Sequence[dict], filters: dict) -> str:
    n = len(rows)
    kept = sum(1 for r in rows if _keep(r))
    stages = funnel(rows)
    rules = dict(FUNNEL_STAGES)
    keys_of = {stage: [r.setting for r in RULES if r.stage == stage] for stage in rules}

    def pct(x: int) -> str:
        return f"{100 * x / n:.1f} %" if n else "–"

    def bar(remaining: int, removed: int) -> str:
        if not n:
            return ""
        w_keep, w_drop = 100 * remaining / n, 100 * removed / n
        return (
            f'<div class="bar"><span class="keep" style="width:{w_keep:.2f}%"></span>'
            f'<span class="drop" style="width:{w_drop:.2f}%"></span></div>'
        )

    out = [
        '<table class="funnel"><thead><tr><th>stage</th><th>rules (threshold)</th>'
        '<th class="num">removed by this filter</th><th class="num">fails this rule at all</th>'
        '<th class="num">remaining</th><th class="barcol">remaining / removed</th></tr></thead><tbody>',
        f'<tr class="total"><td>candidates</td><td></td><td class="num"></td><td class="num"></td>'
        f'<td class="num" data-funnel="candidates">{n:,}</td><td>{bar(n, 0)}</td></tr>',
    ]
    remaining = n
    for stage, removed, fails in stages:
        remaining -= removed
        if stage == OTHER_STAGE:
            rule_text = "dropped without a known reason"
        else:
            parts = []
            for key in keys_of[stage]:
                if key in filters:
                    value = filters[key]
                    shown = "off" if value is None or value is False else fmt_number(value)
                    parts.append(f"{key} = {shown}")
            rule_text = ", ".join(rules[stage]) + (f" ({'; '.join(parts)})" if parts else "")
        out.append(
            f'<tr data-stage="{_esc(stage)}"><td>{_esc(stage)}</td><td class="rules">{_esc(rule_text)}</td>'
            f'<td class="num" data-removed="{removed}">{removed:,} <small>{pct(removed)}</small></td>'
            f'<td class="num" data-fails="{fails}">{fails:,} <small>{pct(fails)}</small></td>'
            f'<td class="num">{remaining:,}</td><td>{bar(remaining, removed)}</td></tr>'
        )
    out.append(
        f'<tr class="total"><td>kept</td><td></td><td class="num"></td><td class="num"></td>'
        f'<td class="num" data-funnel="kept">{kept:,} <small>{pct(kept)}</small></td>'
        f"<td>{bar(kept, 0)}</td></tr></tbody></table>"
    )
    if remaining != kept:  # rows marked kept while carrying reasons, or the other way round
        out.append(
            f'<p class="warn">The funnel leaves {remaining:,} clips but {kept:,} rows are marked kept.</p>'
        )
    return "".join(out)


# ------------------------------------------------------------------------------------------- histograms


def _nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], int]:
    """Round tick positions within [lo, hi] and the number of decimals to print them with."""
    span = hi - lo
    if span <= 0:
        return [lo], 2
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if step / magnitude == 2.5 else 0)
    return ticks, decimals


def _fmt_tick(value: float, decimals: int) -> str:
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.{decimals}f}"


def histogram_svg(
    column: str,
    kept: np.ndarray,
    dropped: np.ndarray,
    thresholds: dict[str, float],
    bins: int = BINS,
    width: int = 440,
    height: int = 210,
) -> tuple[str, str]:
    """Stacked histogram (kept below, dropped above) of one score, with labelled threshold lines, and a
    one-line note on the counts.

    The x range covers the values and the thresholds; when a few outliers would squeeze the rest into a
    couple of bins, the range is the 0.5-99.5 percentile range and the outliers are counted in the edge
    bins (said in the caption)."""
    values = np.concatenate([kept, dropped])
    lo, hi = float(values.min()), float(values.max())
    clipped = 0
    if values.size >= 50:
        q_lo, q_hi = (float(q) for q in np.percentile(values, [0.5, 99.5]))
        if q_hi > q_lo and hi - lo > 4 * (q_hi - q_lo):
            lo, hi = q_lo, q_hi
            clipped = int(np.count_nonzero((values < lo) | (values > hi)))
    for t in thresholds.values():
        lo, hi = min(lo, t), max(hi, t)
    if hi <= lo:
        pad = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    k_counts, _ = np.histogram(np.clip(kept, lo, hi), bins=edges)
    d_counts, _ = np.histogram(np.clip(dropped, lo, hi), bins=edges)
    top = int((k_counts + d_counts).max()) if bins else 0
    top = max(top, 1)

    left, right, upper, lower = 46, 14, 26, 40
    pw, ph = width - left - right, height - upper - lower

    def x_of(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    def y_of(c: float) -> float:
        return upper + ph - c / top * ph

    parts = [
        f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="histogram of {_esc(column)}" '
        f'data-column="{_esc(column)}">'
    ]
    # grid and y axis
    y_ticks, _ = _nice_ticks(0, top, 4)
    for c in y_ticks:
        if c != int(c):
            continue
        y = y_of(c)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 5}" y="{y + 3.5:.1f}" class="tick" text-anchor="end">{int(c):,}</text>'
        )
    # bars
    bw = pw / bins
    for i in range(bins):
        x = left + i * bw
        k, d = int(k_counts[i]), int(d_counts[i])
        tip = f"{_fmt_tick(edges[i], 4)} – {_fmt_tick(edges[i + 1], 4)}: {k:,} kept, {d:,} dropped"
        parts.append(f"<g><title>{_esc(tip)}</title>")
        if k:
            parts.append(
                f'<rect x="{x + 0.5:.1f}" y="{y_of(k):.1f}" width="{max(bw - 1, 0.5):.1f}" '
                f'height="{y_of(0) - y_of(k):.1f}" fill="{KEPT_COLOUR}"/>'
            )
        if d:
            parts.append(
                f'<rect x="{x + 0.5:.1f}" y="{y_of(k + d):.1f}" width="{max(bw - 1, 0.5):.1f}" '
                f'height="{y_of(k) - y_of(k + d):.1f}" fill="{DROPPED_COLOUR}"/>'
            )
        parts.append("</g>")
    # x axis
    base = upper + ph
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{base}" y2="{base}" class="axis"/>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{upper}" y2="{base}" class="axis"/>')
    x_ticks, x_dec = _nice_ticks(lo, hi, 6)
    for t in x_ticks:
        x = x_of(t)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" class="axis"/>'
            f'<text x="{x:.1f}" y="{base + 15}" class="tick" text-anchor="middle">'
            f"{_esc(_fmt_tick(t, x_dec))}</text>"
        )
    unit = SCORES[column].unit if column in SCORES else None
    label = f"{column} ({unit})" if unit else column
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 6}" class="label" text-anchor="middle">'
        f"{_esc(label)}</text>"
        f'<text x="12" y="{upper + ph / 2:.1f}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 12 {upper + ph / 2:.1f})">clips</text>'
    )
    # thresholds
    for i, (key, t) in enumerate(sorted(thresholds.items(), key=lambda kv: kv[1])):
        x = x_of(t)
        anchor, dx = ("end", -4) if x > left + pw * 0.6 else ("start", 4)
        y_text = upper - 12 + 11 * (i % 2)
        parts.append(
            f'<g class="threshold" data-threshold="{_esc(key)}" data-value="{t!r}">'
            f"<title>{_esc(key)} = {_esc(fmt_number(t))}</title>"
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{upper - 2 + 11 * (i % 2)}" y2="{base}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.6" stroke-dasharray="5 3"/>'
            f'<text x="{x + dx:.1f}" y="{y_text + 8}" class="thr" text-anchor="{anchor}">'
            f"{_esc(key)} {_esc(fmt_number(t))}</text></g>"
        )
    parts.append("</svg>")
    n_k, n_d = kept.size, dropped.size
    note = f"{n_k + n_d:,} values: {n_k:,} kept, {n_d:,} dropped"
    if clipped:
        note += f"; {clipped:,} outliers beyond the shown range are counted in the edge bins"
    return "".join(parts), note


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


def _histograms_html(rows: Sequence[dict], filters: dict) -> str:
    cards = []
    for column, keys in histogram_columns(rows):
        kept, dropped, missing = [], [], 0
        for row in rows:
            v = _number(row.get(column))
            if v is None:
                missing += 1
            elif _keep(row):
                kept.append(v)
            else:
                dropped.append(v)
        if not kept and not dropped:
            continue
        thresholds = {}
        for key in keys:
            t = _number(filters.get(key))
            if t is not None:
                thresholds[key] = t
        k, d = np.asarray(kept, dtype=np.float64), np.asarray(dropped, dtype=np.float64)
        svg, note = histogram_svg(column, k, d, thresholds)
        values = np.concatenate([k, d])
        stats = (
            f"min {fmt_number(float(values.min()))} · median {fmt_number(float(np.median(values)))} · "
            f"max {fmt_number(float(values.max()))}"
        )
        if missing:
            note += f"; {missing:,} missing"
        cards.append(
            f'<figure class="histcard"><figcaption><b>{_esc(column)}</b> <small>{_esc(stats)}</small>'
            f"</figcaption>{svg}<p class='note'>{_esc(note)}</p></figure>"
        )
    if not cards:
        return '<p class="empty">No scores to plot.</p>'
    legend = (
        f'<p class="legend"><span class="sw" style="background:{KEPT_COLOUR}"></span>kept '
        f'<span class="sw" style="background:{DROPPED_COLOUR}"></span>dropped (stacked on kept) '
        f'<span class="sw line" style="border-color:{THRESHOLD_COLOUR}"></span>threshold in force</p>'
    )
    return legend + '<div class="hists">' + "".join(cards) + "</div>"


# ------------------------------------------------------------------------------------------- thumbnails


def sample_rows(rows: Sequence[dict], limit: int = MAX_THUMBS) -> list[dict]:
    """At most `limit` rows, spread evenly over the rows sorted by (source, start frame, clip id)."""

    def key(r: dict) -> tuple:
        start = _number(r.get("start_frame"))
        return (str(r.get("source") or ""), start if start is not None else -1.0, str(r.get("clip_id")))

    ordered = sorted(rows, key=key)
    if len(ordered) <= limit:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, limit).round().astype(int)
    return [ordered[i] for i in picks]


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


def _card(row: dict, out_dir: Path, group_reason: str | None = None) -> str:
    source = row.get("source")
    name = _file_name(source)
    t0, t1 = _number(row.get("start_time")), _number(row.get("end_time"))
    times = f"{_clock(t0)} – {_clock(t1)} s" if t0 is not None and t1 is not None else ""
    caption = row.get("caption") or ""
    thumb = _relative_url(row.get("thumb"), out_dir)
    if thumb:
        image = f'<img src="{_esc(thumb)}" alt="{_esc(row.get("clip_id"))}" loading="lazy">'
    else:
        image = '<div class="noimg">no thumbnail</div>'
    clip = _relative_url(row.get("clip_path"), out_dir)
    if clip:
        image = f'<a href="{_esc(clip)}">{image}</a>'
    reasons = _reasons(row)
    scores = []
    for score, v, failing in card_scores(row):
        if not score.card_when_zero and not v and not failing:
            continue
        text = "–" if v is None else f"{v:{score.fmt}}{score.suffix}"
        cls = ' class="bad"' if failing else ""
        scores.append(f"<span{cls}>{score.label} <b>{_esc(text)}</b></span>")
    tags = "".join(
        f'<span class="reason{" this" if r == group_reason else ""}">{_esc(r)}</span>' for r in reasons
    )
    return (
        f'<div class="card" title="{_esc(caption)}">{image}'
        f'<div class="meta"><div class="src" title="{_esc(source)}">{_esc(name)}</div>'
        f'<div class="time">{_esc(times)}</div><div class="id">{_esc(row.get("clip_id"))}</div>'
        f'<div class="scores">{"".join(scores)}</div>'
        + (f'<div class="reasons">{tags}</div>' if tags else "")
        + (f'<p class="caption">{_esc(caption)}</p>' if caption else "")
        + "</div></div>"
    )


def _grid(title: str, anchor: str, rows: list[dict], out_dir: Path, reason: str | None = None) -> str:
    shown = sample_rows(rows)
    count = f"{len(rows):,} clips" + (f", showing {len(shown)}" if len(shown) < len(rows) else "")
    body = (
        '<div class="grid">' + "".join(_card(r, out_dir, reason) for r in shown) + "</div>"
        if shown
        else '<p class="empty">None.</p>'
    )
    return (
        f'<details class="group" id="{_esc(anchor)}" open>'
        f"<summary><b>{_esc(title)}</b> <small>{_esc(count)}</small></summary>{body}</details>"
    )


def _thumbs_html(rows: Sequence[dict], out_dir: Path) -> str:
    kept = [r for r in rows if _keep(r)]
    by_reason: dict[str, list[dict]] = {}
    for row in rows:
        if _keep(row):
            continue
        reasons = _reasons(row) or ["(no reason)"]
        for reason in dict.fromkeys(reasons):
            by_reason.setdefault(reason, []).append(row)
    order = [r for r in REASONS if r in by_reason] + sorted(r for r in by_reason if r not in REASONS)
    parts = [_grid("kept", "thumbs-kept", kept, out_dir)]
    for reason in order:
        parts.append(_grid(f"dropped: {reason}", f"thumbs-{reason}", by_reason[reason], out_dir, reason))
    return "".join(parts)


# --------------------------------------------------------------------------------------- tables, page


MAX_SCATTER = 2000  # points of the motion x quality scatter (sampled like the thumbnails beyond that)


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


def _sources_html(rows: Sequence[dict]) -> str:
    table = source_table(rows)
    if not table:
        return '<p class="empty">No clips.</p>'
    heads = ["source", *(h for h, _, _ in SOURCE_COLUMNS), "top reason"]
    out = ['<table class="sources sortable"><thead><tr>']
    out += [f'<th data-sort="{i}">{_esc(h)}</th>' for i, h in enumerate(heads)]
    out.append("</tr></thead><tbody>")
    for t in table:
        t = {**t, "rate": t["kept"] / t["clips"]}
        name = _esc(_file_name(t["source"]))
        out.append(
            f'<tr><td class="src" data-v="{_esc(t["source"])}" title="{_esc(t["source"])}">{name}</td>'
        )
        for _, key, style in SOURCE_COLUMNS:
            v = t[key]
            shown = "–" if v is None else format(v, style)
            out.append(f'<td class="num" data-v="{"" if v is None else v}">{shown}</td>')
        out.append(f'<td data-v="{_esc(t["top_reason"])}">{_esc(t["top_reason"])}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _scatter_html(rows: Sequence[dict], filters: dict, width: int = 640, height: int = 300) -> str:
    """Motion score (x) against quality score (y), kept and dropped, with the two thresholds drawn."""
    scored = [
        r for r in rows if None not in (_number(r.get("motion_score")), _number(r.get("quality_score")))
    ]
    if not scored:
        return '<p class="empty">No clip has both a motion and a quality score.</p>'
    drawn = sample_rows(scored, MAX_SCATTER)
    xs = np.array([_number(r["motion_score"]) for r in scored], np.float64)
    x_hi = float(np.percentile(xs, 99.5)) if len(xs) >= 50 else float(xs.max())
    x_hi = max(x_hi, _number(filters.get("min_motion")) or 0.0, 1e-6)
    left, right, upper, lower = 46, 14, 14, 40
    pw, ph = width - left - right, height - upper - lower

    def x_of(v: float) -> float:
        return left + min(v, x_hi) / x_hi * pw

    def y_of(v: float) -> float:
        return upper + ph - min(max(v, 0.0), 10.0) / 10.0 * ph

    parts = [
        f'<svg class="scatter" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="motion score against quality score">',
        f'<line x1="{left}" x2="{left + pw}" y1="{upper + ph}" y2="{upper + ph}" class="axis"/>',
        f'<line x1="{left}" x2="{left}" y1="{upper}" y2="{upper + ph}" class="axis"/>',
    ]
    x_ticks, x_dec = _nice_ticks(0.0, x_hi, 6)
    for t in x_ticks:
        x = x_of(t)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{upper + ph}" y2="{upper + ph + 4}" class="axis"/>'
            f'<text x="{x:.1f}" y="{upper + ph + 15}" class="tick" text-anchor="middle">'
            f"{_fmt_tick(t, x_dec)}</text>"
        )
    for t in range(0, 11, 2):
        y = y_of(t)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 3:.1f}" class="tick" text-anchor="end">{t}</text>'
        )
    for r in drawn:
        m, q = _number(r["motion_score"]), _number(r["quality_score"])
        colour = KEPT_COLOUR if _keep(r) else DROPPED_COLOUR
        parts.append(
            f'<circle cx="{x_of(m):.1f}" cy="{y_of(q):.1f}" r="2.2" fill="{colour}" fill-opacity=".7"/>'
        )
    for key, vertical in (("min_motion", True), ("min_quality", False)):
        t = _number(filters.get(key))
        if t is None:
            continue
        x, y = x_of(t), y_of(t)
        line = (
            f'x1="{x:.1f}" x2="{x:.1f}" y1="{upper}" y2="{upper + ph}"'
            if vertical
            else (f'x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"')
        )
        parts.append(
            f'<g data-threshold="{key}" data-value="{t!r}"><title>{key} = {_esc(fmt_number(t))}</title>'
            f'<line {line} stroke="{THRESHOLD_COLOUR}" stroke-width="1.4" stroke-dasharray="5 3"/></g>'
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 4}" class="label" text-anchor="middle">motion_score '
        "(max optical flow, 480p pixels; the top 0.5 % at the right edge)</text>"
        f'<text x="12" y="{upper + ph / 2:.1f}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 12 {upper + ph / 2:.1f})">quality_score (0-10)</text></svg>'
    )
    note = f"{len(scored):,} clips" + (
        f", {len(drawn):,} drawn (spread evenly)" if len(drawn) < len(scored) else ""
    )
    caption = f'<figcaption class="note">{note}</figcaption>'
    return f'<figure class="histcard scatter">{"".join(parts)}{caption}</figure>'


def _summary_html(summary: dict) -> str:
    if not summary:
        return '<p class="empty">No summary.</p>'
    out = ['<table class="kv">']
    for key, value in summary.items():
        if isinstance(value, dict):
            shown = (
                " · ".join(f"{_esc(k)} <b>{_esc(fmt_number(v, str(k)))}</b>" for k, v in value.items()) or "–"
            )
        elif isinstance(value, (list, tuple)):
            shown = _esc(", ".join(fmt_number(v) if _number(v) is not None else str(v) for v in value))
        elif isinstance(value, str):
            shown = _esc(value)
        else:
            shown = _esc(fmt_number(value, str(key)))
        out.append(f"<tr><th>{_esc(key)}</th><td>{shown}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _filters_html(filters: dict) -> str:
    if not filters:
        return '<p class="empty">No thresholds given.</p>'
    out = ['<table class="kv">']
    for key, value in filters.items():
        off = value is None or value is False
        shown = "off" if off else ("on" if value is True else fmt_number(value))
        rule = next((r.describe() for r in RULES if r.setting == key), "")
        out.append(
            f'<tr class="{"off" if off else "on"}"><th>{_esc(key)}</th><td>{_esc(shown)}</td>'
            f'<td class="rule">{_esc(rule)}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def _failures_html(failures: Sequence[dict]) -> str:
    if not failures:
        return '<p class="empty">No failures.</p>'
    out = [
        f"<p>{len(failures):,} failed"
        + (f", showing the first {MAX_FAILURES:,}" if len(failures) > MAX_FAILURES else "")
        + '</p><table class="failures"><thead><tr><th>source</th><th>stage</th><th>error</th></tr></thead>'
        + "<tbody>"
    ]
    for f in failures[:MAX_FAILURES]:
        error = str(f.get("error") or "")
        if len(error) > 2000:
            error = error[:2000] + " …"
        out.append(
            f'<tr><td class="src">{_esc(f.get("source"))}</td><td>{_esc(f.get("stage"))}</td>'
            f"<td><pre>{_esc(error)}</pre></td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f7f9}
header,section{max-width:1320px;margin:0 auto;padding:12px 24px}
header{padding-top:20px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:18px 0 8px;border-bottom:1px solid #d8dce2;padding-bottom:4px}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
small{color:#656d76}
.cols{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.cols>div{flex:1 1 420px}
table{border-collapse:collapse;background:#fff}
th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
thead th{background:#eef1f4;font-weight:600}
table.kv{min-width:320px}
table.kv th{font-weight:600;white-space:nowrap}
table.kv tr.off td{color:#8c959f}
td.rule{color:#656d76;font-size:12px}
.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
table.funnel{width:100%}
table.funnel tr.total td{font-weight:600;background:#f9fafb}
td.rules{font-size:12px;color:#444c56}
.barcol{width:34%}
.bar{height:14px;background:#eef1f4;border-radius:2px;overflow:hidden;display:flex;min-width:160px}
.bar .keep{background:#2f9e5b}.bar .drop{background:#e07a5f}
.warn{color:#b42318}
.legend{margin:4px 0 8px}
.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px;border-radius:2px}
.sw.line{width:0;height:14px;border-left:2px dashed;border-radius:0;margin-right:8px}
.hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(450px,1fr));gap:12px}
.histcard{margin:0;background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:8px}
.histcard svg{width:100%;height:auto;display:block}
.note{margin:0;font-size:12px;color:#656d76}
svg .grid{stroke:#eceff2;stroke-width:1}
svg .axis{stroke:#57606a;stroke-width:1}
svg .tick{font-size:10px;fill:#57606a}
svg .label{font-size:11px;fill:#1f2328}
svg .thr{font-size:10.5px;fill:#1d4ed8;font-weight:600}
details.group{background:#fff;border:1px solid #e4e7eb;border-radius:6px;margin:10px 0;padding:6px 10px}
details.group summary{cursor:pointer;padding:4px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px;margin:8px 0 4px}
.card{border:1px solid #e4e7eb;border-radius:5px;overflow:hidden;background:#fbfbfc}
.card img,.card .noimg{display:block;width:100%;aspect-ratio:16/9;object-fit:contain;background:#20242a}
.card .noimg{color:#9aa4ae;display:flex;align-items:center;justify-content:center;font-size:12px}
.meta{padding:5px 7px;font-size:12px}
.meta .src{font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.meta .id{font-size:10.5px;color:#656d76;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.scores{display:flex;flex-wrap:wrap;column-gap:8px}
.scores span{white-space:nowrap}
.scores span.bad b{color:#b42318}
.reason{display:inline-block;background:#fde8e3;color:#9a3412;border-radius:3px;padding:0 5px;
margin:2px 3px 0 0;font-size:11px}
.reason.this{background:#b42318;color:#fff}
table.failures{width:100%}
table.failures td.src{word-break:break-all;max-width:420px}
table.failures pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px}
.empty{color:#656d76;font-style:italic}
.caption{margin:4px 0 0;font-size:11.5px;color:#33383e;display:-webkit-box;-webkit-line-clamp:3;
-webkit-box-orient:vertical;overflow:hidden}
table.sources{width:100%}
table.sources th[data-sort]{cursor:pointer;user-select:none}
table.sources th[data-sort]:hover{text-decoration:underline}
table.sources td.src{max-width:360px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
figure.scatter{max-width:760px}
svg.scatter{width:100%;height:auto;display:block}
"""
# The page's only script: sort a table by a clicked column (numbers by value), again to reverse.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th[data-sort]").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], col = +th.dataset.sort, down = th.dataset.dir !== "down";
  const key = tr => { const v = tr.cells[col].dataset.v; return v === "" || isNaN(v) ? v : +v; };
  const order = (a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (down ? -1 : 1);
  const rows = [...body.rows].sort(order);
  th.dataset.dir = down ? "down" : "up"; body.append(...rows);
}));
"""


def render_report(
    out_dir: Path, rows: Sequence[dict], failures: Sequence[dict], summary: dict, filters: dict
) -> str:
    """The report page as a string (`write_report` writes it)."""
    out_dir = Path(out_dir)
    rows = list(rows)
    failures = list(failures or [])
    summary = dict(summary or {})
    filters = dict(filters or {})
    kept = sum(1 for r in rows if _keep(r))
    title = f"Curation report: {out_dir.name}" if out_dir.name else "Curation report"
    sub = f"{len(rows):,} candidate clips, {kept:,} kept" + (
        f" ({100 * kept / len(rows):.1f} %)" if rows else ""
    )
    if failures:
        sub += f", {len(failures):,} failures"
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>",
            f"<header><h1>{_esc(title)}</h1><div><small>{_esc(sub)}</small></div>",
            '<nav><a href="#summary">summary</a><a href="#funnel">funnel</a><a href="#scores">scores</a>'
            '<a href="#sources">sources</a><a href="#thumbs">thumbnails</a>'
            '<a href="#failures">failures</a></nav></header>',
            '<section id="summary"><div class="cols">',
            f"<div><h2>Summary</h2>{_summary_html(summary)}</div>",
            f"<div><h2>Thresholds in force</h2>{_filters_html(filters)}</div></div></section>",
            '<section id="funnel"><h2>Funnel</h2>',
            "<p><small>Each dropped clip is counted once, under the first rule it fails in this order; "
            "“fails this rule at all” counts every clip with that reason.</small></p>",
            _funnel_html(rows, filters),
            "</section>",
            f'<section id="scores"><h2>Scores</h2>{_histograms_html(rows, filters)}',
            f"<h3>Motion against quality</h3>{_scatter_html(rows, filters)}</section>",
            f'<section id="sources"><h2>Sources</h2><p><small>Click a column to sort.</small></p>'
            f"{_sources_html(rows)}</section>",
            '<section id="thumbs"><h2>Clips</h2>',
            f"<p><small>At most {MAX_THUMBS} per group, spread evenly over sources and time; "
            "click a kept clip's picture to play it.</small></p>",
            _thumbs_html(rows, out_dir),
            "</section>",
            f'<section id="failures"><h2>Failures</h2>{_failures_html(failures)}</section>',
            f"<script>{SORT_SCRIPT}</script></body></html>\n",
        ]
    )


def write_report(out_dir: Path, rows: list[dict], failures: list[dict], summary: dict, filters: dict) -> Path:
    """Write `out_dir/report.html` atomically and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    with atomic_output(path) as tmp:  # not mkstemp: its files are private (0600), a report is for sharing
        tmp.write_text(render_report(out_dir, rows, failures, summary, filters), encoding="utf-8")
    return path
