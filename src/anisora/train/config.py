"""Training settings: one YAML file per stage (configs/train/), typed here with documented defaults.

A stage starts from `init.model` (the previous stage's `final/` directory, or any diffusers directory) or,
when that is empty, from fresh weights of the `init.architecture` preset with `init.vae` and the text encoder.
Values are checked when the file loads (types, ranges, choices; unknown keys are an error);
`anisora train defaults --schema` prints the JSON Schema of a stage file for editors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..model.conditioning import Interpolation
from ..toonworld.held_out import HELD_OUT_SEEDS
from ..typed_config import NON_NEGATIVE, POSITIVE, SHARE, Config, Setting, json_schema, load_config_file
from .masking import MaskingConfig

BucketSide = Annotated[int, Field(gt=0, multiple_of=16)]


class InitConfig(Config):
    model: str | None = None
    """diffusers directory to start from (previous stage, CogVideoX-5B-I2V, ...)"""
    architecture: str = "demo"
    """preset for fresh weights (anisora.model.presets) when `model` is empty"""
    vae: str | None = None
    """trained VAE directory for fresh weights (required with a fresh architecture)"""
    text_encoder: str = "minilm"
    """"minilm" (the frozen MiniLM a registry package ships) or a T5 directory"""
    layout: Literal["anisora", "v1"] = "anisora"
    """transformer input layout; "anisora" widens a V1 model to the 36-channel mask layout"""
    motion_embedding: bool = True
    """numeric motion score added to the timestep embedding"""
    residual_to_guides: bool = False
    """the transformer predicts the clean latent minus the guides' interpolation (clean-latent schedulers);
    a model without it is switched, its output layer zeroed so that it starts from that interpolation"""
    guide_interpolation: Interpolation = "latent"
    """with residual_to_guides: "latent" (a latent cross-fade) or "flow" (the keyframes interpolated along
    their optical flow, VAE-encoded); a model switched to another one has its output layer zeroed again"""


class DataConfig(Config):
    source: str = "toonworld"
    """"toonworld" or a curation folder (anisora curate run --out)"""
    seed: Annotated[int, NON_NEGATIVE] = 0
    """ToonWorld seed; not one of anisora.toonworld.held_out.HELD_OUT_SEEDS (evaluation, validation)"""
    resolutions: Annotated[
        list[Annotated[list[BucketSide], Field(min_length=2, max_length=2)]], Field(min_length=1)
    ] = Field(default_factory=lambda: [[160, 96]])
    """[width, height] buckets, multiples of 16"""
    fps: Annotated[float, POSITIVE] = 8.0
    min_seconds: Annotated[float, Field(ge=2, le=8)] = 2.0
    max_seconds: Annotated[float, Field(ge=2, le=8)] = 4.0
    image_share: Annotated[float, SHARE] = 0.1
    """share of one-frame (image) samples: the multi-task mix"""
    batch_size: Annotated[int, Field(ge=1)] = 4
    num_shots: Annotated[int, Field(ge=1)] | None = None
    """ToonWorld: train on shots [0, num_shots) only (None: a new shot per sample)"""
    speeds: Annotated[list[Annotated[float, POSITIVE]], Field(min_length=1)] = Field(
        default_factory=lambda: [1.0]
    )
    """ToonWorld playback speeds, each shot at each one"""
    cache: str | None = None
    """folder for VAE latents and text features, computed once (frozen encoders)"""
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    """processes that render batches ahead of the training step (0: the training process renders each
    batch when it needs it); a batch is a function of its index alone, so training is the same either way"""
    foreground: str | None = None
    """curated clips' masks for region LoRA: "motion" (MOG2) or a .onnx segmenter"""

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds {self.min_seconds:g} is above max_seconds {self.max_seconds:g}")
        if self.source == "toonworld" and self.seed in HELD_OUT_SEEDS:
            raise ValueError(f"seed {self.seed} is held out (evaluation and validation): train on another")
        if self.source != "toonworld" and self.speeds != [1.0]:
            raise ValueError("speeds replays ToonWorld shots only; curated clips play as they were cut")
        return self


class OptimConfig(Config):
    steps: Annotated[int, Field(ge=1)] = 1000
    lr: Annotated[float, POSITIVE] = 2e-4
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.01
    warmup_steps: Annotated[int, NON_NEGATIVE] = 50
    grad_clip: Annotated[float, POSITIVE] = 1.0
    ema_decay: Annotated[float, SHARE] = 0.999
    schedule: Literal["constant", "cosine"] = "constant"
    """after warm-up: constant, or cosine down to a tenth of lr at the last step"""


class LoraConfig(Config):
    rank: Annotated[int, NON_NEGATIVE] = 0
    """0 = train the full transformer; > 0 = train a LoRA of this rank only"""
    alpha: Annotated[int, POSITIVE] = 16
    targets: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    region: bool = False
    """motion-region training: latent outside the foreground mask = the guide latent"""


class SamplingPresets(Config):
    steps: Annotated[int, Field(ge=1)] | None = None
    """denoising steps `anisora generate` takes by default"""
    keyframe_steps: Annotated[int, Field(ge=1)] | None = None
    """denoising steps by default for a request with two or more guides (keyframes); unset: steps"""
    guidance: Annotated[float, Field(ge=1)] | None = None
    """classifier-free guidance scale by default (1: none, one model pass a step)"""
    scheduler: Literal["ddim", "dpm"] | None = None
    """sampler by default: ddim, or dpm (DPM++2M, which adds fresh noise at every step)"""
    motion_guidance: Annotated[float, Field(ge=0)] | None = None
    """guidance over the motion score by default (`anisora.model.motion_guidance`; 0: none)"""
    motion_guidance_reference: Annotated[float, Field(ge=0)] | None = None
    """the motion score it guides away from (the median of the training clips' scores)"""
    motion_guidance_until: Annotated[float, Field(gt=0, le=1)] | None = None
    """the share of the noise schedule, from pure noise, it acts over"""

    def presets(self) -> dict:
        return self.model_dump(exclude_none=True)


class TrainConfig(Config):
    name: str = "run"
    out: str = "runs/run"
    init: InitConfig = InitConfig()
    data: DataConfig = DataConfig()
    masking: MaskingConfig = MaskingConfig()
    optim: OptimConfig = OptimConfig()
    lora: LoraConfig = LoraConfig()
    text_dropout: Annotated[float, SHARE] = 0.1
    """prompt replaced by "" this often, for classifier-free guidance"""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """accelerate's mixed precision"""
    gradient_checkpointing: bool = False
    checkpoint_every: Annotated[int, Field(ge=1)] = 100
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    seed: Annotated[int, NON_NEGATIVE] = 0
    """noise, timesteps, guides and text dropout derive from (seed, step)"""
    sampling: SamplingPresets = SamplingPresets()
    """sampling defaults saved with the model (model_index.json's anisora_presets); unset: the model's own"""


def load_train_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    settings: Sequence[Setting] = (),
) -> TrainConfig:
    """Defaults, updated by the YAML at `path`, then by `overrides` (same nesting, merged per section), then
    by `--set` `settings`."""
    return load_config_file(TrainConfig, path, overrides, settings)


def config_schema() -> dict[str, Any]:
    """JSON Schema of a training stage file."""
    return json_schema(TrainConfig, "anisora train stage config")
