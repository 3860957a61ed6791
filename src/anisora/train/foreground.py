"""Foreground masks for motion-region training on real clips (ToonWorld brings its own ground truth).

The region LoRA needs, per clip, where things may move: the union over the clip of a per-frame foreground mask
(paper 2.2). Two detectors, both `(F, H, W, 3) uint8 -> (F, H, W) bool`:

- `MotionForeground` (offline default, no weights): OpenCV's MOG2 background subtractor run through the clip
  frame by frame, so each frame's mask follows what moved against the background model learnt from the
  frames before it. It finds moving regions, not characters: with a moving camera everything moves, and a
  character that stands still is background. That is what the mask means here ("may move").
- `OnnxSegmenter`: an adapter for a character segmentation model exported to ONNX, such as anime-seg's
  `isnetis.onnx` (input `img`, 1x3xSxS RGB in [0, 1]; output 1x1xSxS in [0, 1]). It segments every
  `stride`-th frame; frames in between take the mask of the frame before.

`foreground_detector(spec)` builds one from a config value: "motion" or a path to an .onnx file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError


class MotionForeground:
    """Moving regions by MOG2 background subtraction through the clip (a classical model, no weights)."""

    name = "mog2-motion"

    def __init__(self, history: int = 16, var_threshold: float = 24.0, min_area: float = 0.0005):
        self.history, self.var_threshold, self.min_area = history, var_threshold, min_area

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        _check_frames(frames)
        subtractor = cv2.createBackgroundSubtractorMOG2(self.history, self.var_threshold, detectShadows=False)
        # learn the background from the first frame before judging any: frame 0 itself is not "all motion"
        subtractor.apply(frames[0], learningRate=1.0)
        masks = [subtractor.apply(frame) > 0 for frame in frames]
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        cleaned = [cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0 for m in masks]
        # a frame whose changes cover less than min_area of it is noise, not motion
        return np.stack([m if m.mean() >= self.min_area else np.zeros_like(m) for m in cleaned])


class OnnxSegmenter:
    """A character segmentation model in ONNX (anime-seg's isnetis.onnx layout), run with onnxruntime."""

    def __init__(self, path: str | Path, threshold: float = 0.5, stride: int = 4):
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"segmentation model {self.path} does not exist")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise InputError(f"cannot load the ONNX model {self.path}: {error}") from None
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 4 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise InputError(f"{self.path}: expected a fixed square 1x3xSxS input, got {shape}")
        self.size, self.threshold, self.stride = shape[2], threshold, max(1, stride)
        self.name = f"onnx:{self.path.name}"

    def segment(self, image: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 frame -> (H, W) bool: scaled to fit SxS, padded, segmented, cropped back."""
        height, width = image.shape[:2]
        scale = self.size / max(height, width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        canvas = np.zeros((self.size, self.size, 3), np.float32)
        top, left = (self.size - h) // 2, (self.size - w) // 2
        canvas[top : top + h, left : left + w] = (
            cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) / 255.0
        )
        feed = {self.session.get_inputs()[0].name: canvas.transpose(2, 0, 1)[None]}
        out = np.asarray(self.session.run(None, feed)[0], np.float32).reshape(self.size, self.size)
        out = out[top : top + h, left : left + w]
        return cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR) > self.threshold

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        _check_frames(frames)
        masks, current = [], None
        for j, frame in enumerate(frames):
            if j % self.stride == 0:
                current = self.segment(frame)
            masks.append(current)
        return np.stack(masks)


def foreground_detector(spec: str | None):
    """None/"none" -> None; "motion" -> MotionForeground; a path ending in .onnx -> OnnxSegmenter."""
    if spec in (None, "", "none"):
        return None
    if spec == "motion":
        return MotionForeground()
    if str(spec).endswith(".onnx"):
        return OnnxSegmenter(spec)
    raise InputError(f"foreground detector must be none, motion or a .onnx file, got {spec!r}")


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InputError(f"expected (F, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
