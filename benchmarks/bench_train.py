"""Training-throughput benchmark: our recipe's step vs a plain diffusers CogVideoX image-to-video step.

1. CPU, the `demo` architecture on the stage-3 data (ToonWorld 160x96 at 8 fps, batch 4), bucket fixed to 17
   frames: seconds per step and samples/s of `anisora.train.recipe.training_loss` + backward + grad clip +
   AdamW (set up as `train()` does: accelerate, `build_pipeline`, frozen VAE and MiniLM; no EMA update or LR
   schedule, which the baseline lacks), and the share of the step spent in `vae.encode` (clip and guides).
   The VAE is randomly initialised unless `--vae DIR` names a trained one (the cost is the same). The
   batches are rendered before timing and reused by both steps; the ToonWorld rendering, inside `train()`'s
   step, is reported apart.
   The same step with `data.cache` holding every feature already (a later epoch): "cached".
2. The baseline on the same batches, in the same run (steps alternate, as this machine is shared): what
   diffusers' CogVideoX I2V fine-tuning example does, on the same architecture in the official V1 layout
   (2C input channels): VAE-encode the clip and the noised first frame alone, zero-pad the latter to the
   clip's latent length, concatenate on channels, same MiniLM text, rotary embeddings, v-prediction MSE with
   the same scheduler, AdamW. (The example encodes its data set once before training; here both encode in
   the step.) Printed: the time ratio ours / baseline.
3. Only where CUDA is available: the same comparison with a 2B-size transformer (bf16 autocast, fp32
   weights and AdamW states, gradient checkpointing, batch 1) on random latents of 49 frames at 480x720
   (13x60x90) and random 226x4096 text embeddings: VAE and T5 are skipped. Tokens/s and peak memory.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXTransformer3DModel,
)
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from anisora.model.conditioning import ConditionRequest, Guide, build_conditioning
from anisora.model.pipeline import MOTION_EMBED_SCALE
from anisora.model.presets import SCHEDULER, transformer_config, vae_config
from anisora.train.components import build_pipeline
from anisora.train.config import OptimConfig, load_train_config
from anisora.train.data import FeatureCache, weights_id
from anisora.train.recipe import TrainingData, training_loss

STAGE3 = Path(__file__).resolve().parents[1] / "configs/train/toonworld/stage3_160x96_8fps.yaml"
GIB = 2**30


class Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return out


class FixedBatches:
    """The stage's first `count` batches, rendered once; `training_loss` reads them through `batch(index)`."""

    def __init__(self, data: TrainingData, count: int, cache: FeatureCache | None = None):
        start = time.perf_counter()
        self.batches = [data.batch(i) for i in range(count)]
        self.render_seconds = (time.perf_counter() - start) / count
        self.cache = cache

    def with_cache(self, cache: FeatureCache) -> FixedBatches:
        cached = FixedBatches.__new__(FixedBatches)
        cached.batches, cached.render_seconds, cached.cache = self.batches, self.render_seconds, cache
        return cached

    def batch(self, index: int):
        return self.batches[index]


def optimizer_step(model, optimizer, loss_fn, clip: float, accelerator=None) -> None:
    """train()'s update: loss, backward, gradient clipping, AdamW. Without `accelerator`: plain torch under
    bf16 autocast (an Accelerator's mixed precision is fixed once per process; the CPU section's is "no")."""
    model.train()
    device = next(model.parameters()).device.type
    with accelerator.autocast() if accelerator else torch.autocast(device, dtype=torch.bfloat16):
        loss = loss_fn()
    accelerator.backward(loss) if accelerator else loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # what accelerator.clip_grad_norm_ calls here
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def adamw(model, optim: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)


def diffusers_loss(pipe: CogVideoXImageToVideoPipeline, model, bucket, samples, generator) -> torch.Tensor:
    """One step of diffusers' CogVideoX I2V fine-tuning example (examples/cogvideo), encoding included."""
    vae, scheduler = pipe.vae, pipe.scheduler
    video = torch.from_numpy(np.stack([s.frames for s in samples])).permute(0, 4, 1, 2, 3).float()
    video = video / 127.5 - 1.0  # (B, 3, F, H, W)
    with torch.no_grad():
        image = video[:, :, :1]
        sigma = torch.exp(torch.normal(-3.0, 0.5, (1,), generator=generator))  # the example's image noise
        image = image + torch.randn(image.shape, generator=generator) * sigma
        latents = vae.encode(video).latent_dist.sample(generator) * vae.config.scaling_factor
        image_latents = vae.encode(image).latent_dist.sample(generator) * vae.config.scaling_factor
        latents, image_latents = latents.permute(0, 2, 1, 3, 4), image_latents.permute(0, 2, 1, 3, 4)
        padding = image_latents.new_zeros(latents.shape[0], latents.shape[1] - 1, *latents.shape[2:])
        image_latents = torch.cat([image_latents, padding], dim=1)
        prompts, length = [s.prompt for s in samples], model.config.max_text_seq_length
        text = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=length)[0]
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(samples),), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    rotary = pipe._prepare_rotary_positional_embeddings(bucket.height, bucket.width, latents.shape[1], "cpu")
    hidden = torch.cat([noisy, image_latents], dim=2)
    prediction = model(hidden, text, timesteps, image_rotary_emb=rotary, return_dict=False)[0]
    # The example compares x0 recovered from v, weighted by 1 / (1 - alpha_bar): the same cost as this.
    return F.mse_loss(prediction.float(), scheduler.get_velocity(latents, noise, timesteps))


def demo_comparison(steps: int, vae_dir: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if vae_dir is None:
            torch.manual_seed(0)
            vae_dir = f"{tmp}/vae"
            AutoencoderKLCogVideoX(**vae_config("demo")).save_pretrained(vae_dir)
        init = {"model": None, "architecture": "demo", "vae": vae_dir, "text_encoder": "minilm"}
        data = {"min_seconds": 2, "max_seconds": 2, "image_share": 0.0}  # every batch: 17 frames
        config = load_train_config(STAGE3, {"out": f"{tmp}/out", "init": init, "data": data})
        # Set up as recipe.train() does (full fine-tuning, mixed_precision "no"), on the CPU.
        accelerator = Accelerator(cpu=True, mixed_precision=config.mixed_precision)
        torch.manual_seed(config.seed)
        pipe = build_pipeline(config)
    pipe.vae.requires_grad_(False).eval()
    pipe.text_encoder.requires_grad_(False).eval()
    pipe.transformer.requires_grad_(True)

    optim = config.optim
    ours, ours_opt = accelerator.prepare(pipe.transformer, adamw(pipe.transformer, optim))
    args = transformer_config("demo", "v1")  # sized to the VAE and text encoder as build_pipeline does
    latent, text_dim = pipe.vae.config.latent_channels, pipe.text_encoder.config.hidden_size
    args.update(in_channels=2 * latent, out_channels=latent, text_embed_dim=text_dim)
    theirs = CogVideoXTransformer3DModel(**args)
    plain = CogVideoXImageToVideoPipeline(pipe.tokenizer, pipe.text_encoder, pipe.vae, theirs, pipe.scheduler)
    theirs, theirs_opt = accelerator.prepare(theirs, adamw(theirs, optim))
    pipe.to(accelerator.device)
    encode = pipe.vae.encode = Timed(pipe.vae.encode)  # the clip and the guides (ours) / first frame (theirs)

    batches = FixedBatches(TrainingData(config), 1 + steps)
    # "ours, cached": data.cache on, every feature already on disk (a later epoch of a finite shot set)
    cached = batches.with_cache(FeatureCache(tempfile.mkdtemp(), weights_id(pipe.vae, pipe.text_encoder)))
    with torch.no_grad():
        for i in range(1 + steps):
            training_loss(pipe, ours, cached, config, i, accelerator)
    rng = torch.Generator().manual_seed(0)
    runs = {  # name: (model, optimizer, loss of step i)
        "ours": (ours, ours_opt, lambda i: training_loss(pipe, ours, batches, config, i, accelerator)),
        "cached": (ours, ours_opt, lambda i: training_loss(pipe, ours, cached, config, i, accelerator)),
        "diffusers": (theirs, theirs_opt, lambda i: diffusers_loss(plain, theirs, *batches.batch(i), rng)),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    vae_seconds = dict.fromkeys(runs, 0.0)
    for i in range(1 + steps):  # step 0 warms up
        for name, (model, optimizer, loss) in runs.items():
            encode.seconds, start = 0.0, time.perf_counter()
            optimizer_step(model, optimizer, functools.partial(loss, i), optim.grad_clip, accelerator)
            if i:
                times[name].append(time.perf_counter() - start)
                vae_seconds[name] += encode.seconds

    bucket, samples = batches.batch(0)
    size = f"{bucket.width}x{bucket.height} x {bucket.num_frames} frames, batch {len(samples)}"
    print(f"1./2. training step on the CPU, demo architecture, {size}, {torch.get_num_threads()} thread(s):")
    print(f"   ToonWorld rendering {batches.render_seconds:.2f} s/batch (inside train()'s step, not timed)")
    for name, (model, _, _) in runs.items():
        ts, median = times[name], statistics.median(times[name])
        params = sum(p.numel() for p in model.parameters()) / 1e6
        line = f"   {name:9s} {model.config.in_channels} in-ch, {params:.2f} M params: median {median:.3f} s"
        line += f"/step (best {min(ts):.3f}, {len(ts)} steps), {len(samples) / median:.2f} samples/s,"
        print(line, f"VAE encode {100 * vae_seconds[name] / sum(ts):.0f}%")
    ratio = statistics.median(times["ours"]) / statistics.median(times["diffusers"])
    print(f"   ratio ours / diffusers (medians) {ratio:.3f}; both encode every step")
    speedup = statistics.median(times["ours"]) / statistics.median(times["cached"])
    print(f"   feature cache (data.cache, features on disk): {speedup:.2f}x faster than encoding")


def _rotary(config, frames: int, height: int, width: int, device):
    if not config.use_rotary_positional_embeddings:
        return None  # 2B: sin-cos positional embeddings inside the patch embedding
    grid = (height // config.patch_size, width // config.patch_size)
    return get_3d_rotary_pos_embed(config.attention_head_dim, ((0, 0), grid), grid, frames, device=device)


def big_loss(model, layout: str, scheduler, frames: int, height: int, width: int, device) -> torch.Tensor:
    """One step's loss on random latents and text. No pipeline is built at this size: "ours" feeds the
    transformer what `AnisoraPipeline.predict` would, the 2C+4 channel input of the conditioning
    module (`build_conditioning` + `Conditioning.model_input`, first and last frames as guides, random guide
    latents in place of the VAE); "diffusers" feeds [noisy, first-frame latent padded with zeros]."""
    c = model.config
    t_lat, h_lat, w_lat = (frames - 1) // 4 + 1, height // 8, width // 8
    latents = torch.randn(1, t_lat, c.out_channels, h_lat, w_lat, device=device)
    text = torch.randn(1, c.max_text_seq_length, c.text_embed_dim, device=device)
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (1,), device=device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    motion = None
    if layout == "anisora":
        image = np.zeros((height, width, 3), np.uint8)
        request = ConditionRequest(frames, height, width, [Guide(image, 0), Guide(image, frames - 1)])

        def random_vae(pixels):  # stands in for the VAE: guide latents of the right shape
            return torch.randn(len(pixels), c.out_channels, 1, h_lat, w_lat, device=device)

        cond = build_conditioning(request, random_vae, latent_channels=c.out_channels, device=device)
        hidden = cond.model_input(noisy, "anisora")
        motion = torch.full((1,), MOTION_EMBED_SCALE, device=device)  # motion score 1.0
    else:
        first = torch.cat([latents[:, :1], torch.zeros_like(latents[:, 1:])], dim=1)
        hidden = torch.cat([noisy, first], dim=2)
    rotary = _rotary(c, t_lat, h_lat, w_lat, device)
    prediction = model(hidden, text, timesteps, ofs=motion, image_rotary_emb=rotary, return_dict=False)[0]
    return F.mse_loss(prediction.float(), scheduler.get_velocity(latents, noise, timesteps))


def big_comparison(steps: int, preset="2b", frames=49, height=480, width=720, device="cuda") -> None:
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else lambda: None
    tokens = ((frames - 1) // 4 + 1) * (height // 16) * (width // 16)  # latent frames x 2x2 patches
    scheduler, optim = CogVideoXDDIMScheduler(**SCHEDULER), OptimConfig(lr=1e-4)
    print(f"3. {device}, {preset} transformer, {frames}x{height}x{width} ({tokens} video tokens), batch 1,")
    print("   bf16 autocast, fp32 weights + AdamW, gradient checkpointing; random latents, text: no VAE, T5")
    results = {}
    for layout, name in (("anisora", "ours"), ("v1", "diffusers")):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        with torch.device(device):
            model = CogVideoXTransformer3DModel(**transformer_config(preset, layout, layout == "anisora"))
        model.enable_gradient_checkpointing()
        optimizer, seconds = adamw(model, optim), []
        loss = functools.partial(big_loss, model, layout, scheduler, frames, height, width, device)
        for i in range(1 + steps):  # step 0 warms up
            sync()
            start = time.perf_counter()
            optimizer_step(model, optimizer, loss, optim.grad_clip)
            sync()
            if i:
                seconds.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / GIB if cuda else float("nan")
        results[name] = statistics.median(seconds)
        line = f"   {name:9s} {model.config.in_channels} in-ch: median {results[name]:.3f} s/step,"
        print(line, f"{tokens / results[name]:.0f} tokens/s, peak {peak:.2f} GiB allocated")
        del model, optimizer, loss  # before the next model is built
    print(f"   ratio ours / diffusers (medians) {results['ours'] / results['diffusers']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--vae", help="trained demo VAE directory (default: random weights, same cost)")
    parser.add_argument("--quick", action="store_true", help="one timed step (smoke run)")
    args = parser.parse_args()
    steps = 1 if args.quick else args.steps
    diffusers_logging.set_verbosity_error()  # prompt-truncation warnings, as in train()
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(1)
    start = time.perf_counter()
    demo_comparison(steps, args.vae)
    if torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
        big_comparison(steps)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
