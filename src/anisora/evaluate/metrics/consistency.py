"""VBench subject / background consistency and VBench-I2V subject / background, over a feature extractor.

c(a, b) = max(0, cos(f_a, f_b)) with f the extractor's features (VBench clamps at 0 the same way).
VBench's models: DINO ViT-B/16 (subject, I2V subject), CLIP ViT-B/32 (background), DreamSim (I2V background).
Any extractor from `anisora.evaluate.features` fits any of the four; the offline default for all four is
`HistogramThumbnailFeatures` (classical, no weights), and `weights` says which one was used.
"""

from __future__ import annotations

import numpy as np

from ..features import DEFAULT_FEATURES, FeatureExtractor
from .base import Metric, Result


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise max(0, cos) of two (N, d) feature arrays (or one row against N), in float64, at most 1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return np.clip(cos, 0.0, 1.0)


class _FeatureMetric(Metric):
    min_frames = 2

    def __init__(self, features: FeatureExtractor | None = None):
        self.features = features if features is not None else DEFAULT_FEATURES()
        self.weights = f"{self.features.name}: {self.features.weights}"


class SubjectConsistency(_FeatureMetric):
    """VBench subject consistency: value = mean over frames t >= 1 of (c(f_t, f_0) + c(f_t, f_{t-1})) / 2,
    in [0, 1]. per_frame: that term for t = 1 .. F - 1. VBench extracts with DINO (`DinoFeatures`)."""

    name = "subject_consistency"
    version = "1"

    def score_video(self, video: np.ndarray) -> Result:
        f = self.features.embed(video)
        per_frame = (similarity(f[1:], f[:1]) + similarity(f[1:], f[:-1])) / 2.0
        return Result(float(per_frame.mean()), per_frame)


class BackgroundConsistency(SubjectConsistency):
    """VBench background consistency: the subject-consistency formula; VBench extracts with CLIP
    (`ClipFeatures`)."""

    name = "background_consistency"


class I2VSubject(_FeatureMetric):
    """VBench-I2V subject consistency with the input image I, as VBench's code computes it:
    value = 0.4 * max_t c(f_I, f_t) + 0.3 * mean_{t>=1} c(f_{t-1}, f_t) + 0.3 * min_{t>=1} c(f_{t-1}, f_t),
    in [0, 1]: the best match with the input image plus how steadily the frames follow each other.
    per_frame: c(f_I, f_t) for every frame; details: image_max, image_mean, consecutive_mean, consecutive_min.
    VBench extracts with DINO (`DinoFeatures`)."""

    name = "i2v_subject"
    version = "1"
    requires = ("image",)
    max_weight, mean_weight, min_weight = 0.4, 0.3, 0.3

    def score_video(self, video: np.ndarray, image: np.ndarray) -> Result:
        f = self.features.embed(video)
        to_image = similarity(f, self.features.embed(image[None]))
        consecutive = similarity(f[1:], f[:-1])
        value = (
            self.max_weight * to_image.max()
            + self.mean_weight * consecutive.mean()
            + self.min_weight * consecutive.min()
        )
        details = {
            "image_max": float(to_image.max()),
            "image_mean": float(to_image.mean()),
            "consecutive_mean": float(consecutive.mean()),
            "consecutive_min": float(consecutive.min()),
        }
        return Result(float(value), to_image, details)


class I2VBackground(I2VSubject):
    """VBench-I2V background consistency: the I2V-subject formula; VBench extracts with DreamSim
    (`DreamSimFeatures`)."""

    name = "i2v_background"
