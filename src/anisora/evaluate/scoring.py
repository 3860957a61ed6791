"""Scoring one video file: the metric suite, the per-case inputs the metrics need, and the result record.

`build_metrics(MetricOptions(...))` gives every metric that can run: the offline defaults, with a learned
adapter in place of a default wherever the user brings weights. A metric runs on a video when the inputs it
requires are there (an I2V metric needs the input image, mask precision a mask, PSNR a reference video).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MediaError
from ..media import VideoInfo, iter_frames, load_image, probe
from ..model.request import resolve_frame
from .cases import Case
from .metrics import (
    PSNR,
    SSIM,
    AestheticQuality,
    BackgroundConsistency,
    BrisqueImagingQuality,
    DynamicDegree,
    GuideFidelity,
    I2VBackground,
    I2VSubject,
    LearnedInterpolator,
    Metric,
    MotionMaskPrecision,
    MotionScore,
    MotionSmoothness,
    SubjectConsistency,
    TextVideoConsistency,
)

# The metrics see a video at most at 480p, the scale the motion score is reported in (BRISQUE and the feature
# extractors shrink further): 854 px on the longer side ...
WORKING_SIDE = 854
# ... and all its frames together at most this many pixels (10 s of 480p at 24 fps, ~300 MB as RGB): a longer
# video is scored smaller still, so memory is bounded whatever the video's length or size ...
WORKING_PIXELS = 854 * 480 * 240
# ... down to this longer side (128x72 for 16:9: ~10,000 frames); a video that would need less is refused.
MIN_WORKING_SIDE = 128


@dataclass(frozen=True)
class MetricOptions:
    """Local weights for the learned adapters; every one is optional (None = the offline default)."""

    dino: str | None = None  # DINO/DINOv2 directory: subject consistency and I2V subject (VBench's choice)
    clip: str | None = None  # CLIP directory: background consistency and text-video consistency
    dreamsim: str | None = None  # DreamSim torch.export archive: I2V background
    aesthetic_clip: str | None = None  # CLIP ViT-L/14 directory and ...
    aesthetic_head: str | None = None  # ... the LAION improved-aesthetic MLP head: aesthetic quality
    interpolator: str | None = None  # learned interpolator state dict and ...
    interpolator_build: str | None = None  # ... "module:Factory" building its network: motion smoothness


def build_metrics(options: MetricOptions | None = None) -> list[Metric]:
    from .features import ClipFeatures, DinoFeatures, DreamSimFeatures

    options = options or MetricOptions()
    dino = DinoFeatures(options.dino) if options.dino else None
    clip = ClipFeatures(options.clip) if options.clip else None
    dreamsim = DreamSimFeatures.from_path(options.dreamsim) if options.dreamsim else None
    if bool(options.interpolator) != bool(options.interpolator_build):
        raise InputError(
            "a learned interpolator needs both its weights and --interpolator-build module:Factory"
        )
    interpolator = (
        LearnedInterpolator.from_checkpoint(options.interpolator, options.interpolator_build)
        if options.interpolator
        else None
    )
    metrics: list[Metric] = [
        MotionSmoothness(interpolator),
        DynamicDegree(),
        MotionScore(),
        SubjectConsistency(dino),
        BackgroundConsistency(clip),
        I2VSubject(dino),
        I2VBackground(dreamsim),
        BrisqueImagingQuality(),
        MotionMaskPrecision(),
        PSNR(),
        SSIM(),
        GuideFidelity(),
    ]
    if bool(options.aesthetic_clip) != bool(options.aesthetic_head):
        raise InputError("aesthetic quality needs both a CLIP ViT-L/14 directory and the LAION head")
    if options.aesthetic_head:
        metrics.append(AestheticQuality(options.aesthetic_clip, options.aesthetic_head))
    if clip is not None:
        metrics.append(TextVideoConsistency(clip))
    return metrics


def describe_metrics(metrics: list[Metric]) -> list[dict[str, str]]:
    return [metric.describe() for metric in metrics]


def working_side(path: str | Path, info: VideoInfo) -> int:
    """The longer side, in pixels, the metrics see `info`'s video at: at most `WORKING_SIDE`, and smaller
    still when its frames would hold more than `WORKING_PIXELS` pixels together; never enlarged."""
    longest, shortest = max(info.width, info.height), min(info.width, info.height)
    frames = info.frame_count
    within_budget = math.floor(longest * math.sqrt(WORKING_PIXELS / (frames * longest * shortest)))
    side = min(longest, WORKING_SIDE, within_budget)
    if side < min(longest, MIN_WORKING_SIDE):
        most = WORKING_PIXELS * longest // (MIN_WORKING_SIDE * MIN_WORKING_SIDE * shortest)
        raise InputError(
            f"{path}: {frames} frames of {info.width}x{info.height} are too many to score at once; "
            f"score it in parts of at most {most} frames"
        )
    return side


def read_video(path: str | Path) -> tuple[np.ndarray, VideoInfo]:
    """All frames of a video file at the metrics' working size (`working_side`), (F, H, W, 3) uint8, and
    what the file holds (its own size, frame count and rate)."""
    info = probe(path)
    if info.frame_count < 1:
        raise MediaError(path, "has no video frames")
    return decode_all(path, info.frame_count, working_side(path, info)), info


def decode_all(
    path: str | Path,
    count: int,
    max_side: int,
    fit: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """The first `count` frames of a video, downsized to `max_side` (then passed through `fit`), decoded one
    at a time into one array: the video is never held twice, nor at a size larger than asked."""
    video, decoded = None, 0
    for frame in iter_frames(path, max_side=max_side):
        image = fit(frame.image) if fit else frame.image
        if video is None:
            video = np.empty((count, *image.shape), np.uint8)
        video[frame.index] = image
        decoded = frame.index + 1
        if decoded == count:
            return video
    raise MediaError(path, f"frame {decoded} could not be decoded (stream ended early)")


def case_inputs(case: Case, video: np.ndarray, fps: float) -> tuple[dict[str, Any], list[str]]:
    """The metric inputs of `case` fitted to `video` (guides and masks cropped as generation crops them),
    and notes on inputs left out."""
    from ..model.conditioning import fit_image, fitted_motion_mask

    frames, height, width = video.shape[:3]
    request = case.request
    inputs: dict[str, Any] = {"prompt": request.prompt, "fps": fps}
    notes: list[str] = []
    guides = {}
    for guide in request.guides:
        try:
            index = resolve_frame(guide.frame, frames)
        except InputError as exc:
            notes.append(f"{exc}: not scored")
            continue
        guides[index] = fit_image(load_image(guide.image), height, width)[0]
    if guides:
        inputs["guides"] = guides
    if 0 in guides:
        inputs["image"] = guides[0]
    masks = {
        key: path for key, path in (("mask", request.mask), ("motion_gt", case.moving)) if path is not None
    }
    if masks:  # drawn on the first guide as given: fitted as it is
        first = load_image(request.guides[0].image) if request.guides else video[0]
    for key, path in masks.items():
        inputs[key] = fitted_motion_mask(load_image(path, background=(0, 0, 0)), first, height, width, notes)
    if case.reference is not None:
        reference = probe(case.reference)
        if reference.frame_count != frames:
            notes.append(
                f"reference has {reference.frame_count} frames, the video {frames}: PSNR/SSIM not scored"
            )
        else:
            inputs["reference"] = _fitted_video(case.reference, reference, height, width)
    return inputs, notes


def _fitted_video(path: Path, info: VideoInfo, height: int, width: int) -> np.ndarray:
    """The video at `path` (`info`) decoded just large enough to cover height x width, then fitted to it as
    generation fits its guide images."""
    from ..model.conditioning import fit_image

    cover = max(height / info.height, width / info.width) * max(info.width, info.height)
    return decode_all(path, info.frame_count, math.ceil(cover), lambda f: fit_image(f, height, width)[0])


def score_frames(
    metrics: list[Metric], video: np.ndarray, inputs: dict[str, Any]
) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]], list[str]]:
    """Scores of every metric whose required inputs are present: (scores, details, notes)."""
    scores, details, notes = {}, {}, []
    for metric in metrics:
        if any(key not in inputs for key in metric.requires):
            continue
        given = {k: [inputs[k]] for k in (*metric.requires, *metric.accepts) if k in inputs}
        try:
            result = metric.score([video], **given)[0]
        except InputError as exc:
            notes.append(f"{metric.name}: {exc}")
            continue
        scores[metric.name] = _finite(result.value)
        if result.details:
            details[metric.name] = {k: _finite(v) for k, v in result.details.items()}
    return scores, details, notes


def score_file(
    metrics: list[Metric], video_path: str | Path, case: Case | None, record_video: str
) -> dict[str, Any]:
    """The result record (see the run directory format) of one video, scored against `case` if given."""
    started = time.perf_counter()
    video, file = read_video(video_path)
    fps = float(file.fps)
    if case is not None:
        inputs, notes = case_inputs(case, video, fps)
        info = case.info()
    else:
        inputs, notes = {"fps": fps}, []
        info = {"case": Path(video_path).stem, "task": None, "label": None, "dim": None, "prompt": None}
    height, width = video.shape[1:3]
    if (width, height) != (file.width, file.height):
        notes.insert(0, f"scored at {width}x{height} (the metrics' working size)")
    scores, details, metric_notes = score_frames(metrics, video, inputs)
    return {
        **info,
        "video": record_video,
        "frames": len(video),
        "fps": fps,
        "width": file.width,
        "height": file.height,
        "scores": scores,
        "details": details,
        "notes": notes + metric_notes,
        "seconds_score": round(time.perf_counter() - started, 3),
    }


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
