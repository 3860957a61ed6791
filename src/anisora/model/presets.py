"""Named architecture presets: build the pipeline's components from config (random weights).

- "tiny": a few thousand parameters per part, for tests and benchmarks (a full sampling run takes well under
  a second on a CPU). Its T5 tokenizer is a character-level unigram vocabulary built in code.
- "demo": the architecture of the shipped demo model (trained by `anisora train` with the MiniLM text
  encoder; here a one-layer T5 of the same width stands in, for tests).
- "2b" / "5b": the published CogVideoX-2B / CogVideoX-5B-I2V configurations (transformer, VAE, T5-XXL
  encoder, scheduler), so memory needs can be computed or measured without the weights. Build them on the
  meta device (`torch.device("meta")`) unless you have the memory.

`layout` picks the transformer's input channels (see `conditioning.input_channels`), and `motion_embedding`
gives it the numeric motion embedding (diffusers' "ofs" embedding, added to the timestep embedding).
"""

from __future__ import annotations

import string
from typing import Any

from .conditioning import Layout, input_channels

PRESETS = ("tiny", "demo", "2b", "5b")

_TRANSFORMER = {
    "tiny": dict(
        num_attention_heads=2,
        attention_head_dim=16,
        time_embed_dim=8,
        text_embed_dim=16,
        num_layers=1,
        sample_width=8,
        sample_height=8,
        sample_frames=9,
        max_text_seq_length=64,
        use_rotary_positional_embeddings=True,
    ),
    # The demo model: 160x96 at 8 fps (40x24 latent cells of its 4x VAE in 4x4 patches: 10x6 tokens a frame;
    # 17 frames -> 5 latent frames), text from the 384-d MiniLM encoder. A token carries 4x4x16 = 256 latent
    # values, so the width is 256: `proj_out` maps the width onto them, and at 128 its rank could not predict
    # the noise in half of those directions (measured: in-between frames of coloured noise after stage 1).
    "demo": dict(
        num_attention_heads=8,
        attention_head_dim=32,
        time_embed_dim=128,
        text_embed_dim=384,
        num_layers=6,
        sample_width=40,
        sample_height=24,
        sample_frames=17,
        patch_size=4,
        max_text_seq_length=96,
        use_rotary_positional_embeddings=True,
    ),
    "2b": dict(num_attention_heads=30, num_layers=30),
    "5b": dict(
        num_attention_heads=48,
        num_layers=42,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    ),
}
_VAE = {
    "tiny": dict(block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2),
    # 4x spatial compression (three blocks), 16 channels: the same latent size as CogVideoX's 8x with 64
    # channels, but measured on held-out frames it reaches 22.9 dB in 9.5 CPU-minutes where the 8x/64 VAE
    # needed 75 (and 8x/16 plateaued near 25 dB). (The shipped demo model, trained before this change, has
    # an 8x/16 VAE: its directory's config says so, and generation reads the factor from there.)
    "demo": dict(
        block_out_channels=(16, 32, 64),
        latent_channels=16,
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3,
    ),
    "2b": dict(scaling_factor=1.15258426),
    "5b": dict(scaling_factor=0.7),
}
# T5 v1.1 XXL, the text encoder of CogVideoX and AniSora V1 (encoder only: 4.76 B parameters).
_T5_XXL = dict(
    d_model=4096,
    d_ff=10240,
    d_kv=64,
    num_layers=24,
    num_heads=64,
    vocab_size=32128,
    feed_forward_proj="gated-gelu",
)
_T5 = {
    "tiny": dict(d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2),
    "demo": dict(d_model=384, d_ff=768, d_kv=32, num_layers=1, num_heads=2),  # stands in for MiniLM
    "2b": _T5_XXL,
    "5b": _T5_XXL,
}
# v-prediction on a zero-terminal-SNR DDPM schedule, as CogVideoX and AniSora V1 train and sample.
SCHEDULER = dict(
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    clip_sample=False,
    timestep_spacing="trailing",
    steps_offset=0,
)
_SNR_SHIFT = {"tiny": 1.0, "demo": 1.0, "2b": 3.0, "5b": 1.0}
# The demo transformer predicts the clean latent ("sample"), not v. A 16x16-pixel token holds 4x4x16 = 256
# noisy values plus as many guide values, squeezed through a 256-wide patch embedding: noise cannot pass that,
# clean latents (which lie near a low-dimensional set) can. Measured after stage 1 with v: the v error at
# t=50 was 0.75 (of 1.0) and sampled in-betweens were coloured noise. (Li & He 2025, "Back to Basics: Let
# Denoising Generative Models Denoise", make the same case for large patches.)
_PREDICTION = {"tiny": "v_prediction", "demo": "sample", "2b": "v_prediction", "5b": "v_prediction"}
MOTION_EMBED_DIM = {"tiny": 8, "demo": 128, "2b": 512, "5b": 512}


def scheduler_config(preset: str) -> dict[str, Any]:
    """The DDIM/DPM scheduler settings a preset trains and samples with."""
    return {
        **SCHEDULER,
        "prediction_type": _PREDICTION[_check(preset)],
        "snr_shift_scale": _SNR_SHIFT[preset],
    }


def vae_config(preset: str) -> dict[str, Any]:
    block = ("CogVideoXDownBlock3D",) * 4
    up = ("CogVideoXUpBlock3D",) * 4
    base = dict(in_channels=3, out_channels=3, down_block_types=block, up_block_types=up)
    return {**base, **_VAE[_check(preset)]}


def transformer_config(
    preset: str, layout: Layout = "anisora", motion_embedding: bool = False
) -> dict[str, Any]:
    latent_channels = vae_config(preset).get("latent_channels", 16)
    config = dict(_TRANSFORMER[_check(preset)])
    config.update(in_channels=input_channels(latent_channels, layout), out_channels=latent_channels)
    if motion_embedding:
        config["ofs_embed_dim"] = MOTION_EMBED_DIM[preset]
    return config


def build_components(
    preset: str = "tiny", layout: Layout = "anisora", *, motion_embedding: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Random components for `AnisoraPipeline(**components)`; the same seed gives the same weights."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(**vae_config(preset))
    transformer = CogVideoXTransformer3DModel(**transformer_config(preset, layout, motion_embedding))
    tokenizer = char_tokenizer() if preset in ("tiny", "demo") else None
    vocab = len(tokenizer) if tokenizer is not None else _T5[preset]["vocab_size"]
    text_encoder = T5EncoderModel(T5Config(**{**_T5[preset], "vocab_size": vocab}))
    scheduler = CogVideoXDDIMScheduler(**scheduler_config(preset))
    for module in (vae, transformer, text_encoder):
        module.eval()
    return dict(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        motion_embedding=motion_embedding,
    )


def char_tokenizer():
    """A T5 (unigram) tokenizer over letters, digits and punctuation: enough to tell prompts apart."""
    from transformers import T5Tokenizer

    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    chars = [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    words = [("▁" + c, -2.5) for c in string.ascii_letters]
    return T5Tokenizer(vocab=specials + chars + words, extra_ids=0, model_max_length=64)


def _check(preset: str) -> str:
    if preset not in PRESETS:
        from ..errors import InputError

        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset


# Wan2.1 / Wan2.2 image-to-video (AniSora V2-V3.2): the official sampler, UniPC on flow sigmas with shift 5.
WAN_SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
WAN_BOUNDARY_RATIO = 0.9  # Wan2.2: the high-noise expert runs while t >= 0.9 x 1000


def build_wan_components(*, experts: bool = False, seed: int = 0) -> dict[str, Any]:
    """Tiny random Wan image-to-video components for `AnisoraWanPipeline(**components)`: Wan2.1's layout with
    a CLIP image encoder, or with `experts` Wan2.2's two transformers and no image encoder."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    torch.manual_seed(seed)
    tokenizer = char_tokenizer()
    text = UMT5EncoderModel(
        UMT5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    )
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    clip = None if experts else CLIPVisionConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=8,
    )  # fmt: skip

    def transformer():
        return WanTransformer3DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=36, out_channels=16, text_dim=16,
            ffn_dim=32, num_layers=2, image_dim=None if experts else clip.hidden_size, rope_max_seq_len=32,
        )  # fmt: skip

    components = dict(
        tokenizer=tokenizer,
        text_encoder=text,
        vae=vae,
        scheduler=UniPCMultistepScheduler(**WAN_SCHEDULER),
        transformer=transformer(),
        image_encoder=None if experts else CLIPVisionModel(clip),
        image_processor=None if experts else CLIPImageProcessorPil(crop_size=32, size=32),
    )
    if experts:
        components.update(transformer_2=transformer(), boundary_ratio=WAN_BOUNDARY_RATIO)
    for module in (
        text,
        vae,
        components["transformer"],
        components.get("transformer_2"),
        components["image_encoder"],
    ):
        if module is not None:
            module.eval()
    return components
