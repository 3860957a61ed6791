"""The diffusers call contract every backbone pipeline keeps beside its own `guides` argument.

- `image=` / `last_image=`: a full-strength guide at the first / the last frame (`request.resolve_frame`'s 0
  and "last"), refused on a frame a listed guide already holds;
- `prompt`: a string, or a list of strings made one video each (`num_videos_per_prompt` videos each);
  `negative_prompt` one string for all, or one per prompt;
- `output_type`: diffusers' video outputs, "np" (float (B, F, H, W, 3) in [0, 1]), "pil" (a list per video of
  PIL frames), "pt" (float (B, F, 3, H, W) in [0, 1]) or "latent" (the denoised latents as they are);
- `callback_on_step_end(pipe, step, timestep, tensors) -> dict` after every step, given the tensors named in
  `callback_on_step_end_tensor_inputs` (a pipeline's `_callback_tensor_inputs`); tensors it returns replace
  the pipeline's; `pipe._interrupt = True` skips the remaining steps;
- `return_dict=False`: the tuple (frames,).

Each check raises one `InputError` line before any model runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from PIL import Image as PILImage

from ..errors import InputError
from .conditioning import Guide
from .request import resolve_frame

OUTPUT_TYPES = ("np", "pil", "pt", "latent")
DEFAULT_STEP_END_INPUTS = ("latents",)  # diffusers' default `callback_on_step_end_tensor_inputs`


@dataclass
class AnisoraOutput(BaseOutput):
    """diffusers' video pipeline output (`frames` as `output_type` asks), with what the model was asked."""

    frames: np.ndarray | torch.Tensor | list
    prompt: str | list[str]  # the prompt(s) the model saw, with score suffixes: a list when a list was given
    notes: list[str] = field(default_factory=list)  # adjustments made to the request (cropping, defaults)


def check_output_type(output_type) -> None:
    if output_type not in OUTPUT_TYPES:
        choices = ", ".join(OUTPUT_TYPES)
        raise InputError(f"output_type must be one of {choices} (as in diffusers), got {output_type!r}")


def prompt_list(prompt, name: str = "prompt") -> list[str]:
    """A prompt as the list of prompts it stands for: a string is one, a list of strings one each."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise InputError(f"{name} must be a string or a non-empty list of strings, got {_short(prompt)}")


def negative_prompt_list(negative_prompt, count: int) -> list[str]:
    """One negative prompt per prompt: a string serves them all, a list gives one each."""
    negatives = prompt_list(negative_prompt, "negative_prompt")
    if isinstance(negative_prompt, str):
        return negatives * count
    if len(negatives) != count:
        raise InputError(f"{len(negatives)} negative prompts for {count} prompts: give one, or one each")
    return negatives


def video_count(prompts: int, num_videos_per_prompt, generator) -> int:
    """The number of videos one call makes; a list of generators must give one per video."""
    if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int):
        raise InputError(f"num_videos_per_prompt must be an integer >= 1, got {num_videos_per_prompt!r}")
    if num_videos_per_prompt < 1:
        raise InputError(f"num_videos_per_prompt must be an integer >= 1, got {num_videos_per_prompt}")
    batch = prompts * num_videos_per_prompt
    if isinstance(generator, list) and len(generator) != batch:
        raise InputError(f"{len(generator)} generators for {batch} videos: give one, or one per video")
    return batch


def step_end_inputs(
    callback: Callable | PipelineCallback | MultiPipelineCallbacks | None,
    tensor_inputs: Sequence[str] | None,
    allowed: Sequence[str],
) -> list[str]:
    """The tensors `callback` is given after each step (a diffusers `PipelineCallback` names its own),
    checked against the pipeline's `_callback_tensor_inputs`; none without a callback."""
    if callback is None:
        return []
    if isinstance(callback, (PipelineCallback, MultiPipelineCallbacks)):
        tensor_inputs = callback.tensor_inputs
    elif not callable(callback):
        raise InputError(f"callback_on_step_end must be callable, got {type(callback).__name__}")
    names = list(DEFAULT_STEP_END_INPUTS if tensor_inputs is None else tensor_inputs)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        listed = ", ".join(map(str, unknown))
        raise InputError(f"callback_on_step_end_tensor_inputs may name {', '.join(allowed)}; got {listed}")
    return names


def with_shortcuts(guides: Sequence[Guide], image, last_image, num_frames: int) -> tuple[Guide, ...]:
    """`guides` with diffusers' `image` as a full-strength guide at frame 0 (listed first: the motion mask is
    drawn on it and Wan's CLIP sees it) and `last_image` at the last frame (listed last)."""
    first, placed, last = [], list(guides), []
    for name, value, place, into in (("image", image, 0, first), ("last_image", last_image, "last", last)):
        if value is None:
            continue
        frame = resolve_frame(place, num_frames)
        if any(guide.frame == frame for guide in (*first, *placed)):
            raise InputError(
                f"{name}= is the guide at frame {frame}, and another guide is already there: give each frame "
                "one guide"
            )
        into.append(Guide(image_array(value, name), frame))
    return (*first, *placed, *last)


def image_array(image, name: str = "image") -> np.ndarray:
    """One image as diffusers takes it, as uint8 RGB (H x W x 3; `conditioning.fit_image` checks the shape):
    a PIL image, an H x W x C array (uint8, or float in [0, 1]) or a C x H x W tensor in [0, 1] (both with an
    optional leading batch of one)."""
    if isinstance(image, PILImage.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        pixels = image.detach().cpu().float()
        pixels = pixels[0] if pixels.ndim == 4 and len(pixels) == 1 else pixels
        image = pixels.permute(1, 2, 0).numpy() if pixels.ndim == 3 else pixels.numpy()
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}= takes one image (PIL, array or tensor), got {type(image).__name__}")
    image = image[0] if image.ndim == 4 and len(image) == 1 else image
    if image.dtype.kind == "f":
        if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
            raise InputError(f"{name}= as floats must hold values in [0, 1], diffusers' convention")
        image = (image * 255).round().astype(np.uint8)
    return image


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({type(value).__name__})"
