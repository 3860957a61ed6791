"""Per-frame quality: aesthetic (LAION predictor), imaging quality (BRISQUE), text-video consistency (CLIP).

Frames used: all, or `max_frames` evenly spread (the curation's `spread`) when that is set above 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...curate.scorers.aesthetic import AestheticConfig, LaionAestheticScorer
from ...curate.scorers.base import spread
from ...curate.scorers.quality import QualityConfig, QualityScorer
from ...errors import InputError
from ..features import ClipFeatures
from .base import Metric, Result
from .consistency import similarity


class AestheticQuality(Metric):
    """VBench aesthetic quality: value = mean over frames of LAION aesthetic predictor / 10 (roughly [0, 1]).
    The predictor is the curation's `LaionAestheticScorer`: the "improved aesthetic predictor" head
    (sac+logos+ava1-l14-linearMSE.pth, an MLP) on CLIP ViT-L/14, both from local paths. VBench itself uses the
    older single-layer head (sa_0_4_vit_l_14_linear.pth), which this adapter does not load. No offline default
    exists: without weights it raises InputError. per_frame: predictor / 10 of each used frame."""

    name = "aesthetic_quality"
    version = "1"

    def __init__(self, clip_path: str | Path = "", head_path: str | Path = "", max_frames: int = 0, **kwargs):
        self.scorer = LaionAestheticScorer(
            AestheticConfig(clip_path=str(clip_path), head_path=str(head_path), **kwargs)
        )
        self.max_frames = max_frames
        self.weights = f"LAION improved aesthetic predictor {head_path} on CLIP {clip_path}"

    def score_video(self, video: np.ndarray) -> Result:
        per_frame = self.scorer.predict(video[spread(len(video), self.max_frames)]) / 10.0
        return Result(float(per_frame.mean()), per_frame)


class BrisqueImagingQuality(Metric):
    """Imaging quality, offline default: BRISQUE (Mittal et al. 2012) in place of VBench's MUSIQ, which no
    package ships; the `brisque` package and its bundled SVR model, via the curation's `QualityScorer` (black
    bars trimmed, frames resized to `max_side`). value = mean over used frames of
    clip((100 - BRISQUE) / 100, 0, 1); NaN when BRISQUE is undefined on every used frame (flat frames).
    BRISQUE is trained on natural photos and marks flat cartoon shading down (clean ToonWorld frames score
    75-125, so 0-0.25 here): compare models with it, not with published MUSIQ numbers. per_frame: the [0, 1]
    value of each used frame (NaN where undefined); details: brisque (mean raw score, lower is better) and
    quality_score (mean of the curation's classical 0-10 score: sharpness, noise, exposure, colour,
    BRISQUE)."""

    name = "imaging_quality_brisque"
    version = "1"
    weights = "offline default: BRISQUE (brisque package's bundled SVR model), not VBench's MUSIQ"

    def __init__(self, max_frames: int = 8, max_side: int = 256):
        self.scorer = QualityScorer(QualityConfig(max_side=max_side))
        self.max_frames = max_frames

    def score_video(self, video: np.ndarray) -> Result:
        frames = [self.scorer.frame_scores(frame) for frame in video[spread(len(video), self.max_frames)]]
        raw = np.array([np.nan if f["brisque"] is None else f["brisque"] for f in frames], np.float64)
        per_frame = np.clip((100.0 - raw) / 100.0, 0.0, 1.0)
        details = {"quality_score": float(np.mean([f["score"] for f in frames]))}
        if np.isnan(raw).all():
            return Result(float("nan"), per_frame, {"brisque": float("nan"), **details})
        return Result(float(np.nanmean(per_frame)), per_frame, {"brisque": float(np.nanmean(raw)), **details})


class TextVideoConsistency(Metric):
    """Text-video consistency (VBench "overall consistency" uses ViCLIP on 8 frames; this is the
    CLIP-per-frame form): value = mean over used frames of cos(CLIP image embedding, CLIP text embedding of
    the prompt), the raw cosine (about 0.2-0.35 for matching pairs with real CLIP). per_frame: the cosine of
    each used frame. Needs a local CLIP directory (`ClipFeatures`); no offline default (no package ships
    CLIP weights)."""

    name = "text_video_consistency"
    version = "1"
    requires = ("prompt",)

    def __init__(self, clip: ClipFeatures | str | Path | None = None, max_frames: int = 0):
        if clip is None or clip == "":
            raise InputError(
                "text_video_consistency is unavailable: it needs a local CLIP directory "
                "(save_pretrained layout, e.g. a copy of openai/clip-vit-base-patch32); "
                "no offline default exists"
            )
        self.clip = clip if isinstance(clip, ClipFeatures) else ClipFeatures(clip)
        self.max_frames = max_frames
        self.weights = f"clip: {self.clip.weights}"

    def score_video(self, video: np.ndarray, prompt: str) -> Result:
        frames = self.clip.embed(video[spread(len(video), self.max_frames)])
        text = self.clip.embed_text([prompt])
        cos = (frames.astype(np.float64) @ text[0].astype(np.float64)).clip(-1.0, 1.0)
        return Result(float(cos.mean()), cos)


__all__ = ["AestheticQuality", "BrisqueImagingQuality", "TextVideoConsistency", "similarity"]
