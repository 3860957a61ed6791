"""Train the demo model's small 3D causal VAE (diffusers' `AutoencoderKLCogVideoX`) on ToonWorld clips.

No pretrained CogVideoX VAE can be downloaded, so the demo model trains its own: the CogVideoX architecture
(causal in time so a one-frame clip is encoded alone, 4x temporal compression) with narrow blocks, and one
down block fewer: 4x spatial compression suits so small a picture (see `anisora.model.presets`). Clips are
rendered on the fly, clean (no subtitles, letterbox, degradation or fades); training uses ToonWorld seed
`TRAIN_SEED` and evaluation the never-trained seed `EVAL_SEED`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCogVideoX
from tqdm.auto import tqdm

from ..errors import InputError
from ..files import atomic_directory, atomic_output
from ..media import psnr
from ..model.conditioning import FRAME_STEP
from ..model.presets import vae_config
from ..model.vae import reconstruct, video_tensor
from ..toonworld.held_out import EVAL_SEED, plan_clean_shot
from ..toonworld.shot import ShotRenderer

DEMO_WIDTH, DEMO_HEIGHT, DEMO_FPS, DEMO_FRAMES = 160, 96, 8, 17
TRAIN_SEED = 0


def demo_vae_config() -> dict[str, Any]:
    """The demo VAE (presets "demo"): 1.90 M parameters (3.8 MB in fp16), 4x spatial, 16 latent channels."""
    return vae_config("demo")


def train_vae(
    out_dir: str | Path,
    steps: int,
    batch_size: int = 2,
    seed: int = 0,
    lr: float = 5e-4,
    *,
    config: dict[str, Any] | None = None,
    num_frames: int = DEMO_FRAMES,
    crop: tuple[int, int] | None = None,
    one_frame_share: float = 0.25,
    mse_weight: float = 1.0,
    kl_weight: float = 1e-6,
    eval_every: int = 0,
    eval_clips: int = 4,
    scale_clips: int = 8,
    time_limit: float | None = None,
    device: str = "cpu",
    bf16: bool = False,
    progress: bool = True,
    checkpoint_every: int = 200,
    decoder_of: str | Path | None = None,
) -> dict[str, Any]:
    """Train, set `scaling_factor` from the data and save to `out_dir` (safetensors).

    `decoder_of` (a VAE directory) fine-tunes only that VAE's decoder: the encoder, its latents and its
    `scaling_factor` stay exactly as they were, so every diffusion model trained on that VAE reads the result
    unchanged and only decodes better (`config` is then that VAE's).

    Every `checkpoint_every` steps the weights, optimizer, random states, data position, history and
    training time are saved beside `out_dir` (`<out_dir>.resume.pt`, atomically); the same call continues
    from there exactly (a killed run loses at most `checkpoint_every` steps), and a call with a larger `steps`
    or `time_limit` trains a finished run further. Other settings must match the checkpoint's.

    `crop` (height, width), multiples of 8, trains on random crops of the 160x96 frames: the VAE is
    convolutional, so smaller crops buy more steps per second. One step in `one_frame_share` is a batch of
    single frames, as guide images are encoded alone. `bf16` runs forward and backward under bfloat16
    autocast (weights and optimizer stay float32): 1.4-1.5x faster on a CPU with AVX512-BF16. Training stops
    after `steps` or after `time_limit` seconds of training, whichever comes first; the learning rate follows
    a cosine from `lr` down to a tenth of it over whichever of the two is further along. Returns the loss
    history, the PSNRs measured every `eval_every` steps (and at the end), the throughput and the settings;
    they are also saved in the VAE directory as training.json.
    """
    _check_training_args(steps, batch_size, num_frames, crop, one_frame_share)
    if not (math.isfinite(mse_weight) and mse_weight >= 0):
        raise InputError(f"squared-error weight must be a finite number >= 0, got {mse_weight}")
    if checkpoint_every < 1:
        raise InputError(f"checkpoint interval must be at least 1 step, got {checkpoint_every}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if decoder_of is None:
        config = config or demo_vae_config()
        vae = AutoencoderKLCogVideoX(**config)
    else:
        vae = _vae_to_tune(decoder_of, config)
        config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    vae.to(device).train()
    trained = vae.decoder if decoder_of else vae
    optimizer = torch.optim.AdamW(trained.parameters(), lr=lr, weight_decay=0.0)
    settings = dict(steps=steps, time_limit=time_limit, batch_size=batch_size, lr=lr, seed=seed)
    settings.update(mse_weight=mse_weight)
    settings.update(
        num_frames=num_frames, crop=crop, one_frame_share=one_frame_share, device=device, bf16=bf16
    )
    settings.update(decoder_of=str(decoder_of) if decoder_of else None)
    history: dict[str, Any] = {"settings": settings, "loss": [], "evals": []}
    next_index, trained_seconds, first = 0, 0.0, 1
    resume = resume_path(out_dir)
    if resume.is_file():
        state = torch.load(resume, map_location=device, weights_only=False)
        _check_same_run(state, settings, config, mse_weight, kl_weight, resume)
        vae.load_state_dict(state["vae"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history = state["history"] | {"settings": settings}
        next_index, trained_seconds, first = state["next_index"], state["seconds"], state["step"] + 1
    if first > steps or (time_limit is not None and trained_seconds > time_limit):
        raise InputError(
            f"{resume} has already trained {first - 1} steps ({trained_seconds / 60:.1f} min): give more "
            "steps or minutes to train further"
        )
    fixed = {"config": config, "mse_weight": mse_weight, "kl_weight": kl_weight}
    eval_seconds = 0.0
    started = time.perf_counter() - trained_seconds
    for step in tqdm(
        range(first, steps + 1), desc="vae", unit="step", disable=not progress, initial=first - 1, total=steps
    ):
        one_frame = rng.random() < one_frame_share
        # single frames cost ~1/num_frames of a clip, so their batches are larger
        count = batch_size * 4 if one_frame else batch_size
        clips = [
            _training_clip(next_index + i, 1 if one_frame else num_frames, crop, rng) for i in range(count)
        ]
        next_index += count
        with torch.autocast(vae.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = _loss(vae, video_tensor(clips, vae.device), mse_weight, kl_weight)
        elapsed = time.perf_counter() - started - eval_seconds
        done = max(step / steps, elapsed / time_limit if time_limit else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.55 + 0.45 * math.cos(math.pi * min(1.0, done)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        history["loss"].append(loss.item())
        out_of_time = time_limit is not None and elapsed > time_limit
        if (eval_every and step % eval_every == 0) or step == steps or out_of_time:
            eval_started = time.perf_counter()
            history["evals"].append({"step": step, **evaluate_vae(vae, num_clips=eval_clips)})
            eval_seconds += time.perf_counter() - eval_started
            vae.train()
        if step % checkpoint_every == 0 and not out_of_time and step != steps:
            seconds = time.perf_counter() - started - eval_seconds
            _save_resume(resume, vae, optimizer, rng, step, next_index, seconds, history, settings, fixed)
        if out_of_time:
            break
    history["seconds"] = time.perf_counter() - started - eval_seconds  # training only
    history["steps_per_second"] = len(history["loss"]) / history["seconds"]
    _save_resume(resume, vae, optimizer, rng, step, next_index, history["seconds"], history, settings, fixed)
    vae.eval()
    # a fine-tuned decoder reads the encoder's latents at the scale models were trained on
    history["scaling_factor"] = (
        vae.config.scaling_factor if decoder_of else set_scaling_factor(vae, scale_clips)
    )
    save_atomically(vae, out_dir, history)
    return history


def _vae_to_tune(decoder_of: str | Path, config: dict[str, Any] | None) -> AutoencoderKLCogVideoX:
    """The VAE whose decoder a fine-tune trains, its encoder frozen."""
    if config is not None:
        raise InputError("a decoder fine-tune keeps its VAE's config: give no other")
    if not (Path(decoder_of) / "config.json").is_file():
        raise InputError(f"{decoder_of} is not a VAE directory (no config.json)")
    vae = AutoencoderKLCogVideoX.from_pretrained(decoder_of, torch_dtype=torch.float32)
    vae.encoder.requires_grad_(False)
    return vae


def resume_path(out_dir: str | Path) -> Path:
    """Where `train_vae` keeps the state it continues from."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".resume.pt")


# What may change between a run and its continuation: how long it trains, where, and at what precision.
RESUMABLE_CHANGES = ("steps", "time_limit", "device", "bf16")


def _save_resume(path, vae, optimizer, rng, step, next_index, seconds, history, settings, fixed) -> None:
    state = {
        "vae": vae.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "step": step,
        "next_index": next_index,
        "seconds": seconds,
        "history": history,
        "settings": settings,
        **fixed,
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _check_same_run(state: dict, settings: dict, config: dict, mse_weight, kl_weight, path: Path) -> None:
    given = {"config": config, "mse_weight": mse_weight, "kl_weight": kl_weight}
    given |= {k: v for k, v in settings.items() if k not in RESUMABLE_CHANGES}
    saved = {"config": state["config"], "mse_weight": state["mse_weight"], "kl_weight": state["kl_weight"]}
    saved |= {k: v for k, v in state["settings"].items() if k not in RESUMABLE_CHANGES}
    changed = [k for k in given if given[k] != saved.get(k)]
    if changed:
        raise InputError(
            f"{path} continues a run with other settings ({', '.join(changed)}): use the same ones, or "
            "delete it to start over"
        )


@torch.no_grad()
def evaluate_vae(
    vae: AutoencoderKLCogVideoX, num_clips: int = 4, seed: int = EVAL_SEED, num_frames: int = DEMO_FRAMES
) -> dict[str, float]:
    """Mean reconstruction PSNR (dB, uint8 frames) of held-out ToonWorld clips at the demo size.

    "psnr_image": the first frame encoded and decoded alone, as a guide image is; "psnr_clip": the whole
    `num_frames` clip. Latents are the posterior mode, as the pipeline encodes guides.
    """
    vae.eval()
    clips = [render_clean_clip(seed, index, num_frames) for index in range(num_clips)]
    images = [psnr(clip[:1], reconstruct(vae, clip[:1])) for clip in clips]
    videos = [psnr(clip, reconstruct(vae, clip)) for clip in clips]
    return {"psnr_image": float(np.mean(images)), "psnr_clip": float(np.mean(videos))}


@torch.no_grad()
def set_scaling_factor(vae: AutoencoderKLCogVideoX, num_clips: int = 8, seed: int = TRAIN_SEED) -> float:
    """Set `scaling_factor` = 1 / std of the latents of training clips; returns it.

    Diffusion adds unit-variance noise, so it wants unit-variance latents: the pipeline multiplies the VAE's
    latents by this factor before diffusion and divides by it before decoding.
    """
    clips = [render_clean_clip(seed, index, DEMO_FRAMES) for index in range(num_clips)]
    latents = [vae.encode(video_tensor([clip], vae.device)).latent_dist.mode() for clip in clips]
    factor = 1.0 / torch.cat([z.flatten() for z in latents]).std().item()
    vae.register_to_config(scaling_factor=factor)
    return factor


def save_atomically(
    vae: AutoencoderKLCogVideoX, out_dir: str | Path, history: dict[str, Any] | None = None
) -> None:
    """`save_pretrained` in fp16 (and `history` as training.json), written aside and renamed into place."""
    with atomic_directory(out_dir) as staging:
        vae.to(torch.float16).save_pretrained(staging, safe_serialization=True)
        if history is not None:
            (staging / "training.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    vae.to(torch.float32)


def render_clean_clip(
    seed: int,
    index: int,
    num_frames: int,
    width: int = DEMO_WIDTH,
    height: int = DEMO_HEIGHT,
    fps: int = DEMO_FPS,
    first: int = 0,
) -> np.ndarray:
    """Frames first..first+num_frames of the clean ToonWorld shot (seed, index), (F, H, W, 3) uint8.

    The shot is planned at least `DEMO_FRAMES` long whatever `num_frames`, so frame j of a shot is the same
    in a one-frame and a whole-clip render; it is the shot `anisora.train.data.ToonWorldSource` trains on.
    """
    length = FRAME_STEP * math.ceil((max(DEMO_FRAMES, first + num_frames) - 1) / FRAME_STEP) + 1
    renderer = ShotRenderer(plan_clean_shot(seed, index, length, fps, width, height))
    return np.stack([renderer.render(j)[0] for j in range(first, first + num_frames)])


def _training_clip(
    index: int, num_frames: int, crop: tuple[int, int] | None, rng: np.random.Generator
) -> np.ndarray:
    first = int(rng.integers(DEMO_FRAMES)) if num_frames == 1 else 0
    clip = render_clean_clip(TRAIN_SEED, index, num_frames, first=first)
    if crop is None:
        return clip
    top = int(rng.integers(DEMO_HEIGHT - crop[0] + 1))
    left = int(rng.integers(DEMO_WIDTH - crop[1] + 1))
    return clip[:, top : top + crop[0], left : left + crop[1]]


def _loss(
    vae: AutoencoderKLCogVideoX, video: torch.Tensor, mse_weight: float, kl_weight: float
) -> torch.Tensor:
    posterior = vae.encode(video).latent_dist
    recon = vae.decode(posterior.sample()).sample
    # per-element KL to N(0, 1); a small weight only keeps the posterior from drifting
    kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
    return F.l1_loss(recon, video) + mse_weight * F.mse_loss(recon, video) + kl_weight * kl


def _check_training_args(steps, batch_size, num_frames, crop, one_frame_share) -> None:
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch size must be at least 1, got {steps} and {batch_size}")
    # the decoder upsamples latent frames in pairs plus an odd first one: an even latent count (5, 13
    # frames) decodes to one frame too many per pair, so clips need an odd latent count
    if num_frames not in (1, 9, 17):
        raise InputError(f"clip length must be 1, 9 or 17 frames (8k+1), got {num_frames}")
    if crop is not None and (
        crop[0] % 8 or crop[1] % 8 or not (0 < crop[0] <= DEMO_HEIGHT and 0 < crop[1] <= DEMO_WIDTH)
    ):
        raise InputError(f"crop must be multiples of 8 within {DEMO_HEIGHT}x{DEMO_WIDTH}, got {crop}")
    if not 0.0 <= one_frame_share <= 1.0:
        raise InputError(f"one-frame share must be within 0-1, got {one_frame_share}")
