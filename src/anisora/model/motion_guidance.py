"""Guidance over the motion input, in the noisy first part of sampling only.

A model with a motion embedding (`AnisoraPipeline`'s `motion_embedding`) can learn a narrower motion than it
is asked for: the demo model moves about as much at 30 as at 8. Guidance widens it as classifier-free
guidance widens the prompt's effect: while the sample is still noisy, each step takes the prediction at the
asked score and moves it away from the prediction at a reference score (about the median clip the model
trained on), prediction(asked) + scale (prediction(asked) - prediction(reference)). Asking more than the
reference gives more motion, less gives less, the reference itself is unchanged. It stops once the layout of
the motion is set (the `until` share of the schedule, from pure noise): over the whole run it also sharpens
the fine detail the last steps draw, and the frames break into blocks of colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError


@dataclass(frozen=True)
class MotionGuidance:
    scale: float  # 0: none
    reference: float  # the motion score guided away from
    until: float  # the share of the noise schedule, from pure noise, it acts over: (0, 1]

    def check(self) -> None:
        for name, low in (("scale", 0.0), ("reference", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
                raise InputError(f"motion guidance {name} must be a number >= {low:g}, got {value!r}")
        if not (isinstance(self.until, (int, float)) and 0 < self.until <= 1):
            raise InputError(f"motion guidance until must be in (0, 1], got {self.until!r}")

    def acts_at(self, timestep: float, train_timesteps: int) -> bool:
        """Whether the step at `timestep` (of a schedule trained on `train_timesteps`) is guided."""
        return self.scale > 0 and timestep >= (1 - self.until) * train_timesteps

    def combine(self, asked: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return asked + self.scale * (asked - reference)


NO_MOTION_GUIDANCE = MotionGuidance(0.0, 0.0, 1.0)
