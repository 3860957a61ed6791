"""One decode pass per video: scene cuts, candidate clips, and the samples every scorer needs.

For each decoded frame the pass makes a small thumbnail (cut detection, repeated-frame detection); every
`1 / sample_fps` seconds it also keeps an "anchor" at analysis resolution, plus the next distinct drawing
after it (for optical flow). Both sizes come straight from the decoded frame through FFmpeg's scaler (no
full-size RGB frame is ever made). When the scene detector's horizon has passed the end of a candidate clip,
the clip's anchors become a `ClipSamples` and are scored on scoring threads while decoding goes on.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..errors import MediaError
from ..media import iter_raw_frames, probe
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
        self.looking: list[_Anchor] = []  # anchors still looking for the next distinct drawing
        self.scene_start, self.scene_index, self.window_start = 0, 0, 0

    def run(self) -> Iterator[Candidate]:
        s = self.sampling
        detector, thumb_size, analysis_size = self.detector, self.thumb_size, self.analysis_size
        delta, share, max_gap, stride = s.held_pixel_delta, s.held_max_share, s.max_gap, self.stride
        times, held = self.times, self.held
        previous, horizon = None, 0
        for raw in iter_raw_frames(self.path):
            index = raw.index
            thumb = raw.rgb(*thumb_size, fast=True)
            times.append(raw.time)
            held.append(previous is not None and _changed_share(thumb, previous, delta) < share)
            if self.looking:
                for anchor in self.looking:
                    if index - anchor.index > max_gap:
                        anchor.gap = 0
                    elif _changed_share(thumb, anchor.thumb, delta) >= share:
                        anchor.partner, anchor.gap = raw.rgb(*analysis_size), index - anchor.index
                self.looking = [a for a in self.looking if a.gap is None]
            if index % stride == 0:
                anchor = _Anchor(index, raw.rgb(*analysis_size), thumb)
                self.anchors.append(anchor)
                self.looking.append(anchor)
            previous = thumb
            detector.push(index, thumb)
            if detector.horizon != horizon:  # clips can only close when the horizon moves
                horizon = detector.horizon
                yield from self._close(horizon)
        detector.finish()
        yield from self._close(len(self.times), final=True)

    def _close(self, horizon: int, final: bool = False) -> Iterator[Candidate]:
        """Emit every candidate clip that ends behind `horizon` (the frame before which cuts are final)."""
        fps, max_len = self.info.fps, self.clips.max_seconds * self.info.fps
        while True:
            cuts = self.detector.cuts
            after = bisect.bisect_right(cuts, self.scene_start)
            cut = cuts[after] if after < len(cuts) else None
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
        self.looking = [a for a in self.looking if a.index >= end]  # a partner past `end` is never used
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


def _without_samples(candidate: Candidate) -> Candidate:
    """What the result keeps of a candidate: its frames go once scored (a long video would hold them all)."""
    return replace(candidate, samples=None)


def scoring_threads() -> int:
    """Threads that score while the decoding thread goes on: one per core this process may use (at most 4);
    decoding takes less than one core, so on 2 cores the scorers get the rest of both."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def analyse_video(
    path: str,
    score: Callable[[Candidate], dict],
    config: CurateConfig,
    prepare: Iterable[Callable[[], object]] = (),
    threads: int | None = None,
) -> tuple[dict, list[tuple[Candidate, dict]]]:
    """Decode `path` once; returns (video facts, [(candidate without its samples, score(candidate))] in
    order).

    With `config.overlap`, `score` runs on `threads` scoring threads (default `scoring_threads()`; more than
    one only when `score` is safe to call from several threads at once) while decoding goes on: FFmpeg,
    OpenCV and ONNX Runtime release the GIL, so every core is used. The `prepare` calls (loading models) run
    first on those threads, while the first frames decode. Decoding waits while `2 x threads` candidates
    are waiting to be scored, so a slow scorer holds memory in check. MediaError from decoding propagates
    after pending work ends.
    """
    run = _Pass(path, config.scenes, config.clips, config.sampling)
    if not config.overlap:
        for load in prepare:
            load()
        scored = [(_without_samples(candidate), score(candidate)) for candidate in run.run()]
    else:
        threads = threads or scoring_threads()
        waiting = threading.BoundedSemaphore(2 * threads)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="score") as pool:
            loads = [pool.submit(load) for load in prepare]
            futures: list[tuple[Candidate, Future]] = []
            for candidate in run.run():
                waiting.acquire()
                future = pool.submit(score, candidate)
                future.add_done_callback(lambda _: waiting.release())
                futures.append((_without_samples(candidate), future))
        for load in loads:
            load.result()  # a model that cannot load fails the video here (scoring would have tried again)
        scored = [(candidate, future.result()) for candidate, future in futures]
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
