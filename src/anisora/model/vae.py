"""A VAE's round trip (encode to the posterior mode, decode), the ceiling every generated frame is judged
against, the clip tensor layout both directions use, and the precision a CPU runs a VAE at."""

from __future__ import annotations

from collections.abc import Callable

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
    enabled = _float32_on_cpu(vae) and native_bfloat16()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


# Frames up to this size (pixels) reach oneDNN in a batch of 2 and not alone (`cpu_vae`).
SMALL_FRAME_PIXELS = 256 * 256


def cpu_vae(vae, call: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, frame_pixels: int):
    """call(batch) under `cpu_autocast`. Where that is off (a float32 VAE on a CPU without native bfloat16),
    a one-item batch of small frames runs as two copies and the first result is kept: the same heuristic
    sends a batch of 2 to oneDNN (a 17-frame 160x96 clip through the demo VAE's encoder, one thread: 2.6 s
    alone, 0.9 s for two). `frame_pixels`: the size of the frames `batch` holds or decodes to; larger frames
    already reach oneDNN alone."""
    doubled = (
        batch.shape[0] == 1
        and frame_pixels <= SMALL_FRAME_PIXELS
        and _float32_on_cpu(vae)
        and not native_bfloat16()
        and not getattr(vae, "use_slicing", False)  # sliced, the VAE would run the copies one by one
    )
    with cpu_autocast(vae):
        return call(torch.cat([batch, batch]))[:1] if doubled else call(batch)


def native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN's check: AVX-512 BF16 or AMX)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _float32_on_cpu(vae) -> bool:
    return vae.device.type == "cpu" and vae.dtype == torch.float32


@torch.no_grad()
def reconstruct(vae, clip: np.ndarray) -> np.ndarray:
    """`clip` (F, H, W, 3) uint8 encoded (posterior mode) and decoded by a diffusers video VAE, at the
    precision sampling uses (`cpu_vae`)."""
    video = video_tensor([clip], vae.device).to(vae.dtype)
    pixels = clip.shape[1] * clip.shape[2]
    latents = cpu_vae(vae, lambda v: vae.encode(v).latent_dist.mode(), video, pixels)
    return video_frames(cpu_vae(vae, lambda z: vae.decode(z).sample, latents, pixels)[0])


def video_frames(video: torch.Tensor) -> np.ndarray:
    """A decoded video (3, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8: `video_tensor`'s inverse."""
    video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def uint8_frames(video: np.ndarray) -> np.ndarray:
    """One video of a pipeline's "np" output, (F, H, W, 3) float in [0, 1] -> (F, H, W, 3) uint8."""
    return (np.asarray(video) * 255).round().clip(0, 255).astype(np.uint8)
