"""`anisora generate` as a function: files in (model directory, guide images, mask), mp4 + JSON sidecar out.

The CLI is a thin layer over `generate_to_file`; programs that keep a pipeline loaded (the studio) pass it in.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import InputError
from ..files import atomic_output, check_output_file, shareable_path
from ..media import contact_sheet, load_image, save_image, write_video
from .conditioning import (
    LAYOUTS,
    ConditionRequest,
    Guide,
    check_frame_count,
    check_request,
    frames_for_seconds,
)
from .info import ModelInfo
from .pipeline import AnisoraPipeline
from .request import At, FrameSpec, parse_frame, resolve_frame
from .weights import DEMO_MODEL, DEMO_MODEL_NAME, DTYPES, load_lora, load_pipeline

SCHEDULERS = ("ddim", "dpm")
MAX_SEED = 2**64 - 1  # torch generators take 64-bit seeds


@dataclass
class GuideSpec:
    path: str
    frame: FrameSpec  # a pixel frame index (negative from the end), "last" or At(t)
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
    steps: int | None = None  # None: the model's (50 for CogVideoX, the release's preset for Wan)
    guidance: float | None = None
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


def parse_guide(text: str, *, timed: bool = False) -> GuideSpec:
    """PLACE[@STRENGTH]:PATH. PLACE is a pixel index (negative from the end) or "last" ("0:first.png",
    "last@0.8:end.png"), or with `timed` a share of the clip in [0, 1] ("0.5:middle.png")."""
    place = "TIME" if timed else "FRAME"
    head, sep, path = text.partition(":")
    if not sep or not path:
        raise InputError(
            f"expected {place}[@STRENGTH]:IMAGE such as {'0.5' if timed else '48'}:end.png, got {text!r}"
        )
    place_text, _, strength_text = head.partition("@")
    try:
        frame = At(float(place_text)) if timed else parse_frame(place_text)
        strength = float(strength_text) if strength_text else 1.0
    except (InputError, ValueError):
        kinds = "a number in [0, 1]" if timed else "an integer or 'last'"
        raise InputError(f"{text!r}: {place} must be {kinds}, STRENGTH a number") from None
    return GuideSpec(path, frame, strength)


@dataclass(frozen=True)
class PreparedJob:
    """A checked job: what the pipeline is asked, resolved against the model's config (frames, size, fps)."""

    request: ConditionRequest
    fps: int
    steps: int
    guidance: float


def prepare_job(job: GenerateJob, model: ModelInfo | None = None) -> PreparedJob:
    """Check every value of `job` and read its images, against `model` or the config files of `job.model`.

    Reads no weights, so every mistake a user can make is reported before the model loads.
    """
    _check_options(job)
    model = model or ModelInfo.read(job.model)
    if (
        job.layout is not None
        and job.layout != model.layout
        and (model.layout, job.layout) != ("v1", "anisora")
    ):
        raise InputError(f"cannot convert a {model.layout!r} model to the {job.layout!r} layout")
    if model.backbone == "wan" and (job.mask or job.dynamic_cfg):
        raise InputError("motion-region masks and dynamic CFG run on CogVideoX models only, for now")
    fps = job.fps or model.fps
    num_frames = _frame_count(job, model, fps)
    images = [load_image(spec.path) for spec in job.guides]
    mask = load_image(job.mask, background=(0, 0, 0)) if job.mask else None
    guides = tuple(
        Guide(image, resolve_frame(spec.frame, num_frames), spec.strength)
        for spec, image in zip(job.guides, images, strict=True)
    )
    request = ConditionRequest(
        num_frames,
        job.height or model.height,
        job.width or model.width,
        guides,
        mask,
        job.prompt,
        job.motion,
        job.aesthetic,
    )
    check_request(request, model.frame_step)
    model.check_size(request.num_frames, request.height, request.width)
    steps = model.steps if job.steps is None else job.steps
    return PreparedJob(request, fps, steps, model.guidance if job.guidance is None else job.guidance)


def validate_job(job: GenerateJob) -> None:
    """Raise InputError / MediaError for anything wrong with `job`, without loading the model."""
    prepare_job(job)


def _check_options(job: GenerateJob) -> None:
    """The job's own values, whatever the model."""
    choices = {"dtype": DTYPES, "scheduler": SCHEDULERS, "layout": (None, *LAYOUTS)}
    for name, allowed in choices.items():
        if getattr(job, name) not in allowed:
            known = ", ".join(str(a) for a in allowed if a is not None)
            raise InputError(f"{name} must be one of {known}, got {getattr(job, name)!r}")
    for name, low in (("steps", 1), ("fps", 1), ("width", 1), ("height", 1), ("seed", 0)):
        value = getattr(job, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if job.seed > MAX_SEED:
        raise InputError(f"seed must be at most 2**64 - 1, got {job.seed}")
    if (job.width is None) != (job.height is None):
        raise InputError("give both width and height, or neither")
    for name in ("guidance", "lora_scale"):
        value = getattr(job, name)
        if value is None and name == "guidance":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{name.replace('_', ' ')} must be a finite number, got {value!r}")
    if job.lora and not Path(job.lora).exists():
        raise InputError(f"LoRA {job.lora} does not exist")
    device_of(job)


def device_of(job: GenerateJob) -> torch.device:
    """The torch device the job asks for (default: cuda when present, else cpu), checked to exist here."""
    try:
        device = torch.device(job.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {job.device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {job.device!r}: there is no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {job.device!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {job.device!r} is not supported; use cpu, cuda or cuda:N")
    return device


def open_pipeline(job: GenerateJob) -> AnisoraPipeline:
    """Load the model with the job's layout, dtype, device, memory options, scheduler (CogVideoX; Wan keeps
    its release's UniPC) and LoRA."""
    device = device_of(job)
    pipe = load_pipeline(job.model, layout=job.layout, dtype=job.dtype)
    if job.scheduler not in SCHEDULERS:
        raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {job.scheduler!r}")
    if isinstance(pipe, AnisoraPipeline):
        from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

        kind = CogVideoXDPMScheduler if job.scheduler == "dpm" else CogVideoXDDIMScheduler
        pipe.scheduler = kind.from_config(pipe.scheduler.config)
    if job.lora:
        load_lora(pipe, job.lora, job.lora_scale)
    if job.cpu_offload:
        if device.type != "cuda":
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
    check_output_file(out)
    prepared = prepare_job(job, ModelInfo.of(pipe) if pipe is not None else None)
    request, fps = prepared.request, prepared.fps
    started = time.perf_counter()
    pipe = pipe or open_pipeline(job)
    loaded = time.perf_counter()
    cogvideox_only = {}
    if isinstance(pipe, AnisoraPipeline):
        cogvideox_only = dict(motion_mask=request.motion_mask, use_dynamic_cfg=job.dynamic_cfg)
    result = pipe(
        request.guides,
        prompt=request.prompt,
        negative_prompt=job.negative_prompt,
        num_frames=request.num_frames,
        height=request.height,
        width=request.width,
        motion_score=request.motion_score,
        aesthetic_score=request.aesthetic_score,
        num_inference_steps=prepared.steps,
        guidance_scale=prepared.guidance,
        generator=torch.Generator("cpu").manual_seed(job.seed),
        **cogvideox_only,
    )
    sampled = time.perf_counter()
    write_video(out, result.frames, fps)
    sidecar = {
        "anisora_version": __version__,
        "video": out.name,
        "job": _shareable_job(job, out.parent),
        "resolved": {
            "num_frames": request.num_frames,
            "fps": fps,
            "seconds": round(request.num_frames / fps, 3),
            "width": request.width,
            "height": request.height,
            "guide_frames": [g.frame for g in request.guides],
            "steps": prepared.steps,
            "guidance": prepared.guidance,
            "backbone": "cogvideox" if isinstance(pipe, AnisoraPipeline) else "wan",
            "layout": ModelInfo.of(pipe).layout,
            "motion_embedding": bool(getattr(pipe.config, "motion_embedding", False)),
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


def _shareable_job(job: GenerateJob, folder: Path) -> dict:
    """The job with its file paths relative to the sidecar's folder (the shipped model by name)."""
    record = asdict(job)
    shipped = {DEMO_MODEL: DEMO_MODEL_NAME}
    for key in ("model", "mask", "lora"):
        record[key] = shareable_path(record[key], folder, shipped) if record[key] else None
    for guide in record["guides"]:
        guide["path"] = shareable_path(guide["path"], folder)
    return record


def preview_sheet(frames: np.ndarray, fps: float, tiles: int = 8) -> np.ndarray:
    """Up to `tiles` evenly spaced frames with their index and time."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(tiles, len(frames))).round().astype(int))
    labels = [f"#{i} {i / fps:.2f}s" for i in picks]
    width = int(np.clip(frames.shape[2], 160, 320))
    return contact_sheet([frames[i] for i in picks], labels, columns=4, tile_width=width)


def _frame_count(job: GenerateJob, model: ModelInfo, fps: int) -> int:
    if job.frames is not None and job.seconds is not None:
        raise InputError("give --frames or --seconds, not both")
    if job.frames is not None:
        check_frame_count(job.frames, model.frame_step)
        return job.frames
    if job.seconds is not None:
        return frames_for_seconds(job.seconds, fps, step=model.frame_step)
    return model.sample_frames
