"""Loading and converting weights in the diffusers directory layout (our code never downloads anything).

`load_pipeline(path)` opens any diffusers-format CogVideoX image-to-video directory: a CogVideoX-5B-I2V
download, a diffusers conversion of AniSora V1 (32-channel "v1" layout) or one of ours (36-channel "anisora"
layout, written by `AnisoraPipeline.save_pretrained`). Asking for `layout="anisora"` on a V1 checkpoint widens
the transformer's input with zero-initialised mask channels (`widen_to_anisora`), so its output is unchanged
until the mask channels are trained.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from ..files import SHIPPED
from ..logs import sync_libraries
from .conditioning import TEMPORAL, Layout, input_channels
from .info import ModelInfo, model_directory
from .pipeline import AnisoraPipeline

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The demo model `make demo-model` trains on ToonWorld, shipped in the package (card: README.md there).
DEMO_MODEL = Path(__file__).parent / "assets" / "demo-model"
DEMO_REGION_LORA = DEMO_MODEL / "region-lora"
DEMO_MODEL_NAME = f"{SHIPPED}demo-model"  # how shared outputs name it


def demo_model_dir() -> Path:
    """The shipped demo model, the default of `anisora generate`."""
    if not (DEMO_MODEL / "model_index.json").is_file():
        raise InputError(f"the demo model is missing from {DEMO_MODEL}; train it with `make demo-model`")
    return DEMO_MODEL


def load_pipeline(
    path: str | os.PathLike[str],
    *,
    layout: Layout | None = None,
    dtype: str = "float32",
    lora: str | os.PathLike[str] | None = None,
    lora_scale: float = 1.0,
) -> AnisoraPipeline:
    """An `AnisoraPipeline` from a local diffusers directory (model_index.json + component folders), or from
    a Hub repository id in the local Hugging Face cache (`info.model_directory`)."""
    path = model_directory(path)
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    sync_libraries()  # the command's -q/-v for diffusers' loading bar, which only a call can switch
    if ModelInfo.read(path).backbone == "wan":
        return _load_wan(path, layout, dtype, lora, lora_scale)
    try:
        pipe = AnisoraPipeline.from_pretrained(path, dtype=DTYPES[dtype], local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot load the model in {path}: {error}") from None
    if layout is not None and layout != pipe.layout:
        if (pipe.layout, layout) != ("v1", "anisora"):
            raise InputError(f"cannot convert a {pipe.layout!r} model to the {layout!r} layout")
        pipe.transformer = widen_to_anisora(pipe.transformer)
        pipe.register_modules(transformer=pipe.transformer)
    if lora is not None:
        load_lora(pipe, lora, lora_scale)
    return pipe


def _load_wan(path: Path, layout, dtype: str, lora, lora_scale: float):
    from .backbones.wan import AnisoraWanPipeline

    if layout not in (None, "anisora"):
        raise InputError(f"a Wan image-to-video model has the 'anisora' layout, not {layout!r}")
    try:
        pipe = AnisoraWanPipeline.from_pretrained(path, dtype=DTYPES[dtype], local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot load the model in {path}: {error}") from None
    if lora is not None:
        load_lora(pipe, lora, lora_scale)
    return pipe


def widen_to_anisora(transformer):
    """A copy of a "v1" transformer (noise + guides) with 4 zero-initialised mask channels in between."""
    from diffusers import CogVideoXTransformer3DModel

    config = dict(transformer.config)
    latent = config["out_channels"]
    if config["in_channels"] != input_channels(latent, "v1"):
        raise InputError(
            f"expected a v1 transformer with {2 * latent} input channels, got {config['in_channels']}"
        )
    config["in_channels"] = input_channels(latent, "anisora")
    wide = CogVideoXTransformer3DModel.from_config(config).to(transformer.dtype)
    state = transformer.state_dict()
    weight = state["patch_embed.proj.weight"]  # (inner, 2C, p, p): the only weight that sees input channels
    zeros = weight.new_zeros(weight.shape[0], TEMPORAL, *weight.shape[2:])
    state["patch_embed.proj.weight"] = torch.cat([weight[:, :latent], zeros, weight[:, latent:]], dim=1)
    wide.load_state_dict(state)
    return wide.to(transformer.device).eval()


def load_lora(pipe: AnisoraPipeline, path: str | os.PathLike[str], scale: float = 1.0) -> None:
    """Load a motion-region (or any) LoRA saved by diffusers' `save_lora_weights` / our trainer (peft)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"LoRA {path} does not exist")
    try:
        pipe.load_lora_weights(str(path), adapter_name="lora")
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot load the LoRA in {path}: {error}") from None
    pipe.set_adapters(["lora"], [scale])


MASK_ADAPTER = "mask"


def load_mask_lora(pipe: AnisoraPipeline, path: Path) -> None:
    """Load a model's own motion-region LoRA (model_index.json `mask_lora`), off until `use_mask_lora`."""
    try:
        pipe.load_lora_weights(str(path), adapter_name=MASK_ADAPTER)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot load the model's mask LoRA in {path}: {error}") from None
    pipe.disable_lora()


def use_mask_lora(pipe, masked: bool) -> bool:
    """Turn a loaded mask LoRA on for a request with a motion mask and off for one without; whether it is on.

    The demo model's region LoRA keeps motion inside the mask (precision 0.98 against 0.90 on the quick
    bench) but weakens the motion score's control, so it serves masked requests only."""
    adapters = pipe.get_list_adapters() if hasattr(pipe, "get_list_adapters") else {}
    if not any(MASK_ADAPTER in names for names in adapters.values()):
        return False
    if masked:
        pipe.enable_lora()
    else:
        pipe.disable_lora()
    return masked
