"""Fidelity to ground truth: PSNR and SSIM per frame, and at the guide frames.

PSNR = 10 log10(255^2 / MSE) over all pixels and channels (`anisora.media.psnr`), capped at `cap` dB (100 by
default): identical frames give exactly the cap instead of infinity.

SSIM (Wang et al. 2004) on luma Y = 0.299 R + 0.587 G + 0.114 B (float, not rounded), 11x11 Gaussian window
with sigma 1.5 (cv2.GaussianBlur), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, population (co)variances; the
map is averaged over pixels whose window lies inside the frame (5-pixel border dropped; the whole map for
frames of side 11 or less), as the reference implementation and scikit-image's gaussian_weights=True do.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ...media import psnr
from .base import Metric, Result

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_LUMA = np.array([[0.299, 0.587, 0.114]], np.float64)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luma of two uint8 RGB images of one shape, in [-1, 1] (1 = identical)."""
    x, y = (cv2.transform(im.astype(np.float64), _LUMA) for im in (a, b))

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    smap = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
    if min(smap.shape) > 11:
        smap = smap[5:-5, 5:-5]
    return float(smap.mean())


class PSNR(Metric):
    """Per-frame PSNR against the reference video; value = mean over frames (dB, capped; see module).

    details: "unguided", the mean over the frames not given as guides (with guides; a given frame comes back
    near the cap and would hide the in-betweens), and "moving", the same frames' PSNR over the pixels of the
    ground-truth motion mask alone (with `motion_gt`; where a cross-fade ghosts). NaN when no frame is left.
    """

    name = "psnr"
    version = "2"
    requires = ("reference",)
    accepts = ("guides", "motion_gt")

    def __init__(self, cap: float = 100.0):
        self.cap = cap

    def score_video(
        self,
        video: np.ndarray,
        reference: np.ndarray,
        guides: dict[int, np.ndarray] | None = None,
        motion_gt: np.ndarray | None = None,
    ) -> Result:
        per_frame = np.array([psnr(a, b, self.cap) for a, b in zip(video, reference, strict=True)])
        free = [i for i in range(len(video)) if i not in (guides or {})]
        details = {}
        if guides is not None:
            details["unguided"] = float(per_frame[free].mean()) if free else math.nan
        if motion_gt is not None:
            inside = free if motion_gt.any() else []
            moving = [psnr(video[i][motion_gt], reference[i][motion_gt], self.cap) for i in inside]
            details["moving"] = float(np.mean(moving)) if moving else math.nan
        return Result(float(per_frame.mean()), per_frame, details)


class SSIM(Metric):
    """Per-frame SSIM (luma) against the reference video; value = mean over frames."""

    name = "ssim"
    version = "1"
    requires = ("reference",)

    def score_video(self, video: np.ndarray, reference: np.ndarray) -> Result:
        per_frame = np.array([ssim(a, b) for a, b in zip(video, reference, strict=True)])
        return Result(float(per_frame.mean()), per_frame)


class GuideFidelity(Metric):
    """How faithfully the video reproduces its guide frames: value = mean over guides of PSNR(video[i], guide)
    (dB, capped). per_frame: PSNR of each guide in ascending frame order; details: ssim (mean SSIM at the
    guides) and psnr@<i> for each guide index i (negative indices are taken from the end)."""

    name = "guide_fidelity"
    version = "1"
    requires = ("guides",)

    def __init__(self, cap: float = 100.0):
        self.cap = cap

    def score_video(self, video: np.ndarray, guides: dict[int, np.ndarray]) -> Result:
        order = sorted(guides)
        per_guide = np.array([psnr(video[i], guides[i], self.cap) for i in order])
        details = {f"psnr@{i}": float(v) for i, v in zip(order, per_guide, strict=True)}
        details["ssim"] = float(np.mean([ssim(video[i], guides[i]) for i in order]))
        return Result(float(per_guide.mean()), per_guide, details)
