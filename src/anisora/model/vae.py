"""A VAE's round trip (encode to the posterior mode, decode), the ceiling every generated frame is judged
against, and the clip tensor layout both directions use."""

from __future__ import annotations

import numpy as np
import torch


def video_tensor(clips: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """(F, H, W, 3) uint8 clips -> (B, 3, F, H, W) float in [-1, 1] on `device`."""
    video = torch.from_numpy(np.stack(clips)).to(device).permute(0, 4, 1, 2, 3).float()
    return video / 127.5 - 1.0


@torch.no_grad()
def reconstruct(vae, clip: np.ndarray) -> np.ndarray:
    """`clip` (F, H, W, 3) uint8 encoded (posterior mode) and decoded by a diffusers video VAE."""
    video = video_tensor([clip], vae.device).to(vae.dtype)
    recon = vae.decode(vae.encode(video).latent_dist.mode()).sample[0].float()
    return ((recon.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
