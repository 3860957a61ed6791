"""The spatiotemporal-mask video diffusion model: conditioning, pipeline, weights and presets.

The names below load on first use, so torch-free parts (`anisora.model.request`) import without torch.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "AnisoraOutput": "diffusers_call",
    "AnisoraPipeline": "pipeline",
    "At": "request",
    "ConditionRequest": "conditioning",
    "Conditioning": "conditioning",
    "Guide": "conditioning",
    "GuideSpec": "request",
    "LoadOptions": "request",
    "Request": "request",
    "build_components": "presets",
    "build_conditioning": "conditioning",
    "frames_for_seconds": "conditioning",
    "load_lora": "weights",
    "load_pipeline": "weights",
    "open_pipeline": "loading",
    "resolve_frame": "request",
    "sample": "sampling",
    "widen_to_anisora": "weights",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
