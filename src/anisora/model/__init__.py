"""The spatiotemporal-mask video diffusion model: conditioning, pipeline, weights and presets."""

from .conditioning import Conditioning, ConditionRequest, Guide, build_conditioning, frames_for_seconds
from .pipeline import AnisoraOutput, AnisoraPipeline
from .presets import build_components
from .weights import load_lora, load_pipeline, widen_to_anisora

__all__ = [
    "AnisoraOutput",
    "AnisoraPipeline",
    "ConditionRequest",
    "Conditioning",
    "Guide",
    "build_components",
    "build_conditioning",
    "frames_for_seconds",
    "load_lora",
    "load_pipeline",
    "widen_to_anisora",
]
