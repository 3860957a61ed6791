"""Curation settings: typed dataclasses with documented defaults, loaded from YAML (configs/curate.yaml).

Every section and key is optional in a user's file; unknown keys are an error, so a typo never silently
falls back to a default. Values are checked against the annotations below (types, finite numbers, the ranges
in `Annotated[..., Range]`, the choices in `Literal[...]`), and the scorer and captioner sections against
their own configs, all when the file is loaded: a bad value never reaches a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from ..typed_config import NON_NEGATIVE, POSITIVE, SHARE, Range, build, dump_yaml, read_yaml

X264_PRESETS = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
]


@dataclass(frozen=True)
class SceneConfig:
    # adaptive / content: PySceneDetect (+ its ThresholdDetector for fades); transnetv2: the learned detector
    detector: Literal["adaptive", "content", "transnetv2"] = "adaptive"
    transnet_threshold: Annotated[float, Range(gt=0, lt=1)] = 0.5  # TransNetV2: transition probability
    # AdaptiveDetector: frame score / mean of its neighbours
    adaptive_threshold: Annotated[float, POSITIVE] = 3.0
    # AdaptiveDetector: minimum change for a cut (PySceneDetect: 15; flat cartoon sets need less)
    min_content_val: Annotated[float, NON_NEGATIVE] = 12.0
    content_threshold: Annotated[float, NON_NEGATIVE] = 27.0  # ContentDetector threshold
    # mean intensity under which a frame is black (fades); 0 turns fades off
    fade_threshold: Annotated[float, NON_NEGATIVE] = 12.0
    min_scene_seconds: Annotated[float, NON_NEGATIVE] = 0.5
    # detection runs on frames this wide (F1 on ToonWorld: same as at 256)
    thumbnail_width: Annotated[int, Range(ge=16)] = 160


@dataclass(frozen=True)
class ClipConfig:
    # shorter scenes become candidates that the duration filter drops
    min_seconds: Annotated[float, NON_NEGATIVE] = 2.0
    max_seconds: Annotated[float, POSITIVE] = 20.0  # longer scenes are split into windows of `window_seconds`
    window_seconds: Annotated[float, POSITIVE] = 10.0
    score_short: bool = False  # score candidates under min_seconds too (off: they only get a duration)


@dataclass(frozen=True)
class SamplingConfig:
    sample_fps: Annotated[float, POSITIVE] = 2.0  # anchors per second of video
    frames_per_clip: Annotated[int, Range(ge=1)] = 8  # anchors handed to scorers as `frames`, evenly chosen
    analysis_short_side: Annotated[int, Range(ge=16)] = 480  # analysis resolution (never upscaled)
    max_gap: Annotated[int, Range(ge=1)] = 4  # frames to look ahead for the next distinct drawing
    # a thumbnail colour sample changed when it moved by more than this
    held_pixel_delta: Annotated[int, Range(ge=0, le=255)] = 20
    # a frame repeats the previous one when fewer samples changed
    held_max_share: Annotated[float, SHARE] = 0.0001
    max_pixels: Annotated[int, POSITIVE] = 36_000_000  # larger videos (8K UHD is 33.2 M) are refused


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds: a clip is kept when no rule drops it; each rule that fires is a reason in the manifest.
    `None` turns a rule off. Changing these needs no re-scoring (`anisora curate filter`)."""

    min_seconds: Annotated[float, NON_NEGATIVE] = 2.0
    max_seconds: Annotated[float, NON_NEGATIVE] = 20.0
    drop_static: bool = True  # motion_static: nothing is redrawn (see scorers.motion)
    # motion_score in 480p pixels (official unused CLI default: 3.0)
    min_motion: Annotated[float, NON_NEGATIVE] | None = 1.0
    max_motion: Annotated[float, NON_NEGATIVE] | None = None
    # text_scene_area: text other than subtitles, percent of the frame
    max_text_area: Annotated[float, Range(ge=0, le=100)] | None = 5.0
    drop_subtitles: bool = False  # False: keep them, the export can pick or crop a subtitle-free subset
    min_quality: Annotated[float, Range(ge=0, le=10)] | None = 4.0  # quality_score (classical, offline)
    min_aesthetic: float | None = None  # aesthetic_score (LAION predictor, only when its weights are given)
    max_border_share: Annotated[float, SHARE] | None = None  # borders_share; None: keep, record the crop box
    # near-duplicates (dedup_hash): mean Hamming distance of the clips' frame hashes (of 64 bits) at most
    # this; the best-scored copy is kept (`filters.mark_duplicates`)
    max_duplicate_distance: Annotated[int, Range(ge=0, le=64)] | None = 8


@dataclass(frozen=True)
class CaptionConfig:
    captioner: str = "template"  # none | template | qwen2vl
    options: dict[str, Any] = field(default_factory=dict)  # e.g. model_path for qwen2vl
    only_kept: bool = True  # caption only clips the filters keep (a VLM is slow)


@dataclass(frozen=True)
class OutputConfig:
    crf: Annotated[int, Range(ge=0, le=51)] = 18
    preset: X264_PRESETS = "veryfast"
    # re-encode kept clips to this frame rate (by timestamp); None keeps the source's
    fps: Annotated[float, POSITIVE] | None = None
    max_side: Annotated[int, Range(ge=16)] | None = None  # downscale kept clips; None keeps the size
    crop_borders: bool = False  # cut letterbox/pillarbox bars off kept clips


DEFAULT_SCORERS: dict[str, dict[str, Any]] = {
    "duration": {},
    "motion": {},
    "borders": {},
    "text": {},
    "quality": {},
    "dedup": {},
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
    if isinstance(values.get("scorers"), dict):  # `motion:` with nothing under it: the scorer's defaults
        values["scorers"] = {k: v or {} for k, v in values["scorers"].items()}
    config = build(CurateConfig, values)  # the scorer list is replaced, not merged: a scorer can be left out
    _check_components(config)
    return config


def _check_components(config: CurateConfig) -> None:
    """Scorer and captioner options are typed by their classes' configs: checked now, not in a worker."""
    from .captions import captioner_class
    from .scorers import scorer_class

    for name, options in config.scorers.items():
        scorer_class(name).config_from(options)
    captioner_class(config.captions.captioner).config_from(config.captions.options)


def dump_config(config: CurateConfig) -> str:
    return dump_yaml(config)
