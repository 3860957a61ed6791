"""One generation request for every caller (the CLI, bench files, the studio, the Python API).

`LoadOptions` says which model to load and how (dtype, device, memory modes, LoRA); `Request` what to make
with it (guides, motion mask, prompt, scores, length, size, sampling). Both check their own values here,
before anything loads; `anisora.model.sampling.sample(pipe, request)` resolves a request against the loaded
model and runs it.

A guide's place is a pixel frame index (negative counts from the end), "last", or `At(t)`, a share of the
clip in [0, 1] placed by AniSora V3's any-frame rule. This module needs neither torch nor a model, so bench
files and request checks use it before anything loads.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np

from ..errors import InputError

V3_FRAME_STEP = 8  # AniSora V3 rounds a guide's time to a multiple of 8 frames
DTYPES = ("float32", "bfloat16", "float16")
SCHEDULERS = ("ddim", "dpm")  # CogVideoX samplers; Wan keeps its release's UniPC
SCHEDULER_HELP = (
    "CogVideoX sampler: ddim, or dpm (DPM++2M); default: the model's preset (demo model ddim, others dpm)"
)
OFFLOADS = ("model", "sequential", "group")  # diffusers' model / sequential CPU offload, group offload
KNOWN_MODES = ("temporal", "spatial")  # the anymask release's two scripts (`conditioning.KnownPixels`)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
MIN_WINDOW_S = 0.5  # the anymask scripts round a window down to half seconds
MAX_SEED = 2**64 - 1  # torch generators take 64-bit seeds
Image = Union[str, os.PathLike, np.ndarray]  # noqa: UP007 (runtime alias): a path or an RGB uint8 array
Video = Union[str, os.PathLike, np.ndarray]  # noqa: UP007 (runtime alias): a path or F x H x W x 3 uint8


@dataclass(frozen=True)
class At:
    """A place given as a share `t` of the clip: 0 is the first frame, 1 the last."""

    t: float


FrameSpec = Union[int, Literal["last"], At]  # noqa: UP007 (a runtime alias: `|` fails on a Literal in 3.10)


def resolve_frame(spec: FrameSpec, num_frames: int) -> int:
    """The pixel frame `spec` names in a clip of `num_frames` frames.

    `At(t)` follows the official V3 code: frame int((F - 1) t), rounded to a multiple of 8 (ties to even), so
    for F = 81 the times 0 / .25 / .5 / .75 / 1 give frames 0 / 16 / 40 / 64 / 80; kept inside the clip.
    """
    last = num_frames - 1
    if spec == "last":
        return last
    if isinstance(spec, At):
        if not (isinstance(spec.t, (int, float)) and math.isfinite(spec.t) and 0 <= spec.t <= 1):
            raise InputError(f"a guide time must be in [0, 1] (0 first frame, 1 last), got {spec.t!r}")
        return min(round(int(last * spec.t) / V3_FRAME_STEP) * V3_FRAME_STEP, last)
    if isinstance(spec, bool) or not isinstance(spec, int):
        raise InputError(f"a guide frame is an integer, 'last' or a time in [0, 1], got {spec!r}")
    frame = spec + num_frames if spec < 0 else spec
    if not 0 <= frame <= last:
        raise InputError(
            f"guide frame {spec} is outside the video: frames are 0-{last}, or -{num_frames}..-1 from the end"
        )
    return frame


def parse_frame(text: str) -> FrameSpec:
    """A frame index (negative from the end) or "last", as written on a command line or in a bench file."""
    if text == "last":
        return "last"
    try:
        return int(text)
    except ValueError:
        raise InputError(f"a guide frame is an integer or 'last', got {text!r}") from None


@dataclass(frozen=True)
class GuideSpec:
    """A guide image (a path or an RGB uint8 array) at a place in the clip, with a strength in [0, 1]."""

    image: Image
    frame: FrameSpec = 0
    strength: float = 1.0

    @property
    def at_start(self) -> bool:
        """Placed at the first frame, whatever the clip's length."""
        return self.frame in (0, At(0.0))


@dataclass(frozen=True)
class KnownSpec:
    """Pixels kept from a reference video (the anymask release): where its mask video is white (red channel
    >= 128, the official threshold) the pixels are given, elsewhere generated. The span `start`-`end`
    (seconds; default the whole video) of both videos is sampled evenly to the clip's frame count, as the
    official scripts sample a window; with `window` the span is cut into windows of that many seconds (the
    scripts' 4), each made as one clip, and the clips joined. `mode` adds an official recipe: "temporal"
    gives every 8th frame whole (repair a video from its keyframes), "spatial" the first frame (regenerate
    a region); None uses the mask as drawn."""

    video: Video
    mask: Video | None = None  # None: VIDEO_mask.mp4 beside the video, the official naming
    mode: str | None = None
    window: float | None = None
    start: float = 0.0
    end: float | None = None  # None: the video's end

    @property
    def mask_video(self) -> Video:
        if self.mask is not None:
            return self.mask
        if isinstance(self.video, np.ndarray):
            raise InputError("known pixels given as an array need their mask as an array too")
        video = Path(self.video)
        return video.with_name(f"{video.stem}_mask{video.suffix}")

    def check(self) -> None:
        if self.mode is not None:
            _choice("known-pixels mode", self.mode, KNOWN_MODES)
        self.mask_video  # noqa: B018 (raises for an array without its mask)
        for name in ("window", "start", "end"):
            if getattr(self, name) is not None:
                _finite(f"known-pixels {name}", getattr(self, name))
        if self.window is not None and self.window < MIN_WINDOW_S:
            raise InputError(f"known-pixels windows last at least {MIN_WINDOW_S} s, got {self.window}")
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise InputError(f"the known-pixels span must have 0 <= start < end, got {self.start}-{self.end}")
        if isinstance(self.video, np.ndarray) and (self.window, self.start, self.end) != (None, 0.0, None):
            raise InputError("known pixels given as arrays have no times: spans and windows need video files")


@dataclass(frozen=True)
class LoadOptions:
    """Which model to load and how; every field has the default a user gets when they leave it out."""

    model: str
    layout: str | None = None  # "anisora" widens a V1-layout CogVideoX model with mask channels
    dtype: str = "float32"
    device: str | None = None  # None: cuda when present, else cpu
    offload: str | None = None  # one of OFFLOADS (needs a GPU)
    fp8: bool = False  # transformer weights stored in float8 (e4m3), computed in `dtype`
    vae_tiling: bool = False
    vae_slicing: bool = False
    scheduler: str | None = None  # one of SCHEDULERS (CogVideoX); None: the model's preset
    lora: str | None = None
    lora_scale: float = 1.0
    # the model's own LoRA for requests with a motion mask (model_index.json `mask_lora`), when `lora` is None
    mask_lora: bool = True

    def check(self) -> None:
        """Raise InputError for a value no model accepts (the device and layout are checked at load)."""
        _choice("dtype", self.dtype, DTYPES)
        if self.scheduler is not None:
            _choice("scheduler", self.scheduler, SCHEDULERS)
        if self.offload is not None:
            _choice("offload", self.offload, OFFLOADS)
        _finite("lora scale", self.lora_scale)
        if self.lora and not Path(self.lora).exists():
            raise InputError(f"LoRA {self.lora} does not exist")


@dataclass(frozen=True)
class Request:
    """What to generate. None means the model's own value (its frame count, size, fps, steps, guidance)."""

    guides: tuple[GuideSpec, ...] = ()
    mask: Image | None = None  # motion region drawn on the first guide: white may move
    known: KnownSpec | None = None  # pixels kept from a reference video (anymask; Wan)
    prompt: str = ""
    negative_prompt: str = ""
    motion: float | None = None  # scores for the official prompt suffix
    aesthetic: float | None = None  # None: the model's default, when a motion score is given
    frames: int | None = None
    seconds: float | None = None
    fps: int | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    motion_guidance: float | None = None  # its scale (`anisora.model.motion_guidance`); 0 turns it off
    guide_fit_steps: int | None = None  # see `anisora.model.guide_fit`; 0 turns fitting off
    # a model drawing on its guides' flow interpolation (the demo model) decodes only its change to it;
    # False decodes the whole video (`AnisoraPipeline.__call__`)
    decode_change: bool = True
    dynamic_cfg: bool = False
    seed: int = 0

    def check(self) -> None:
        """Raise InputError for values no model accepts; the model's own rules come in `sampling.prepare`."""
        integers = (("steps", 1), ("fps", 1), ("width", 1), ("height", 1), ("seed", 0), ("frames", 1))
        for name, low in (*integers, ("guide_fit_steps", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("decode_change", "dynamic_cfg"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("prompt", "negative_prompt"):  # one video per request: a list is not a prompt here
            if not isinstance(getattr(self, name), str):
                raise InputError(f"{name.replace('_', ' ')} must be a string, got {getattr(self, name)!r}")
        if self.seed > MAX_SEED:
            raise InputError(f"seed must be at most 2**64 - 1, got {self.seed}")
        if (self.width is None) != (self.height is None):
            raise InputError("give both width and height, or neither")
        if self.frames is not None and self.seconds is not None:
            raise InputError("give a frame count or a duration in seconds, not both")
        for name in ("guidance", "seconds"):  # scores and guide strengths: `conditioning.check_request`
            if getattr(self, name) is not None:
                _finite(name, getattr(self, name))
        if self.motion_guidance is not None:
            _finite("motion guidance", self.motion_guidance)
            if self.motion_guidance < 0:
                raise InputError(f"motion guidance must be >= 0, got {self.motion_guidance}")
        if self.known is not None:
            self.known.check()
            if self.known.window is not None and (self.frames, self.seconds) != (None, None):
                raise InputError(
                    "known-pixels windows set each clip's length: drop the frame count or duration"
                )


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


def parse_prompt_line(
    line: str,
    folder: str | os.PathLike[str] = ".",
    known_mode: str | None = None,
    known_window: float | None = None,
) -> Request:
    """A request from one line of the official AniSora V3 prompt file: `prompt@@img1,img2&&t1,t2`, each image
    placed at its time t in [0, 1] by the V3 rule (`At`). Without `&&` (as V3.2 allows) one image at t = 0.
    The anymask release's lines name one video instead (`prompt@@clip.mp4`, its mask `clip_mask.mp4`
    beside it): its known pixels, with `known_mode` and `known_window` (see `KnownSpec`).

    The official scripts open image paths from the folder they run in; a relative path is looked up beside
    the prompt file first (`folder`), then there.
    """
    prompt, sep, rest = line.partition("@@")
    if not sep or not rest.strip():
        raise InputError("expected PROMPT@@IMAGE[,IMAGE...][&&TIME[,TIME...]]")
    paths_text, sep, times_text = rest.partition("&&")
    paths = [p.strip() for p in paths_text.split(",")]
    try:
        times = [float(t) for t in times_text.split(",")] if sep else [0.0]
    except ValueError:
        raise InputError(f"times must be numbers in [0, 1], got {times_text.strip()!r}") from None
    if len(paths) == 1 and not sep and paths[0].lower().endswith(VIDEO_SUFFIXES):
        known = KnownSpec(_beside(paths[0], Path(folder)), mode=known_mode, window=known_window)
        known.check()
        return Request(known=known, prompt=prompt.strip())
    if len(paths) != len(times) or "" in paths:
        raise InputError(f"{len(paths)} image(s) but {len(times)} time(s): give one time per image")
    guides = tuple(
        GuideSpec(_beside(path, Path(folder)), At(t)) for path, t in zip(paths, times, strict=True)
    )
    return Request(guides=guides, prompt=prompt.strip())


def _beside(path: str, folder: Path) -> str:
    candidates = [Path(path)] if Path(path).is_absolute() else [folder / path, Path(path)]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    tried = " or ".join(str(c) for c in candidates)
    raise InputError(f"{path} not found (looked for {tried})")


def _choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _finite(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
