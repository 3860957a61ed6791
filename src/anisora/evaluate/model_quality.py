"""A model's quality figures for its card, on held-out ToonWorld shots (`anisora.toonworld.held_out`).

Each figure compares generated frames with ToonWorld's ground truth (frames, character masks, labels);
clips are generated with the model's guide-fit preset, as `anisora generate` makes them:

- first-frame fidelity: PSNR of generated frame 0 against the guide (image-to-video);
- keyframe interpolation: PSNR of the in-between frames against the true ones, with the first and last frames
  given, next to a linear cross-fade of the two keyframes; over whole frames and inside the characters' motion
  region (where the two differ: the background is static, so a cross-fade gets it right);
- ceilings: the same PSNRs of the true frames passed through the model's VAE (encode, decode), which no
  generation can beat by much;
- motion-region control: of the pixels that move (`anisora.evaluate`'s `motion_mask_precision`: optical flow
  above 1 px/frame where the image changes, in any pair of frames), the share inside the motion mask (the
  characters' masks over the shot, dilated), with and without the mask;
- motion strength: the curation's motion score (optical flow) of clips requested at three motion scores;
- speed: seconds to sample one clip of `frames` frames with the CLI's defaults (50 steps, CFG 6);
- long clips: a 4 s clip's inter-frame change over its last second (`FREEZE_LEVEL` or less is a freeze), and
  how much of the first frame's colour distribution its last frame keeps (histogram intersection: 1 = the
  same colours in the same amounts, so the character has not dissolved or faded).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..curate.scorers.motion import frames_motion_score
from ..media import psnr
from ..model.conditioning import Guide
from ..model.info import ModelInfo
from ..model.pipeline import AnisoraPipeline
from ..model.vae import reconstruct
from ..toonworld import held_out
from ..toonworld.held_out import HeldOutShot, motion_region
from .metrics.motion import MotionMaskPrecision

FREEZE_LEVEL = 0.5  # mean absolute inter-frame change (grey levels) at or below which a clip is frozen
MOTION_LEVELS = (2.0, 8.0, 24.0)  # requested motion scores (curation units: ToonWorld runs score ~7-55)


@dataclass(frozen=True)
class QualitySettings:
    shots: int = 6  # held-out shots per figure
    steps: int = 25
    guidance: float = 6.0
    width: int = 160
    height: int = 96
    fps: float = 8.0
    frames: int = 17  # 2 s at 8 fps
    long_frames: int = 33  # 4 s at 8 fps
    seed: int = 0


def held_out_shots(
    settings: QualitySettings, num_frames: int, still_camera: bool = False
) -> list[HeldOutShot]:
    """The first `settings.shots` moving held-out shots at the settings' size (still camera if asked)."""
    size = (num_frames, settings.fps, settings.width, settings.height)
    return held_out.held_out_shots(settings.shots, *size, still_camera=still_camera)


def measure_quality(
    pipe: AnisoraPipeline, settings: QualitySettings, progress: Callable[[str], None] | None = None
) -> dict:
    """Every figure of the module docstring, with the per-shot values behind each mean."""
    say = progress or (lambda _text: None)
    fit_steps = ModelInfo.of(pipe).guide_fit_steps  # what `anisora generate` uses with this model

    def generate(shot: HeldOutShot, guides: list[Guide], num_frames: int, **extra) -> np.ndarray:
        return pipe(
            guides,
            prompt=shot.caption,
            num_frames=num_frames,
            height=settings.height,
            width=settings.width,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            guide_fit_steps=fit_steps,
            generator=torch.Generator("cpu").manual_seed(settings.seed),
            **{"motion_score": frames_motion_score(shot.frames, shot.fps), **extra},
        ).frames

    shots = held_out_shots(settings, settings.frames)
    say("first frame and interpolation")
    first, first_vae, model_mid, fade_mid, vae_mid = [], [], [], [], []
    model_region, fade_region = [], []
    for shot in shots:
        truth = shot.frames
        video = generate(shot, [Guide(truth[0], 0)], settings.frames)
        first.append(psnr(video[0], truth[0]))
        first_vae.append(psnr(reconstruct(pipe.vae, truth[:1])[0], truth[0]))
        ends = [Guide(truth[0], 0), Guide(truth[-1], len(truth) - 1)]
        video, fade = generate(shot, ends, settings.frames), crossfade(truth[0], truth[-1], len(truth))
        model_mid.append(psnr(video[1:-1], truth[1:-1]))
        fade_mid.append(psnr(fade[1:-1], truth[1:-1]))
        vae_mid.append(psnr(reconstruct(pipe.vae, truth)[1:-1], truth[1:-1]))
        region = motion_region(shot.foreground) > 0
        model_region.append(psnr(video[1:-1, region], truth[1:-1, region]))
        fade_region.append(psnr(fade[1:-1, region], truth[1:-1, region]))

    say("motion region")
    with_mask, without_mask = [], []
    for shot in held_out_shots(settings, settings.frames, still_camera=True):
        mask = motion_region(shot.foreground)
        guide = [Guide(shot.frames[0], 0)]
        with_mask.append(mask_precision(generate(shot, guide, settings.frames, motion_mask=mask), mask))
        without_mask.append(mask_precision(generate(shot, guide, settings.frames), mask))

    say("motion strength")
    strength = {level: [] for level in MOTION_LEVELS}
    for shot in shots:
        for level in MOTION_LEVELS:
            video = generate(shot, [Guide(shot.frames[0], 0)], settings.frames, motion_score=level)
            strength[level].append(frames_motion_score(video, settings.fps))
    means = [float(np.mean(strength[level])) for level in MOTION_LEVELS]

    say("4 s clips")
    change, kept, truth_change = [], [], []
    last_second = int(settings.fps)
    for shot in held_out_shots(settings, settings.long_frames):
        video = generate(shot, [Guide(shot.frames[0], 0)], settings.long_frames)
        change.append(inter_frame_change(video[-last_second - 1 :]))
        truth_change.append(inter_frame_change(shot.frames[-last_second - 1 :]))
        kept.append(colour_kept(video[0], video[-1]))

    say("timing")
    shot = shots[0]
    started = time.perf_counter()
    pipe([Guide(shot.frames[0], 0)], prompt=shot.caption, num_frames=settings.frames, num_inference_steps=50)
    seconds = time.perf_counter() - started

    return {
        "settings": settings.__dict__,
        "seconds_per_clip_50_steps": seconds,  # the CLI's defaults: 50 DPM steps, CFG 6
        "first_frame_psnr": _summary(first),
        "first_frame_vae_psnr": _summary(first_vae),  # the VAE's own round trip: the ceiling
        "interpolation_psnr": _summary(model_mid),
        "crossfade_psnr": _summary(fade_mid),
        "interpolation_vae_psnr": _summary(vae_mid),  # the true clip through the VAE: the ceiling
        "interpolation_gain_db": float(np.mean(model_mid) - np.mean(fade_mid)),
        "interpolation_region_psnr": _summary(model_region),  # inside the characters' motion region
        "crossfade_region_psnr": _summary(fade_region),
        "interpolation_region_gain_db": float(np.mean(model_region) - np.mean(fade_region)),
        "mask_precision_with_mask": _summary(with_mask),
        "mask_precision_without_mask": _summary(without_mask),
        "motion_levels": list(MOTION_LEVELS),
        "motion_measured": means,
        "motion_per_shot": {str(level): strength[level] for level in MOTION_LEVELS},
        "motion_monotonic": bool(all(a < b for a, b in itertools.pairwise(means))),
        "long_clip_change": _summary(change),
        "long_clip_truth_change": _summary(truth_change),
        "long_clip_frozen": int(sum(c <= FREEZE_LEVEL for c in change)),
        "long_clip_colour_kept": _summary(kept),
    }


def crossfade(first: np.ndarray, last: np.ndarray, num_frames: int) -> np.ndarray:
    """The linear cross-fade baseline: frame j = (1 - j/(F-1)) first + j/(F-1) last, uint8."""
    weights = np.linspace(0.0, 1.0, num_frames)[:, None, None, None]
    blend = (1 - weights) * first.astype(np.float64) + weights * last.astype(np.float64)
    return np.round(blend).astype(np.uint8)


def mask_precision(video: np.ndarray, mask: np.ndarray) -> float:
    """`anisora.evaluate`'s motion-mask precision (optical flow); 1.0 when nothing moves: nothing escaped."""
    value = MotionMaskPrecision().score([video], mask=[mask > 127])[0].value
    return 1.0 if np.isnan(value) else float(value)


def inter_frame_change(video: np.ndarray) -> float:
    """Mean absolute difference between consecutive frames, grey levels (0-255)."""
    return float(np.abs(np.diff(video.astype(np.int16), axis=0)).mean())


def colour_kept(first: np.ndarray, last: np.ndarray, bins: int = 8) -> float:
    """Histogram intersection (0-1) of two frames' colours, `bins` levels per channel."""

    def histogram(image: np.ndarray) -> np.ndarray:
        counts = cv2.calcHist([image], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
        return counts / counts.sum()

    return float(np.minimum(histogram(first), histogram(last)).sum())


def _summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "values": [round(float(v), 4) for v in values]}
