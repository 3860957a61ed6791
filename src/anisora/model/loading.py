"""A model loaded for generation as `LoadOptions` ask: dtype, device, memory modes, scheduler, LoRA (the
one asked for, else the model's own mask LoRA).

`check_load` reads only config files, so every mistake in the options is one line before weights load.
Memory modes are diffusers': model CPU offload (one component on the GPU at a time), sequential CPU offload
(one layer at a time), group offload (the transformer's blocks streamed to the GPU one group ahead), VAE
tiling/slicing, and fp8 weight storage (layerwise casting: each layer's weights upcast to `dtype` for its
forward).
"""

from __future__ import annotations

import logging
import time

import torch

from ..errors import InputError
from .conditioning import LAYOUTS
from .info import ModelInfo, model_directory
from .pipeline import AnisoraPipeline
from .request import LoadOptions
from .weights import DTYPES, load_lora, load_mask_lora, load_pipeline

log = logging.getLogger(__name__)


def check_load(load: LoadOptions) -> ModelInfo:
    """Raise InputError for options this machine or this model cannot take; returns what the model is."""
    load.check()
    if load.layout not in (None, *LAYOUTS):
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {load.layout!r}")
    info = ModelInfo.read(load.model)
    if load.layout not in (None, info.layout) and (info.layout, load.layout) != ("v1", "anisora"):
        raise InputError(f"cannot convert a {info.layout!r} model to the {load.layout!r} layout")
    device = device_of(load)
    if load.offload and device.type != "cuda":
        raise InputError(f"{load.offload} offload moves parts to a GPU as needed; there is no GPU here")
    return info


def device_of(load: LoadOptions) -> torch.device:
    """The torch device asked for (default: cuda when present, else cpu), checked to exist here."""
    try:
        device = torch.device(load.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {load.device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {load.device!r}: there is no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {load.device!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {load.device!r} is not supported; use cpu, cuda or cuda:N")
    return device


def open_pipeline(load: LoadOptions):
    """The pipeline (`AnisoraPipeline` or `AnisoraWanPipeline`) loaded and placed as `load` asks."""
    info = check_load(load)
    device = device_of(load)
    log.debug("loading %s (%s) for %s", load.model, load.dtype, device)
    started = time.perf_counter()
    pipe = load_pipeline(load.model, layout=load.layout, dtype=load.dtype)
    if isinstance(pipe, AnisoraPipeline):  # Wan keeps its release's UniPC with flow shift
        from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

        kind = (
            CogVideoXDPMScheduler if (load.scheduler or info.scheduler) == "dpm" else CogVideoXDDIMScheduler
        )
        pipe.scheduler = kind.from_config(pipe.scheduler.config)
    if load.lora:
        load_lora(pipe, load.lora, load.lora_scale)
    elif load.mask_lora and info.mask_lora:
        load_mask_lora(pipe, model_directory(load.model) / info.mask_lora)
    if load.fp8:
        for transformer in (pipe.transformer, getattr(pipe, "transformer_2", None)):
            if transformer is not None:
                transformer.enable_layerwise_casting(
                    storage_dtype=torch.float8_e4m3fn, compute_dtype=DTYPES[load.dtype]
                )
    if load.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif load.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif load.offload == "group":
        pipe.enable_group_offload(
            onload_device=device, offload_type="block_level", num_blocks_per_group=1, use_stream=True
        )
    else:
        pipe.to(device)
    if load.vae_tiling:
        pipe.vae.enable_tiling()
    if load.vae_slicing:
        pipe.vae.enable_slicing()
    log.debug("model ready in %.1f s", time.perf_counter() - started)
    return pipe
