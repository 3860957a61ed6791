"""The spatiotemporal-mask video diffusion model: conditioning, pipeline, weights and presets.

The names below load on first use, so torch-free parts (`anisora.model.request`) import without torch.
"""

from importlib import import_module

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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'anisora.model' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
