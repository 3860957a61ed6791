"""Guide fitting: after sampling, nudge the latent frames that hold full-strength guides until the decoded
video shows each guide at its frame.

Why. The causal VAE encodes pixel frame 0 alone, so a guide there is pinned (`Conditioning`); but
CogVideoX's decoder normalises over all frames (group norms over time and space), so what the later frames
hold moves the decoded frame 0 too: 0.5 dB below the guide's round trip on the demo model once it learnt to
move things (2026-12-04). Every other pixel frame shares its latent frame with three neighbours (frames
4j-3..4j make latent frame j), so a guide's one-frame latent is not that frame's latent in a clip and cannot
be pinned at all; re-encoding the decoded
clip with the guide pasted in recovers only about 1 dB of the 4-5 dB the demo model loses there, because the
three neighbours dominate the group's latent. Fitting does what re-encoding cannot: it descends on the
latent frame j itself, through the decoder, on

    sum over guides f of |decoded[f] - guide f|^2  +  OTHERS_WEIGHT x |decoded[others] - as sampled|^2,

so the guide frames come back as close to their guides as the decoder can draw them (the demo model: within
0.1 dB of the guide's own VAE round trip after 10 steps) while the other frames stay as the model made them.
Inside a motion region only the cells that may move change. The cost is up to `steps` decoder passes with
gradients, so models set it in their presets (`guide_fit_steps`) and a request may change it. Fitting stops
as soon as every guide is within CLOSE_ENOUGH of its target and returns the best latents it saw: Adam's
first steps move every cell by about the learning rate, which would spoil a guide already drawn. The demo
model draws its guides at 49-80 dB from its own decoding (it decodes only its change to the guides'
interpolation), so there a fit costs one decode (2026-12-05).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .conditioning import Guide, fit_image, latent_index

OTHERS_WEIGHT = 0.3  # how strongly the unguided frames are held to the sampled video
LEARNING_RATE = 0.05  # Adam on unit-variance latents: 10 steps close a 4-5 dB gap on the demo model
CLOSE_ENOUGH = 4e-4  # a guide's mean squared error in [-1, 1] (40 dB PSNR) at which fitting stops


def fit_targets(guides: Sequence[Guide], height: int, width: int) -> dict[int, torch.Tensor]:
    """Pixel frame -> the guide fitted to the video size as (3, H, W) in [-1, 1], for the full-strength
    guides (frame 0's too: see the module docstring)."""
    targets = {}
    for guide in guides:
        if guide.strength >= 1:
            image, _ = fit_image(guide.image, height, width)
            targets[guide.frame] = torch.from_numpy(np.array(image)).permute(2, 0, 1) / 127.5 - 1
    return targets


def fit_guides(
    latents: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    targets: dict[int, torch.Tensor],
    steps: int,
    *,
    time_dim: int,
    movable: torch.Tensor | None = None,
) -> torch.Tensor:
    """`latents` with the latent frames holding `targets` fitted (see the module docstring).

    `decode` maps latents of this shape to a video (1, 3, F, H, W) in [-1, 1] differentiably; `time_dim` is
    the latent's frame axis (CogVideoX: 1, Wan: 2); `movable` (broadcastable to the latents, 1 = may change)
    confines the change to a motion region. With no targets or no steps the latents come back unchanged.
    """
    if not targets or steps < 1:
        return latents
    frames = sorted({latent_index(frame) for frame in targets})
    select = torch.zeros(latents.shape[time_dim], dtype=latents.dtype, device=latents.device)
    select[frames] = 1
    shape = [1] * latents.ndim
    shape[time_dim] = -1
    where = select.view(shape)
    if movable is not None:
        where = where * movable.to(latents.device, latents.dtype)
    guided = sorted(targets)
    wanted = torch.stack([targets[f] for f in guided]).to(latents.device, torch.float32)
    with torch.enable_grad():
        latents = latents.detach().float()
        delta = torch.zeros_like(latents, requires_grad=True)
        optimizer = torch.optim.Adam([delta], lr=LEARNING_RATE)
        others, sampled = None, None
        best, best_loss = delta.detach().clone(), float("inf")
        for step in range(steps + 1):
            video = decode(latents + delta * where)[0].transpose(0, 1).float()
            if sampled is None:  # the first pass decodes the latents as sampled
                sampled = video.detach()
                others = torch.ones(sampled.shape[0], dtype=torch.bool)
                others[guided] = False
            errors = (video[guided] - wanted).pow(2).flatten(1).mean(1)
            loss = errors.mean()
            if others.any():
                loss = loss + OTHERS_WEIGHT * (video[others] - sampled[others]).pow(2).mean()
            if loss.item() < best_loss:
                best, best_loss = delta.detach().clone(), loss.item()
            if errors.max().item() <= CLOSE_ENOUGH or step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[delta])  # not into the decoder's weights
            optimizer.step()
    return (latents + best * where).detach()
