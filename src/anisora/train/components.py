"""The pipeline a training stage starts from, and how a trained one is saved.

- `init.model` set: that diffusers directory (a previous stage's `final/`, CogVideoX-5B-I2V, ...), widened to
  the mask layout when it is a V1 checkpoint.
- otherwise fresh transformer weights of the `init.architecture` preset, sized to the given VAE and text
  encoder: the trained VAE at `init.vae` and the frozen MiniLM a registry package ships ("minilm"), or a T5
  directory (its `tokenizer/` and `text_encoder/`).
A model whose text encoder comes from a package is saved without it (`text_encoder_name`), which keeps the
shipped demo model small; `AnisoraPipeline` resolves it again when it loads.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from ..model.info import ModelInfo
from ..model.pipeline import AnisoraPipeline
from ..model.presets import scheduler_config, transformer_config, vae_config
from ..model.weights import load_pipeline
from .config import InitConfig, TrainConfig
from .data import data_presets

# A small fresh model's VAE decodes fast enough to fit guides by default: 10 steps bring the demo model's
# guides at frames 8 and 16 within 0.2 dB of their VAE round trips (`anisora.model.guide_fit`).
FRESH_GUIDE_FIT_STEPS = 10


def check_init(init: InitConfig) -> None:
    """Raise InputError for a start that cannot load, reading no weights: a model folder without its
    config files, a missing VAE or text encoder folder."""
    if init.model:
        ModelInfo.read(init.model)
        return
    if not init.vae:
        raise InputError("init.vae is required to train fresh weights: train one with `anisora train vae`")
    _existing_dir(init.vae, "init.vae")
    if init.text_encoder != "minilm":
        _existing_dir(init.text_encoder, "init.text_encoder")


def build_pipeline(config: TrainConfig) -> AnisoraPipeline:
    init = config.init
    if init.model:
        pipe = load_pipeline(init.model, layout=init.layout)
        # this stage's frame rate (weak-to-strong), data's and the stage's sampling presets over the model's
        presets = {
            **(pipe.config.anisora_presets or {}),
            **data_presets(config.data.source),
            **config.sampling.presets(),
        }
        pipe.register_to_config(fps=round(config.data.fps), anisora_presets=presets)
        _predict_residuals(pipe, init.residual_to_guides, init.guide_interpolation)
        return pipe
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    check_init(init)
    vae = AutoencoderKLCogVideoX.from_pretrained(Path(init.vae))
    scale, sized_for = (
        2 ** (len(c["block_out_channels"]) - 1) for c in (vae.config, vae_config(init.architecture))
    )
    if scale != sized_for:
        raise InputError(
            f"init.vae compresses {scale}x spatially; the {init.architecture!r} architecture's patches are "
            f"sized for a {sized_for}x VAE: train one with `anisora train vae`"
        )
    tokenizer, text_encoder = _text_encoder(init.text_encoder)
    transformer_args = transformer_config(init.architecture, init.layout, init.motion_embedding)
    latent = vae.config.latent_channels
    transformer_args.update(
        in_channels=transformer_args["in_channels"] - 2 * transformer_args["out_channels"] + 2 * latent,
        out_channels=latent,
        text_embed_dim=text_encoder.config.hidden_size,
    )
    pipe = AnisoraPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=CogVideoXTransformer3DModel(**transformer_args),
        scheduler=CogVideoXDDIMScheduler(**scheduler_config(init.architecture)),
        motion_embedding=init.motion_embedding,
        fps=round(config.data.fps),
        text_encoder_name="minilm" if init.text_encoder == "minilm" else None,
        anisora_presets={
            **data_presets(config.data.source),
            "guide_fit_steps": FRESH_GUIDE_FIT_STEPS,
            **config.sampling.presets(),
        },
    )
    _predict_residuals(pipe, init.residual_to_guides, init.guide_interpolation)
    return pipe


def _predict_residuals(pipe: AnisoraPipeline, wanted: bool, interpolation: str) -> None:
    """Switch `pipe` to residuals to its guides' `interpolation` when `wanted`, with the transformer's output
    layer zeroed (it then predicts exactly that interpolation); refuse to switch a model back."""
    has = bool(pipe.config.residual_to_guides)
    if has and not wanted:
        raise InputError(
            "init.model predicts residuals to its guides' interpolation: set init.residual_to_guides: true"
        )
    if not wanted and interpolation != "latent":
        raise InputError("init.guide_interpolation is for residual models: set init.residual_to_guides: true")
    if wanted and not (has and pipe.config.guide_interpolation == interpolation):
        kind = pipe.scheduler.config.prediction_type
        if kind != "sample":
            raise InputError(
                f"init.residual_to_guides needs a clean-latent (prediction_type 'sample') model, not {kind!r}"
            )
        with torch.no_grad():
            pipe.transformer.proj_out.weight.zero_()
            pipe.transformer.proj_out.bias.zero_()
        pipe.register_to_config(residual_to_guides=True, guide_interpolation=interpolation)


def save_pipeline(pipe: AnisoraPipeline, path: str | os.PathLike[str]) -> None:
    """`save_pretrained`, which leaves out a text encoder that a package ships (see the module docstring)."""
    pipe.save_pretrained(path)


def _text_encoder(name: str):
    if name == "minilm":
        from ..model.text_encoder import minilm_text_encoder

        return minilm_text_encoder()
    from transformers import AutoTokenizer, T5EncoderModel

    folder = _existing_dir(name, "init.text_encoder")
    return AutoTokenizer.from_pretrained(folder / "tokenizer"), T5EncoderModel.from_pretrained(
        folder / "text_encoder"
    )


def _existing_dir(path: str, what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{what}: {folder} is not a directory")
    return folder
