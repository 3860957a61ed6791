"""`AnisoraPipeline`: diffusers' CogVideoX image-to-video pipeline with AniSora's spatiotemporal conditioning.

It inherits everything diffusers already does well (prompt encoding, rotary embeddings, VAE decoding, CPU
offload, VAE tiling/slicing, LoRA loading, `save_pretrained`/`from_pretrained`) and replaces only `__call__`,
whose denoising loop reads top to bottom:

1. `build_conditioning` (the spatiotemporal mask module) turns guides, motion mask and scores into the guide
   latent sequence, the mask channels and the prompt with its score suffix;
2. the text is encoded; with classifier-free guidance the unconditional branch keeps the guide latents and
   mask and drops only the text (official behaviour);
3. each step feeds [noisy latent, (mask,) guides] to the transformer, which predicts v (zero-terminal-SNR
   schedule), and steps diffusers' CogVideoX DDIM or DPM scheduler;
4. pinned latents (`Conditioning.pinned_latents`: outside a motion mask, the first guide's latent, paper
   section 2.2; at frame 0, a full-strength guide's latent) are replaced by their reference noised to the next
   step, and by the clean reference after the last step;
5. guides at other frames are fitted through the decoder (`guide_fit`, `guide_fit_steps` steps);
6. the VAE decodes; frames come back as uint8 (F, H, W, 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor

from ..errors import InputError
from .conditioning import (
    Conditioning,
    Guide,
    build_conditioning,
    latent_frame_count,
    layout_for,
)
from .guide_fit import fit_guides, fit_targets
from .info import DEFAULT_FPS, ModelInfo
from .vae import cpu_autocast, video_frames

MOTION_EMBED_SCALE = 100.0  # motion score x 100 feeds the sinusoidal embedding, like a timestep
DEFAULT_MOTION = 1.0  # for models with a motion embedding when no score is asked for (V1 range 0.5-1.5)


@dataclass
class AnisoraOutput:
    frames: np.ndarray  # (F, H, W, 3) uint8, or the final latents (1, T, C, h, w) with output_type="latent"
    prompt: str  # the prompt the model saw, with the score suffix
    notes: list[str] = field(default_factory=list)  # adjustments made to the request (cropping, defaults)


class AnisoraPipeline(CogVideoXImageToVideoPipeline):
    """CogVideoX components in the "anisora" (noise + mask + guides) or official V1 (noise + guides) layout.

    `motion_embedding=True` marks a transformer trained with a numeric motion score added to its timestep
    embedding (diffusers' "ofs" embedding); `fps` is the frame rate it was trained at;
    `text_encoder_name="minilm"` marks a model saved without its text encoder because a registry package
    ships it (see `anisora.model.weights`); `anisora_presets` the release's sampling settings (see
    `anisora.model.info.PRESET_TYPES`). All are saved in model_index.json; a CogVideoX directory has none of
    them and gets False, 8 (CogVideoX-5B-I2V's rate), None and the defaults.
    """

    def __init__(
        self,
        tokenizer,
        text_encoder,
        vae,
        transformer,
        scheduler,
        motion_embedding: bool = False,
        fps: int = DEFAULT_FPS,
        text_encoder_name: str | None = None,
        anisora_presets: dict | None = None,
    ):
        super().__init__(tokenizer, text_encoder, vae, transformer, scheduler)
        self.register_to_config(
            motion_embedding=motion_embedding,
            fps=fps,
            text_encoder_name=text_encoder_name,
            anisora_presets=anisora_presets,
        )

    @property
    def layout(self):
        return layout_for(self.transformer.config.in_channels, self.vae.config.latent_channels)

    @torch.no_grad()
    def __call__(
        self,
        guides: Sequence[Guide] = (),
        *,
        prompt: str = "",
        negative_prompt: str = "",
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        motion_mask: np.ndarray | None = None,
        motion_score: float | None = None,
        aesthetic_score: float | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        guide_fit_steps: int = 0,
        use_dynamic_cfg: bool = False,
        generator: torch.Generator | None = None,
        max_sequence_length: int | None = None,
        output_type: str = "np",
        progress: Callable[[int, int], None] | None = None,
        attention_kwargs: dict | None = None,
    ) -> AnisoraOutput:
        self._check_model()
        if num_inference_steps < 1:
            raise InputError(f"steps must be at least 1, got {num_inference_steps}")
        if not (math.isfinite(guidance_scale) and guidance_scale >= 0):
            raise InputError(f"guidance scale must be >= 0, got {guidance_scale}")
        config = self.transformer.config
        num_frames = num_frames or config.sample_frames
        height = height or config.sample_height * self.vae_scale_factor_spatial
        width = width or config.sample_width * self.vae_scale_factor_spatial
        device, dtype = self._execution_device, self.transformer.dtype
        info = ModelInfo.of(self)
        request = info.condition(
            num_frames, height, width, guides, motion_mask, prompt, motion_score, aesthetic_score
        )
        info.check_size(num_frames, height, width)
        cond = build_conditioning(
            request, self._encode_guides, latent_channels=config.out_channels, device=device, dtype=dtype
        )

        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._interrupt = False
        do_cfg = guidance_scale > 1.0
        prompt_embeds, negative_embeds = self.encode_prompt(
            cond.prompt,
            negative_prompt,
            do_classifier_free_guidance=do_cfg,
            max_sequence_length=max_sequence_length or config.max_text_seq_length,
            device=device,
            dtype=dtype,
        )
        if do_cfg:
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds])

        timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device)
        self._num_timesteps = len(timesteps)
        t_lat = cond.guide_latents.shape[1]
        shape = (1, t_lat, config.out_channels, height // info.spatial, width // info.spatial)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents * self.scheduler.init_noise_sigma
        pin_noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        pins = cond.pinned_latents()
        rotary = self.rotary_embeddings(height, width, t_lat, device)
        ofs = self._motion_condition(cond, latents)
        step_kwargs = self.prepare_extra_step_kwargs(generator, 0.0)

        old_pred_original_sample = None
        with self.progress_bar(total=len(timesteps)) as bar, self._learned_positions_for(num_frames):
            for i, t in enumerate(timesteps):
                self._current_timestep = t
                model_input = torch.cat([latents] * 2) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                batch = model_input.shape[0]
                velocity = self.predict_velocity(
                    model_input,
                    cond,
                    prompt_embeds,
                    t.expand(batch),
                    motion=None if ofs is None else ofs.expand(batch),
                    rotary=rotary,
                    attention_kwargs=attention_kwargs,
                ).float()
                if do_cfg:
                    scale = guidance_scale
                    if use_dynamic_cfg:  # diffusers' / the official cosine ramp
                        ramp = ((num_inference_steps - t.item()) / num_inference_steps) ** 5.0
                        scale = 1 + guidance_scale * (1 - math.cos(math.pi * ramp)) / 2
                    uncond, text = velocity.chunk(2)
                    velocity = uncond + scale * (text - uncond)
                if isinstance(self.scheduler, CogVideoXDPMScheduler):
                    previous = timesteps[i - 1] if i > 0 else None
                    latents, old_pred_original_sample = self.scheduler.step(
                        velocity,
                        old_pred_original_sample,
                        t,
                        previous,
                        latents,
                        **step_kwargs,
                        return_dict=False,
                    )
                else:
                    latents = self.scheduler.step(velocity, t, latents, **step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)
                if pins is not None:
                    following = timesteps[i + 1] if i + 1 < len(timesteps) else None
                    latents = self._pin(latents, *pins, pin_noise, following)
                bar.update()
                if progress is not None:
                    progress(i + 1, len(timesteps))
        self._current_timestep = None

        if output_type == "latent":
            frames = latents
        else:
            if guide_fit_steps:
                targets = fit_targets(request.guides, height, width, pinned=cond.pinned_frames)
                latents = fit_guides(
                    latents, self.decode_latents, targets, guide_fit_steps, time_dim=1, movable=cond.region
                )
            frames = video_frames(self.decode_latents(latents)[0])
        self.maybe_free_model_hooks()
        notes = list(cond.notes)
        if ofs is not None and motion_score is None:
            notes.append(f"no motion score given: the motion embedding used {DEFAULT_MOTION}")
        return AnisoraOutput(frames, cond.prompt, notes)

    def predict_velocity(
        self,
        noisy: torch.Tensor,
        cond: Conditioning,
        prompt_embeds: torch.Tensor,
        timestep: torch.Tensor,
        *,
        motion: torch.Tensor | None = None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict | None = None,
        model: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """The transformer's v-prediction for `noisy` (B, T, C, h, w) under `cond`; sampling and training
        both call this. `motion` is the motion-embedding input (scores x MOTION_EMBED_SCALE) or None;
        `model` is the transformer as wrapped for distributed training (default: ours)."""
        return (model or self.transformer)(
            hidden_states=cond.model_input(noisy, self.layout),
            encoder_hidden_states=prompt_embeds,
            timestep=timestep,
            ofs=motion,
            image_rotary_emb=rotary,
            attention_kwargs=attention_kwargs,
            return_dict=False,
        )[0]

    def rotary_embeddings(self, height: int, width: int, latent_frames: int, device) -> tuple | None:
        if not self.transformer.config.use_rotary_positional_embeddings:
            return None
        return self._prepare_rotary_positional_embeddings(height, width, latent_frames, device)

    @contextmanager
    def _learned_positions_for(self, num_frames: int) -> Iterator[None]:
        """Make a learned position embedding serve a clip shorter than its own: diffusers' patch embedding
        replaces it by a computed sin-cos one at any other frame count, where the official code uses the
        learned one's first rows (text, then frame after frame)."""
        embed = self.transformer.patch_embed
        if not embed.use_learned_positional_embeddings or num_frames == embed.sample_frames:
            yield
            return
        cells = (embed.sample_height // embed.patch_size) * (embed.sample_width // embed.patch_size)
        rows = embed.max_text_seq_length + latent_frame_count(num_frames) * cells
        full, frames = embed.pos_embedding, embed.sample_frames
        embed.pos_embedding, embed.sample_frames = full[:, :rows], num_frames
        try:
            yield
        finally:
            embed.pos_embedding, embed.sample_frames = full, frames

    def _check_model(self) -> None:
        config = self.transformer.config
        if config.patch_size_t is not None:
            raise InputError("CogVideoX 1.5 models (temporal patches) are not supported")
        if self.config.motion_embedding != bool(config.ofs_embed_dim):
            raise InputError(
                f"model_index.json says motion_embedding={self.config.motion_embedding}"
                f" but the transformer's ofs_embed_dim is {config.ofs_embed_dim}"
            )
        self.layout  # noqa: B018 - raises when the channel count fits no layout

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """diffusers' decoding, at the CPU precision of `vae.cpu_autocast`, in float32 out."""
        with cpu_autocast(self.vae):
            return super().decode_latents(latents).float()

    def _encode_guides(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 1, H, W) in [-1, 1] -> scaled latents: the posterior mode, so guides carry no noise."""
        with cpu_autocast(self.vae):
            latents = self.vae.encode(images.to(self.vae.dtype)).latent_dist.mode().float()
        if self.vae.config.invert_scale_latents:
            return latents / self.vae_scaling_factor_image
        return latents * self.vae_scaling_factor_image

    def _motion_condition(self, cond: Conditioning, latents: torch.Tensor) -> torch.Tensor | None:
        if not self.config.motion_embedding:
            return None
        score = DEFAULT_MOTION if cond.motion_score is None else cond.motion_score
        return latents.new_full((1,), score * MOTION_EMBED_SCALE)

    def _pin(
        self,
        latents: torch.Tensor,
        keep: torch.Tensor,
        reference: torch.Tensor,
        noise: torch.Tensor,
        timestep: torch.Tensor | None,
    ) -> torch.Tensor:
        reference = reference.to(latents.dtype)
        if timestep is not None:
            reference = self.scheduler.add_noise(reference, noise, timestep.reshape(1))
        return keep * latents + (1 - keep) * reference
