"""Curation settings: typed models with documented defaults, loaded from YAML (configs/curate.yaml).

Every section and key is optional in a user's file; unknown keys are an error, so a typo never silently
falls back to a default. Values are checked against the annotations below (types, finite numbers, ranges,
the choices in `Literal[...]`), and the scorer and captioner sections against their own configs, all when
the file is loaded: a bad value never reaches a worker. `anisora curate defaults --schema` prints the JSON
Schema of this file for editors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..typed_config import (
    NON_NEGATIVE,
    POSITIVE,
    SHARE,
    Config,
    Setting,
    dump_yaml,
    json_schema,
    load_config_file,
)

X264_PRESETS = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
]
CAPTIONER_NAMES = Literal["none", "template", "qwen2vl"]  # anisora.curate.captions.CAPTIONERS


class SceneConfig(Config):
    detector: Literal["adaptive", "content", "transnetv2"] = "adaptive"
    """adaptive / content: PySceneDetect (+ its ThresholdDetector for fades); transnetv2: learned"""
    transnet_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """TransNetV2: transition probability"""
    adaptive_threshold: Annotated[float, POSITIVE] = 3.0
    """AdaptiveDetector: frame score / mean of its neighbours"""
    min_content_val: Annotated[float, NON_NEGATIVE] = 12.0
    """AdaptiveDetector: minimum change for a cut (PySceneDetect: 15; flat cartoon sets need less)"""
    content_threshold: Annotated[float, NON_NEGATIVE] = 27.0
    """ContentDetector threshold"""
    fade_threshold: Annotated[float, NON_NEGATIVE] = 12.0
    """mean intensity under which a frame is black (fades); 0 turns fades off"""
    flash_frames: Annotated[int, Field(ge=0)] = 2
    """a cut on a run of at most this many frames after which the picture comes back (a white or black flash
    at an impact) is no cut; 0 turns this off. Applied to every detector, before `min_scene_seconds`"""
    min_scene_seconds: Annotated[float, NON_NEGATIVE] = 0.5
    """no two cuts closer than this"""
    thumbnail_width: Annotated[int, Field(ge=16)] = 160
    """detection runs on frames this wide (F1 on ToonWorld: same as at 256)"""


class ClipConfig(Config):
    min_seconds: Annotated[float, NON_NEGATIVE] = 2.0
    """shorter scenes become candidates that the duration filter drops"""
    max_seconds: Annotated[float, POSITIVE] = 20.0
    """longer scenes are split into windows of `window_seconds`"""
    window_seconds: Annotated[float, POSITIVE] = 10.0
    score_short: bool = False
    """score candidates under min_seconds too (off: they only get a duration)"""


class SamplingConfig(Config):
    sample_fps: Annotated[float, POSITIVE] = 2.0
    """anchors per second of video"""
    frames_per_clip: Annotated[int, Field(ge=1)] = 8
    """anchors handed to scorers as `frames`, evenly chosen"""
    analysis_short_side: Annotated[int, Field(ge=16)] = 480
    """analysis resolution (never upscaled)"""
    max_gap: Annotated[int, Field(ge=1)] = 4
    """frames to look ahead for the next distinct drawing"""
    held_pixel_delta: Annotated[int, Field(ge=0, le=255)] = 20
    """a thumbnail colour sample changed when it moved by more than this"""
    held_max_share: Annotated[float, SHARE] = 0.0001
    """a frame repeats the previous one when fewer samples changed"""
    max_pixels: Annotated[int, POSITIVE] = 36_000_000
    """larger videos (8K UHD is 33.2 M) are refused"""


class FilterConfig(Config):
    """Thresholds: a clip is kept when no rule drops it; each rule that fires is a reason in the manifest.
    `None` turns a rule off. Changing these needs no re-scoring (`anisora curate filter`)."""

    min_seconds: Annotated[float, NON_NEGATIVE] = 2.0
    max_seconds: Annotated[float, NON_NEGATIVE] = 20.0
    drop_static: bool = True
    """motion_static: nothing is redrawn (see scorers.motion)"""
    min_motion: Annotated[float, NON_NEGATIVE] | None = 1.0
    """motion_score in 480p pixels (official unused CLI default: 3.0)"""
    max_motion: Annotated[float, NON_NEGATIVE] | None = None
    max_text_area: Annotated[float, Field(ge=0, le=100)] | None = 5.0
    """text_scene_area: text other than subtitles, percent of the frame"""
    drop_subtitles: bool = False
    """False: keep them, the export can pick or crop a subtitle-free subset"""
    min_quality: Annotated[float, Field(ge=0, le=10)] | None = 4.0
    """quality_score (classical, offline)"""
    min_aesthetic: float | None = None
    """aesthetic_score (LAION predictor, only when its weights are given)"""
    max_border_share: Annotated[float, SHARE] | None = None
    """borders_share; None: keep, record the crop box"""
    max_duplicate_distance: Annotated[int, Field(ge=0, le=64)] | None = 8
    """near-duplicates (dedup_hash): mean Hamming distance of the clips' frame hashes (of 64 bits) at most
    this; the best-scored copy is kept"""


class CaptionConfig(Config):
    captioner: CAPTIONER_NAMES = "template"
    options: dict[str, Any] = Field(default_factory=dict)
    """the captioner's options, e.g. model_path for qwen2vl"""
    only_kept: bool = True
    """caption only clips the filters keep (a VLM is slow)"""


class OutputConfig(Config):
    crf: Annotated[int, Field(ge=0, le=51)] = 18
    preset: X264_PRESETS = "veryfast"
    fps: Annotated[float, POSITIVE] | None = None
    """re-encode kept clips to this frame rate (by timestamp); None keeps the source's"""
    max_side: Annotated[int, Field(ge=16)] | None = None
    """downscale kept clips; None keeps the size"""
    crop_borders: bool = False
    """cut letterbox/pillarbox bars off kept clips"""


class RayConfig(Config):
    """`--engine ray`: where it runs and how its stages are sized (anisora.curate.ray_pipeline); no score
    depends on these."""

    address: str | None = None
    """join this cluster ("auto", "HOST:6379", "ray://HOST:10001"); none: start a local instance with
    --workers CPUs. --ray-address overrides it"""
    model_actors: Annotated[int, Field(ge=1)] = 1
    """actors of the model stage (model scorers and captioner), each loading the models once"""
    gpus_per_actor: Annotated[float, NON_NEGATIVE] = 0.0
    """GPUs each model actor reserves (0.5: two share one; 0: it runs on CPUs)"""
    cpus_per_actor: Annotated[float, NON_NEGATIVE] = 1.0
    """CPUs each model actor reserves"""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """clips per call of a model actor"""
    max_in_flight: Annotated[int, Field(ge=1)] = 2
    """batches queued at each model actor; upstream, decoding pauses while its output waits"""


DEFAULT_SCORERS: dict[str, dict[str, Any]] = {
    "duration": {},
    "motion": {},
    "borders": {},
    "text": {},
    "quality": {},
    "dedup": {},
}


class CurateConfig(Config):
    scenes: SceneConfig = SceneConfig()
    clips: ClipConfig = ClipConfig()
    sampling: SamplingConfig = SamplingConfig()
    scorers: dict[str, dict[str, Any]] = Field(default_factory=lambda: dict(DEFAULT_SCORERS))
    """scorer name: its options ({} or nothing: its defaults); a scorer left out is off"""
    filters: FilterConfig = FilterConfig()
    captions: CaptionConfig = CaptionConfig()
    output: OutputConfig = OutputConfig()
    overlap: bool = True
    """score on other threads (one per core) while decoding (with one worker; N workers fill N cores)"""
    ray: RayConfig = RayConfig()

    @field_validator("scorers", mode="before")
    @classmethod
    def _empty_scorer_sections(cls, value: Any) -> Any:
        """`motion:` with nothing under it: the scorer's defaults."""
        return {k: {} if v is None else v for k, v in value.items()} if isinstance(value, dict) else value


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    settings: Sequence[Setting] = (),
) -> CurateConfig:
    """Defaults, updated by the YAML file at `path`, then by `overrides` (same nesting, merged per section),
    then by `--set` `settings`. The scorer list is replaced, not merged: a scorer can be left out."""
    config = load_config_file(CurateConfig, path, overrides, settings)
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


def config_schema() -> dict[str, Any]:
    """JSON Schema of a curate config file, with each registered scorer's options under `scorers`."""
    from .scorers import REGISTRY, scorer_class

    schema = json_schema(CurateConfig, "anisora curate config")
    scorers = schema["properties"]["scorers"]
    scorers.pop("additionalProperties", None)
    scorers["properties"] = {}
    for name in REGISTRY:
        options = scorer_class(name).Config.model_json_schema()
        scorers["properties"][name] = {"anyOf": [options, {"type": "null"}]}
    scorers["additionalProperties"] = False
    return schema
