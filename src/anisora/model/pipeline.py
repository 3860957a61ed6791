"""`AnisoraPipeline`: diffusers' CogVideoX image-to-video pipeline with AniSora's spatiotemporal conditioning.

It inherits everything diffusers already does well (prompt encoding, rotary embeddings, VAE decoding, CPU
offload, VAE tiling/slicing, LoRA loading, `save_pretrained`/`from_pretrained`) and replaces only `__call__`,
whose denoising loop reads top to bottom:

1. `build_conditioning` (the spatiotemporal mask module) turns guides, motion mask and scores into the guide
   latent sequence, the mask channels and the prompt with its score suffix;
2. the text is encoded; with classifier-free guidance the unconditional branch keeps the guide latents and
   mask and drops only the text (official behaviour);
3. each step feeds [noisy latent, (mask,) guides] to the transformer, which predicts v (zero-terminal-SNR
   schedule), and steps diffusers' CogVideoX DDIM or DPM scheduler; in the noisy first steps a
   `MotionGuidance` moves the prediction away from the one at a reference motion score
   (`anisora.model.motion_guidance`);
4. pinned latents (`Conditioning.pinned_latents`: outside a motion mask, the first guide's latent, paper
   section 2.2; at frame 0, a full-strength guide's latent) are replaced by their reference noised to the next
   step, and by the clean reference after the last step;
5. guides at other frames are fitted through the decoder (`guide_fit`, `guide_fit_steps` steps);
6. the VAE decodes; frames come back as `output_type` asks. A residual model with a "flow" interpolation
   (`decode_change`, the default) keeps that interpolation's pixels and adds only the decoded change the
   model made to it: output = interpolation + decode(latents) - decode(the interpolation's latents), so
   what the model left alone comes back exactly instead of as the VAE's lossy copy. Outside a motion mask
   the video keeps the first guide's pixels (`Conditioning.held`).

Beside `guides`, the call keeps diffusers' contract (`anisora.model.diffusers_call`: `image=`/`last_image=`,
prompt lists, `num_videos_per_prompt`, `output_type`, step-end callbacks, `return_dict`), and saved folders
load in plain diffusers (`anisora.model.hub`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import ClassVar

import numpy as np
import torch
from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor

from ..errors import InputError
from .conditioning import (
    Conditioning,
    Guide,
    build_conditioning,
    conditioned_prompt,
    latent_frame_count,
    layout_for,
)
from .diffusers_call import (
    AnisoraOutput,
    check_output_type,
    negative_prompt_list,
    prompt_list,
    step_end_inputs,
    video_count,
    with_shortcuts,
)
from .guide_fit import fit_guides, fit_targets
from .hub import FolderPipeline
from .info import DEFAULT_FPS, ModelInfo, guide_interpolation
from .motion_guidance import MotionGuidance
from .text_encoder import named_text_encoder
from .vae import cpu_vae

MOTION_EMBED_SCALE = 100.0  # motion score x 100 feeds the sinusoidal embedding, like a timestep
DEFAULT_MOTION = 1.0  # for models with a motion embedding when no score is asked for (V1 range 0.5-1.5)


class AnisoraPipeline(FolderPipeline, CogVideoXImageToVideoPipeline):
    """CogVideoX components in the "anisora" (noise + mask + guides) or official V1 (noise + guides) layout.

    `motion_embedding=True` marks a transformer trained with a numeric motion score added to its timestep
    embedding (diffusers' "ofs" embedding); `fps` is the frame rate it was trained at;
    `text_encoder_name="minilm"` names a text encoder a registry package ships (`text_encoder.
    named_text_encoder`): built without a text encoder, the pipeline resolves it by that name, and it saves
    the model without it; `anisora_presets` the release's sampling settings (see
    `anisora.model.info.PRESET_TYPES`); `residual_to_guides=True` marks a clean-latent transformer that
    predicts the clean latent's difference from the guides' interpolation (`Conditioning.
    guide_interpolation`), so that an untrained output gives the still frame or the guides' interpolation
    and training learns only the motion; `guide_interpolation` names that interpolation, "latent" (a latent
    cross-fade) or "flow" (along the keyframes' optical flow; `anisora.model.conditioning`); `mask_lora` a
    folder of the model holding a LoRA that requests with a motion mask get (`anisora.model.weights.
    load_mask_lora`). All are saved in model_index.json; a CogVideoX directory has none of them and gets
    False, 8 (CogVideoX-5B-I2V's rate), None, the defaults, False, "latent" and None.
    """

    _optional_components: ClassVar[list[str]] = ["tokenizer", "text_encoder"]  # named ones are not saved
    _callback_tensor_inputs: ClassVar[list[str]] = ["latents", "prompt_embeds"]  # with CFG: [negative; text]

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
        residual_to_guides: bool = False,
        guide_interpolation: str = "latent",  # a plain type: diffusers reads these annotations
        mask_lora: str | None = None,
    ):
        if text_encoder is None and text_encoder_name is not None:
            tokenizer, text_encoder = named_text_encoder(text_encoder_name)
        super().__init__(tokenizer, text_encoder, vae, transformer, scheduler)
        self.register_to_config(
            motion_embedding=motion_embedding,
            fps=fps,
            text_encoder_name=text_encoder_name,
            anisora_presets=anisora_presets,
            residual_to_guides=residual_to_guides,
            guide_interpolation=guide_interpolation,
            mask_lora=mask_lora,
        )

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """diffusers' save, with the module plain diffusers loads (`anisora.model.hub`), and without a text
        encoder that `text_encoder_name` names."""
        if self.config.text_encoder_name is None:
            super().save_pretrained(save_directory, *args, **kwargs)
            return
        tokenizer, text_encoder = self.tokenizer, self.text_encoder
        self.register_modules(tokenizer=None, text_encoder=None)
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder)

    @property
    def layout(self):
        return layout_for(self.transformer.config.in_channels, self.vae.config.latent_channels)

    @torch.no_grad()
    def __call__(
        self,
        guides: Sequence[Guide] = (),
        *,
        image: PipelineImageInput | None = None,
        last_image: PipelineImageInput | None = None,
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] = "",
        num_videos_per_prompt: int = 1,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        motion_mask: np.ndarray | None = None,
        motion_score: float | None = None,
        aesthetic_score: float | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        guide_fit_steps: int = 0,
        motion_guidance: MotionGuidance | None = None,
        decode_change: bool = True,
        use_dynamic_cfg: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
        max_sequence_length: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        attention_kwargs: dict | None = None,
    ) -> AnisoraOutput | tuple:
        """Generate `num_videos_per_prompt` videos per prompt from `guides` (and the diffusers shortcuts
        `image`, `last_image`; see `anisora.model.diffusers_call` for the contract). `progress(step, steps)`
        is called after every step."""
        self._check_model()
        check_output_type(output_type)
        if num_inference_steps < 1:
            raise InputError(f"steps must be at least 1, got {num_inference_steps}")
        if not (math.isfinite(guidance_scale) and guidance_scale >= 0):
            raise InputError(f"guidance scale must be >= 0, got {guidance_scale}")
        if motion_guidance is not None:
            motion_guidance.check()
            if not self.config.motion_embedding:
                raise InputError("motion guidance needs a model with a motion embedding")
        prompts = prompt_list(prompt)
        negatives = negative_prompt_list(negative_prompt, len(prompts))
        batch = video_count(len(prompts), num_videos_per_prompt, generator)
        step_inputs = step_end_inputs(
            callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs
        )
        config = self.transformer.config
        num_frames = num_frames or config.sample_frames
        height = height or config.sample_height * self.vae_scale_factor_spatial
        width = width or config.sample_width * self.vae_scale_factor_spatial
        guides = with_shortcuts(guides, image, last_image, num_frames)
        device, dtype = self._execution_device, self.transformer.dtype
        info = ModelInfo.of(self)
        request = info.condition(
            num_frames, height, width, guides, motion_mask, prompts[0], motion_score, aesthetic_score
        )
        info.check_size(num_frames, height, width)
        cond = build_conditioning(
            request, self._encode_guides, latent_channels=config.out_channels, device=device, dtype=dtype
        )
        texts = [conditioned_prompt(replace(request, prompt=text)) for text in prompts]

        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._interrupt = False
        do_cfg = guidance_scale > 1.0
        prompt_embeds, negative_embeds = self.encode_prompt(
            texts,
            negatives,
            do_classifier_free_guidance=do_cfg,
            num_videos_per_prompt=num_videos_per_prompt,
            max_sequence_length=max_sequence_length or config.max_text_seq_length,
            device=device,
            dtype=dtype,
        )
        if do_cfg:
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds])

        timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device)
        self._num_timesteps = len(timesteps)
        t_lat = cond.guide_latents.shape[1]
        shape = (batch, t_lat, config.out_channels, height // info.spatial, width // info.spatial)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents * self.scheduler.init_noise_sigma
        pin_noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        pins = cond.pinned_latents()
        rotary = self.rotary_embeddings(height, width, t_lat, device)
        ofs = self._motion_condition(cond, latents)
        train_timesteps = self.scheduler.config.num_train_timesteps
        reference_motion = motion_guidance and self._motion_input(motion_guidance.reference, latents)
        step_kwargs = self.prepare_extra_step_kwargs(generator, 0.0)

        def denoise(model_input: torch.Tensor, t: torch.Tensor, motion: torch.Tensor | None) -> torch.Tensor:
            """The step's prediction at the motion input `motion`, with classifier-free guidance."""
            doubled = model_input.shape[0]
            prediction = self.predict(
                model_input,
                cond,
                prompt_embeds,
                t.expand(doubled),
                motion=None if motion is None else motion.expand(doubled),
                rotary=rotary,
                attention_kwargs=attention_kwargs,
            ).float()
            if not do_cfg:
                return prediction
            scale = guidance_scale
            if use_dynamic_cfg:  # diffusers' / the official cosine ramp
                ramp = ((num_inference_steps - t.item()) / num_inference_steps) ** 5.0
                scale = 1 + guidance_scale * (1 - math.cos(math.pi * ramp)) / 2
            uncond, text = prediction.chunk(2)
            return uncond + scale * (text - uncond)

        old_pred_original_sample = None
        with self.progress_bar(total=len(timesteps)) as bar, self._learned_positions_for(num_frames):
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                model_input = torch.cat([latents] * 2) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)

                prediction = denoise(model_input, t, ofs)
                if motion_guidance is not None and motion_guidance.acts_at(t.item(), train_timesteps):
                    reference = denoise(model_input, t, reference_motion)
                    prediction = motion_guidance.combine(prediction, reference)
                if isinstance(self.scheduler, CogVideoXDPMScheduler):
                    previous = timesteps[i - 1] if i > 0 else None
                    latents, old_pred_original_sample = self.scheduler.step(
                        prediction,
                        old_pred_original_sample,
                        t,
                        previous,
                        latents,
                        **step_kwargs,
                        return_dict=False,
                    )
                else:
                    latents = self.scheduler.step(prediction, t, latents, **step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)
                if pins is not None:
                    following = timesteps[i + 1] if i + 1 < len(timesteps) else None
                    latents = self._pin(latents, *pins, pin_noise, following)
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                    returned = callback_on_step_end(self, i, t, {name: tensors[name] for name in step_inputs})
                    latents = returned.pop("latents", latents)
                    prompt_embeds = returned.pop("prompt_embeds", prompt_embeds)
                bar.update()
                if progress is not None:
                    progress(i + 1, len(timesteps))
        self._current_timestep = None

        if output_type == "latent":
            frames = latents
        else:
            prior = self._pixel_prior(cond) if decode_change else None
            if guide_fit_steps:
                targets = fit_targets(request.guides, height, width)
                # with the change decoded, it must vanish at the guides: fit them to the prior's decoding
                if prior is not None:
                    targets = {frame: prior[1][0, :, frame] for frame in targets}
                decode, steps = self.decode_latents, guide_fit_steps
                fitted = [
                    fit_guides(video, decode, targets, steps, time_dim=1, movable=cond.region)
                    for video in latents.split(1)
                ]
                latents = torch.cat(fitted)
            video = self.decode_latents(latents)
            if prior is not None:
                video = (prior[0] + video - prior[1]).clamp(-1, 1)
            if cond.held is not None:
                video = cond.held.apply(video)
            frames = self.video_processor.postprocess_video(video, output_type=output_type)
        self.maybe_free_model_hooks()
        notes = list(cond.notes)
        if ofs is not None and motion_score is None:
            notes.append(f"no motion score given: the motion embedding used {DEFAULT_MOTION}")
        if not return_dict:
            return (frames,)
        return AnisoraOutput(frames, texts if isinstance(prompt, (list, tuple)) else texts[0], notes)

    def predict(
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
        """The transformer's prediction for `noisy` (B, T, C, h, w) under `cond`, of what the scheduler's
        `prediction_type` names (v, or the clean latent for the demo preset); sampling and training both
        call this. `motion` is the motion-embedding input (scores x MOTION_EMBED_SCALE) or None;
        `model` is the transformer as wrapped for distributed training (default: ours); with
        `residual_to_guides`, the guides' interpolation is added to what it returns."""
        prediction = (model or self.transformer)(
            hidden_states=cond.model_input(noisy, self.layout),
            encoder_hidden_states=prompt_embeds,
            timestep=timestep,
            ofs=motion,
            image_rotary_emb=rotary,
            attention_kwargs=attention_kwargs,
            return_dict=False,
        )[0]
        if self.config.residual_to_guides:
            prediction = prediction + cond.guide_interpolation().to(prediction).expand_as(prediction)
        return prediction

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
        if self.text_encoder is None or self.tokenizer is None:
            raise InputError(
                "this model has no text encoder: save it with one, or name a packaged one "
                "(text_encoder_name in model_index.json)"
            )
        config = self.transformer.config
        if config.patch_size_t is not None:
            raise InputError("CogVideoX 1.5 models (temporal patches) are not supported")
        if self.config.motion_embedding != bool(config.ofs_embed_dim):
            raise InputError(
                f"model_index.json says motion_embedding={self.config.motion_embedding}"
                f" but the transformer's ofs_embed_dim is {config.ofs_embed_dim}"
            )
        if self.config.residual_to_guides and self.scheduler.config.prediction_type != "sample":
            raise InputError(
                "model_index.json says residual_to_guides, which needs a clean-latent (prediction_type "
                f"'sample') scheduler, but this one predicts {self.scheduler.config.prediction_type!r}"
            )
        guide_interpolation(self.config.guide_interpolation)
        self.layout  # noqa: B018 - raises when the channel count fits no layout

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """diffusers' decoding, on the CPU kernels of `vae.cpu_vae`, in float32 out."""
        return cpu_vae(self.vae, super().decode_latents, latents).float()

    def _pixel_prior(self, cond: Conditioning) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(pixels, decoded), each (1, 3, F, H, W) in [-1, 1]: a residual model's "flow" interpolation and
        its VAE round trip, for drawing only the model's change; None for other models."""
        if not self.config.residual_to_guides or cond.interpolated_video is None:
            return None
        return cond.interpolated_video.float(), self.decode_latents(cond.interpolated)

    def _encode_guides(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 1, H, W) in [-1, 1] -> scaled latents: the posterior mode, so guides carry no noise."""
        latents = cpu_vae(
            self.vae,
            lambda batch: self.vae.encode(batch).latent_dist.mode(),
            images.to(self.vae.dtype),
        ).float()
        if self.vae.config.invert_scale_latents:
            return latents / self.vae_scaling_factor_image
        return latents * self.vae_scaling_factor_image

    def _motion_condition(self, cond: Conditioning, latents: torch.Tensor) -> torch.Tensor | None:
        if not self.config.motion_embedding:
            return None
        return self._motion_input(DEFAULT_MOTION if cond.motion_score is None else cond.motion_score, latents)

    @staticmethod
    def _motion_input(score: float, latents: torch.Tensor) -> torch.Tensor:
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
