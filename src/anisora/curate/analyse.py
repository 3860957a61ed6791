"""One decode pass per video: scene cuts, candidate clips, and the samples every scorer needs.

For each decoded frame the pass makes a small thumbnail (cut detection, repeated-frame detection); every
`1 / sample_fps` seconds it also keeps an "anchor" at analysis resolution, plus the next distinct drawing
after it (for optical flow). When the scene detector's horizon has passed the end of a candidate clip, the
clip's anchors become a `ClipSamples` and are scored, on a second thread so scoring overlaps decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import MediaError
from ..media import RawFrame, iter_raw_frames, probe
from .config import ClipConfig, CurateConfig, SamplingConfig, SceneConfig
from .scenes import candidate_windows, make_detector
from .scorers.base import ClipSamples, FramePair


@dataclass
class _Anchor:
    index: int
    image: np.ndarray
    thumb: np.ndarray
    partner: np.ndarray | None = None
    gap: int | None = None  # None: still looking; 0: no new drawing within max_gap


@dataclass(frozen=True)
class Candidate:
    """A candidate clip as found by the pass; `samples` is None when no anchor fell inside it."""

    scene_index: int
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    fps: float
    width: int
    height: int
    samples: ClipSamples | None


def _scaled(width: int, height: int, short_side: int) -> tuple[int, int]:
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _changed_share(a: np.ndarray, b: np.ndarray, delta: int) -> float:
    """Share of colour samples that differ by more than `delta` (OpenCV: ~20x faster than numpy here)."""
    diff = cv2.absdiff(a, b).reshape(a.shape[0], -1)
    return cv2.countNonZero(cv2.threshold(diff, delta, 255, cv2.THRESH_BINARY)[1]) / diff.size


class _Pass:
    """The state of one decode pass; `run` yields candidates in order as they are closed."""

    def __init__(self, path: str, scenes: SceneConfig, clips: ClipConfig, sampling: SamplingConfig):
        self.path = path
        self.info = probe(path)
        if self.info.width * self.info.height > sampling.max_pixels:
            raise MediaError(
                path,
                f"{self.info.width}x{self.info.height} is more than sampling.max_pixels "
                f"({sampling.max_pixels} pixels)",
            )
        self.clips, self.sampling = clips, sampling
        fps = self.info.fps
        self.detector = make_detector(scenes, fps)
        w, h = self.info.width, self.info.height
        thumb_width = min(scenes.thumbnail_width, w)
        self.thumb_size = (thumb_width, max(2, round(thumb_width * h / w)))
        self.analysis_size = _scaled(w, h, sampling.analysis_short_side)
        self.stride = max(1, round(fps / sampling.sample_fps))
        self.held: list[bool] = []
        self.times: list[float] = []
        self.anchors: list[_Anchor] = []
        self.scene_start, self.scene_index, self.window_start = 0, 0, 0

    def run(self) -> Iterator[Candidate]:
        previous = None
        for raw in iter_raw_frames(self.path):
            thumb = raw.rgb(*self.thumb_size, fast=True)
            self._track(raw, thumb, previous)
            previous = thumb
            self.detector.push(raw.index, thumb)
            yield from self._close(self.detector.horizon)
        self.detector.finish()
        yield from self._close(len(self.times), final=True)

    def _track(self, raw: RawFrame, thumb: np.ndarray, previous: np.ndarray | None) -> None:
        s = self.sampling
        self.times.append(raw.time)
        self.held.append(
            previous is not None and _changed_share(thumb, previous, s.held_pixel_delta) < s.held_max_share
        )
        for anchor in self.anchors:
            if anchor.gap is not None:
                continue
            if raw.index - anchor.index > s.max_gap:
                anchor.gap = 0
            elif _changed_share(thumb, anchor.thumb, s.held_pixel_delta) >= s.held_max_share:
                anchor.partner, anchor.gap = raw.rgb(*self.analysis_size), raw.index - anchor.index
        if raw.index % self.stride == 0:
            self.anchors.append(_Anchor(raw.index, raw.rgb(*self.analysis_size), thumb))

    def _close(self, horizon: int, final: bool = False) -> Iterator[Candidate]:
        """Emit every candidate clip that ends behind `horizon` (the frame before which cuts are final)."""
        fps, max_len = self.info.fps, self.clips.max_seconds * self.info.fps
        while True:
            cut = next((c for c in self.detector.cuts if c > self.scene_start), None)
            scene_end = cut if cut is not None and cut <= horizon else (horizon if final else None)
            if scene_end is not None:  # the scene is complete: its remaining windows close now
                if scene_end > self.window_start:
                    for start, end in candidate_windows(
                        self.window_start, scene_end, fps, self._remainder_config()
                    ):
                        yield self._candidate(start, end)
                self.scene_start = self.window_start = scene_end
                self.scene_index += 1
                if final and scene_end >= horizon:
                    return
                continue
            step = max(1, round(self.clips.window_seconds * fps))
            while horizon - self.scene_start > max_len and self.window_start + step <= horizon:
                yield self._candidate(self.window_start, self.window_start + step)  # a long scene's window
                self.window_start += step
            return

    def _remainder_config(self) -> ClipConfig:
        """Once a long scene has been split, what is left is cut into windows too, never kept whole."""
        if self.window_start == self.scene_start:
            return self.clips
        return self.clips.model_copy(update={"max_seconds": 0.0})  # below the user's range: always split

    def _candidate(self, start: int, end: int) -> Candidate:
        inside = [a for a in self.anchors if start <= a.index < end]
        self.anchors = [a for a in self.anchors if a.index >= end]
        end_time = self.times[end] if end < len(self.times) else self.times[-1] + 1.0 / self.info.fps
        samples = None
        if inside:
            chosen = np.linspace(0, len(inside) - 1, min(self.sampling.frames_per_clip, len(inside)))
            frames = [inside[i] for i in sorted(set(chosen.round().astype(int).tolist()))]
            pairs = tuple(
                FramePair(a.image, a.partner if a.partner is not None else a.image, a.gap)
                for a in inside
                if a.gap is not None and a.index + a.gap < end
            )
            samples = ClipSamples(
                source=self.path,
                fps=self.info.fps,
                width=self.info.width,
                height=self.info.height,
                start_frame=start,
                end_frame=end,
                frames=np.stack([a.image for a in frames]),
                frame_indices=tuple(a.index for a in frames),
                pairs=pairs,
                held=np.array(self.held[start + 1 : end], bool),
            )
        info = self.info
        return Candidate(
            self.scene_index,
            start,
            end,
            self.times[start],
            end_time,
            info.fps,
            info.width,
            info.height,
            samples,
        )


def analyse_video(
    path: str, score: Callable[[Candidate], dict], config: CurateConfig
) -> tuple[dict, list[tuple[Candidate, dict]]]:
    """Decode `path` once; returns (video facts, [(candidate, score(candidate))] in order).

    With `config.overlap`, `score` runs on a second thread while decoding goes on (OpenCV, ONNX Runtime
    and FFmpeg release the GIL, so two cores are used); MediaError from decoding propagates after pending
    work ends.
    """
    run = _Pass(path, config.scenes, config.clips, config.sampling)
    if config.overlap:
        with ThreadPoolExecutor(max_workers=1) as pool:
            futures = [(candidate, pool.submit(score, candidate)) for candidate in run.run()]
        scored = [(candidate, future.result()) for candidate, future in futures]
    else:
        scored = [(candidate, score(candidate)) for candidate in run.run()]
    info = run.info
    video = {
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "frames": len(run.times),
        "duration": len(run.times) / info.fps if info.fps else 0.0,
        "cuts": list(run.detector.cuts),
        "variable_frame_rate": info.variable_frame_rate,
        "rotation": info.rotation,
        "held_share": float(np.mean(run.held)) if run.held else 0.0,
    }
    return video, scored
