"""Keep/drop decisions from cached scores: a pure function of a row and the thresholds."""

from __future__ import annotations

from .config import FilterConfig

# The order in which the report's funnel applies the rules.
REASONS = (
    "too_short",
    "too_long",
    "static",
    "low_motion",
    "high_motion",
    "text",
    "subtitles",
    "low_quality",
    "low_aesthetic",
    "borders",
)


def _below(value, limit) -> bool:
    return limit is not None and value is not None and value < limit


def _above(value, limit) -> bool:
    return limit is not None and value is not None and value > limit


def _scene_text(row: dict):
    """Text coverage without the subtitles (which the `subtitles` rule and the export handle), falling back
    to the official total when the subtitle split is not available."""
    scene = row.get("text_scene_area")
    return scene if scene is not None else row.get("text_area")


def decide(row: dict, f: FilterConfig) -> list[str]:
    """The reasons to drop a clip (empty: keep). A score that is missing (scorer off) never drops a clip."""
    duration = row.get("duration_seconds")
    rules = {
        "too_short": _below(duration, f.min_seconds),
        "too_long": _above(duration, f.max_seconds),
        "static": f.drop_static and bool(row.get("motion_static")),
        "low_motion": _below(row.get("motion_score"), f.min_motion),
        "high_motion": _above(row.get("motion_score"), f.max_motion),
        "text": _above(_scene_text(row), f.max_text_area),
        "subtitles": f.drop_subtitles and bool(row.get("text_subtitle")),
        "low_quality": _below(row.get("quality_score"), f.min_quality),
        "low_aesthetic": _below(row.get("aesthetic_score"), f.min_aesthetic),
        "borders": _above(row.get("borders_share"), f.max_border_share),
    }
    return [reason for reason in REASONS if rules[reason]]
