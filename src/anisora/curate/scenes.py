"""Scene cuts with PySceneDetect (or TransNetV2: `transnet`), fed online from the single decode pass, and
candidate clip windows.

Content cuts come from PySceneDetect's AdaptiveDetector (or ContentDetector); fades through black from its
ThresholdDetector. Both run on small thumbnails. Detectors report cuts a few frames late, so `horizon`
says up to which frame the cut list is final: the pipeline closes clips only behind it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, ThresholdDetector
from scenedetect.common import FrameTimecode

from ..errors import InputError
from .config import ClipConfig, SceneConfig


def make_detector(config: SceneConfig, fps: float):
    """The configured detector: `SceneDetector` (PySceneDetect) or `transnet.TransNetDetector`."""
    if config.detector == "transnetv2":
        from .transnet import TransNetDetector

        return TransNetDetector(fps, config.transnet_threshold, config.min_scene_seconds)
    return SceneDetector(config, fps)


class SceneDetector:
    """Feed every frame in order (`push`), then `finish`; `cuts` holds the first frame of every new scene."""

    def __init__(self, config: SceneConfig, fps: float):
        self.fps = float(fps)
        min_len = max(1, round(config.min_scene_seconds * fps))
        if config.detector == "adaptive":
            self._content = AdaptiveDetector(
                adaptive_threshold=config.adaptive_threshold,
                min_content_val=config.min_content_val,
                min_scene_len=min_len,
            )
            self._lag = self._content.window_width + 1
        elif config.detector == "content":
            self._content = ContentDetector(threshold=config.content_threshold, min_scene_len=min_len)
            self._lag = 1
        else:
            raise InputError(f"SceneDetector runs 'adaptive' or 'content', not {config.detector!r}")
        self._fade = (
            ThresholdDetector(threshold=config.fade_threshold, min_scene_len=min_len)
            if (config.fade_threshold > 0)
            else None
        )
        self._min_len = min_len
        self.cuts: list[int] = []
        self.horizon = 0  # cuts before this frame index are final
        self._last = -1

    def push(self, index: int, thumbnail_rgb: np.ndarray) -> None:
        timecode = FrameTimecode(index, self.fps)
        bgr = thumbnail_rgb[..., ::-1]
        found = [c.frame_num for c in self._content.process_frame(timecode, bgr)]
        in_fade = False
        if self._fade is not None:
            found += [c.frame_num for c in self._fade.process_frame(timecode, bgr)]
            in_fade = self._fade.last_fade["type"] == "out"
        for cut in sorted(found):
            self._add(cut)
        self._last = index
        # a fade-in may place its cut back in the middle of the black run that started at the fade-out
        pending = self._fade.last_fade["frame"].frame_num if in_fade else math.inf
        self.horizon = max(self.horizon, min(index - self._lag, pending) + 1)

    def _add(self, cut: int) -> None:
        if cut <= 0:
            return
        if self.cuts and cut - self.cuts[-1] < self._min_len:  # two detectors saw one transition
            return
        self.cuts.append(cut)
        self.cuts.sort()

    def finish(self) -> list[int]:
        self.horizon = self._last + 1
        return self.cuts


def scenes_from_cuts(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    bounds = [0, *[c for c in cuts if 0 < c < num_frames], num_frames]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def candidate_windows(start: int, end: int, fps: float, config: ClipConfig) -> list[tuple[int, int]]:
    """A scene [start, end) as candidate clips: itself when at most `max_seconds`, otherwise consecutive
    windows of `window_seconds` (the last one keeps the remainder; a remainder shorter than `min_seconds`
    is still a candidate, which the duration filter drops)."""
    if end - start <= config.max_seconds * fps + 1e-9:
        return [(start, end)]
    step = max(1, round(config.window_seconds * fps))
    return [(s, min(s + step, end)) for s in range(start, end, step)]
