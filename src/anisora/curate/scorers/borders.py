"""Black borders: letterbox (bars above and below) and pillarbox (bars left and right), with the crop box."""

from __future__ import annotations

from typing import Annotated, ClassVar

import cv2
import numpy as np
from pydantic import Field

from ...typed_config import NON_NEGATIVE
from .base import ClipSamples, Scorer, ScorerConfig


class BordersConfig(ScorerConfig):
    black_level: Annotated[float, Field(ge=0, le=255)] = 24.0
    """a row/column is black when its brightest channel averages at most this"""
    max_share: Annotated[float, Field(gt=0, le=1)] = 0.3
    """more than this of a side in "border" means a dark picture, not bars"""
    min_pixels: Annotated[int, NON_NEGATIVE] = 2
    """bars thinner than this (source pixels) are ignored"""


def _mean_brightest(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column means of each pixel's brightest channel, averaged over frames (OpenCV: ~20x numpy)."""
    rows = np.zeros(frames.shape[1], np.float64)
    cols = np.zeros(frames.shape[2], np.float64)
    for frame in frames:
        brightest = cv2.max(cv2.max(frame[..., 0], frame[..., 1]), frame[..., 2])
        rows += cv2.reduce(brightest, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[:, 0]
        cols += cv2.reduce(brightest, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[0]
    return rows / len(frames), cols / len(frames)


def _edge_run(is_black: np.ndarray) -> int:
    """Length of the run of True at the start of a 1-D boolean array."""
    return len(is_black) if is_black.all() else int(np.argmin(is_black))


class BordersScorer(Scorer):
    """Scores: `borders_top/bottom/left/right` (source pixels), `borders_letterbox`, `borders_pillarbox`,
    `borders_crop_x0/y0/x1/y1` (the picture without bars, source pixels, exclusive ends), `borders_share`."""

    name = "borders"
    version = "1"
    Config = BordersConfig
    outputs: ClassVar[dict[str, type]] = {
        **{f"borders_{side}": int for side in ("top", "bottom", "left", "right")},
        "borders_letterbox": bool,
        "borders_pillarbox": bool,
        **{f"borders_crop_{k}": int for k in ("x0", "y0", "x1", "y1")},
        "borders_share": float,
    }
    thread_safe = True

    def score(self, clip: ClipSamples) -> dict:
        cfg = self.config
        rows, cols = _mean_brightest(clip.frames)
        rows, cols = rows <= cfg.black_level, cols <= cfg.black_level
        h, w = clip.frames.shape[1:3]
        sy, sx = clip.height / h, clip.width / w
        sides = {
            "top": _edge_run(rows) * sy,
            "bottom": _edge_run(rows[::-1]) * sy,
            "left": _edge_run(cols) * sx,
            "right": _edge_run(cols[::-1]) * sx,
        }
        for name, size in sides.items():
            full = clip.height if name in ("top", "bottom") else clip.width
            sides[name] = round(size) if cfg.min_pixels <= size <= cfg.max_share * full else 0
        x0, y0 = sides["left"], sides["top"]
        x1, y1 = clip.width - sides["right"], clip.height - sides["bottom"]
        return {
            **{f"borders_{k}": v for k, v in sides.items()},
            "borders_letterbox": bool(sides["top"] and sides["bottom"]),
            "borders_pillarbox": bool(sides["left"] and sides["right"]),
            "borders_crop_x0": x0,
            "borders_crop_y0": y0,
            "borders_crop_x1": x1,
            "borders_crop_y1": y1,
            "borders_share": 1.0 - (x1 - x0) * (y1 - y0) / (clip.width * clip.height),
        }
