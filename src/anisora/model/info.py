"""What generation needs to know of a model before its weights load, read from its config files alone (or
from a loaded pipeline), and the size rule its position embedding sets."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .conditioning import (
    DEFAULT_AESTHETIC,
    FRAME_STEP,
    INTERPOLATIONS,
    PATCH,
    SPATIAL,
    TEMPORAL,
    ConditionRequest,
    Guide,
    Interpolation,
    Layout,
    layout_for,
)
from .hub import pipeline_class_name
from .motion_guidance import NO_MOTION_GUIDANCE, MotionGuidance
from .request import SCHEDULERS

# What a directory without an fps entry plays at: CogVideoX-5B-I2V's own rate (49 frames = 6 s).
DEFAULT_FPS = 8
WAN_PIPELINES = ("WanImageToVideoPipeline", "AnisoraWanPipeline")
# A model's release settings, recorded in model_index.json under "anisora_presets" (by `anisora convert`, or
# by the trainer for the demo model); what a model leaves out is the default below.
PRESET_TYPES = {
    "fps": int,
    "num_frames": int,
    "height": int,
    "width": int,
    "steps": int,
    "keyframe_steps": int,  # steps for a request with two or more guides (keyframes); unset: `steps`
    "guidance": float,
    "aesthetic": float,  # the aesthetic score the prompt suffix gets when only a motion score is given
    "prompt_suffix": str,  # appended to every prompt (V3's " There is no text in the video.")
    "max_sequence_length": int,  # text tokens the release was trained with (Wan: umT5's 512)
    "guide_fit_steps": int,  # decoder steps fitting guides at frames other than 0 (`anisora.model.guide_fit`)
    "scheduler": str,  # the CogVideoX sampler, one of SCHEDULERS (Wan keeps its release's UniPC)
    # guidance over a motion embedding's input (`anisora.model.motion_guidance`): its scale (0: none), the
    # motion score it guides away from, and the share of the schedule from pure noise it acts over
    "motion_guidance": float,
    "motion_guidance_reference": float,
    "motion_guidance_until": float,
}
PRESET_CHOICES = {"scheduler": SCHEDULERS}
MOTION_GUIDANCE_PRESETS = ("motion_guidance", "motion_guidance_reference", "motion_guidance_until")
COMMON_DEFAULTS = {"aesthetic": DEFAULT_AESTHETIC, "prompt_suffix": "", "guide_fit_steps": 0}
COGVIDEOX_DEFAULTS = {
    "steps": 50,
    "guidance": 6.0,
    "scheduler": "dpm",  # DPM++2M, as CogVideoX's own examples
    "keyframe_steps": None,
    **dict(zip(MOTION_GUIDANCE_PRESETS, astuple(NO_MOTION_GUIDANCE), strict=True)),
    **COMMON_DEFAULTS,
}  # the size and fps come from the configs
# Wan image-to-video without recorded presets: Wan2.1-I2V's own (480p, 81 frames at 16 fps, 40 steps, CFG 5).
WAN_DEFAULTS = {
    "fps": 16,
    "num_frames": 81,
    "height": 480,
    "width": 832,
    "steps": 40,
    "guidance": 5.0,
    "max_sequence_length": 512,
    **COMMON_DEFAULTS,
}
# The motion score's scale, by where a model learned it. Models trained here (CogVideoX in the "anisora"
# layout: the demo model, `anisora train` runs) learned the curation's score, mean max optical flow in 480p
# pixels (ToonWorld clips measure about 12, the bench asks 1-30). The releases (V1's layout, every Wan model)
# read the official suffix on their own scale: V1's README gives 0.5-1.5 as typical, higher for more movement;
# the V2 and V3 examples ask 1.3 and 3.
MOTION_RANGES = {"curation": (0.0, 30.0), "release": (0.0, 5.0)}


@dataclass(frozen=True)
class ModelInfo:
    fps: int
    sample_frames: int
    height: int  # the sample size in pixels
    width: int
    layout: Layout
    learned_positions: bool = False  # a learned position embedding (CogVideoX-5B-I2V, AniSora V1)
    backbone: str = "cogvideox"  # or "wan"
    frame_step: int = FRAME_STEP  # frame counts are frame_step k + 1 (see conditioning.check_frame_count)
    steps: int = 50  # the sampling defaults the model was released with
    keyframe_steps: int | None = None
    guidance: float = 6.0
    aesthetic: float = DEFAULT_AESTHETIC
    prompt_suffix: str = ""
    max_sequence_length: int | None = None  # None: the pipeline's own
    guide_fit_steps: int = 0
    scheduler: str | None = None  # the CogVideoX sampler the model was released with; None: Wan's own UniPC
    spatial: int = SPATIAL  # the VAE's pixels per latent cell (diffusers' vae_scale_factor_spatial)
    patch: int = PATCH  # the transformer's latent cells per token
    motion_embedding: bool = False  # a numeric motion score beside the prompt suffix (models trained here)
    motion_mask: bool = True  # a motion region can be held still (Wan: only on flow-matching sigmas)
    interpolation: Interpolation = "latent"  # a residual demo model's guides' interpolation (conditioning)
    mask_lora: str | None = None  # the model's folder with the LoRA that requests with a motion mask get
    motion_guidance: MotionGuidance = NO_MOTION_GUIDANCE  # its presets

    def __post_init__(self) -> None:
        if self.motion_guidance.scale and not self.motion_embedding:
            raise InputError("anisora_presets motion_guidance needs a model with a motion embedding")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ModelInfo:
        """From a model directory's config files (or a Hub id in the local cache: `model_directory`)."""
        path = model_directory(path)
        index = model_index(path)
        presets = index.get("anisora_presets")
        if pipeline_class_name(index) in WAN_PIPELINES:
            scheduler = path / "scheduler" / "scheduler_config.json"
            flow = read_config(scheduler).get("use_flow_sigmas", True) if scheduler.is_file() else True
            return cls.wan(presets, path, motion_mask=bool(flow))
        transformer, vae = (read_config(path / part / "config.json") for part in ("transformer", "vae"))
        try:
            scale = 2 ** (len(vae["block_out_channels"]) - 1)  # diffusers' vae_scale_factor_spatial
            return cls(
                spatial=scale,
                patch=int(transformer.get("patch_size", PATCH)),
                fps=int(index.get("fps", DEFAULT_FPS)),
                sample_frames=int(transformer["sample_frames"]),
                height=int(transformer["sample_height"]) * scale,
                width=int(transformer["sample_width"]) * scale,
                layout=layout_for(int(transformer["in_channels"]), int(vae["latent_channels"])),
                learned_positions=bool(transformer.get("use_learned_positional_embeddings", False)),
                motion_embedding=bool(index.get("motion_embedding", False)),
                interpolation=guide_interpolation(index.get("guide_interpolation"), path),
                mask_lora=mask_lora_folder(index.get("mask_lora"), path),
                **cogvideox_presets(presets, path),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: unusable model config ({type(error).__name__}: {error})") from None

    @classmethod
    def wan(
        cls, presets: dict | None, where: str | os.PathLike[str] = "model", motion_mask: bool = True
    ) -> ModelInfo:
        """A Wan image-to-video model with these release presets (WAN_DEFAULTS for the rest); `motion_mask`:
        whether its scheduler samples on flow-matching sigmas, which holding a region still needs."""
        values = read_presets(presets, WAN_DEFAULTS, where)
        return cls(
            fps=values.pop("fps"),
            sample_frames=values.pop("num_frames"),
            height=values.pop("height"),
            width=values.pop("width"),
            layout="anisora",  # 16 noise + 4 mask + 16 condition channels
            backbone="wan",
            frame_step=TEMPORAL,
            motion_mask=motion_mask,
            **values,
        )

    @classmethod
    def of(cls, pipe) -> ModelInfo:
        """From a loaded `AnisoraPipeline` or `AnisoraWanPipeline`."""
        presets = getattr(pipe.config, "anisora_presets", None)
        if pipe.__class__.__name__ in WAN_PIPELINES:
            return cls.wan(presets, motion_mask=bool(getattr(pipe.scheduler.config, "use_flow_sigmas", True)))
        config, scale = pipe.transformer.config, pipe.vae_scale_factor_spatial
        return cls(
            int(pipe.config.fps),
            config.sample_frames,
            config.sample_height * scale,
            config.sample_width * scale,
            pipe.layout,
            bool(config.use_learned_positional_embeddings),
            spatial=scale,
            patch=config.patch_size,
            motion_embedding=bool(pipe.config.motion_embedding),
            interpolation=guide_interpolation(getattr(pipe.config, "guide_interpolation", None)),
            mask_lora=getattr(pipe.config, "mask_lora", None),
            **cogvideox_presets(presets),
        )

    def condition(
        self,
        num_frames: int,
        height: int,
        width: int,
        guides: Sequence[Guide] = (),
        motion_mask: np.ndarray | None = None,
        prompt: str = "",
        motion: float | None = None,
        aesthetic: float | None = None,
    ) -> ConditionRequest:
        """A conditioning request with this model's aesthetic default and prompt suffix."""
        return ConditionRequest(
            num_frames,
            height,
            width,
            tuple(guides),
            motion_mask,
            prompt,
            motion,
            aesthetic,
            self.aesthetic,
            self.prompt_suffix,
            self.spatial,
            self.patch,
            self.interpolation,
        )

    def default_steps(self, guides: Sequence[Guide]) -> int:
        """The sampling steps a request with `guides` gets when it names none: `keyframe_steps` between two
        or more keyframes (a model that starts from their interpolation can drift from it with every step),
        else `steps`."""
        return self.keyframe_steps if self.keyframe_steps and len(guides) > 1 else self.steps

    def motion_guidance_for(
        self, guides: Sequence[Guide], scale: float | None = None
    ) -> MotionGuidance | None:
        """The motion guidance a request with `guides` gets: at `scale` when one is given (0: none), else the
        model's preset, which a request between keyframes goes without (its keyframes set the motion)."""
        if scale is None:
            scale = self.motion_guidance.scale if len(guides) < 2 else 0.0
        if scale and not self.motion_embedding:
            raise InputError(
                "motion guidance needs a model with a motion embedding (trained by `anisora train`)"
            )
        return replace(self.motion_guidance, scale=scale) if scale else None

    @property
    def max_frames(self) -> int | None:
        """The most frames one call makes: a learned position embedding's rows; None when unbounded."""
        return self.sample_frames if self.learned_positions else None

    @property
    def clip_frames(self) -> int | None:
        """The longest clip the model was made for, which a longer video is cut into: a learned position
        embedding's rows, or a Wan release's clip (81 frames, 5 s at 16 fps, for Wan2.1 and V3); None for
        CogVideoX with rotary positions, which sets no length."""
        return self.sample_frames if self.learned_positions or self.backbone == "wan" else None

    @property
    def keyframes(self) -> bool:
        """Guides at frames other than the first: only with mask channels that tell the model which frames
        are given (the "anisora" layout, every Wan model). The V1 layout has none: AniSora V1 and
        CogVideoX-5B-I2V were released for one image at the first frame."""
        return self.layout == "anisora"

    @property
    def motion_scores(self) -> str:
        """How the model reads a motion score: "embedding" (a number beside the prompt suffix) or "prompt"."""
        return "embedding" if self.motion_embedding else "prompt"

    @property
    def motion_range(self) -> tuple[float, float]:
        """The motion scores the model learned (MOTION_RANGES): the curation's for models trained here."""
        trained_here = self.backbone == "cogvideox" and self.layout == "anisora"
        return MOTION_RANGES["curation" if trained_here else "release"]

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        """A learned position embedding has rows for one size and up to `sample_frames` frames: shorter clips
        use its first rows (as the official code does); other sizes are refused."""
        if self.learned_positions and (
            (height, width) != (self.height, self.width) or num_frames > self.sample_frames
        ):
            raise InputError(
                f"this model's learned position embedding covers {self.width}x{self.height} with up to "
                f"{self.sample_frames} frames; {width}x{height} with {num_frames} frames cannot be made"
            )


def read_presets(presets: dict | None, defaults: dict, where: str | os.PathLike[str] = "model") -> dict:
    """`defaults` overridden by the recorded presets, each checked against PRESET_TYPES."""
    presets = presets or {}
    if not isinstance(presets, dict):
        raise InputError(f"{where}: anisora_presets in model_index.json must be a mapping")
    values = dict(defaults)
    for key, value in presets.items():
        if key not in defaults:
            raise InputError(f"{where}: unknown anisora_presets entry {key!r} (known: {', '.join(defaults)})")
        kind = PRESET_TYPES[key]
        numeric = kind is not str and isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (numeric or isinstance(value, kind)) or (kind is int and value != int(value)):
            raise InputError(f"{where}: anisora_presets {key} must be a {kind.__name__}, got {value!r}")
        allowed = PRESET_CHOICES.get(key)
        if allowed and value not in allowed:
            raise InputError(
                f"{where}: anisora_presets {key} must be one of {', '.join(allowed)}, got {value!r}"
            )
        values[key] = kind(value)
    return values


def cogvideox_presets(presets: dict | None, where: str | os.PathLike[str] = "model") -> dict:
    """`read_presets` for a CogVideoX model, its motion guidance entries gathered in one `MotionGuidance`."""
    values = read_presets(presets, COGVIDEOX_DEFAULTS, where)
    guidance = MotionGuidance(*(values.pop(key) for key in MOTION_GUIDANCE_PRESETS))
    try:
        guidance.check()
    except InputError as error:
        raise InputError(f"{where}: anisora_presets {error}") from None
    return values | {"motion_guidance": guidance}


def guide_interpolation(value, where: str | os.PathLike[str] = "model") -> Interpolation:
    """model_index.json's `guide_interpolation` (absent: "latent"), checked."""
    if value is None:
        return "latent"
    if value not in INTERPOLATIONS:
        raise InputError(
            f"{where}: guide_interpolation in model_index.json must be one of {', '.join(INTERPOLATIONS)}, "
            f"got {value!r}"
        )
    return value


def mask_lora_folder(value, path: Path) -> str | None:
    """model_index.json's `mask_lora`: the name of a folder inside the model `path`, checked to be one."""
    if value is None:
        return None
    if not isinstance(value, str) or Path(value).name != value or value in ("", ".", ".."):
        raise InputError(f"{path}: mask_lora in model_index.json must be a folder name, got {value!r}")
    if not (path / value).is_dir():
        raise InputError(f"{path}: model_index.json names the mask LoRA {value!r}, which is not in the model")
    return value


def model_directory(model: str | os.PathLike[str]) -> Path:
    """A model's local directory: `model` itself when it exists, else a Hub repository id ("org/name") found
    in the local Hugging Face cache (never downloaded: the error names the command that downloads it)."""
    path = Path(model)
    name = str(model)
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/")) or "\\" in name:
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except HFValidationError:
        return path
    except LocalEntryNotFoundError:
        raise InputError(
            f"{name} is neither a folder here nor in the local Hugging Face cache: download it with "
            f"`hf download {name}` (or give the folder it is in)"
        ) from None


def model_index(path: Path) -> dict:
    if not (path / "model_index.json").is_file():
        raise InputError(f"{path} is not a diffusers model directory (no model_index.json)")
    return read_config(path / "model_index.json")


def read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object")
    return config
