"""Lip sync for drawn characters: does a mouth region move while its voice sounds?

Face-landmark lip-sync scores are made for real faces; an anime mouth is a few flat drawings. This needs
none: a mouth's activity at a frame is the mean absolute change of the pixels inside its region (0-255,
over the channels), centred on the frame (the mean of the change from the frame before and to the frame
after), and the voice's is its loudness at the frame (`anisora.media.frame_envelope`). Both are smoothed over
about a syllable (a Gaussian of `SMOOTH_S`), so that what is compared is when and how much the mouth
talks, not where in each syllable it opens (a mouth changes most as it opens and closes, a voice is loudest
in between). The score is their Pearson correlation, the best over lags within +-`MAX_LAG_S`; its lag is
how many frames the picture comes after the sound (negative: before it). About 1: the mouth moves when,
and as much as, the voice sounds; about 0: unrelated. A mouth that never visibly moves (activity below
`STILL` grey levels throughout: codec flicker, a model redrawing a still face) has no lip sync (NaN), for a
correlation would rank that flicker against the voice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ...errors import InputError
from .base import Metric, Result

SMOOTH_S = 0.15  # the Gaussian's sigma: measured on ToonWorld's talking mouths (README)
MAX_LAG_S = 0.25
# grey levels: a still mouth's activity peaked at 0.4-0.7 in a studio take (the demo model's redrawing and
# the mp4's flicker), a talking one at 26-43 (tests/test_studio_mouths.py's shot, 2026-12-05)
STILL = 1.0


@dataclass(frozen=True)
class Sync:
    correlation: float  # the best over the lags searched; NaN where no lag has a defined correlation
    lag: int  # frames the mouth's movement comes after the sound (negative: before it)
    at_zero: float  # the correlation without a lag


def region_changes(frames: np.ndarray, region: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
    """The mean absolute change inside `region` ((H, W) bool) between consecutive `frames` ((F, H, W, 3)
    uint8): F - 1 values, or F with `before` (the frame preceding them, e.g. the previous part's last)."""
    if not region.any():
        raise InputError("the mouth region is empty")
    if before is not None:
        frames = np.concatenate([before[None], frames])
    inside = frames[:, region].astype(np.int16)  # (F, pixels, 3)
    if len(inside) < 2:
        return np.zeros(0)
    return np.abs(np.diff(inside, axis=0)).mean(axis=(1, 2), dtype=np.float64)


def mouth_activity(changes: np.ndarray) -> np.ndarray:
    """Per frame, from the F - 1 changes between its F frames: the mean of the change into the frame and out
    of it (the first and last frame have one)."""
    changes = np.asarray(changes, np.float64)
    if changes.size == 0:
        return np.zeros(1)
    padded = np.concatenate([changes[:1], changes, changes[-1:]])
    return (padded[:-1] + padded[1:]) / 2


def lip_sync(
    activity: np.ndarray,
    envelope: np.ndarray,
    fps: float,
    max_lag_s: float = MAX_LAG_S,
    smooth_s: float = SMOOTH_S,
    still: float = 0.0,
) -> Sync:
    """The correlation of a mouth's `activity` with its voice's `envelope` (one value per frame each, at
    `fps`), both smoothed by `smooth_s`: the best over lags of up to `max_lag_s` either way that leave at
    least half the frames (and 3). NaN when the activity stays below `still` (in grey levels: `STILL`)."""
    activity, envelope = np.asarray(activity, np.float64), np.asarray(envelope, np.float64)
    if activity.shape != envelope.shape or activity.ndim != 1:
        raise InputError(
            f"lip sync needs one activity and one loudness value per frame, got {activity.shape} and "
            f"{envelope.shape}"
        )
    if activity.size and activity.max() < still:
        return Sync(math.nan, 0, math.nan)
    if smooth_s > 0:
        activity, envelope = (
            gaussian_filter1d(x, smooth_s * fps, mode="nearest") for x in (activity, envelope)
        )
    n = len(activity)
    reach = min(round(max_lag_s * fps), n - max(3, (n + 1) // 2))
    by_lag = {lag: _pearson(*_overlap(activity, envelope, lag)) for lag in range(-reach, reach + 1)}
    defined = {lag: r for lag, r in by_lag.items() if not math.isnan(r)}
    at_zero = by_lag.get(0, math.nan)
    if not defined:
        return Sync(math.nan, 0, at_zero)
    lag = max(defined, key=lambda k: (defined[k], -abs(k)))  # ties: the smaller shift
    return Sync(defined[lag], lag, at_zero)


def _overlap(activity: np.ndarray, envelope: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """activity[t] against envelope[t - lag], over the frames both have."""
    if lag >= 0:
        return activity[lag:], envelope[: len(envelope) - lag]
    return activity[:lag], envelope[-lag:]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 1e-12 else math.nan


class LipSync(Metric):
    """Lip sync of a mouth region with its voice (module docstring). Inputs: `mask`, the mouth region;
    `envelope`, the voice's loudness per frame (zero while another character speaks); `fps` (default 8).
    value: the best correlation, NaN when the region never visibly changes or the voice never sounds;
    per_frame: the mouth's activity (before smoothing); details: lag_frames, lag_s, correlation_at_0."""

    name = "lip_sync"
    version = "2"  # 2: a still mouth has no lip sync
    requires = ("mask", "envelope")
    accepts = ("fps",)
    min_frames = 3

    def __init__(self, fps: float = 8.0, max_lag_s: float = MAX_LAG_S, smooth_s: float = SMOOTH_S):
        self.fps, self.max_lag_s, self.smooth_s = fps, max_lag_s, smooth_s

    def score_video(self, video: np.ndarray, mask: np.ndarray, envelope: np.ndarray, fps=None) -> Result:
        fps = fps or self.fps
        activity = mouth_activity(region_changes(video, mask))
        sync = lip_sync(activity, envelope, fps, self.max_lag_s, self.smooth_s, still=STILL)
        details = {"lag_frames": float(sync.lag), "lag_s": sync.lag / fps, "correlation_at_0": sync.at_zero}
        return Result(sync.correlation, activity, details)
