"""Optical flow (OpenCV DIS) and the frame interpolators motion smoothness uses.

An interpolator has `name`, `version`, `weights` and `midpoints(a, b)`: for uint8 RGB frame batches a, b of
shape (N, H, W, 3) it returns the frames half-way between them, (N, H, W, 3) uint8.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ...errors import InputError

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,  # the curation's default (~1 ms per 256x256 pair, one core)
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class Flow:
    """Dense flow from RGB frame a to RGB frame b, (H, W, 2) float32 in pixels; DIS is built lazily (it does
    not pickle)."""

    def __init__(self, preset: str = "fast"):
        if preset not in PRESETS:
            raise InputError(f"optical flow preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.preset = preset
        self._dis = None

    def __getstate__(self) -> dict:
        return {"preset": self.preset, "_dis": None}

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(PRESETS[self.preset])
        grey = cv2.COLOR_RGB2GRAY
        return self._dis.calc(cv2.cvtColor(a, grey), cv2.cvtColor(b, grey), None)

    def magnitude(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """|flow| from frame a to frame b, (H, W) float32."""
        return cv2.magnitude(*cv2.split(self(a, b)))


class FlowInterpolator:
    """Classical midpoint: flows f01 (a -> b) and f10 (b -> a) with DIS, each frame warped half-way by
    backward mapping with cv2.remap (bilinear, replicated borders):
    I(x) = (a(x - f01(x) / 2) + b(x - f10(x) / 2)) / 2. The flow at x stands in for the flow of the pixel
    that passes x half-way (exact for uniform motion)."""

    name = "dis_flow_warp"
    version = "1"

    def __init__(self, preset: str = "fast"):
        self.flow = Flow(preset)
        self.weights = (
            f"none (classical: OpenCV DIS optical flow, preset {preset}, both ways; half-way warp, blend)"
        )

    def midpoints(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[1:3]
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        out = np.empty_like(a)
        for i, (x0, x1) in enumerate(zip(a, b, strict=True)):
            f01, f10 = self.flow(x0, x1), self.flow(x1, x0)
            w0 = cv2.remap(
                x0,
                gx - 0.5 * f01[..., 0],
                gy - 0.5 * f01[..., 1],
                cv2.INTER_LINEAR,
                None,
                cv2.BORDER_REPLICATE,
            )
            w1 = cv2.remap(
                x1,
                gx - 0.5 * f10[..., 0],
                gy - 0.5 * f10[..., 1],
                cv2.INTER_LINEAR,
                None,
                cv2.BORDER_REPLICATE,
            )
            out[i] = cv2.addWeighted(w0, 0.5, w1, 0.5, 0.0)
        return out


class LearnedInterpolator:
    """Adapter for a learned frame interpolator (VBench uses AMT-S). The module is called as
    `module(img0, img1, t)` with img0, img1 (N, 3, H, W) float32 RGB in [0, 1], padded (replicate) to a
    multiple of `pad_to`, and t = 0.5 as an (N, 1, 1, 1) tensor; it returns the middle frames as an
    (N, 3, H, W) tensor in [0, 1], or a dict holding them under "imgt_pred" (AMT's output). Results are
    clamped and rounded to uint8."""

    name = "learned"
    version = "1"

    def __init__(self, module, device: str = "cpu", batch_size: int = 4, pad_to: int = 16, weights: str = ""):
        if not callable(module):
            raise InputError("learned interpolator: the module must be callable (a torch nn.Module)")
        self.module, self.device, self.batch_size, self.pad_to = module, device, batch_size, pad_to
        self.weights = weights or f"torch module {type(module).__name__}"
        if hasattr(module, "eval"):
            module.to(device).eval()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, build: Callable[[], object] | str, **kwargs
    ) -> LearnedInterpolator:
        """Loads a state dict saved with `torch.save(module.state_dict(), path)`, or AMT's checkpoint layout
        `{"state_dict": ...}`, into the module `build()` returns; `build` may be "package.module:Factory"."""
        import torch

        path = Path(path)
        if not path.is_file():
            raise InputError(f"learned interpolator: {path} is not a file")
        if isinstance(build, str):
            module_name, _, attr = build.partition(":")
            try:
                build = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                raise InputError(f"learned interpolator: cannot import {build!r} ({exc})") from None
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"learned interpolator: cannot read {path} ({exc})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        module = build()
        try:
            module.load_state_dict(state)
        except Exception as exc:  # missing/unexpected keys, wrong shapes, not a dict
            raise InputError(
                f"learned interpolator: {path} does not fit {type(module).__name__} ({exc})"
            ) from None
        return cls(module, weights=str(path), **kwargs)

    def midpoints(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        h, w = a.shape[1:3]
        pad = (0, -w % self.pad_to, 0, -h % self.pad_to)
        out = []
        for i in range(0, len(a), self.batch_size):
            x0, x1 = (
                F.pad(
                    torch.from_numpy(x[i : i + self.batch_size]).permute(0, 3, 1, 2).float() / 255.0,
                    pad,
                    "replicate",
                )
                for x in (a, b)
            )
            t = torch.full((len(x0), 1, 1, 1), 0.5)
            with torch.inference_mode():
                pred = self.module(x0.to(self.device), x1.to(self.device), t.to(self.device))
            if isinstance(pred, dict):
                pred = pred["imgt_pred"]
            pred = pred[:, :, :h, :w].clamp(0, 1).mul(255).round().byte()
            out.append(pred.permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)
