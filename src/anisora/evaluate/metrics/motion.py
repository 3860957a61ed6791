"""Motion: VBench motion smoothness and dynamic degree, the curation motion score, motion-mask precision.

Optical flow is OpenCV DIS (VBench uses RAFT, the paper's curation RAFT; no RAFT weights ship in a package).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from ...curate.scorers.motion import frames_motion_score
from .base import Metric, Result
from .flow import Flow, FlowInterpolator


class MotionSmoothness(Metric):
    """VBench motion smoothness. The even frames 0, 2, 4 ... are kept and the odd frame between each two
    of them is re-interpolated (the last odd frame of an even-length video has no right neighbour: skipped):
    value = mean over rebuilt frames of (255 - mean |rebuilt - original|) / 255, in [0, 1], 1 = perfectly
    predictable motion. per_frame: that score of each rebuilt frame (frames 1, 3, 5 ...). Needs 3+ frames.
    `interpolator`: `FlowInterpolator` (default, classical) or `LearnedInterpolator` (e.g. AMT weights)."""

    name = "motion_smoothness"
    version = "1"
    min_frames = 3
    min_side = 16

    def __init__(self, interpolator=None):
        self.interpolator = interpolator if interpolator is not None else FlowInterpolator()
        self.weights = f"{self.interpolator.name}: {self.interpolator.weights}"

    def score_video(self, video: np.ndarray) -> Result:
        even = video[0::2]
        originals = video[1::2][: len(even) - 1]
        rebuilt = self.interpolator.midpoints(even[:-1], even[1:])
        diff = np.array([cv2.absdiff(a, b).mean() for a, b in zip(rebuilt, originals, strict=True)])
        per_frame = (255.0 - diff) / 255.0
        return Result(float(per_frame.mean()), per_frame)


class DynamicDegree(Metric):
    """VBench dynamic degree, with DIS flow in place of RAFT. Frames are taken every round(fps / 8) (about
    8 fps); per consecutive pair, m = mean of the top 5% flow magnitudes. The video is dynamic (value 1.0,
    else 0.0) when at least max(1, round(4 * n / 16)) of the pairs (n = frames used) have
    m > 6.0 * max(1, 8 / fps) * s / 256 pixels, s = the short side. These are VBench's thresholds, kept so
    values compare with published ones (6 px at 256 px is clear, deliberate motion); the max(1, ...) is ours:
    VBench's count is 0 for 2 frames, which makes any such video dynamic. per_frame: m of each pair; details:
    threshold, pairs_needed, pairs_moving."""

    name = "dynamic_degree"
    version = "1"
    accepts = ("fps",)
    min_frames = 2
    min_side = 16

    def __init__(self, fps: float = 8.0, preset: str = "fast"):
        self.fps, self.flow = fps, Flow(preset)
        self.weights = (
            f"none (classical: OpenCV DIS optical flow, preset {preset}, in place of VBench's RAFT)"
        )

    def score_video(self, video: np.ndarray, fps: float | None = None) -> Result:
        fps = fps or self.fps
        frames = video[:: max(1, round(fps / 8.0))]
        if len(frames) < 2:
            frames = video[[0, -1]]
        per_pair = np.array(
            [_top_mean(self.flow.magnitude(a, b), 0.05) for a, b in itertools.pairwise(frames)]
        )
        threshold = 6.0 * max(1.0, 8.0 / fps) * min(video.shape[1:3]) / 256.0
        needed = max(1, round(4 * len(frames) / 16))
        moving = int((per_pair > threshold).sum())
        details = {"threshold": threshold, "pairs_needed": float(needed), "pairs_moving": float(moving)}
        return Result(float(moving >= needed), per_pair.astype(np.float64), details)


class MotionScore(Metric):
    """The curation motion score (`anisora.curate.scorers.motion.frames_motion_score`): mean over frame
    pairs (one anchor every 1 / sample_fps s, paired with the next distinct drawing) of the maximum DIS flow
    magnitude, in pixels of a 480p frame; the number the training prompts' "motion score: X.X." uses. Not in
    [0, 1]."""

    name = "motion_score"
    version = "1"
    weights = "none (classical: curation motion score, OpenCV DIS optical flow, 480p pixels)"
    accepts = ("fps",)
    min_frames = 2
    min_side = 16

    def __init__(self, fps: float = 16.0):
        self.fps = fps

    def score_video(self, video: np.ndarray, fps: float | None = None) -> Result:

        return Result(frames_motion_score(video, fps or self.fps))


def _top_mean(values: np.ndarray, share: float) -> float:
    """Mean of the largest `share` of `values` (at least one)."""
    flat = values.ravel()
    top = max(1, int(flat.size * share))
    return float(np.partition(flat, flat.size - top)[-top:].mean())


def _share(num: int, den: int) -> float:
    return num / den if den else float("nan")


class MotionMaskPrecision(Metric):
    """Motion-region control: does the video move only where the mask allows?

    A pixel moves in pair t when the DIS flow between frames t and t + 1 exceeds `threshold` pixels per frame
    (default 1.0, in the video's own pixels: a whole-pixel shift, above DIS's sub-pixel noise) and the luma
    changes by more than `change_threshold` grey levels (default 8, above codec noise) at the pixel or one of
    its 8 neighbours. The second test is needed because DIS spreads flow from a moving edge far into flat,
    unchanged areas (tens of pixels on flat-shaded cartoons); None turns it off. U = pixels that move in any
    pair (the clip's moving map), K = mask, G = ground-truth motion:
      value = precision = |U & K| / |U|    (share of moving pixels inside the mask; NaN if nothing moves)
      recall = |U & K & G| / |K & G| with G, else |U & K| / |K|    (NaN if the denominator is 0)
      iou = |U & K| / |U | K|
    per_frame: the precision of each pair, |M_t & K| / |M_t| (NaN where nothing moves); details: recall, iou,
    moving_share = |U| / (H * W)."""

    name = "motion_mask_precision"
    version = "1"
    requires = ("mask",)
    accepts = ("motion_gt",)
    min_frames = 2
    min_side = 16

    def __init__(self, threshold: float = 1.0, change_threshold: float | None = 8.0, preset: str = "fast"):
        self.threshold, self.change_threshold, self.flow = threshold, change_threshold, Flow(preset)
        gate = f", luma change > {change_threshold}" if change_threshold is not None else ""
        self.weights = (
            f"none (classical: OpenCV DIS optical flow, preset {preset}, |flow| > {threshold} px/frame{gate})"
        )

    def moving(self, video: np.ndarray) -> np.ndarray:
        """The per-pair moving maps M_t, (F - 1, H, W) bool."""
        moving = np.empty((len(video) - 1, *video.shape[1:3]), bool)
        for t, (a, b) in enumerate(itertools.pairwise(video)):
            moving[t] = self.flow.magnitude(a, b) > self.threshold
            if self.change_threshold is not None:
                moving[t] &= self._changed(a, b)
        return moving

    def _changed(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Where the luma changes by more than `change_threshold` at the pixel or one of its neighbours."""
        grey_a, grey_b = (cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in (a, b))
        changed = (cv2.absdiff(grey_a, grey_b) > self.change_threshold).astype(np.uint8)
        return cv2.dilate(changed, np.ones((3, 3), np.uint8)) > 0

    def score_video(self, video: np.ndarray, mask: np.ndarray, motion_gt: np.ndarray | None = None) -> Result:
        moving = self.moving(video)
        union = moving.any(axis=0)
        inside = int((union & mask).sum())
        if motion_gt is not None:
            recall = _share(int((union & mask & motion_gt).sum()), int((mask & motion_gt).sum()))
        else:
            recall = _share(inside, int(mask.sum()))
        per_pair = np.array([_share(int((m & mask).sum()), int(m.sum())) for m in moving])
        details = {
            "recall": recall,
            "iou": _share(inside, int((union | mask).sum())),
            "moving_share": float(union.mean()),
        }
        return Result(_share(inside, int(union.sum())), per_pair, details)
