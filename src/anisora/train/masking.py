"""The paper's masking strategy: which frames of a training clip are opened as guides.

The first frame, the last frame and one other frame are each opened with probability 0.5 (paper section 2.1;
configurable), and all guides are dropped 5% of the time (official code: pure text-to-video). Guides sit on
distinct latent frames, as the conditioning module requires: the other frame is drawn from the latent frames
strictly between the first and the last. One-frame (image) samples get no guide: a guide would be the target.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..model.conditioning import TEMPORAL, latent_frame_count
from ..typed_config import SHARE, Config

Probability = Annotated[float, SHARE]


class MaskingConfig(Config):
    p_first: Probability = 0.5
    """the first frame is a guide this often"""
    p_last: Probability = 0.5
    """the last frame is a guide this often"""
    p_other: Probability = 0.5
    """one frame in between is a guide this often"""
    p_drop_all: Probability = 0.05
    """no guide at all this often (text to video)"""


def sample_guide_frames(num_frames: int, rng: np.random.Generator, config: MaskingConfig) -> list[int]:
    """Pixel frame indices to open as guides for a clip of `num_frames` (8k+1) frames, in increasing order."""
    latents = latent_frame_count(num_frames)
    draws = rng.random(4)
    if num_frames == 1 or draws[0] < config.p_drop_all:
        return []
    frames = []
    if draws[1] < config.p_first:
        frames.append(0)
    if latents > 2 and draws[2] < config.p_other:
        latent = int(rng.integers(1, latents - 1))  # strictly between the first and the last latent frame
        frames.append(TEMPORAL * (latent - 1) + 1 + int(rng.integers(0, TEMPORAL)))
    if latents > 1 and draws[3] < config.p_last:
        frames.append(num_frames - 1)
    return frames
