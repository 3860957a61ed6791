"""Scene cuts with PySceneDetect (or TransNetV2: `transnet`), fed online from the single decode pass, and
candidate clip windows.

Content cuts come from PySceneDetect's AdaptiveDetector (or ContentDetector); fades through black from its
ThresholdDetector. Both run on small thumbnails. Whichever detector runs, `CutFilter` then drops the cuts
that flash frames make and enforces the minimum scene length, in that order: a flash's false cut would
otherwise hide a true cut a few frames later. Detectors report cuts a few frames late, so `horizon` says up
to which frame the cut list is final: the pipeline closes clips only behind it.
"""

from __future__ import annotations

import bisect
import itertools
import math

import cv2
import numpy as np

from ..errors import InputError
from .config import ClipConfig, SceneConfig

FLASH_CONTRAST = 2.0  # a flash differs from the frames around it this many times more than they change
FLASH_FEATURE_SIZE = (32, 18)  # frames are compared this small, so that motion counts less than a flash


def make_detector(config: SceneConfig, fps: float) -> CutFilter:
    """The configured detector (`PySceneDetector` or `transnet.TransNetDetector`) behind a `CutFilter`."""
    if config.detector == "transnetv2":
        from .transnet import TransNetDetector

        return CutFilter(TransNetDetector(config.transnet_threshold), config, fps)
    return CutFilter(PySceneDetector(config, fps), config, fps)


class CutFilter:
    """A detector's cuts without those of flash frames, then no two closer than the minimum scene length
    (nor one that close to the start). Same interface as the detectors: `push`, `finish`, `cuts`, `horizon`.

    A cut is a flash's when it lies on a run of at most `flash_frames` frames (anywhere from the run's first
    frame to the frame after it) that differs from the frame before the run and from the frame after it more
    than `FLASH_CONTRAST` times as much as those two differ from each other or from their own neighbours:
    the picture comes back after the run. A fade's ramp, a hard cut's other shot and motion all fail this
    test. The detector's own thumbnails are compared, shrunk, and only around its cuts.
    """

    def __init__(self, detector, config: SceneConfig, fps: float):
        self.detector = detector
        self._min_len = max(1, round(config.min_scene_seconds * fps))
        self._flash = config.flash_frames
        self._ahead = self._flash + 1 if self._flash else 0  # frames after a cut that its test reads
        self._thumbs: dict[int, np.ndarray] = {}  # the frames a test may still read, by index
        self._oldest = 0
        self._count = 0
        self._settled = 0  # the detector's cuts already decided
        self._last = 0  # the last cut kept (the start counts, for the minimum scene length)
        self.cuts: list[int] = []
        self.horizon = 0  # cuts before this frame index are final

    def push(self, index: int, thumbnail_rgb: np.ndarray) -> None:
        if self._flash:
            self._thumbs[index] = thumbnail_rgb
        self.detector.push(index, thumbnail_rgb)
        self._count = index + 1
        self._settle(min(self.detector.horizon, self._count - self._ahead))

    def finish(self) -> list[int]:
        self.detector.finish()
        self._settle(self._count)
        return self.cuts

    def _settle(self, limit: int) -> None:
        """Decide the detector's cuts before `limit`, in order."""
        found = self.detector.cuts
        while self._settled < len(found) and found[self._settled] < limit:
            cut = found[self._settled]
            self._settled += 1
            if cut - self._last >= self._min_len and not self._is_flash(cut):
                self.cuts.append(cut)
                self._last = cut
        self.horizon = max(self.horizon, limit)
        while self._oldest < limit - self._flash - 2:
            self._thumbs.pop(self._oldest, None)
            self._oldest += 1

    def _is_flash(self, cut: int) -> bool:
        n = self._flash
        if not n:
            return False
        first = max(cut - n - 2, 0)
        frames = [self._thumbs[i] for i in range(first, min(cut + n + 2, self._count))]
        x = np.stack([cv2.resize(f, FLASH_FEATURE_SIZE, interpolation=cv2.INTER_AREA) for f in frames])
        x = x.reshape(len(frames), -1).astype(np.float32)
        d = np.abs(x[:, None] - x[None]).mean(axis=-1)  # mean difference of every two frames, 0-255
        last = len(frames) - 1
        for start in range(cut - n, cut + 1):  # a run [start, end) holding the cut or ending at it
            for end in range(max(cut, start + 1), start + n + 1):
                before, after = start - 1 - first, end - first
                if before < 0 or after > last:
                    continue
                run = slice(start - first, end - first)
                jump = min(d[before, run].min(), d[after, run].min())
                around = max(
                    d[before, after],
                    d[before - 1, before] if before else 0.0,
                    d[after, after + 1] if after < last else 0.0,
                )
                if jump > FLASH_CONTRAST * around:
                    return True
        return False


class PySceneDetector:
    """PySceneDetect's content detector (`AdaptiveDetector` or `ContentDetector`, default weights) and fade
    detector (`ThresholdDetector`, floor method, no fade bias), every cut they report (no minimum scene
    length: `CutFilter` enforces it). Feed every frame in order (`push`), then `finish`.

    The same cuts as PySceneDetect's own detectors fed frame by frame (tested), computed for `BATCH` frames at
    a time: one colour conversion for the batch, the frame scores (mean |difference| of hue, saturation and
    value with the previous frame, summed exactly by OpenCV) and the mean intensities, then PySceneDetect's
    rules on those numbers in plain Python. Its own detectors cost 0.2-0.25 ms a frame on one core here, this
    about 0.05 ms. Cuts come out when a batch is full, so `horizon` trails the input by up to `BATCH` frames
    more.
    """

    BATCH = 32

    def __init__(self, config: SceneConfig, fps: float):
        self.fps = float(fps)
        if config.detector == "adaptive":
            self._window = 2  # AdaptiveDetector's default window_width
            self._lag = self._window + 1
        elif config.detector == "content":
            self._window = 0
            self._lag = 1
        else:
            raise InputError(f"PySceneDetector runs 'adaptive' or 'content', not {config.detector!r}")
        self._adaptive_threshold = config.adaptive_threshold
        self._min_content_val = config.min_content_val
        self._content_threshold = config.content_threshold
        self._fade_threshold = int(config.fade_threshold) if config.fade_threshold > 0 else None
        self._frames: list[np.ndarray] = []  # the batch being filled
        self._first = 0  # index of its first frame
        self._previous_hsv: np.ndarray | None = None  # the last frame of the previous batch, HSV
        self._scores: list[float] = []  # frame scores still inside an adaptive window
        self._scored = 0  # frames scored so far
        self._fade_type: str | None = None  # ThresholdDetector's last fade: "in" | "out"
        self._fade_frame = 0
        self.cuts: list[int] = []
        self.horizon = 0  # cuts before this frame index are final
        self._last = -1

    def push(self, index: int, thumbnail_rgb: np.ndarray) -> None:
        if not self._frames:
            self._first = index
        self._frames.append(thumbnail_rgb)
        self._last = index
        if len(self._frames) >= self.BATCH:
            self._run()

    def finish(self) -> list[int]:
        self._run()
        self.horizon = self._last + 1
        return self.cuts

    def _run(self) -> None:
        if not self._frames:
            return
        frames = np.stack(self._frames)
        self._frames = []
        count, height, width = frames.shape[:3]
        hsv = cv2.cvtColor(frames.reshape(count * height, width, 3), cv2.COLOR_RGB2HSV)
        hsv = hsv.reshape(count, height, width, 3)
        previous = hsv[0] if self._previous_hsv is None else self._previous_hsv
        self._previous_hsv = hsv[-1]
        # per-channel sums of |difference| with the previous frame (exact integers, as float64)
        sums = [cv2.sumElems(cv2.absdiff(hsv[0], previous))[:3]]
        sums += [cv2.sumElems(cv2.absdiff(hsv[i], hsv[i - 1]))[:3] for i in range(1, count)]
        change = np.array(sums, np.float64) / float(height * width)  # (count, 3)
        # ContentDetector: the components' weighted sum (weights 1, 1, 1 and 0 for edges) / 3; 0 on frame 0
        scores = ((change[:, 0] + change[:, 1] + change[:, 2] + 0.0) / 3.0).tolist()
        totals = [sum(cv2.sumElems(frame)[:3]) for frame in frames]  # exact: integers below 2**53
        found: list[int] = []
        for offset, (score, total) in enumerate(zip(scores, totals, strict=True)):
            index = self._first + offset
            found += self._content(index, score)
            if self._fade_threshold is not None:
                found += self._fade(index, total / (height * width * 3))
        for cut in found:
            if cut > 0:
                bisect.insort(self.cuts, cut)
        # a fade-in may place its cut back in the middle of the black run that started at the fade-out
        pending = self._fade_frame if self._fade_type == "out" else math.inf
        self.horizon = max(self.horizon, min(self._last - self._lag, pending) + 1)

    def _content(self, index: int, score: float) -> list[int]:
        """ContentDetector's or AdaptiveDetector's cut for a frame score (the adaptive one `window` late)."""
        if not self._window:
            return [index] if score >= self._content_threshold else []
        window = self._window
        self._scores.append(score)
        if len(self._scores) < 2 * window + 1:
            return []
        del self._scores[: -(2 * window + 1)]
        target = self._scores[window]
        average = sum(s for i, s in enumerate(self._scores) if i != window) / (2.0 * window)
        if abs(average) >= 0.00001:
            ratio = min(target / average, 255.0)
        else:
            ratio = 255.0 if target >= self._min_content_val else 0.0
        if ratio >= self._adaptive_threshold and target >= self._min_content_val:
            return [index - window]
        return []

    def _fade(self, index: int, mean: float) -> list[int]:
        """ThresholdDetector: a cut halfway through each run of frames darker than the threshold."""
        below = mean < self._fade_threshold
        if self._fade_type is None:
            self._fade_type, self._fade_frame = ("out" if below else "in"), index
        elif self._fade_type == "in" and below:
            self._fade_type, self._fade_frame = "out", index
        elif self._fade_type == "out" and not below:
            cut = self._fade_frame + round((index - self._fade_frame) * (1.0 + 0.0) / 2.0)
            self._fade_type, self._fade_frame = "in", index
            return [cut]
        return []


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
