"""What generation needs to know of a model before its weights load, read from its config files alone (or
from a loaded pipeline), and the size rule its position embedding sets."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .conditioning import FRAME_STEP, TEMPORAL, Layout, layout_for

# What a directory without an fps entry plays at: CogVideoX-5B-I2V's own rate (49 frames = 6 s).
DEFAULT_FPS = 8
WAN_PIPELINES = ("WanImageToVideoPipeline", "AnisoraWanPipeline")
# Wan image-to-video without recorded presets: Wan2.1-I2V's own (480p, 81 frames at 16 fps, 40 steps, CFG 5);
# a converted AniSora release records its own in model_index.json under "anisora_presets".
WAN_DEFAULTS = {"fps": 16, "num_frames": 81, "height": 480, "width": 832, "steps": 40, "guidance": 5.0}


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
    guidance: float = 6.0

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ModelInfo:
        """From a model directory's config files."""
        path = Path(path)
        index = model_index(path)
        if index.get("_class_name") in WAN_PIPELINES:
            return cls.wan(index.get("anisora_presets") or {}, path)
        transformer, vae = (read_config(path / part / "config.json") for part in ("transformer", "vae"))
        try:
            scale = 2 ** (len(vae["block_out_channels"]) - 1)  # diffusers' vae_scale_factor_spatial
            return cls(
                fps=int(index.get("fps", DEFAULT_FPS)),
                sample_frames=int(transformer["sample_frames"]),
                height=int(transformer["sample_height"]) * scale,
                width=int(transformer["sample_width"]) * scale,
                layout=layout_for(int(transformer["in_channels"]), int(vae["latent_channels"])),
                learned_positions=bool(transformer.get("use_learned_positional_embeddings", False)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: unusable model config ({type(error).__name__}: {error})") from None

    @classmethod
    def wan(cls, presets: dict, where: str | os.PathLike[str] = "model") -> ModelInfo:
        """A Wan image-to-video model with these release presets (WAN_DEFAULTS for the rest)."""
        if not isinstance(presets, dict):
            raise InputError(f"{where}: anisora_presets in model_index.json must be a mapping")
        try:
            values = {key: type(default)(presets.get(key, default)) for key, default in WAN_DEFAULTS.items()}
        except (TypeError, ValueError) as error:
            raise InputError(f"{where}: unusable anisora_presets ({error})") from None
        return cls(
            fps=values["fps"],
            sample_frames=values["num_frames"],
            height=values["height"],
            width=values["width"],
            layout="anisora",  # 16 noise + 4 mask + 16 condition channels
            backbone="wan",
            frame_step=TEMPORAL,
            steps=values["steps"],
            guidance=values["guidance"],
        )

    @classmethod
    def of(cls, pipe) -> ModelInfo:
        """From a loaded `AnisoraPipeline` or `AnisoraWanPipeline`."""
        if pipe.__class__.__name__ in WAN_PIPELINES:
            return cls.wan(getattr(pipe.config, "anisora_presets", None) or {})
        config, scale = pipe.transformer.config, pipe.vae_scale_factor_spatial
        return cls(
            int(pipe.config.fps),
            config.sample_frames,
            config.sample_height * scale,
            config.sample_width * scale,
            pipe.layout,
            bool(config.use_learned_positional_embeddings),
        )

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
