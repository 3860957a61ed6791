"""`sample(pipe, request)`: a `Request` resolved against the loaded model and run, for every caller.

`prepare` resolves what the request leaves to the model (frame count, size, fps, steps, guidance, the
aesthetic default and prompt suffix, from `ModelInfo`), places the guides (`resolve_frame`), reads the images
and videos and checks everything with the backbone's rules, clip by clip (a windowed known-pixels video is
one clip per window). It reads no weights: `prepare(request, ModelInfo.read(dir))` reports every
mistake before a model loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ..errors import InputError
from ..media import load_image, probe, read_frames
from .conditioning import (
    ConditionRequest,
    Guide,
    KnownPixels,
    check_frame_count,
    check_known,
    check_request,
    frames_for_seconds,
)
from .info import ModelInfo
from .motion_guidance import MotionGuidance
from .request import MIN_WINDOW_S, Image, KnownSpec, Request, Video, resolve_frame
from .vae import uint8_frames
from .weights import use_mask_lora

# A mask video's red channel from here up marks a given pixel: the official "> 0" after scaling to [-1, 1].
KNOWN_THRESHOLD = 128


@dataclass(frozen=True)
class Prepared:
    """A checked request: what the pipeline is asked, resolved against the model."""

    condition: ConditionRequest
    fps: int
    steps: int
    guidance: float
    guide_fit_steps: int
    known: KnownPixels | None = None
    motion_guidance: MotionGuidance | None = None


@dataclass
class Sample:
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: int
    prompt: str  # the prompt the model saw, with the score suffix and the model's own suffix
    notes: list[str] = field(default_factory=list)  # adjustments made to the request (cropping)
    resolved: dict = field(default_factory=dict)  # the values used where the request left them to the model


def prepare(request: Request, info: ModelInfo) -> list[Request]:
    """Check every value of `request` against the model `info` describes, reading its images and videos one
    clip at a time; returns the clips to make: the request itself, or one request per known-pixels window."""
    request.check()
    if info.backbone == "wan" and request.dynamic_cfg:
        raise InputError("dynamic CFG runs on CogVideoX models only; Wan releases use their own guidance")
    if info.backbone != "wan" and request.known is not None:
        raise InputError("known pixels (the anymask release) run on Wan models only")
    clips = _windows(request, info)
    for clip in clips:
        _prepare_clip(clip, info)
    return clips


def sample(pipe, request: Request, progress: Callable[[int, int], None] | None = None) -> Sample:
    """Run `request` on a loaded `AnisoraPipeline` or `AnisoraWanPipeline`; `progress(step, steps)` is
    called after every sampling step. Known-pixels windows are made one by one and joined without each
    window's last frame, as the anymask scripts join them."""
    info = ModelInfo.of(pipe)
    clips = prepare(request, info)
    samples = []
    for k, clip in enumerate(clips):
        report = progress and (lambda i, n, k=k: progress(k * n + i, len(clips) * n))
        # read again here, so that one window's pixels are in memory at a time
        samples.append(_sample_clip(pipe, request, _prepare_clip(clip, info), info, report))
    if request.known is None or request.known.window is None:
        return samples[0]
    first = samples[0]
    frames = np.concatenate([s.frames[:-1] for s in samples])
    notes = list(dict.fromkeys(note for s in samples for note in s.notes))
    resolved = first.resolved | {
        "num_frames": len(frames),
        "seconds": round(len(frames) / first.fps, 3),
        "windows": [[c.known.start, c.known.end, c.frames] for c in clips],
    }
    return Sample(frames, first.fps, first.prompt, notes, resolved)


def _prepare_clip(request: Request, info: ModelInfo) -> Prepared:
    fps = request.fps or info.fps
    num_frames = _frame_count(request, info, fps)
    guides = tuple(
        Guide(_image(spec.image), resolve_frame(spec.frame, num_frames), spec.strength)
        for spec in request.guides
    )
    mask = _image(request.mask, background=(0, 0, 0)) if request.mask is not None else None
    height, width = request.height or info.height, request.width or info.width
    condition = info.condition(
        num_frames, height, width, guides, mask, request.prompt, request.motion, request.aesthetic
    )
    check_request(condition, info.frame_step)
    info.check_size(condition.num_frames, condition.height, condition.width)
    known = None if request.known is None else known_pixels(request.known, condition.num_frames)
    steps = info.default_steps(guides) if request.steps is None else request.steps
    guidance = info.guidance if request.guidance is None else request.guidance
    fit = info.guide_fit_steps if request.guide_fit_steps is None else request.guide_fit_steps
    motion_guidance = info.motion_guidance_for(guides, request.motion_guidance)
    return Prepared(condition, fps, steps, guidance, fit, known, motion_guidance)


def _sample_clip(pipe, request: Request, prepared: Prepared, info: ModelInfo, progress) -> Sample:
    c = prepared.condition
    optional = {
        "motion_mask": c.motion_mask,
        "known": prepared.known,
        "motion_guidance": prepared.motion_guidance,
        "progress": progress,
        "max_sequence_length": info.max_sequence_length,  # a release's text length (Wan: umT5's 512)
    }
    if request.dynamic_cfg:
        optional["use_dynamic_cfg"] = True
    decode_change = info.interpolation == "flow" and request.decode_change
    if info.interpolation == "flow":  # the only models with a pixel interpolation to draw on
        optional["decode_change"] = decode_change
    mask_lora = use_mask_lora(pipe, c.motion_mask is not None)
    result = pipe(
        c.guides,
        output_type="np",
        prompt=c.prompt,
        negative_prompt=request.negative_prompt,
        num_frames=c.num_frames,
        height=c.height,
        width=c.width,
        motion_score=c.motion_score,
        aesthetic_score=c.aesthetic_score,
        num_inference_steps=prepared.steps,
        guidance_scale=prepared.guidance,
        guide_fit_steps=prepared.guide_fit_steps,
        generator=torch.Generator("cpu").manual_seed(request.seed),
        **{key: value for key, value in optional.items() if value is not None},
    )
    resolved = {
        "num_frames": c.num_frames,
        "fps": prepared.fps,
        "seconds": round(c.num_frames / prepared.fps, 3),
        "width": c.width,
        "height": c.height,
        "guide_frames": [g.frame for g in c.guides],
        "steps": prepared.steps,
        "guidance": prepared.guidance,
        "guide_fit_steps": prepared.guide_fit_steps,
        "motion_guidance": prepared.motion_guidance and asdict(prepared.motion_guidance),
        "scheduler": type(pipe.scheduler).__name__,
        "backbone": info.backbone,
        "layout": info.layout,
        "motion_embedding": bool(getattr(pipe.config, "motion_embedding", False)),
        "mask_lora": mask_lora,
        "decode_change": decode_change,
    }
    return Sample(uint8_frames(result.frames[0]), prepared.fps, result.prompt, result.notes, resolved)


def _windows(request: Request, info: ModelInfo) -> list[Request]:
    """`request` as the clips to make: itself, or for a known-pixels video with `window` seconds one request
    per window of its span, cut as the anymask scripts cut (the last window rounded down to half seconds,
    a rest shorter than that dropped) and each as long as its window at the clip's fps."""
    known = request.known
    if known is None or known.window is None:
        return [request]
    video = probe(known.video)
    length = video.frame_count / video.fps
    end = length if known.end is None else min(known.end, length)
    if known.start >= end:
        raise InputError(
            f"the known-pixels span starts at {known.start:g} s; {known.video} lasts {length:.2f} s"
        )
    fps, step, clips, start = request.fps or info.fps, info.frame_step, [], known.start
    while start < end - 1e-9:
        stop = min(start + known.window, end)
        seconds = math.floor((stop - start) / MIN_WINDOW_S + 1e-9) * MIN_WINDOW_S
        if seconds > 0:
            frames = step * max(1, round(seconds * fps / step)) + 1
            clips.append(
                replace(request, known=replace(known, window=None, start=start, end=stop), frames=frames)
            )
        start = stop
    if not clips:
        raise InputError(f"the known-pixels span of {known.video} is shorter than {MIN_WINDOW_S:g} s")
    return clips


def _image(image: Image, **options) -> np.ndarray:
    return image if isinstance(image, np.ndarray) else load_image(image, **options)


def known_pixels(spec: KnownSpec, num_frames: int) -> KnownPixels:
    """The known pixels `spec` names: the span of its video and mask sampled to `num_frames`, checked."""
    video = _video_frames(spec.video, spec, num_frames, "known-pixels video")
    mask = _video_frames(spec.mask_video, spec, num_frames, "known-pixels mask")
    if mask.shape[1:3] != video.shape[1:3]:
        raise InputError(
            f"the known-pixels mask is {mask.shape[2]}x{mask.shape[1]} but its video is "
            f"{video.shape[2]}x{video.shape[1]}: draw the mask at the video's size"
        )
    known = KnownPixels(video, (mask[..., 0] >= KNOWN_THRESHOLD).astype(np.float32), spec.mode)
    check_known(known, num_frames)
    return known


def _video_frames(video: Video, spec: KnownSpec, num_frames: int, what: str) -> np.ndarray:
    """`num_frames` frames spread evenly over the span of `video` (a path or an F x H x W x 3 array) that
    `spec` names, as the official anymask scripts sample a window: first + floor(i x span / num_frames)."""
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[3] != 3 or video.dtype != np.uint8 or not len(video):
            raise InputError(f"{what} must be an F x H x W x 3 uint8 array, got {video.dtype} {video.shape}")
        first, last = 0, len(video)
    else:
        info = probe(video)
        first = round(spec.start * info.fps)
        last = info.frame_count if spec.end is None else min(info.frame_count, round(spec.end * info.fps))
        if first >= last:
            raise InputError(
                f"{what} {video} has no frames from {spec.start:g} s ({info.frame_count} frames)"
            )
    picks = first + np.floor(np.arange(num_frames) * ((last - first) / num_frames)).astype(int)
    return video[picks] if isinstance(video, np.ndarray) else read_frames(video, picks)


def _frame_count(request: Request, info: ModelInfo, fps: int) -> int:
    if request.frames is not None:
        check_frame_count(request.frames, info.frame_step)
        return request.frames
    if request.seconds is not None:
        return frames_for_seconds(request.seconds, fps, step=info.frame_step)
    return info.sample_frames
