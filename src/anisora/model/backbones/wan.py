"""`AnisoraWanPipeline`: diffusers' Wan image-to-video pipeline with AniSora's guides and known pixels.

diffusers conditions Wan on a first (and, for Wan2.2, a last) frame: the images are written into a zero
pixel video, which the VAE encodes as one video, and a 4-channel mask marks their frames. AniSora V3 does the
same with guides at any frames, and the anymask release with known pixels at any frame and place, so only
`prepare_latents` changes: `conditioning.condition_video` writes the guides (fitted like every backbone's, by
`conditioning.fit_image`) and known pixels into the pixel video, and the mask is its per-pixel mask at latent
resolution, re-projected (`conditioning.reproject_pixel_mask`). Everything else is diffusers': umT5 text, CLIP
on the first listed guide (Wan2.1; Wan2.2 has no image encoder), UniPC with flow shift,
`latents_mean`/`latents_std`, the Wan2.2 expert switch at `boundary_ratio`, one transformer call per step at
guidance <= 1 and two above.

Motion-region control (paper section 2.2) uses diffusers' `callback_on_step_end`: after each scheduler step
the latent outside the motion mask is replaced by the static latent noised to the next step's flow-matching
level, (1 - sigma) x static + sigma x noise, and by the clean static latent after the last step. The static
latent is the VAE encoding of the first guide held still for the whole clip (one more VAE pass), not its
one-frame latent repeated as CogVideoX's path does: Wan's causal VAE encodes pixel frame 0 alone and later
frames four at a time, so a still clip's later latent frames are not its frame-0 latent, and only the still
clip's encoding is the latent that decodes to a still region. Its frame 0 is the guide's one-frame latent.

With `guide_fit_steps` or a motion mask the denoised latent comes back from diffusers undecoded and the video
is decoded here as diffusers decodes it: full-strength guides are first fitted through the decoder
(`anisora.model.guide_fit`; Wan pins no frame, so frame 0 is fitted too), and outside a motion mask the
decoded video keeps the first guide's pixels (`conditioning.HeldRegion`).

The call keeps diffusers' contract (`anisora.model.diffusers_call`), its `image` and `last_image` being
guides at the first and last frames, and saved folders load in plain diffusers (`anisora.model.hub`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from diffusers import WanImageToVideoPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput
from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ...errors import InputError
from ..conditioning import (
    TEMPORAL,
    Guide,
    HeldRegion,
    KnownPixels,
    check_known,
    check_request,
    condition_video,
    conditioned_prompt,
    fit_image,
    fit_known,
    fitted_motion_mask,
    latent_pixel_mask,
    latent_region,
    reproject_pixel_mask,
)
from ..diffusers_call import (
    AnisoraOutput,
    check_output_type,
    negative_prompt_list,
    prompt_list,
    step_end_inputs,
    video_count,
    with_shortcuts,
)
from ..guide_fit import fit_guides, fit_targets
from ..hub import FolderPipeline


class AnisoraWanPipeline(FolderPipeline, WanImageToVideoPipeline):
    """Wan2.1 / Wan2.2 image-to-video components (AniSora V2, V3, V3.1, V3.2, anymask) taking guides at any
    frames and known pixels at any frame and place.

    `anisora_presets` (fps, num_frames, height, width, steps, guidance: the release's own settings, written by
    `anisora convert wan`) is saved in model_index.json; `anisora.model.info.ModelInfo` reads it.
    """

    # The call's fitted inputs, for `prepare_latents`; `_region` (cells that may move, static latent, noise)
    # is built there and read by the step-end callback; `_videos_per_prompt` is read by `encode_image`.
    _guides: tuple[Guide, ...] = ()
    _known: KnownPixels | None = None
    _motion_cells: np.ndarray | None = None
    _region: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    _videos_per_prompt = 1

    def __init__(
        self,
        tokenizer,
        text_encoder,
        vae,
        scheduler,
        image_processor=None,
        image_encoder=None,
        transformer=None,
        transformer_2=None,
        boundary_ratio: float | None = None,
        expand_timesteps: bool = False,
        anisora_presets: dict | None = None,
    ):
        super().__init__(
            tokenizer,
            text_encoder,
            vae,
            scheduler,
            image_processor,
            image_encoder,
            transformer,
            transformer_2,
            boundary_ratio,
            expand_timesteps,
        )
        self.register_to_config(anisora_presets=anisora_presets)

    @torch.no_grad()
    def __call__(
        self,
        guides: Sequence[Guide] = (),
        *,
        image: PipelineImageInput | None = None,
        last_image: PipelineImageInput | None = None,
        known: KnownPixels | None = None,
        motion_mask: np.ndarray | None = None,
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] = "",
        num_videos_per_prompt: int = 1,
        num_frames: int = 81,
        height: int = 480,
        width: int = 832,
        motion_score: float | None = None,
        aesthetic_score: float | None = None,
        num_inference_steps: int = 8,
        guidance_scale: float = 1.0,
        guide_fit_steps: int = 0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        **kwargs,
    ) -> AnisoraOutput | tuple:
        """Generate from guides (with diffusers' `image` and `last_image` shortcuts) and/or known pixels
        (see `conditioning.KnownPixels`; a guide wins over known pixels at its frame). `motion_mask` (H x W,
        white = may move, drawn on the first guide) keeps the rest of the first guide still. CLIP sees the
        first listed guide, else the known pixels of frame 0 (grey where unknown). Other keywords go to
        diffusers' `WanImageToVideoPipeline.__call__`; with a motion mask a `callback_on_step_end` runs after
        the region is pinned and sees the pinned latents. `progress(step, steps)` follows every step."""
        from ..info import ModelInfo

        check_output_type(output_type)
        prompts = prompt_list(prompt)
        negatives = negative_prompt_list(negative_prompt, len(prompts))
        video_count(len(prompts), num_videos_per_prompt, generator)
        step_inputs = step_end_inputs(
            callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs
        )
        guides = with_shortcuts(guides, image, last_image, num_frames)
        info = ModelInfo.of(self)  # the release's aesthetic default and prompt suffix
        request = info.condition(
            num_frames, height, width, guides, motion_mask, prompts[0], motion_score, aesthetic_score
        )
        check_request(request, frame_step=TEMPORAL)  # Wan's VAE decodes any 4k+1 frames
        if known is not None:
            check_known(known, num_frames)
        if not request.guides and known is None:
            raise InputError("a Wan image-to-video model needs at least one guide image or known pixels")
        if motion_mask is not None and getattr(self.scheduler.config, "use_flow_sigmas", True) is False:
            raise InputError("a motion mask needs a flow-matching scheduler (UniPC with use_flow_sigmas)")
        if motion_mask is not None or progress is not None:
            kwargs.update(self._step_end(callback_on_step_end, step_inputs, progress))
        elif callback_on_step_end is not None:
            kwargs.update(
                callback_on_step_end=callback_on_step_end, callback_on_step_end_tensor_inputs=step_inputs
            )
        notes, fitted = [], []
        for guide in request.guides:
            fitted_image, note = fit_image(guide.image, height, width)
            fitted.append(Guide(fitted_image, guide.frame, guide.strength))
            if note:
                notes.append(f"guide at frame {guide.frame}: {note}")
        self._guides, self._videos_per_prompt = tuple(fitted), num_videos_per_prompt
        self._known = None if known is None else fit_known(known, height, width, notes)
        held = None
        if motion_mask is not None:
            region = fitted_motion_mask(motion_mask, request.guides[0].image, height, width, notes)
            self._motion_cells = latent_region(region, height, width)
            held = HeldRegion.of(fitted[0].image, region)
        if fitted:
            clip_image = fitted[0].image  # CLIP sees the first listed guide, as V3 does
        else:
            given = self._known.mask[0][..., None] > 0
            clip_image = np.where(given, self._known.video[0], 128).astype(np.uint8)
        texts = [conditioned_prompt(replace(request, prompt=text)) for text in prompts]
        fitting_asked = guide_fit_steps > 0 and output_type != "latent"
        targets = fit_targets(self._guides, height, width) if fitting_asked else {}
        fitting = bool(targets)
        decode_here = output_type != "latent" and (fitting or held is not None)
        movable = None
        if fitting and self._motion_cells is not None:
            movable = torch.from_numpy(self._motion_cells)[None, None, None]
        try:
            out = super().__call__(
                image=Image.fromarray(clip_image),
                prompt=texts,
                negative_prompt=negatives,
                num_videos_per_prompt=num_videos_per_prompt,
                height=height,
                width=width,
                num_frames=num_frames,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=generator,
                output_type="latent" if decode_here else output_type,
                **kwargs,
            )
        finally:
            self._guides, self._known, self._motion_cells, self._region = (), None, None, None
            self._videos_per_prompt = 1
        frames = out.frames
        if decode_here:
            latents = frames
            if fitting:
                latents = torch.cat([
                    fit_guides(video, self._decode, targets, guide_fit_steps, time_dim=2, movable=movable)
                    for video in frames.split(1)
                ])  # fmt: skip
            video = self._decode(latents)
            if held is not None:
                video = held.apply(video)
            frames = self.video_processor.postprocess_video(video, output_type=output_type)
        if not return_dict:
            return (frames,)
        return AnisoraOutput(frames, texts if isinstance(prompt, (list, tuple)) else texts[0], notes)

    def encode_image(self, image, device: torch.device | None = None) -> torch.Tensor:
        """CLIP's embedding (Wan2.1) once per video of a prompt: diffusers repeats it once per prompt only."""
        return super().encode_image(image, device).repeat(self._videos_per_prompt, 1, 1)

    def prepare_latents(
        self,
        image: torch.Tensor,
        batch_size: int,
        num_channels_latents: int = 16,
        height: int = 480,
        width: int = 832,
        num_frames: int = 81,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        last_image: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise, and [mask, condition latent] for the guides and known pixels of this call; with a motion
        mask also the static region's latent and noise (`_region`)."""
        if last_image is not None or self.config.expand_timesteps:
            raise InputError("AnisoraWanPipeline takes its guides through `guides`, not image / last_image")
        t_lat = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        h_lat, w_lat = height // self.vae_scale_factor_spatial, width // self.vae_scale_factor_spatial
        shape = (batch_size, num_channels_latents, t_lat, h_lat, w_lat)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)

        video, pixel_mask = condition_video(num_frames, height, width, self._guides, self._known)
        condition = self._encode(video, device, dtype)
        resample = "nearest" if self._known is None else self._known.resample
        mask = reproject_pixel_mask(latent_pixel_mask(pixel_mask, resample))  # (T, 4, h, w)
        mask = torch.from_numpy(mask).permute(1, 0, 2, 3)[None].to(device, dtype)  # [c, t] = mask[4t + c]
        condition = torch.cat([mask, condition], dim=1).repeat(batch_size, 1, 1, 1, 1)

        if self._motion_cells is not None:
            still = np.broadcast_to(self._guides[0].image, (num_frames, height, width, 3))
            static = self._encode(still.astype(np.float32) / 127.5 - 1.0, device, dtype)
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            cells = torch.from_numpy(self._motion_cells).to(device)[None, None, None]
            self._region = (cells, static, noise)
        return latents, condition

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The normalised latent (1, C, T, h, w) -> the video (1, 3, F, H, W) in [-1, 1], as diffusers'
        pipeline decodes it (differentiably, for guide fitting)."""
        latents = latents.to(self.vae.device, self.vae.dtype)
        mean, std = self._latent_stats(latents.device, latents.dtype)
        return self.vae.decode(latents * std + mean, return_dict=False)[0]

    def _encode(self, video: np.ndarray, device, dtype) -> torch.Tensor:
        """(F, H, W, 3) in [-1, 1] -> the normalised latent (1, C, T, h, w), encoded as one video."""
        pixels = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2)[None]
        encoded = retrieve_latents(
            self.vae.encode(pixels.to(self.vae.device, self.vae.dtype)), sample_mode="argmax"
        )
        mean, std = self._latent_stats(device, dtype)
        return (encoded.to(device=device, dtype=dtype) - mean) / std

    def _latent_stats(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's per-channel latent mean and std, (1, C, 1, 1, 1): latents are normalised by them."""
        config = self.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1)
        std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1)
        return mean.to(device, dtype), std.to(device, dtype)

    def _step_end(
        self,
        user: Callable | None,
        tensor_inputs: Sequence[str],
        progress: Callable[[int, int], None] | None,
    ) -> dict:
        """diffusers' step-end callback keywords: pin the static region (with a motion mask), report
        `progress`, then run the caller's callback with the tensors it asked for (and the latents)."""
        inputs = list(tensor_inputs)
        if "latents" not in inputs:
            inputs.append("latents")

        def step_end(pipe, step: int, timestep, tensors: dict) -> dict:
            if self._region is not None:
                tensors = {**tensors, "latents": self._pin_static_region(tensors["latents"], step)}
            if progress is not None:
                progress(step + 1, len(self.scheduler.timesteps))
            if user is None:
                return tensors
            return {"latents": tensors["latents"], **user(pipe, step, timestep, tensors)}

        return dict(callback_on_step_end=step_end, callback_on_step_end_tensor_inputs=inputs)

    def _pin_static_region(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        """Outside the region: the static latent at the noise level of step `step`'s output (flow matching),
        clean after the last step."""
        cells, static, noise = self._region
        if step + 1 >= len(self.scheduler.timesteps):
            target = static.expand_as(latents)
        else:
            sigma = float(self.scheduler.sigmas[step + 1])
            target = (1.0 - sigma) * static + sigma * noise
        return torch.where(cells, latents, target.to(latents.dtype))
