"""A VAE's round trip (encode to the posterior mode, decode), the ceiling every generated frame is judged
against, the clip tensor layout both directions use, and the precision a CPU runs a VAE at."""

from __future__ import annotations

import numpy as np
import torch


def video_tensor(clips: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """(F, H, W, 3) uint8 clips -> (B, 3, F, H, W) float in [-1, 1] on `device`."""
    video = torch.from_numpy(np.stack(clips)).to(device).permute(0, 4, 1, 2, 3).float()
    return video / 127.5 - 1.0


def cpu_autocast(vae) -> torch.autocast:
    """bfloat16 autocast for a float32 VAE on a CPU with native bfloat16 convolutions, else a no-op.

    A one-clip float32 3D convolution over few frames fails PyTorch's oneDNN heuristic (batch 1, and
    batch x channels x frames x height <= 20480) and runs on its reference kernel: 62 % of a demo-model
    decode. In bfloat16 oneDNN always runs: the demo decode takes 1.0 s instead of 5.6 s, and its frames move
    by 0.25 grey levels on average (0.0019 in [-1, 1]).
    """
    enabled = (
        vae.device.type == "cpu"
        and vae.dtype == torch.float32
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def reconstruct(vae, clip: np.ndarray) -> np.ndarray:
    """`clip` (F, H, W, 3) uint8 encoded (posterior mode) and decoded by a diffusers video VAE, at the
    precision sampling uses (`cpu_autocast`)."""
    video = video_tensor([clip], vae.device).to(vae.dtype)
    with cpu_autocast(vae):
        recon = vae.decode(vae.encode(video).latent_dist.mode()).sample[0]
    return video_frames(recon)


def video_frames(video: torch.Tensor) -> np.ndarray:
    """A decoded video (3, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8: `video_tensor`'s inverse."""
    video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def uint8_frames(video: np.ndarray) -> np.ndarray:
    """One video of a pipeline's "np" output, (F, H, W, 3) float in [0, 1] -> (F, H, W, 3) uint8."""
    return (np.asarray(video) * 255).round().clip(0, 255).astype(np.uint8)
