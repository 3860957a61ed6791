"""The filter rules, in one table, and the keep/drop decision they make: a pure function of a row and the
thresholds. The report's funnel, histograms, threshold notes and clip cards derive from `RULES` and
`SCORES`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .config import FilterConfig


@dataclass(frozen=True)
class Score:
    """A manifest column as the report shows it."""

    column: str
    unit: str
    label: str = ""  # its name on the report's clip cards ("" = not on the cards)
    fmt: str = ".2f"
    suffix: str = ""
    card_when_zero: bool = True  # False: a zero (or unscored) value is left off a card unless a rule fails


@dataclass(frozen=True)
class Rule:
    """Drop a clip with reason `reason` when its value is below / above the `setting` threshold, or (a flag)
    when the value is true and the `setting` is on. `None` or False turns a rule off; a missing value (scorer
    off) never drops a clip. The value is the first of `columns` the row has."""

    reason: str
    stage: str  # the report funnel's stage (a stage may hold several rules)
    setting: str  # the `FilterConfig` field
    test: Literal["below", "above", "flag"]
    columns: tuple[str, ...]

    def value(self, row: dict) -> Any:
        return next((row[c] for c in self.columns if row.get(c) is not None), None)

    def fails(self, row: dict, filters: FilterConfig) -> bool:
        limit, value = getattr(filters, self.setting), self.value(row)
        if limit is None or limit is False or value is None:
            return False
        if self.test == "flag":
            return bool(value)
        return value < limit if self.test == "below" else value > limit

    def describe(self) -> str:
        """For the report: "drop when motion_score < value (low_motion)"."""
        name = self.columns[0] + "".join(f" (else {c})" for c in self.columns[1:])
        sign = {"below": " < value", "above": " > value", "flag": ""}[self.test]
        return f"drop when {name}{sign} ({self.reason})"


SCORES = {
    score.column: score
    for score in (
        Score("duration_seconds", "seconds"),
        Score("motion_score", "max optical flow, 480p pixels", "motion"),
        Score("text_scene_area", "percent of the frame, subtitles left out", "text", suffix=" %"),
        Score("text_area", "percent of the frame", "text", suffix=" %"),
        Score("quality_score", "0-10", "quality", ".1f"),
        Score("aesthetic_score", "LAION predictor", "aesthetic", card_when_zero=False),
        Score("borders_share", "share of the frame", "borders", card_when_zero=False),
        Score("motion_held_share", "share of held (repeated) frames"),
    )
}

# In the order the report's funnel charges a dropped clip to its first failing stage.
RULES = (
    Rule("too_short", "duration", "min_seconds", "below", ("duration_seconds",)),
    Rule("too_long", "duration", "max_seconds", "above", ("duration_seconds",)),
    Rule("static", "static", "drop_static", "flag", ("motion_static",)),
    Rule("low_motion", "motion", "min_motion", "below", ("motion_score",)),
    Rule("high_motion", "motion", "max_motion", "above", ("motion_score",)),
    # text other than the subtitles (the `subtitles` rule and the export handle those), else all text
    Rule("text", "text", "max_text_area", "above", ("text_scene_area", "text_area")),
    Rule("subtitles", "text", "drop_subtitles", "flag", ("text_subtitle",)),
    Rule("low_quality", "quality", "min_quality", "below", ("quality_score",)),
    Rule("low_aesthetic", "aesthetic", "min_aesthetic", "below", ("aesthetic_score",)),
    Rule("borders", "borders", "max_border_share", "above", ("borders_share",)),
    # set by `mark_duplicates` over the whole run: the clip id of a better copy of this clip
    Rule("duplicate", "duplicate", "max_duplicate_distance", "flag", ("duplicate_of",)),
)
REASONS = tuple(rule.reason for rule in RULES)


def decide(row: dict, f: FilterConfig) -> list[str]:
    """The reasons to drop a clip (empty: keep), in `RULES` order."""
    return [rule.reason for rule in RULES if rule.fails(row, f)]


def mark_duplicates(rows: list[dict], f: FilterConfig) -> list[dict]:
    """`rows` with `duplicate_of` set on each near-duplicate: the clip id of the copy kept in its place.

    Two clips are near-duplicates when the mean Hamming distance between their frame hashes (`dedup_hash`)
    is at most `f.max_duplicate_distance`. Copies are ranked best first: clips no other rule drops, then the
    higher aesthetic score (else quality score), then the longer; each clip is compared with the better clips
    kept so far. Rows without hashes, or with the rule off, are never duplicates."""
    rows = [{**row, "duplicate_of": None} for row in rows]
    if f.max_duplicate_distance is None:
        return rows
    hashed = [(i, _hash_bits(row.get("dedup_hash"))) for i, row in enumerate(rows)]
    hashed = [(i, bits) for i, bits in hashed if bits is not None]

    def rank(item: tuple[int, np.ndarray]) -> tuple:
        row = rows[item[0]]
        score = next((row[k] for k in ("aesthetic_score", "quality_score") if row.get(k) is not None), 0.0)
        return (bool(decide(row, f)), -score, -(row.get("duration_seconds") or 0.0), item[0])

    kept: dict[int, list[tuple[int, np.ndarray]]] = {}  # hashes per clip, grouped by hash count
    for i, bits in sorted(hashed, key=rank):
        group = kept.setdefault(len(bits), [])
        if group:
            others = np.stack([b for _, b in group])  # (n, frames)
            distance = np.bitwise_count(others ^ bits).mean(axis=1)
            best = int(np.argmin(distance))
            if distance[best] <= f.max_duplicate_distance:
                rows[i]["duplicate_of"] = rows[group[best][0]]["clip_id"]
                continue
        group.append((i, bits))
    return rows


def _hash_bits(text: str | None) -> np.ndarray | None:
    """'8f3a... 0c1d...' -> the hashes as uint64, or None."""
    if not text:
        return None
    try:
        return np.array([int(h, 16) for h in text.split()], np.uint64)
    except ValueError:
        return None
