"""Training settings: one YAML file per stage (configs/train/), typed here with documented defaults.

A stage starts from `init.model` (the previous stage's `final/` directory, or any diffusers directory) or,
when that is empty, from fresh weights of the `init.architecture` preset with `init.vae` and the text encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..typed_config import build, read_yaml
from .masking import MaskingConfig


@dataclass(frozen=True)
class InitConfig:
    model: str | None = None  # diffusers directory to start from (previous stage, CogVideoX-5B-I2V, ...)
    architecture: str = "demo"  # preset for fresh weights (anisora.model.presets) when `model` is empty
    vae: str | None = None  # trained VAE directory for fresh weights (required with a fresh architecture)
    text_encoder: str = "minilm"  # "minilm" (the frozen MiniLM a registry package ships) or a T5 directory
    layout: str = "anisora"
    motion_embedding: bool = True  # numeric motion score added to the timestep embedding


@dataclass(frozen=True)
class DataConfig:
    source: str = "toonworld"  # "toonworld" or a curation folder (anisora curate --out)
    seed: int = 0  # ToonWorld seed; evaluation uses anisora.toonworld.held_out.EVAL_SEED, never trained on
    resolutions: list = field(default_factory=lambda: [[160, 96]])  # [width, height] buckets
    fps: float = 8.0
    min_seconds: float = 2.0
    max_seconds: float = 4.0
    image_share: float = 0.1  # share of one-frame (image) samples: the multi-task mix
    batch_size: int = 4
    num_shots: int | None = (
        None  # ToonWorld: train on shots [0, num_shots) only (None: a new shot per sample)
    )
    speeds: list = field(default_factory=lambda: [1.0])  # ToonWorld playback speeds, each shot at each one
    cache: str | None = None  # folder for VAE latents and text features, computed once (frozen encoders)
    foreground: str | None = (
        None  # curated clips' masks for region LoRA: "motion" (MOG2) or a .onnx segmenter
    )


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 1000
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    schedule: str = (
        "constant"  # after warm-up: "constant", or "cosine" down to a tenth of lr at the last step
    )


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 0  # 0 = train the full transformer; > 0 = train a LoRA of this rank only
    alpha: int = 16
    targets: list = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    region: bool = False  # motion-region training: latent outside the foreground mask = the guide latent


@dataclass(frozen=True)
class TrainConfig:
    name: str = "run"
    out: str = "runs/run"
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    text_dropout: float = 0.1  # prompt replaced by "" this often, for classifier-free guidance
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (accelerate)
    gradient_checkpointing: bool = False
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0  # noise, timesteps, guides and text dropout derive from (seed, step)

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise InputError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.optim.steps < 1:
            raise InputError("checkpoint_every, keep_checkpoints and optim.steps must be at least 1")
        if self.optim.schedule not in ("constant", "cosine"):
            raise InputError(f"optim.schedule must be constant or cosine, got {self.optim.schedule!r}")
        if self.data.source != "toonworld" and list(self.data.speeds) != [1.0]:
            raise InputError("data.speeds replays ToonWorld shots only; curated clips play as they were cut")
        if not 0.0 <= self.text_dropout <= 1.0:
            raise InputError(f"text_dropout must be in [0, 1], got {self.text_dropout!r}")


def load_train_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, updated by the YAML at `path`, then by `overrides` (same nesting, merged per section)."""
    values: dict[str, Any] = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return build(TrainConfig, values, "config")
