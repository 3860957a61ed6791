"""ComfyUI nodes: load a model, place guide images at frames, sample a clip.

ComfyUI loads them from the custom-node folder `comfyui/` at the repository root, which imports this module.
The nodes only turn ComfyUI's values into one `Request` and run it with `sampling.sample`, so every rule and
every error is the one `anisora generate` has. ComfyUI's tensor conventions: IMAGE is float (B, H, W, C) in
[0, 1], MASK float (B, H, W) in [0, 1]. Importing this module needs neither ComfyUI nor torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from .errors import InputError
from .model.request import DTYPES, MAX_SEED, GuideSpec, LoadOptions, Request

MODEL = "ANISORA_MODEL"  # a loaded pipeline
GUIDES = "ANISORA_GUIDES"  # a tuple of `GuideSpec`, built up by chaining guide nodes
CATEGORY = "AniSora"
FRAME_LIMIT = 4096  # the widget's range for a guide's frame index; the request checks the real one
MODELS_OWN = "the model's"

log = logging.getLogger(__name__)


def _text(tooltip: str = "", multiline: bool = False):
    return ("STRING", {"default": "", "multiline": multiline, "tooltip": tooltip})


def _int(default: int, low: int, high: int, tooltip: str = ""):
    return ("INT", {"default": default, "min": low, "max": high, "tooltip": tooltip})


def _float(default: float, low: float, high: float, step: float, tooltip: str = ""):
    return ("FLOAT", {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


class AnisoraLoadModel:
    """A model directory (or "org/name" in the local Hugging Face cache), loaded as `anisora generate` loads
    it; empty: the shipped demo model."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _text(
                    "model folder or org/name in the local HF cache; empty: the shipped demo model"
                ),
                "dtype": (list(DTYPES), {"default": "float32"}),
            },
            "optional": {
                "device": _text("cpu, cuda or cuda:N; empty: cuda when present"),
                "lora": _text("LoRA folder; empty: none (masked requests get the model's own mask LoRA)"),
                "lora_scale": _float(1.0, -10.0, 10.0, 0.05),
            },
        }

    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, model: str, dtype: str, device: str = "", lora: str = "", lora_scale: float = 1.0):
        import torch

        from .model.loading import open_pipeline
        from .model.weights import demo_model_dir

        options = LoadOptions(
            model=model.strip() or str(demo_model_dir()),
            dtype=dtype,
            device=device.strip() or None,
            lora=lora.strip() or None,
            lora_scale=lora_scale,
        )
        # ComfyUI runs nodes in inference mode, whose tensors cannot take the gradient steps of guide fitting
        with torch.inference_mode(False):
            return (open_pipeline(options),)


class AnisoraGuide:
    """One guide image at a pixel frame index (negative counts from the end: -1 is the last frame), added to
    the guides chained in."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "frame_index": _int(0, -FRAME_LIMIT, FRAME_LIMIT, "pixel frame; negative from the end"),
                "strength": _float(1.0, 0.0, 1.0, 0.01),
            },
            "optional": {"guides": (GUIDES,)},
        }

    RETURN_TYPES = (GUIDES,)
    RETURN_NAMES = ("guides",)
    FUNCTION = "add"
    CATEGORY = CATEGORY

    def add(self, image, frame_index: int, strength: float, guides: tuple[GuideSpec, ...] = ()):
        return ((*guides, GuideSpec(image_array(image), frame_index, strength)),)


class AnisoraSample:
    """A clip from the prompt, the guides, a motion mask drawn on the first guide (white may move) and a
    motion score. Zero counts and negative numbers leave the value to the model, as leaving an option out of
    `anisora generate` does."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL,),
                "prompt": _text(multiline=True),
                "motion": _float(-1.0, -1.0, 1000.0, 0.1, "motion score; negative: none"),
                "num_frames": _int(0, 0, 8192, f"8k+1 (CogVideoX), 4k+1 (Wan); 0: {MODELS_OWN}"),
                "width": _int(0, 0, 8192, f"a multiple of 16; 0: {MODELS_OWN}"),
                "height": _int(0, 0, 8192, f"a multiple of 16; 0: {MODELS_OWN}"),
                "fps": _int(0, 0, 240, f"0: {MODELS_OWN}"),
                "steps": _int(0, 0, 1000, f"0: {MODELS_OWN}"),
                "guidance": _float(-1.0, -1.0, 100.0, 0.1, f"negative: {MODELS_OWN}"),
                "seed": _int(0, 0, MAX_SEED),
            },
            "optional": {
                "guides": (GUIDES,),
                "mask": ("MASK", {"tooltip": "motion region on the first guide: white may move"}),
                "negative_prompt": _text(multiline=True),
                "guide_fit_steps": _int(
                    -1, -1, 1000, f"decoder steps fitting later guides; -1: {MODELS_OWN}"
                ),
            },
        }

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")
    FUNCTION = "sample"
    CATEGORY = CATEGORY

    def sample(
        self,
        model,
        prompt: str,
        motion: float,
        num_frames: int,
        width: int,
        height: int,
        fps: int,
        steps: int,
        guidance: float,
        seed: int,
        guides: tuple[GuideSpec, ...] = (),
        mask=None,
        negative_prompt: str = "",
        guide_fit_steps: int = -1,
    ):
        import torch

        from .model import sampling

        request = Request(
            guides=tuple(guides),
            mask=None if mask is None else mask_array(mask),
            prompt=prompt,
            negative_prompt=negative_prompt,
            motion=None if motion < 0 else motion,
            frames=num_frames or None,
            fps=fps or None,
            width=width or None,
            height=height or None,
            steps=steps or None,
            guidance=None if guidance < 0 else guidance,
            guide_fit_steps=None if guide_fit_steps < 0 else guide_fit_steps,
            seed=seed,
        )
        with torch.inference_mode(False):  # guide fitting takes gradient steps (see AnisoraLoadModel)
            result = sampling.sample(model, request, comfy_progress())
        for note in result.notes:
            log.info("AniSora: %s", note)
        return (torch.from_numpy(result.frames).float() / 255, float(result.fps))


def image_array(image) -> np.ndarray:
    """A ComfyUI IMAGE holding one picture, as the RGB uint8 array a `GuideSpec` takes."""
    pixels = _one_picture(image, 4, "IMAGE (B, H, W, C)", " (ImageFromBatch picks one)")
    if pixels.shape[-1] not in (1, 3, 4):
        raise InputError(f"an IMAGE has 1, 3 or 4 channels, got {pixels.shape[-1]}")
    return _to_uint8(np.broadcast_to(pixels[..., :3], (*pixels.shape[:2], 3)))


def mask_array(mask) -> np.ndarray:
    """A ComfyUI MASK holding one mask, as an H x W uint8 array (255: may move)."""
    return _to_uint8(_one_picture(mask, 3, "MASK (B, H, W)"))


def _one_picture(tensor, ndim: int, what: str, hint: str = "") -> np.ndarray:
    values = tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
    if values.ndim == ndim - 1:  # one picture without the batch axis
        values = values[None]
    if values.ndim != ndim or values.shape[0] != 1 or 0 in values.shape:
        raise InputError(
            f"expected a ComfyUI {what} holding one picture, got shape {tuple(values.shape)}{hint}"
        )
    return values[0]


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8))


def comfy_progress() -> Callable[[int, int], None] | None:
    """ComfyUI's progress bar (whose hook also stops a cancelled run) inside ComfyUI, else None."""
    try:
        from comfy.utils import ProgressBar
    except ImportError:
        return None
    bar = ProgressBar(1)
    return lambda step, steps: bar.update_absolute(step, steps)


NODE_CLASS_MAPPINGS = {
    "AnisoraLoadModel": AnisoraLoadModel,
    "AnisoraGuide": AnisoraGuide,
    "AnisoraSample": AnisoraSample,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AnisoraLoadModel": "AniSora Load Model",
    "AnisoraGuide": "AniSora Guide Frame",
    "AnisoraSample": "AniSora Sample",
}
