"""The metric interface: a small class with a name, a version and the weights it uses, from videos to scores.

Videos are uint8 numpy arrays (F, H, W, 3) RGB. `Metric.score(videos, **inputs)` scores a batch: `videos` is
a list (or a 5-D array) of videos, and each keyword input is a list with one entry per video:

    image      (H, W, 3) uint8 RGB: the input image of an image-to-video case (any size)
    prompt     str: the text prompt
    mask       (H, W) bool or integer (nonzero = inside): the motion-region mask, the video's frame size
    motion_gt  (H, W) or (F, H, W), nonzero = truly moving (e.g. ToonWorld's foreground masks)
    reference  (F, H, W, 3) uint8: the ground-truth video, the shape of the generated one
    guides     {frame index: (H, W, 3) uint8 image}: guide frames; negative indices count from the end
    envelope   (F,) float >= 0: the loudness of a voice at each frame (anisora.media.frame_envelope)
    fps        float: frames per second (may also be one number for all videos)

Each video gets a `Result`: one float `value`, per-frame values where the metric has them, and named details.
Inputs a user can get wrong raise `anisora.errors.InputError` with one message naming the video.
"""

from __future__ import annotations

import numbers
from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...errors import InputError

INPUTS = ("image", "prompt", "mask", "motion_gt", "reference", "guides", "envelope", "fps")


@dataclass(frozen=True)
class Result:
    """Score of one video: `value` (float; NaN where undefined, as documented per metric), `per_frame`
    (one value per frame, frame pair or guide, as documented per metric) and `details` (named floats)."""

    value: float
    per_frame: np.ndarray | None = None
    details: dict[str, float] = field(default_factory=dict)


class Metric(ABC):
    """Subclasses set `name`, `version`, `weights` and implement `score_video` (or `score_batch` to batch)."""

    name: ClassVar[str]
    version: ClassVar[str]
    weights: str = "none (classical)"
    requires: ClassVar[tuple[str, ...]] = ()  # per-video inputs that must be given
    accepts: ClassVar[tuple[str, ...]] = ()  # per-video inputs that may be given
    min_frames: ClassVar[int] = 1
    min_side: ClassVar[int] = 1  # smallest frame side the metric works on (optical flow needs a few patches)

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "weights": self.weights}

    def score(self, videos: Sequence[np.ndarray] | np.ndarray, **inputs: Any) -> list[Result]:
        """Scores a batch of videos; see the module docstring for `inputs`."""
        videos = check_videos(videos, self.min_frames, self.min_side, self.name)
        per_video = self._split_inputs(videos, inputs)
        return self.score_batch(videos, per_video)

    def score_batch(self, videos: list[np.ndarray], inputs: list[dict[str, Any]]) -> list[Result]:
        return [self.score_video(video, **kw) for video, kw in zip(videos, inputs, strict=True)]

    def score_video(self, video: np.ndarray, **inputs: Any) -> Result:
        raise NotImplementedError

    def _split_inputs(self, videos: list[np.ndarray], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        allowed = set(self.requires) | set(self.accepts)
        unknown = sorted(set(inputs) - allowed)
        if unknown:
            raise InputError(
                f"{self.name}: unexpected input {', '.join(unknown)}; it takes {sorted(allowed) or 'none'}"
            )
        missing = [k for k in self.requires if inputs.get(k) is None]
        if missing:
            raise InputError(f"{self.name}: needs the input {', '.join(missing)} (one per video)")
        n = len(videos)
        columns = {}
        for key, values in inputs.items():
            if values is None:
                continue
            if key == "fps" and isinstance(values, numbers.Real):
                values = [values] * n
            if not isinstance(values, (list, tuple)) or len(values) != n:
                got = f"{len(values)} entries" if isinstance(values, (list, tuple)) else type(values).__name__
                raise InputError(
                    f"{self.name}: input {key} must be a list with one entry per video ({n}), got {got}"
                )
            columns[key] = [CHECKS[key](v, i, videos[i]) for i, v in enumerate(values)]
        return [{k: col[i] for k, col in columns.items()} for i in range(n)]


def check_videos(
    videos: Any, min_frames: int = 1, min_side: int = 1, name: str = "metric"
) -> list[np.ndarray]:
    """The videos as a list of (F, H, W, 3) uint8 arrays, or InputError."""
    if isinstance(videos, np.ndarray):
        if videos.ndim == 4:
            raise InputError(f"{name}: expected a list of videos, got one (F, H, W, 3) array; pass [video]")
        videos = list(videos)
    if not isinstance(videos, (list, tuple)) or not videos:
        raise InputError(f"{name}: expected a non-empty list of videos, got {type(videos).__name__}")
    for i, video in enumerate(videos):
        if not isinstance(video, np.ndarray):
            raise InputError(f"{name}: video {i} is a {type(video).__name__}, expected a numpy array")
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise InputError(
                f"{name}: video {i} must be uint8 frames (F, H, W, 3) RGB, "
                f"got a {video.dtype} array of shape {video.shape}"
            )
        if len(video) < min_frames:
            raise InputError(f"{name}: video {i} has {len(video)} frames, needs at least {min_frames}")
        if min(video.shape[1:3]) < min_side:
            raise InputError(
                f"{name}: video {i} is {video.shape[2]}x{video.shape[1]}, frames need sides of {min_side}+ px"
            )
    return list(videos)


def _image(image: Any, i: int, video: np.ndarray) -> np.ndarray:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[-1] != 3
    ):
        raise InputError(
            f"video {i}: the input image must be a uint8 (H, W, 3) RGB array, got {_describe(image)}"
        )
    return image


def _prompt(prompt: Any, i: int, video: np.ndarray) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"video {i}: the prompt must be a non-empty string, got {prompt!r}")
    return prompt


def _mask(mask: Any, i: int, video: np.ndarray, what: str = "mask", frames_ok: bool = False) -> np.ndarray:
    h, w = video.shape[1:3]
    if not isinstance(mask, np.ndarray) or not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
        raise InputError(f"video {i}: the {what} must be a bool or integer array, got {_describe(mask)}")
    if frames_ok and mask.ndim == 3:
        mask = mask.any(axis=0)
    if mask.ndim != 2:
        raise InputError(f"video {i}: the {what} must be 2-D (H, W), got shape {mask.shape}")
    if mask.shape != (h, w):
        raise InputError(
            f"video {i}: the {what} is {mask.shape[1]}x{mask.shape[0]} but the frames are {w}x{h}"
        )
    return mask.astype(bool)


def _reference(ref: Any, i: int, video: np.ndarray) -> np.ndarray:
    if not isinstance(ref, np.ndarray) or ref.dtype != np.uint8 or ref.shape != video.shape:
        raise InputError(
            f"video {i}: the reference must be a uint8 array of the video's shape {video.shape}, "
            f"got {_describe(ref)}"
        )
    return ref


def _guides(guides: Any, i: int, video: np.ndarray) -> dict[int, np.ndarray]:
    if not isinstance(guides, Mapping) or not guides:
        raise InputError(f"video {i}: guides must be a non-empty {{frame index: image}} mapping")
    out = {}
    for index, image in guides.items():
        if not isinstance(index, numbers.Integral) or not -len(video) <= index < len(video):
            raise InputError(
                f"video {i}: guide frame index {index!r} is outside the video's {len(video)} frames"
            )
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != video.shape[1:]:
            raise InputError(
                f"video {i}: the guide at frame {index} must be a uint8 array of shape {video.shape[1:]}, "
                f"got {_describe(image)}"
            )
        out[int(index) % len(video)] = image
    return out


def _envelope(envelope: Any, i: int, video: np.ndarray) -> np.ndarray:
    values = np.asarray(envelope) if isinstance(envelope, (np.ndarray, list, tuple)) else None
    if (
        values is None
        or values.shape != (len(video),)
        or not np.issubdtype(values.dtype, np.number)
        or not np.isfinite(values).all()
        or (values < 0).any()
    ):
        raise InputError(
            f"video {i}: the envelope must be {len(video)} finite levels >= 0 (one per frame), "
            f"got {_describe(envelope)}"
        )
    return values.astype(np.float64)


def _fps(fps: Any, i: int, video: np.ndarray) -> float:
    if not isinstance(fps, numbers.Real) or not fps > 0:
        raise InputError(f"video {i}: fps must be a positive number, got {fps!r}")
    return float(fps)


def _describe(x: Any) -> str:
    return f"a {x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__


CHECKS = {
    "image": _image,
    "prompt": _prompt,
    "mask": _mask,
    "motion_gt": lambda m, i, v: _mask(m, i, v, "ground-truth motion mask", frames_ok=True),
    "reference": _reference,
    "guides": _guides,
    "envelope": _envelope,
    "fps": _fps,
}
