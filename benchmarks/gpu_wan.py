"""Wan transformer and VAE at AniSora V3.1 / V3.2's real shapes on one GPU, random bf16 weights (an H200:
a few minutes; `--quick`: 480p only, about a minute). Prints a markdown table.

V3.1 is Wan2.1-I2V-14B (CLIP image branch); V3.2 is Wan2.2-I2V-A14B, two experts of that shape without the
image branch, one resident at a time. For each: one transformer forward, which is one sampling step at the
releases' guidance 1 (no unconditional pass), on an 81-frame clip at 480p (832x480, latent 21 x 60 x 104)
and 720p (1280x720, latent 21 x 90 x 160), with 512 umT5 tokens of 4096 and (V3.1) 257 CLIP tokens of 1280:
best of 2 seconds after a warm-up, and `torch.cuda.max_memory_allocated`. Then the Wan VAE (default config)
with tiling: encode (the condition video) and decode of the 81-frame clip. The clip estimate is 8 steps +
VAE encode + decode; the text and image encoders (one pass each) are left out.

Weights are built on the meta device and materialised on the device with small random values, so no
checkpoint is needed and the host never holds them. Needs torch and diffusers, not anisora.
`--device cpu --tiny` runs every part on a toy configuration, to smoke-test the script without a GPU, and
`--device meta` takes the real shapes through every part without computing anything (times meaningless).

    python benchmarks/gpu_wan.py [--quick] [--device cpu --tiny]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

FRAMES, STEPS = 81, 8  # the V3.x presets: 81 frames at 16 fps, 8 distilled steps
SIZES = {"480p": (480, 832), "720p": (720, 1280)}  # (height, width)
TEXT_TOKENS, TEXT_DIM = 512, 4096  # umT5-XXL; diffusers' Wan attention assumes 512 text tokens
CLIP_TOKENS, CLIP_DIM = 257, 1280  # CLIP ViT-H/14: 16 x 16 patches + the class token
TEMPORAL, SPATIAL, PATCH = 4, 8, 2  # VAE strides (time, space) and the transformer's spatial patch
LATENT_CHANNELS = 16
GIB = 2**30

TINY_FRAMES = 5
TINY_SIZES = {"480p": (32, 48), "720p": (48, 80)}
TINY_VAE = dict(base_dim=8, z_dim=LATENT_CHANNELS, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
TINY_TILES = dict(  # so that the tiled path runs
    tile_sample_min_height=32,
    tile_sample_min_width=32,
    tile_sample_stride_height=24,
    tile_sample_stride_width=24,
)


def transformer_config(image_branch: bool = True, tiny: bool = False) -> dict:
    """`WanTransformer3DModel` arguments of Wan2.1-I2V-14B (AniSora V3.1), or without the image branch of one
    Wan2.2-I2V-A14B expert (V3.2): dim 5120 = 40 heads x 128, 40 layers, FFN 13824."""
    heads, head_dim, ffn, layers = (2, 16, 64, 2) if tiny else (40, 128, 13824, 40)
    return dict(
        patch_size=(1, PATCH, PATCH),
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=2 * LATENT_CHANNELS + TEMPORAL,  # noise + mask + condition latent
        out_channels=LATENT_CHANNELS,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=ffn,
        num_layers=layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        image_dim=CLIP_DIM if image_branch else None,
        added_kv_proj_dim=heads * head_dim if image_branch else None,
    )


def latent_shape(height: int, width: int, frames: int = FRAMES) -> tuple[int, int, int]:
    """(latent frames, height, width) of a clip: 81 frames at 480p -> (21, 60, 104)."""
    return (frames - 1) // TEMPORAL + 1, height // SPATIAL, width // SPATIAL


def video_tokens(height: int, width: int, frames: int = FRAMES) -> int:
    """The transformer's sequence length: latent frames x (H/16) x (W/16)."""
    t, h, w = latent_shape(height, width, frames)
    return t * (h // PATCH) * (w // PATCH)


def random_transformer(config: dict, device: str) -> WanTransformer3DModel:
    """The model in bf16 (the modules diffusers keeps in fp32 stay fp32), weights ~ N(0, 0.02) made on
    `device`."""
    with torch.device("meta"):
        model = WanTransformer3DModel(**config).eval()
    keep = set(model._keep_in_fp32_modules or ())
    for name, param in model.named_parameters():
        if not keep & set(name.split(".")):
            param.data = param.data.to(torch.bfloat16)
    model.to_empty(device=device)
    with torch.no_grad():
        for param in model.parameters():
            torch.nn.init.normal_(param, std=0.02)
    # The RoPE tables are buffers computed at construction, left empty by `to_empty`: build them again.
    model.rope = type(model.rope)(config["attention_head_dim"], config["patch_size"], model.rope.max_seq_len)
    return model.to(device)


def transformer_inputs(config: dict, height: int, width: int, frames: int, device: str) -> dict:
    def randn(*shape):
        return torch.randn(*shape, device=device, dtype=torch.bfloat16)

    image_dim = config["image_dim"]
    return dict(
        hidden_states=randn(1, config["in_channels"], *latent_shape(height, width, frames)),
        timestep=torch.tensor([999], device=device),
        encoder_hidden_states=randn(1, TEXT_TOKENS, config["text_dim"]),
        encoder_hidden_states_image=randn(1, CLIP_TOKENS, image_dim) if image_dim else None,
        return_dict=False,
    )


def measure(fn, device: str, repeats: int, warm_up=None) -> tuple[float, float | None]:
    """(best seconds of `repeats` calls of `fn` after a warm-up call of `warm_up` (default `fn`), peak GiB
    allocated during them; None off CUDA)."""
    cuda = device.startswith("cuda")
    with torch.no_grad():
        (warm_up or fn)()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return min(times), torch.cuda.max_memory_allocated() / GIB if cuda else None


def allocated_gib(device: str) -> float | None:
    return torch.cuda.memory_allocated() / GIB if device.startswith("cuda") else None


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def row(*cells) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def run(device: str = "cuda", quick: bool = False, tiny: bool = False) -> None:
    frames = TINY_FRAMES if tiny else FRAMES
    sizes = TINY_SIZES if tiny else SIZES
    if quick:
        sizes = {"480p": sizes["480p"]}
    print(f"GPU benchmark on {torch.cuda.get_device_name() if device.startswith('cuda') else device}", end="")
    print(", tiny configuration (smoke test)" if tiny else "", end=":\n\n")
    row("part", "size", "seconds", "peak GiB allocated", "weights GiB")
    row(*["---"] * 5)
    steps: dict[tuple[str, str], float] = {}  # (release, size) -> seconds
    for release, image_branch in (("V3.1", True), ("V3.2", False)):
        part = "transformer" if image_branch else "expert (one of two)"
        config = transformer_config(image_branch, tiny)
        model = random_transformer(config, device)
        weights = allocated_gib(device)
        for size, (height, width) in sizes.items():
            inputs = transformer_inputs(config, height, width, frames, device)
            seconds, peak = measure(partial(model, **inputs), device, repeats=1 if quick else 2)
            t, h, w = latent_shape(height, width, frames)
            shape = f"{size}, latent {t}x{h}x{w}, {video_tokens(height, width, frames)} tokens"
            row(f"{release} {part}, one step", shape, f"{seconds:.2f}", _gib(peak), _gib(weights))
            steps[release, size] = seconds
        del model, inputs
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    with torch.device(device):
        vae = AutoencoderKLWan(**(TINY_VAE if tiny else {})).bfloat16().eval()
    vae.enable_tiling(**(TINY_TILES if tiny else {}))
    codec: dict[str, float] = {}  # encode + decode seconds per size
    for size, (height, width) in sizes.items():
        video = torch.rand(1, 3, frames, height, width, device=device, dtype=torch.bfloat16) * 2 - 1
        latent = torch.randn(
            1, LATENT_CHANNELS, *latent_shape(height, width, frames), device=device, dtype=torch.bfloat16
        )
        codec[size] = 0.0
        # The VAE runs tile by tile and 4 frames at a time: a 5-frame clip (2 latent frames) of the same size
        # meets the same kernel shapes, at a fraction of the warm-up cost.
        for part, fn, warm_up in (
            ("encode", partial(vae.encode, video), partial(vae.encode, video[:, :, :5])),
            ("decode", partial(vae.decode, latent), partial(vae.decode, latent[:, :, :2])),
        ):
            seconds, peak = measure(fn, device, repeats=1, warm_up=warm_up)
            row(f"VAE {part}, tiled", f"{size}, {frames} frames", f"{seconds:.2f}", _gib(peak), "")
            codec[size] += seconds
        del video, latent

    for (release, size), seconds in steps.items():
        clip = f"{STEPS} x {seconds:.2f} + {codec[size]:.2f} = {STEPS * seconds + codec[size]:.1f}"
        row(f"{release} clip estimate: {STEPS} steps + VAE encode + decode", size, clip, "", "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="480p only, one timed run")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a toy configuration, for smoke tests")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(args.device, args.quick, args.tiny)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
