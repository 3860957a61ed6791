"""The geometry of the reports' charts: horizontal bar charts, stacked histograms and scatter plots.

Each builder returns plain data (positions in SVG user units, rounded to 0.1, and the texts to show) that the
macros of `charts.html` draw as inline SVG; the templates escape every text. Values outside an axis are drawn
at its ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

BAR_COLOUR = "#4c6ef5"
BEST_COLOUR = "#2f9e5b"
HISTOGRAM_BINS = 30


# ------------------------------------------------------------------------------------------------ axes


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 and 10 times a power of ten that is at least `raw` (> 0)."""
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-12))


def tick_values(lo: float, hi: float, count: int) -> tuple[list[float], int]:
    """About `count` round tick positions within [lo, hi] and the decimals to print them with."""
    if hi <= lo:
        return [lo], 2
    step = nice_step((hi - lo) / count)
    ticks = []
    t = math.ceil(lo / step - 1e-9) * step
    while t <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks, step_decimals(step)


def step_decimals(step: float) -> int:
    """Decimals that print every multiple of a `nice_step` exactly."""
    power = math.floor(math.log10(step) + 1e-9)
    return max(0, -power + (1 if round(step / 10**power, 6) == 2.5 else 0))


def tick_label(value: float, decimals: int) -> str:
    return f"{value:.3g}" if abs(value) >= 1e5 else f"{value:.{decimals}f}"


@dataclass(frozen=True)
class Scale:
    """Maps values in [lo, hi] linearly onto positions from `start` to `end` (either way round)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        share = (min(max(value, self.lo), self.hi) - self.lo) / (self.hi - self.lo)
        return round(self.start + share * (self.end - self.start), 1)


@dataclass(frozen=True)
class Tick:
    at: float  # position
    label: str


def ticks(scale: Scale, count: int, integers: bool = False) -> list[Tick]:
    values, decimals = tick_values(scale.lo, scale.hi, count)
    if integers:
        return [Tick(scale(v), f"{int(v):,}") for v in values if v == int(v)]
    return [Tick(scale(v), tick_label(v, decimals)) for v in values]


@dataclass(frozen=True)
class Frame:
    """A plot area inside an SVG of `width` x `height`, with margins for the tick labels and axis labels."""

    width: int
    height: int
    left: float
    right: float  # the plot's right edge
    top: float
    bottom: float  # the plot's base line
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: str
    y_label: str

    @property
    def middle_x(self) -> float:
        return round((self.left + self.right) / 2, 1)

    @property
    def middle_y(self) -> float:
        return round((self.top + self.bottom) / 2, 1)


@dataclass(frozen=True)
class Marker:
    """A named value drawn as a dashed line across the plot (a threshold), with its label."""

    name: str
    value: float
    shown: str  # the value for people
    at: float  # position along its axis
    label_at: tuple[float, float] = (0.0, 0.0)  # (x, y) of its label where one is drawn (histograms)
    anchor: str = "start"


# ------------------------------------------------------------------------------------------------ bars


@dataclass(frozen=True)
class Bar:
    label: str
    short: str  # the label cut to fit its column
    shown: str  # the value as text ("n/a" when missing)
    y: float
    length: float | None  # None: no value
    colour: str
    capped: bool  # at the cap (e.g. 100 dB PSNR of identical frames): drawn broken at the axis end
    break_x: float | None  # where a capped bar is broken


@dataclass(frozen=True)
class BarChart:
    kind: ClassVar[str] = "bars"
    name: str
    width: int
    height: int
    left: float  # where bars start
    value_x: float  # where the value texts start
    row_height: int
    top: float
    bottom: float
    ticks: list[Tick]
    bars: list[Bar]
    cap_label: str  # on a capped bar
    note: str  # under the chart: what the broken bars mean, when there are any


def bar_chart(
    name: str,
    rows: Sequence[tuple[str, float | None, str]],
    best: Sequence[str] = (),
    bounded: bool = True,
    cap: float | None = None,
    cap_label: str = "capped",
) -> BarChart:
    """One horizontal bar per (label, value, value as text). `bounded` values lie on a fixed 0-1 axis; others
    on an axis from 0 to a round number at or above the largest value, leaving out values at or above `cap`
    (a stand-in for infinity, which `cap_label` names): such a bar runs to the axis end, broken, so it does
    not flatten the others. Rows in `best` are drawn in the highlight colour."""
    capped = [cap is not None and v is not None and v >= cap for _, v, _ in rows]
    below_cap = [v for (_, v, _), c in zip(rows, capped, strict=True) if v is not None and not c]
    if not below_cap:  # nothing else to set the axis: the cap is an ordinary value
        capped = [False] * len(rows)
    largest = max(below_cap or [v for _, v, _ in rows if v is not None] or [0.0])
    if bounded or largest <= 0:
        hi, count = 1.0, 4
    else:
        step = nice_step(largest / 4)
        count = max(1, math.ceil(largest / step - 1e-9))
        hi = count * step
    label_w, value_w, row_h, top, bottom, width = 118, 58, 18, 6, 22, 380
    scale = Scale(0.0, hi, label_w, width - value_w)
    bars = []
    for i, ((label, value, shown), at_cap) in enumerate(zip(rows, capped, strict=True)):
        bars.append(
            Bar(
                label=label,
                short=label if len(label) <= 16 else label[:15] + "…",  # 16 characters fit the label column
                shown=shown if value is not None else "n/a",
                y=top + i * row_h,
                length=None if value is None else max(round(scale(value) - label_w, 1), 0.5),
                colour=BEST_COLOUR if label in best else BAR_COLOUR,
                capped=at_cap,
                break_x=round(width - value_w - 22, 1) if at_cap else None,
            )
        )
    base = top + row_h * len(rows)
    note = f"broken bars: {cap_label} ({cap:g}, off the axis)" if any(capped) else ""
    return BarChart(
        name=name,
        width=width,
        height=base + bottom,
        left=label_w,
        value_x=width - value_w + 4,
        row_height=row_h,
        top=top,
        bottom=base,
        ticks=[
            Tick(scale(v), tick_label(v, step_decimals(hi / count))) for v in np.linspace(0, hi, count + 1)
        ],
        bars=bars,
        cap_label=cap_label,
        note=note,
    )


# ------------------------------------------------------------------------------------------- histograms


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class Bin:
    x: float
    width: float
    tip: str
    segments: list[Segment]


@dataclass(frozen=True)
class Histogram:
    kind: ClassVar[str] = "histogram"
    name: str
    frame: Frame
    bins: list[Bin]
    markers: list[Marker]
    note: str


def histogram(
    name: str,
    series: Sequence[tuple[str, np.ndarray, str]],
    markers: Sequence[tuple[str, float, str]],
    x_label: str,
    y_label: str,
    bins: int = HISTOGRAM_BINS,
    width: int = 440,
    height: int = 210,
) -> Histogram:
    """Stacked histogram of (name, values, colour) series (the first at the bottom; at least one value in
    all), with (name, value, value as text) markers drawn as labelled lines, and a note on the counts.

    The x range covers the values and the markers; when a few outliers would squeeze the rest into a couple of
    bins, the range is the 0.5-99.5 percentile range and the outliers are counted in the edge bins (said in
    the note)."""
    values = np.concatenate([v for _, v, _ in series])
    lo, hi = float(values.min()), float(values.max())
    outliers = 0
    if values.size >= 50:
        q_lo, q_hi = (float(q) for q in np.percentile(values, [0.5, 99.5]))
        if q_hi > q_lo and hi - lo > 4 * (q_hi - q_lo):
            lo, hi = q_lo, q_hi
            outliers = int(np.count_nonzero((values < lo) | (values > hi)))
    for _, t, _ in markers:
        lo, hi = min(lo, t), max(hi, t)
    if hi <= lo:
        pad = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(np.clip(v, lo, hi), bins=edges)[0] for _, v, _ in series]
    top = max(int(np.sum(counts, axis=0).max()), 1)

    left, right, upper, lower = 46, width - 14, 26, height - 40
    x, y = Scale(lo, hi, left, right), Scale(0.0, top, lower, upper)
    frame = Frame(
        width, height, left, right, upper, lower, ticks(x, 6), ticks(y, 4, integers=True), x_label, y_label
    )
    step = (right - left) / bins
    drawn = []
    for i in range(bins):
        stacked, segments = 0, []
        for (_, _, colour), c in zip(series, counts, strict=True):
            if c[i]:
                segments.append(Segment(y(stacked + c[i]), round(y(stacked) - y(stacked + c[i]), 1), colour))
                stacked += int(c[i])
        parts = ", ".join(f"{int(c[i]):,} {word}" for (word, _, _), c in zip(series, counts, strict=True))
        tip = f"{tick_label(edges[i], 4)} – {tick_label(edges[i + 1], 4)}: {parts}"
        drawn.append(Bin(round(left + i * step + 0.5, 1), round(max(step - 1, 0.5), 1), tip, segments))
    placed = []
    for i, (marker, t, shown) in enumerate(sorted(markers, key=lambda m: m[1])):
        at = x(t)
        anchor, dx = ("end", -4) if at > left + (right - left) * 0.6 else ("start", 4)
        placed.append(Marker(marker, t, shown, at, (round(at + dx, 1), upper - 4 + 11 * (i % 2)), anchor))
    note = f"{values.size:,} values: " + ", ".join(f"{v.size:,} {word}" for word, v, _ in series)
    if outliers:
        note += f"; {outliers:,} outliers beyond the shown range are counted in the edge bins"
    return Histogram(name, frame, drawn, placed, note)


# --------------------------------------------------------------------------------------------- scatter


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    colour: str


@dataclass(frozen=True)
class Scatter:
    kind: ClassVar[str] = "scatter"
    frame: Frame
    points: list[Point]
    x_markers: list[Marker]  # vertical lines
    y_markers: list[Marker]  # horizontal lines


def scatter(
    points: Sequence[tuple[float, float, str]],
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    x_markers: Sequence[tuple[str, float, str]],
    y_markers: Sequence[tuple[str, float, str]],
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 300,
) -> Scatter:
    """(x, y, colour) points on fixed ranges (points outside sit on the edges), with (name, value, value as
    text) markers drawn as lines across the plot."""
    left, right, upper, lower = 46, width - 14, 14, height - 40
    x, y = Scale(*x_range, left, right), Scale(*y_range, lower, upper)
    frame = Frame(width, height, left, right, upper, lower, ticks(x, 6), ticks(y, 5), x_label, y_label)
    return Scatter(
        frame,
        [Point(x(px), y(py), colour) for px, py, colour in points],
        [Marker(name, v, shown, x(v)) for name, v, shown in x_markers],
        [Marker(name, v, shown, y(v)) for name, v, shown in y_markers],
    )
