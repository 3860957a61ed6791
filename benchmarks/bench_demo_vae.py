"""The demo model's VAE on this CPU, one 17-frame 160x96 clip: how `anisora.model.vae.cpu_vae` runs it against
the bare diffusers call on the same frozen weights and inputs (the strict baseline), for the three VAE passes
a clip costs: the guides' interpolation encoded, the latents decoded, and the decode with its backward that
guide fitting repeats. On a CPU without native bfloat16 `cpu_vae` sends the 3D convolutions to oneDNN, which
PyTorch's heuristic sends to its reference kernel for one clip of small frames; with it, both run the same
bfloat16 autocast and the ratio is ~1. Best of REPEATS alternating runs each, one thread; ratio = ours /
baseline (lower is faster).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time

import torch
from diffusers import AutoencoderKLCogVideoX

from anisora.model.vae import cpu_autocast, cpu_vae, native_bfloat16
from anisora.model.weights import DEMO_MODEL

REPEATS = 3


def best(call) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    vae = AutoencoderKLCogVideoX.from_pretrained(DEMO_MODEL / "vae").float().eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(1, 3, 17, 96, 160, generator=generator) * 2 - 1
    latents = torch.randn(1, vae.config.latent_channels, 5, 24, 40, generator=generator)

    def encode(batch):
        return vae.encode(batch).latent_dist.mode()

    def decode(batch):
        return vae.decode(batch).sample

    def backward(run):
        def call():
            z = latents.clone().requires_grad_(True)
            run(z)[:, :, 0].mean().backward()

        return call

    def bare(fn, x):
        with cpu_autocast(vae):
            return fn(x)

    passes = {
        "encode": (lambda: bare(encode, clip), lambda: cpu_vae(vae, encode, clip)),
        "decode": (lambda: bare(decode, latents), lambda: cpu_vae(vae, decode, latents)),
        "decode + backward": (
            backward(lambda z: bare(decode, z)),
            backward(lambda z: cpu_vae(vae, decode, z)),
        ),
    }
    print(f"native bfloat16: {native_bfloat16()}; threads: {torch.get_num_threads()}")
    for name, (baseline, ours) in passes.items():
        with torch.set_grad_enabled(name.endswith("backward")):
            baseline(), ours()  # warm-up
            theirs_s, ours_s = best(baseline), best(ours)
        ratio = ours_s / theirs_s
        print(f"{name:18s} diffusers {theirs_s:6.2f} s   cpu_vae {ours_s:6.2f} s   ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
