"""Writing kept clips: exact source frames [start_time, end_time), re-encoded to H.264."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..media import VideoWriter, iter_frames, probe
from .config import OutputConfig


def clip_crop(row: dict, output: OutputConfig) -> tuple[int, int, int, int] | None:
    """The border crop box of a row (x0, y0, x1, y1) when cropping is on and bars were found."""
    if not output.crop_borders or not row.get("borders_share"):
        return None
    return tuple(int(row[f"borders_crop_{k}"]) for k in ("x0", "y0", "x1", "y1"))


def write_clip(
    source: str,
    start_time: float,
    end_time: float,
    path: Path,
    output: OutputConfig,
    crop: tuple[int, int, int, int] | None = None,
) -> int:
    """Cut [start_time, end_time) of `source` into `path` (atomically); returns the frames written.

    Frames are chosen by timestamp, so the cut is exact whatever the keyframes; with `output.fps` the clip
    is resampled by timestamp, with `output.max_side` downscaled (after cropping).
    """
    with VideoWriter(path, output.fps or probe(source).fps, crf=output.crf, preset=output.preset) as writer:
        for frame in iter_frames(source, fps=output.fps, start=start_time, end=end_time):
            image = frame.image
            if crop is not None:
                x0, y0, x1, y1 = crop
                image = image[y0:y1, x0:x1]
            if output.max_side and max(image.shape[:2]) > output.max_side:
                image = _downscale(image, output.max_side)
            writer.write(image)
        return writer.frames_written


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    return cv2.resize(
        image, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA
    )
