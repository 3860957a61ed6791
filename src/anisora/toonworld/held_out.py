"""The held-out ToonWorld shots: a seed no training run uses, rendered clean, that every judge of a model
(`anisora evaluate`, the model card) draws from, so no evaluation shot is ever trained on. A second such
seed, the validation split, is where sampling settings are chosen, so that no evaluation shot is tuned on.

A clean shot is one procedural shot per (seed, index) without the post-processing that curation would
remove (letterbox, degradation, burnt-in subtitles, fades); training draws its shots the same way from
other seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from .shot import ShotPlan, ShotRenderer, plan_shot

EVAL_SEED = 10_000  # ToonWorld seed reserved for evaluation
VALIDATION_SEED = 10_001  # reserved for choosing sampling settings, so that the evaluation seed never is
HELD_OUT_SEEDS = (EVAL_SEED, VALIDATION_SEED)  # training must use neither
MASK_DILATION = 5  # pixels added around the characters' union mask (`motion_region`)
MAX_SHOTS_SCANNED = 20_000


@dataclass(frozen=True)
class HeldOutShot:
    index: int
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    foreground: np.ndarray  # (F, H, W) bool where a character is
    caption: str
    label: str  # the action ("running", "waving", ...)
    camera: str
    fps: float


def plan_clean_shot(seed: int, index: int, num_frames: int, fps: float, width: int, height: int) -> ShotPlan:
    """Shot (seed, index) without letterbox, degradation, subtitles or fades."""
    rng = np.random.default_rng([seed, index])
    plan = plan_shot(index, 0, num_frames, fps, width, height, rng, "en")
    # Cleared after planning rather than re-planned: these fields are drawn last and only touch
    # post-processing, so characters, camera and action stay exactly as drawn.
    return dataclasses.replace(plan, letterbox=None, degrade=None, subtitles=[], fade_in=0, fade_out=0)


def render_clean_shot(
    seed: int, index: int, num_frames: int, fps: float, width: int, height: int
) -> HeldOutShot:
    """Shot (seed, index) rendered: frames and character masks."""
    plan = plan_clean_shot(seed, index, num_frames, fps, width, height)
    frames, foreground = render_shot(plan)
    return HeldOutShot(
        index=index,
        frames=frames,
        foreground=foreground,
        caption=plan.caption(),
        label=plan.label,
        camera=plan.camera,
        fps=fps,
    )


def render_shot(plan: ShotPlan) -> tuple[np.ndarray, np.ndarray]:
    """A planned shot's frames (F, H, W, 3) uint8 and character masks (F, H, W) bool."""
    renderer = ShotRenderer(plan)
    rendered = [renderer.render(j)[:2] for j in range(plan.num_frames)]
    return np.stack([image for image, _ in rendered]), np.stack([mask > 0 for _, mask in rendered])


def held_out_shots(
    count: int, num_frames: int, fps: float, width: int, height: int, still_camera: bool = False
) -> list[HeldOutShot]:
    """The first `count` moving shots of the evaluation seed (with a still camera if asked)."""
    shots = []
    for index in range(MAX_SHOTS_SCANNED):
        plan = plan_clean_shot(EVAL_SEED, index, num_frames, fps, width, height)
        if not plan.static and (plan.camera == "still" or not still_camera):
            shots.append(render_clean_shot(EVAL_SEED, index, num_frames, fps, width, height))
            if len(shots) == count:
                return shots
    raise ValueError(f"fewer than {count} such shots in the first {MAX_SHOTS_SCANNED} of the seed")


def motion_region(foreground: np.ndarray, dilation: int = MASK_DILATION) -> np.ndarray:
    """Union over the clip of the (F, H, W) character masks, dilated: (H, W) uint8, 255 = may move."""
    union = foreground.any(axis=0).astype(np.uint8) * 255
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
    return cv2.dilate(union, kernel)
