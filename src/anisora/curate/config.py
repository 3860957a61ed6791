"""Curation settings: typed dataclasses with documented defaults, loaded from YAML (configs/curate.yaml).

Every section and key is optional in a user's file; unknown keys are an error, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..typed_config import build, dump_yaml, read_yaml


@dataclass(frozen=True)
class SceneConfig:
    detector: str = "adaptive"  # adaptive | content
    adaptive_threshold: float = 3.0  # AdaptiveDetector: frame score / mean of its neighbours
    min_content_val: float = (
        12.0  # AdaptiveDetector: minimum change for a cut (PySceneDetect: 15; flat cartoon sets need less)
    )
    content_threshold: float = 27.0  # ContentDetector threshold
    fade_threshold: float = 12.0  # mean intensity under which a frame is black (fades); 0 turns fades off
    min_scene_seconds: float = 0.5
    thumbnail_width: int = 160  # detection runs on frames this wide (F1 on ToonWorld: same as at 256)


@dataclass(frozen=True)
class ClipConfig:
    min_seconds: float = 2.0  # shorter scenes become candidates that the duration filter drops
    max_seconds: float = 20.0  # longer scenes are split into windows of `window_seconds`
    window_seconds: float = 10.0
    score_short: bool = False  # score candidates under min_seconds too (off: they only get a duration)


@dataclass(frozen=True)
class SamplingConfig:
    sample_fps: float = 2.0  # anchors per second of video
    frames_per_clip: int = 8  # anchors handed to scorers as `frames`, evenly chosen
    analysis_short_side: int = 480  # analysis resolution (never upscaled)
    max_gap: int = 4  # frames to look ahead for the next distinct drawing
    held_pixel_delta: int = 20  # a thumbnail colour sample changed when it moved by more than this
    held_max_share: float = 0.0001  # a frame repeats the previous one when fewer samples changed
    max_pixels: int = 36_000_000  # larger videos (8K UHD is 33.2 M) are refused as failures


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds: a clip is kept when no rule drops it; each rule that fires is a reason in the manifest.
    `None` turns a rule off. Changing these needs no re-scoring (`anisora curate filter`)."""

    min_seconds: float = 2.0
    max_seconds: float = 20.0
    drop_static: bool = True  # motion_static: nothing is redrawn (see scorers.motion)
    min_motion: float | None = 1.0  # motion_score in 480p pixels (official unused CLI default: 3.0)
    max_motion: float | None = None
    max_text_area: float | None = 5.0  # text_scene_area: text other than subtitles, percent of the frame
    drop_subtitles: bool = False  # False: keep them, the export can pick or crop a subtitle-free subset
    min_quality: float | None = 4.0  # quality_score, 0-10 (classical, offline default)
    min_aesthetic: float | None = None  # aesthetic_score (LAION predictor, only when its weights are given)
    max_border_share: float | None = None  # borders_share; None: keep and record the crop box


@dataclass(frozen=True)
class CaptionConfig:
    captioner: str = "template"  # none | template | qwen2vl
    options: dict[str, Any] = field(default_factory=dict)  # e.g. model_path for qwen2vl
    only_kept: bool = True  # caption only clips the filters keep (a VLM is slow)


@dataclass(frozen=True)
class OutputConfig:
    crf: int = 18
    preset: str = "veryfast"
    fps: float | None = (
        None  # re-encode kept clips to this frame rate (by timestamp); None keeps the source's
    )
    max_side: int | None = None  # downscale kept clips; None keeps the size
    crop_borders: bool = False  # cut letterbox/pillarbox bars off kept clips


DEFAULT_SCORERS: dict[str, dict[str, Any]] = {
    "duration": {},
    "motion": {},
    "borders": {},
    "text": {},
    "quality": {},
}


@dataclass(frozen=True)
class CurateConfig:
    scenes: SceneConfig = SceneConfig()
    clips: ClipConfig = ClipConfig()
    sampling: SamplingConfig = SamplingConfig()
    scorers: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_SCORERS))
    filters: FilterConfig = FilterConfig()
    captions: CaptionConfig = CaptionConfig()
    output: OutputConfig = OutputConfig()
    overlap: bool = True  # score on a second thread while decoding (with one worker; N workers fill N cores)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> CurateConfig:
    """Defaults, updated by the YAML file at `path`, then by `overrides` (same nesting)."""
    values: dict[str, Any] = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    config = build(CurateConfig, values, "config")
    if "scorers" in values:  # the scorer list is replaced, not merged: a user can switch scorers off
        config = dataclasses.replace(config, scorers={k: v or {} for k, v in values["scorers"].items()})
    return config


def dump_config(config: CurateConfig) -> str:
    return dump_yaml(config)
