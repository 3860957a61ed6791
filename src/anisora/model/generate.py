"""`anisora generate` as a function: files in (model directory, guide images, mask), mp4 + JSON sidecar out.

The CLI is a thin layer over `generate_to_file`; programs that keep a pipeline loaded (the studio) pass it in.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import InputError
from ..files import atomic_output
from ..media import contact_sheet, load_image, save_image, write_video
from .conditioning import Guide, check_frame_count, frames_for_seconds
from .pipeline import AnisoraPipeline
from .weights import load_lora, load_pipeline

SCHEDULERS = ("ddim", "dpm")


@dataclass
class GuideSpec:
    path: str
    frame: int | str  # a pixel frame index, or "last"
    strength: float = 1.0


@dataclass
class GenerateJob:
    """Every parameter of one generation; written as the JSON sidecar next to the video."""

    model: str
    guides: list[GuideSpec] = field(default_factory=list)
    mask: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    motion: float | None = None
    aesthetic: float | None = None
    seconds: float | None = None
    frames: int | None = None
    fps: int | None = None
    width: int | None = None
    height: int | None = None
    steps: int = 50
    guidance: float = 6.0
    dynamic_cfg: bool = False
    scheduler: str = "dpm"
    seed: int = 0
    lora: str | None = None
    lora_scale: float = 1.0
    layout: str | None = None
    dtype: str = "float32"
    device: str | None = None
    cpu_offload: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False


def parse_guide(text: str) -> GuideSpec:
    """FRAME[@STRENGTH]:PATH, FRAME a pixel index or "last": "0:first.png", "last@0.8:end.png"."""
    head, sep, path = text.partition(":")
    if not sep or not path:
        raise InputError(f"--guide expects FRAME:IMAGE such as 48:last.png, got {text!r}")
    frame_text, _, strength_text = head.partition("@")
    try:
        frame: int | str = "last" if frame_text == "last" else int(frame_text)
        strength = float(strength_text) if strength_text else 1.0
    except ValueError:
        raise InputError(f"--guide {text!r}: FRAME must be an integer or 'last', STRENGTH a number") from None
    return GuideSpec(path, frame, strength)


def open_pipeline(job: GenerateJob) -> AnisoraPipeline:
    """Load the model with the job's layout, dtype, device, memory options, scheduler and LoRA."""
    pipe = load_pipeline(job.model, layout=job.layout, dtype=job.dtype)
    if job.scheduler not in SCHEDULERS:
        raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {job.scheduler!r}")
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    kind = CogVideoXDPMScheduler if job.scheduler == "dpm" else CogVideoXDDIMScheduler
    pipe.scheduler = kind.from_config(pipe.scheduler.config)
    if job.lora:
        load_lora(pipe, job.lora, job.lora_scale)
    device = job.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if job.cpu_offload:
        if not torch.cuda.is_available():
            raise InputError("--cpu-offload moves parts to a GPU as needed; there is no GPU here")
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
    if job.vae_tiling:
        pipe.vae.enable_tiling()
    if job.vae_slicing:
        pipe.vae.enable_slicing()
    return pipe


def generate_to_file(
    job: GenerateJob,
    out: str | os.PathLike[str],
    *,
    preview: bool = False,
    overwrite: bool = False,
    pipe: AnisoraPipeline | None = None,
) -> dict:
    """Run `job`, write `out` (mp4), `out` with .json (every parameter, the prompt used, notes, timings) and,
    with `preview`, a contact sheet `out` with .preview.png. Returns the sidecar's content.

    An existing `out` is kept unless `overwrite`; every input is read and checked before the model loads.
    """
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must name an .mp4 file, got {out}")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    if job.frames is not None:
        check_frame_count(job.frames)
    images = [load_image(spec.path) for spec in job.guides]  # bad files fail before the model loads
    mask = load_image(job.mask, background=(0, 0, 0)) if job.mask else None
    started = time.perf_counter()
    pipe = pipe or open_pipeline(job)
    fps = job.fps or pipe.config.fps
    num_frames = _frame_count(job, pipe, fps)
    frames = [_frame(spec, num_frames) for spec in job.guides]
    guides = [Guide(image, f, s.strength) for s, f, image in zip(job.guides, frames, images, strict=True)]
    height = job.height or pipe.transformer.config.sample_height * pipe.vae_scale_factor_spatial
    width = job.width or pipe.transformer.config.sample_width * pipe.vae_scale_factor_spatial
    loaded = time.perf_counter()
    result = pipe(
        guides,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        num_frames=num_frames,
        height=height,
        width=width,
        motion_mask=mask,
        motion_score=job.motion,
        aesthetic_score=job.aesthetic,
        num_inference_steps=job.steps,
        guidance_scale=job.guidance,
        use_dynamic_cfg=job.dynamic_cfg,
        generator=torch.Generator("cpu").manual_seed(job.seed),
    )
    sampled = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, result.frames, fps)
    sidecar = {
        "anisora_version": __version__,
        "video": out.name,
        "job": asdict(job),
        "resolved": {
            "num_frames": num_frames,
            "fps": fps,
            "seconds": round(num_frames / fps, 3),
            "width": width,
            "height": height,
            "guide_frames": [g.frame for g in guides],
            "layout": pipe.layout,
            "motion_embedding": bool(pipe.config.motion_embedding),
        },
        "prompt_used": result.prompt,
        "notes": result.notes,
        "seconds_load": round(loaded - started, 3),
        "seconds_sample": round(sampled - loaded, 3),
    }
    with atomic_output(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if preview:
        save_image(out.with_suffix(".preview.png"), preview_sheet(result.frames, fps))
    return sidecar


def preview_sheet(frames: np.ndarray, fps: float, tiles: int = 8) -> np.ndarray:
    """Up to `tiles` evenly spaced frames with their index and time."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(tiles, len(frames))).round().astype(int))
    labels = [f"#{i} {i / fps:.2f}s" for i in picks]
    width = int(np.clip(frames.shape[2], 160, 320))
    return contact_sheet([frames[i] for i in picks], labels, columns=4, tile_width=width)


def _frame_count(job: GenerateJob, pipe: AnisoraPipeline, fps: int) -> int:
    if job.frames is not None and job.seconds is not None:
        raise InputError("give --frames or --seconds, not both")
    if job.frames is not None:
        return job.frames  # checked before the model loaded
    if job.seconds is not None:
        return frames_for_seconds(job.seconds, fps)
    return pipe.transformer.config.sample_frames


def _frame(spec: GuideSpec, num_frames: int) -> int:
    return num_frames - 1 if spec.frame == "last" else int(spec.frame)
