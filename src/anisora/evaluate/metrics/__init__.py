"""Evaluation metrics (VBench dimensions, motion score, motion-mask precision, fidelity, lip sync).

The interface is in base.py.

`METRICS` maps each metric's name to its class; `offline_metrics()` builds the ones that need no weights.
"""

from __future__ import annotations

from .base import INPUTS, Metric, Result, check_videos
from .consistency import BackgroundConsistency, I2VBackground, I2VSubject, SubjectConsistency, similarity
from .fidelity import PSNR, SSIM, GuideFidelity, psnr, ssim
from .flow import Flow, FlowInterpolator, LearnedInterpolator
from .lip_sync import LipSync
from .motion import DynamicDegree, MotionMaskPrecision, MotionScore, MotionSmoothness
from .quality import AestheticQuality, BrisqueImagingQuality, TextVideoConsistency

METRICS: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (
        MotionSmoothness,
        DynamicDegree,
        MotionScore,
        SubjectConsistency,
        BackgroundConsistency,
        I2VSubject,
        I2VBackground,
        AestheticQuality,
        BrisqueImagingQuality,
        TextVideoConsistency,
        MotionMaskPrecision,
        PSNR,
        SSIM,
        GuideFidelity,
        LipSync,
    )
}
NEEDS_WEIGHTS = ("aesthetic_quality", "text_video_consistency")


def offline_metrics() -> list[Metric]:
    """Every metric that works without weights, with its offline default."""
    return [cls() for name, cls in METRICS.items() if name not in NEEDS_WEIGHTS]


__all__ = [
    "INPUTS",
    "METRICS",
    "NEEDS_WEIGHTS",
    "PSNR",
    "SSIM",
    "AestheticQuality",
    "BackgroundConsistency",
    "BrisqueImagingQuality",
    "DynamicDegree",
    "Flow",
    "FlowInterpolator",
    "GuideFidelity",
    "I2VBackground",
    "I2VSubject",
    "LearnedInterpolator",
    "LipSync",
    "Metric",
    "MotionMaskPrecision",
    "MotionScore",
    "MotionSmoothness",
    "Result",
    "SubjectConsistency",
    "TextVideoConsistency",
    "check_videos",
    "offline_metrics",
    "psnr",
    "similarity",
    "ssim",
]
