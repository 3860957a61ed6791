"""Scoring one video file: the metric suite, the per-case inputs the metrics need, and the result record.

`build_metrics(MetricOptions(...))` gives every metric that can run: the offline defaults, with a learned
adapter in place of a default wherever the user brings weights. A metric runs on a video when the inputs it
requires are there (an I2V metric needs the input image, mask precision a mask, PSNR a reference video).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MediaError
from ..media import load_image, probe, read_frames
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


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video file, (F, H, W, 3) uint8, and its frame rate."""
    info = probe(path)
    if info.frame_count < 1:
        raise MediaError(path, "has no video frames")
    return read_frames(path, range(info.frame_count)), float(info.fps)


def case_inputs(case: Case, video: np.ndarray, fps: float) -> tuple[dict[str, Any], list[str]]:
    """The metric inputs of `case` fitted to `video` (guides and masks cropped as generation crops them),
    and notes on inputs left out."""
    from ..model.conditioning import fit_image, fitted_motion_mask

    frames, height, width = video.shape[:3]
    inputs: dict[str, Any] = {"prompt": case.prompt, "fps": fps}
    notes: list[str] = []
    guides = {}
    for guide in case.guides:
        index = frames - 1 if guide.frame == "last" else int(guide.frame)
        if not -frames <= index < frames:
            notes.append(f"guide frame {guide.frame} is outside the video's {frames} frames: not scored")
            continue
        guides[index % frames] = fit_image(load_image(guide.image), height, width)[0]
    if guides:
        inputs["guides"] = guides
    if 0 in guides:
        inputs["image"] = guides[0]
    if case.mask is not None:
        first = load_image(case.guides[0].image) if case.guides else video[0]
        mask = load_image(case.mask, background=(0, 0, 0))
        inputs["mask"] = fitted_motion_mask(mask, first, height, width, notes)
    if case.reference is not None:
        reference, _ = read_video(case.reference)
        if len(reference) != frames:
            notes.append(f"reference has {len(reference)} frames, the video {frames}: PSNR/SSIM not scored")
        else:
            inputs["reference"] = np.stack([fit_image(f, height, width)[0] for f in reference])
    return inputs, notes


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
    video, fps = read_video(video_path)
    if case is not None:
        inputs, notes = case_inputs(case, video, fps)
        info = case.info()
    else:
        inputs, notes = {"fps": fps}, []
        info = {"case": Path(video_path).stem, "task": None, "label": None, "dim": None, "prompt": None}
    scores, details, metric_notes = score_frames(metrics, video, inputs)
    return {
        **info,
        "video": record_video,
        "frames": len(video),
        "fps": fps,
        "width": int(video.shape[2]),
        "height": int(video.shape[1]),
        "scores": scores,
        "details": details,
        "notes": notes + metric_notes,
        "seconds_score": round(time.perf_counter() - started, 3),
    }


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
