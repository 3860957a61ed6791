"""`AnisoraWanPipeline`: diffusers' Wan image-to-video pipeline with AniSora V3's any-frame conditioning.

diffusers conditions Wan on a first (and, for Wan2.2, a last) frame: the images are written into a zero
pixel video, which the VAE encodes as one video, and a 4-channel mask marks their frames. AniSora V3 does the
same with guides at any frames, so only `prepare_latents` changes: every guide goes into the pixel video at
its frame (scaled to cover the video and centre-cropped, as `conditioning.fit_image` does for every backbone),
and the mask is `conditioning`'s re-projected per-frame mask, with each guide's strength. Everything else is
diffusers': umT5 text, CLIP on the first listed guide (Wan2.1; Wan2.2 has no image encoder), UniPC with flow
shift, `latents_mean`/`latents_std`, the Wan2.2 expert switch at `boundary_ratio`, one transformer call per
step at guidance <= 1 and two above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import WanImageToVideoPipeline
from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ...errors import InputError
from ..conditioning import (
    TEMPORAL,
    ConditionRequest,
    Guide,
    check_request,
    conditioned_prompt,
    fit_image,
    pixel_frame_mask,
    reproject_mask,
)
from ..pipeline import AnisoraOutput


class AnisoraWanPipeline(WanImageToVideoPipeline):
    """Wan2.1 / Wan2.2 image-to-video components (AniSora V2, V3, V3.1, V3.2) taking guides at any frames.

    `anisora_presets` (fps, num_frames, height, width, steps, guidance: the release's own settings, written by
    `anisora convert wan`) is saved in model_index.json; `anisora.model.info.ModelInfo` reads it.
    """

    _guides: tuple[Guide, ...] = ()  # the call's guides, for `prepare_latents`

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
        prompt: str = "",
        negative_prompt: str = "",
        num_frames: int = 81,
        height: int = 480,
        width: int = 832,
        motion_score: float | None = None,
        aesthetic_score: float | None = None,
        num_inference_steps: int = 8,
        guidance_scale: float = 1.0,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        **kwargs,
    ) -> AnisoraOutput:
        request = ConditionRequest(
            num_frames, height, width, tuple(guides), None, prompt, motion_score, aesthetic_score
        )
        check_request(request, frame_step=TEMPORAL)  # Wan's VAE decodes any 4k+1 frames
        if not request.guides:
            raise InputError("a Wan image-to-video model needs at least one guide image")
        notes, fitted = [], []
        for guide in request.guides:
            image, note = fit_image(guide.image, height, width)
            fitted.append(Guide(image, guide.frame, guide.strength))
            if note:
                notes.append(f"guide at frame {guide.frame}: {note}")
        self._guides = tuple(fitted)
        prompt = conditioned_prompt(request)
        try:
            out = super().__call__(
                image=Image.fromarray(self._guides[0].image),  # CLIP sees the first listed guide, as V3 does
                prompt=prompt,
                negative_prompt=negative_prompt,
                height=height,
                width=width,
                num_frames=num_frames,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=generator,
                output_type="latent" if output_type == "latent" else "np",
                **kwargs,
            )
        finally:
            self._guides = ()
        frames = out.frames
        if output_type != "latent":
            frames = (np.asarray(frames[0]) * 255).round().clip(0, 255).astype(np.uint8)
        return AnisoraOutput(frames, prompt, notes)

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
        """Noise, and [mask, condition latent] for the guides of this call at their frames."""
        if not self._guides or last_image is not None or self.config.expand_timesteps:
            raise InputError("AnisoraWanPipeline takes its guides through `guides`, not image / last_image")
        t_lat = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        h_lat, w_lat = height // self.vae_scale_factor_spatial, width // self.vae_scale_factor_spatial
        shape = (batch_size, num_channels_latents, t_lat, h_lat, w_lat)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)

        video = torch.zeros(1, 3, num_frames, height, width)
        for guide in self._guides:
            pixels = torch.from_numpy(guide.image.copy()).permute(2, 0, 1).float()
            video[0, :, guide.frame] = pixels / 127.5 - 1.0
        vae_device = self.vae.device
        encoded = retrieve_latents(
            self.vae.encode(video.to(vae_device, self.vae.dtype)), sample_mode="argmax"
        )
        config = self.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1)
        std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1)
        condition = (encoded.to(device=device, dtype=dtype) - mean.to(device, dtype)) / std.to(device, dtype)

        frame_mask = pixel_frame_mask(num_frames, [(g.frame, float(g.strength)) for g in self._guides])
        mask = torch.from_numpy(reproject_mask(frame_mask)).T  # (4, T): [c, t] = extended mask[4t + c]
        mask = mask[None, :, :, None, None].expand(1, TEMPORAL, t_lat, h_lat, w_lat).to(device, dtype)
        condition = torch.cat([mask, condition], dim=1).repeat(batch_size, 1, 1, 1, 1)
        return latents, condition
