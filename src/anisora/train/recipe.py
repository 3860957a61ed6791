"""The fine-tuning recipe, read top to bottom: no trainer framework hides the loop.

One step:
1. `batch_plan(seed, step)` picks a bucket (size, 8k+1 frames at the stage fps, or one frame for the image
   task) and the samples; it depends on (seed, step) only, so a resumed run sees the same data order.
2. The clips are VAE-encoded (posterior sample); the masking strategy opens guide frames, which the
   conditioning module (`anisora.model.conditioning`, the same code as inference) encodes and places.
3. Prompts (with the official score suffix) become "" with probability `text_dropout` (for CFG).
4. MSE on the zero-terminal-SNR schedule the sampler uses: x_t = sqrt(a) x0 + sqrt(1-a) eps, for the
   scheduler's prediction type: v = sqrt(a) eps - sqrt(1-a) x0 (diffusers' `get_velocity`; the released
   models), or the clean latent x0 weighted by min(1 + SNR, 5) (the demo preset; see `_target`). With
   `lora.region`, the noisy latent outside the foreground mask is the guide latent noised alike, and only
   the inside counts (paper 2.2).
5. accelerate (single CPU, DDP, FSDP) handles devices, mixed precision and gradient sync; gradients are
   clipped; an EMA of the trained weights is kept.
Every `checkpoint_every` steps the trained weights, optimizer, LR schedule and EMA are saved atomically;
the same command continues from the newest checkpoint. Noise, timesteps, guides and text dropout derive from
(seed, step, process), so a resumed run continues exactly as if it had never stopped.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from ..errors import InputError
from ..files import atomic_directory, atomic_output
from ..model.conditioning import ConditionRequest, Guide, build_conditioning, stack_conditionings
from ..model.info import ModelInfo
from ..model.pipeline import MOTION_EMBED_SCALE, AnisoraPipeline
from ..model.vae import cpu_vae
from .components import build_pipeline, check_init, save_pipeline
from .config import OptimConfig, TrainConfig
from .data import (
    Bucket,
    BucketSpec,
    FeatureCache,
    ManifestSource,
    Sample,
    ToonWorldSource,
    batch_plan,
    load_batch,
    weights_id,
)
from .foreground import foreground_detector
from .masking import sample_guide_frames

SAMPLE_WEIGHT_CAP = 5.0
logger = logging.getLogger(__name__)


def train(config: TrainConfig, *, progress: bool = True, minutes: float | None = None) -> Path:
    """Run (or resume) the stage described by `config`; returns the final model directory.

    With `minutes`, the run ends at the first checkpoint after that much training time (this call's) and
    its final/ and config.json say the step it reached: with a constant learning rate (`check_time_budget`)
    that is the model a run of exactly that many steps gives, so the budget is a way to choose `steps`.
    """
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel
    from diffusers.utils import logging as diffusers_logging
    from tqdm import tqdm

    diffusers_logging.set_verbosity_error()  # prompt-truncation warnings would repeat every step
    out = Path(config.out)
    _check_same_start(out, config)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    torch.manual_seed(config.seed)  # fresh weights and LoRA initialisation: the same in every process and run
    pipe = build_pipeline(config)
    pipe.vae.requires_grad_(False).eval()
    if pipe.text_encoder is not None:
        pipe.text_encoder.requires_grad_(False).eval()
    trained = _trainable_parameters(pipe, config)
    if config.gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(trained, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, config.optim))
    ema = EMAModel(trained, decay=config.optim.ema_decay)
    transformer, optimizer = accelerator.prepare(pipe.transformer, optimizer)
    pipe.to(accelerator.device)
    cache = None
    if config.data.cache:
        cache = FeatureCache(config.data.cache, weights_id(pipe.vae, pipe.text_encoder))
    start = _resume(out, accelerator, optimizer, schedule, ema, trained)
    ema.to(accelerator.device)  # made (and resumed) on the CPU; it steps beside the trained weights
    data = TrainingData(config, cache).prefetched(
        range(start, config.optim.steps), accelerator.num_processes, accelerator.process_index
    )
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.model_dump(), indent=2) + "\n")
    log = _Log(out / "log.jsonl", accelerator.is_main_process)
    log.keep_until(start)
    bar = tqdm(
        range(start, config.optim.steps), initial=start, total=config.optim.steps, disable=not progress
    )
    started = time.perf_counter()
    for step in bar:
        step_started = time.perf_counter()
        transformer.train()
        with accelerator.autocast():
            loss = training_loss(pipe, transformer, data, config, step, accelerator)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(trained, config.optim.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(trained)
        value = accelerator.gather(loss.detach()[None]).mean().item()
        bar.set_postfix(loss=f"{value:.4f}")
        log.write(
            step=step + 1,
            loss=value,
            lr=schedule.get_last_lr()[0],
            processes=accelerator.num_processes,
            seconds=round(time.perf_counter() - step_started, 4),  # wall time of this step
        )
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.optim.steps:
            _save_checkpoint(out, step + 1, accelerator, optimizer, schedule, ema, trained, config)
            if _out_of_time(started, minutes, accelerator) and step + 1 < config.optim.steps:
                config = _ended_at(config, step + 1, out, accelerator)
                break
    return _save_final(out, pipe, accelerator, ema, trained, config)


def _check_same_start(out: Path, config: TrainConfig) -> None:
    """A run folder resumes only the run it holds: its checkpoints continue the model its config.json
    started from, so another `init` (e.g. a later stage as the starting model) is refused in one line."""
    recorded = out / "config.json"
    if not recorded.is_file():
        return
    before = json.loads(recorded.read_text(encoding="utf-8")).get("init")
    wanted = json.loads(json.dumps(config.model_dump()["init"]))
    if before is not None and before != wanted:
        changed = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k))
        raise InputError(
            f"{out} holds a run with another init ({', '.join(changed)}: {before.get(changed[0])!r}, "
            f"now {wanted.get(changed[0])!r}): give the stage a new out folder, or move the old run away"
        )


def check_time_budget(stages: list[TrainConfig], minutes: float | None) -> None:
    """A time budget picks the step count, which a decaying learning rate depends on: constant only."""
    if minutes is None:
        return
    if not (math.isfinite(minutes) and minutes > 0):
        raise InputError(f"minutes must be a positive number, got {minutes!r}")
    for stage in stages:
        if stage.optim.schedule != "constant":
            raise InputError(
                f"{stage.name}: a time budget needs optim.schedule=constant (a {stage.optim.schedule} "
                "schedule is set by optim.steps), or give --steps instead"
            )


def _ended_at(config: TrainConfig, step: int, out: Path, accelerator) -> TrainConfig:
    """The stage's config as a run of `step` steps, recorded in its config.json."""
    config = config.model_copy(update={"optim": config.optim.model_copy(update={"steps": step})})
    if accelerator.is_main_process:
        (out / "config.json").write_text(json.dumps(config.model_dump(), indent=2) + "\n")
        logger.info("%s: time budget used, stopped at step %d", config.name, step)
    return config


def _out_of_time(started: float, minutes: float | None, accelerator) -> bool:
    """Whether any process has used up the budget (all processes then stop at the same step)."""
    if minutes is None:
        return False
    late = torch.tensor([float(time.perf_counter() - started > minutes * 60)], device=accelerator.device)
    return bool(accelerator.reduce(late, reduction="sum").item() > 0)


class TrainingData:
    """The stage's source (ToonWorld or a curation folder), its bucket plan and the optional feature cache."""

    def __init__(self, config: TrainConfig, cache: FeatureCache | None = None):
        d = config.data
        resolutions = tuple((int(w), int(h)) for w, h in d.resolutions)
        self.spec = BucketSpec(resolutions, d.fps, d.min_seconds, d.max_seconds, d.image_share, d.batch_size)
        self.seed, self.cache, self.num_samples, self.workers = d.seed, cache, None, d.workers
        if d.source == "toonworld":
            self.source, self.clip_seconds = ToonWorldSource(d.seed, d.fps, speeds=d.speeds), None
            self.num_samples = None if d.num_shots is None else d.num_shots * len(d.speeds)
        else:
            self.source = ManifestSource(d.source, d.fps, foreground_detector(d.foreground))
            self.clip_seconds = self.source.clip_seconds

    def batch(self, index: int) -> tuple[Bucket, list[Sample]]:
        """Batch `index` (a pure function of it): the bucket and its samples."""
        bucket, indices = batch_plan(
            self.spec, self.seed, index, num_samples=self.num_samples, clip_seconds=self.clip_seconds
        )
        return bucket, load_batch(self.source, bucket, indices)

    def prefetched(self, steps: range, world: int = 1, rank: int = 0) -> TrainingData | PrefetchedData:
        """This data as `train` reads it: with `data.workers`, the batches of `steps` rendered ahead."""
        return PrefetchedData(self, steps, world, rank) if self.workers else self


class PrefetchedData:
    """The batches of a run's steps, in order, rendered ahead by `data.workers` processes (a torch
    DataLoader over batch indices; a batch is a function of its index, so the result is the same)."""

    def __init__(self, data: TrainingData, steps: range, world: int, rank: int):
        from torch.utils.data import DataLoader

        indices = [step * world + rank for step in steps]
        loader = DataLoader(
            _Batches(data, indices), batch_size=None, num_workers=data.workers, collate_fn=_as_is
        )
        self.cache, self._indices, self._batches = data.cache, iter(indices), iter(loader)

    def batch(self, index: int) -> tuple[Bucket, list[Sample]]:
        expected = next(self._indices, None)
        if index != expected:
            raise RuntimeError(f"prefetched batches come in order: asked for {index}, next is {expected}")
        return next(self._batches)


class _Batches(torch.utils.data.Dataset):
    def __init__(self, data: TrainingData, indices: list[int]):
        self.data, self.indices = data, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Bucket, list[Sample]]:
        return self.data.batch(self.indices[position])


def _as_is(batch):
    return batch  # samples stay numpy arrays in dataclasses (the default collate would convert them)


def training_loss(pipe, transformer, data: TrainingData, config: TrainConfig, step: int, accelerator):
    """The v-prediction loss of one batch; everything random is drawn from (config.seed, step, process)."""
    rank, world = accelerator.process_index, accelerator.num_processes
    bucket, samples = data.batch(step * world + rank)
    device = accelerator.device
    rng = np.random.default_rng([config.seed, step, rank])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    posterior = torch.Generator().manual_seed(int(rng.integers(2**62)))

    video = torch.from_numpy(np.stack([s.frames for s in samples])).to(device)  # (B, F, H, W, 3)
    video = video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    with torch.no_grad():
        moments = _clip_moments(pipe, video, samples, bucket, data.cache)
        latents = DiagonalGaussianDistribution(moments).sample(posterior)
        latents = (latents * pipe.vae_scaling_factor_image).permute(0, 2, 1, 3, 4).float()  # (B, T, C, h, w)
        encode = _guide_encoder(pipe, data.cache)
        info = ModelInfo.of(pipe)
        conds = [
            build_conditioning(
                _request(
                    info, sample, bucket, sample_guide_frames(bucket.num_frames, rng, config.masking), config
                ),
                encode,
                latent_channels=latents.shape[2],
                device=device,
                encode_video=pipe._encode_guides,  # a clip's own guide choice: no use caching it
            )
            for sample in samples
        ]
        prompts = [s.prompt if rng.random() >= config.text_dropout else "" for s in samples]
        text = _text_features(pipe, prompts, data.cache).to(device)
    cond = stack_conditionings(conds)

    batch = latents.shape[0]
    timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = timesteps.to(device)
    noisy = pipe.scheduler.add_noise(latents, noise, timesteps)
    target, weight = _target(pipe.scheduler, latents, noise, timesteps)
    if config.lora.region and cond.region is not None:
        reference = cond.region_latent.expand_as(latents)
        noisy = cond.region * noisy + (1 - cond.region) * pipe.scheduler.add_noise(
            reference, noise, timesteps
        )
        weight = weight * cond.region
    motion = None
    if pipe.config.motion_embedding:
        scores = torch.tensor([s.motion_score for s in samples], device=device, dtype=torch.float32)
        motion = scores * MOTION_EMBED_SCALE
    rotary = pipe.rotary_embeddings(bucket.height, bucket.width, latents.shape[1], device)
    prediction = pipe.predict(noisy, cond, text, timesteps, motion=motion, rotary=rotary, model=transformer)
    error = F.mse_loss(prediction.float(), target, reduction="none") * weight
    return error.sum() / (weight.expand_as(error).sum().clamp(min=1.0))


def _target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """(target, per-sample weight) for the scheduler's prediction type. v is learnt unweighted. A clean-latent
    prediction is weighted by 1 + SNR, capped at `SAMPLE_WEIGHT_CAP`: 1 + SNR makes its error the v error
    it implies, which stops low-noise steps from being ignored; the cap keeps them from taking over (the
    min-SNR idea of Hang et al. 2023)."""
    kind = scheduler.config.prediction_type
    ones = latents.new_ones(latents.shape[0], 1, 1, 1, 1)
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps), ones
    if kind == "sample":
        alphas = scheduler.alphas_cumprod.to(latents.device)[timesteps].float()
        snr = alphas / (1 - alphas).clamp(min=1e-8)
        return latents, (1 + snr).clamp(max=SAMPLE_WEIGHT_CAP).reshape(ones.shape)
    raise InputError(f"cannot train a {kind!r} prediction; the demo trains v_prediction or sample")


def lr_factor(optim: OptimConfig, step: int) -> float:
    """The learning rate of `step` as a fraction of `optim.lr`: linear warm-up, then constant or cosine."""
    warmup = max(1, optim.warmup_steps)
    if step < warmup or optim.schedule == "constant":
        return min(1.0, (step + 1) / warmup)
    progress = min(1.0, (step - warmup) / max(1, optim.steps - warmup))
    return 0.55 + 0.45 * math.cos(math.pi * progress)


def _clip_moments(pipe, video: torch.Tensor, samples: list[Sample], bucket: Bucket, cache) -> torch.Tensor:
    """The VAE posterior's (mean, logvar) of each clip, on sampling's CPU kernels (`cpu_vae`: a one-clip
    float32 encode runs on PyTorch's slow reference kernel otherwise); with a cache, each clip is encoded
    alone, once."""

    def encode(clips: torch.Tensor) -> torch.Tensor:
        parameters = lambda batch: pipe.vae.encode(batch).latent_dist.parameters  # noqa: E731
        return cpu_vae(pipe.vae, parameters, clips.to(pipe.vae.dtype)).float()

    if cache is None:
        return encode(video)
    shape = f"{bucket.width}x{bucket.height}x{bucket.num_frames}@{samples[0].fps:g}"
    return torch.cat(
        [
            cache.fetch("clip", f"{sample.key}|{shape}", lambda i=i: encode(video[i : i + 1]))
            for i, sample in enumerate(samples)
        ]
    ).to(video.device)


def _guide_encoder(pipe, cache):
    """The conditioning module's guide encoder; with a cache, keyed by the guide's pixels."""
    if cache is None:
        return pipe._encode_guides

    def encode(images: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.sha256(image.cpu().numpy().tobytes()).hexdigest() for image in images]
        latents = [
            cache.fetch("guide", key, lambda image=image: pipe._encode_guides(image[None]))
            for key, image in zip(keys, images, strict=True)
        ]
        return torch.cat(latents).to(images.device)

    return encode


def _text_features(pipe, prompts: list[str], cache) -> torch.Tensor:
    """The frozen text encoder's token features of each prompt; with a cache, per prompt, once."""
    length = pipe.transformer.config.max_text_seq_length

    def encode(texts: list[str]) -> torch.Tensor:
        device = pipe._execution_device
        return pipe.encode_prompt(
            texts, do_classifier_free_guidance=False, max_sequence_length=length, device=device
        )[0]

    if cache is None:
        return encode(prompts)
    return torch.cat([cache.fetch("text", f"{length}|{p}", lambda p=p: encode([p])) for p in prompts])


def _request(
    info: ModelInfo, sample, bucket, guide_frames: list[int], config: TrainConfig
) -> ConditionRequest:
    guides = [Guide(sample.frames[f], f) for f in guide_frames]
    region = None
    if config.lora.region and guides and sample.foreground is not None:
        region = sample.foreground.any(axis=0).astype(np.uint8) * 255  # union over the clip (paper 2.2)
        if not region.any():
            region = None
    return info.condition(
        bucket.num_frames, bucket.height, bucket.width, guides, motion_mask=region, motion=sample.motion_score
    )


def _trainable_parameters(pipe: AnisoraPipeline, config: TrainConfig) -> list[torch.nn.Parameter]:
    transformer = pipe.transformer
    if config.lora.rank > 0:
        from peft import LoraConfig as PeftLoraConfig

        transformer.requires_grad_(False)
        transformer.add_adapter(
            PeftLoraConfig(
                r=config.lora.rank,
                lora_alpha=config.lora.alpha,
                target_modules=list(config.lora.targets),
                init_lora_weights=True,
            )
        )
    else:
        transformer.requires_grad_(True)
    return [p for p in transformer.parameters() if p.requires_grad]


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step_*.pt"))


def _resume(out: Path, accelerator, optimizer, schedule, ema, trained) -> int:
    checkpoints = _checkpoints(out)
    if not checkpoints:
        return 0
    state = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)
    with torch.no_grad():
        for param, saved in zip(trained, state["trained"], strict=True):
            param.copy_(saved.to(param.device, param.dtype))
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    ema.load_state_dict(state["ema"])
    if accelerator.is_main_process:
        logger.info("resumed from %s (step %s)", checkpoints[-1], state["step"])
    return int(state["step"])


def _save_checkpoint(out: Path, step: int, accelerator, optimizer, schedule, ema, trained, config) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {
            "step": step,
            "trained": [p.detach().cpu() for p in trained],
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "ema": ema.state_dict(),
        }
        folder = out / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(folder / f"step_{step:08d}.pt") as tmp:
            torch.save(state, tmp)
        for old in _checkpoints(out)[: -config.keep_checkpoints]:
            old.unlink()
    accelerator.wait_for_everyone()


def _save_final(out: Path, pipe: AnisoraPipeline, accelerator, ema, trained, config: TrainConfig) -> Path:
    """The EMA weights as a diffusers directory (or a LoRA), written beside and renamed into place."""
    final = out / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ema.copy_to(trained)
        with atomic_directory(final) as tmp:
            if config.lora.rank > 0:
                from peft.utils import get_peft_model_state_dict

                layers = get_peft_model_state_dict(pipe.transformer)
                AnisoraPipeline.save_lora_weights(tmp, transformer_lora_layers=layers)
            else:
                save_pipeline(pipe, tmp)
    accelerator.wait_for_everyone()
    return final


class _Log:
    """One JSON line per step, appended, so a resumed run keeps its history."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def keep_until(self, step: int) -> None:
        """Drop the lines after `step` (the checkpoint resumed from) and any line cut by a kill."""
        if not (self.enabled and self.path.exists()):
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue
        with atomic_output(self.path) as tmp:
            tmp.write_text("".join(kept), encoding="utf-8")

    def write(self, **values) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(values) + "\n")


def check_stage_inputs(stages: list[TrainConfig]) -> None:
    """Raise InputError, before any stage loads weights, for what a stage reads and lacks: its model, VAE or
    text encoder folder (a previous stage's final directory is made on the way), its curation folder (with
    kept clips) or its segmenter file."""
    made: set[str] = set()
    for stage in stages:
        try:
            if stage.init.model not in made:
                check_init(stage.init)
            if stage.data.source != "toonworld":
                ManifestSource(stage.data.source, stage.data.fps)  # reads the manifest only
            foreground = stage.data.foreground
            if foreground and foreground.endswith(".onnx") and not Path(foreground).is_file():
                raise InputError(f"data.foreground: {foreground} is not a file")
        except InputError as error:
            raise InputError(f"stage {stage.name}: {error}") from None
        made.add(str(Path(stage.out) / "final"))


def check_stage_order(stages: list[TrainConfig]) -> None:
    """Each stage after the first must start from the previous stage's final directory."""
    for previous, stage in itertools.pairwise(stages):
        expected = str(Path(previous.out) / "final")
        if stage.init.model != expected:
            raise InputError(f"stage {stage.name} must start from {expected}, not {stage.init.model!r}")
