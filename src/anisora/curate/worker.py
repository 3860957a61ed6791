"""Everything done for one video, in a worker process: analyse, score (reusing cached scores), thumbnails,
captions, and the kept clips. Returns plain data; only the parent writes the run's state."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import AnisoraError
from ..files import atomic_output
from .analyse import Candidate, analyse_video
from .captions import Captioner, build_captioner
from .clips import clip_crop, write_clip
from .config import CurateConfig
from .filters import decide
from .scorers import Scorer, build_scorers
from .scorers.base import ClipSamples

THUMB_WIDTH = 192


@dataclass
class VideoTask:
    path: str
    video_id: str
    fingerprint: str
    out_dir: str
    config: CurateConfig
    write_clips: bool = True
    cached: dict[str, dict[str, dict]] = field(default_factory=dict)  # "start-end" -> cache key -> scores


@dataclass
class VideoResult:
    path: str
    video_id: str
    fingerprint: str
    ok: bool
    error: str | None = None
    stage: str | None = None
    video: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    scores: list[tuple[str, str, dict]] = field(default_factory=list)  # (clip range, cache key, scores)
    seconds: float = 0.0
    node: str | None = None  # the Ray node that analysed it (the Ray engine only)


# The columns of every candidate row besides the scores, and their types.
CLIP_COLUMNS: dict[str, type] = {
    "clip_id": str,
    "source": str,  # absolute here and in state.sqlite; the manifest names it relative to its folder
    "video_id": str,
    "scene_index": int,
    "start_frame": int,
    "end_frame": int,
    "start_time": float,
    "end_time": float,
    "fps": float,
    "width": int,
    "height": int,
    "thumb": str,
    "caption": str,
}


def video_id_for(path: str) -> str:
    """A readable, filesystem-safe id: the file stem (sanitised) plus a digest of the full path."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem)[:40].strip("_") or "video"
    return f"{stem}-{hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]}"


def clip_id_for(video_id: str, start: int, end: int) -> str:
    return f"{video_id}-{start:07d}-{end:07d}"


_COMPONENTS: dict[str, tuple[list[Scorer], Captioner]] = {}  # per process: models load once, not per video


def components(config: CurateConfig) -> tuple[list[Scorer], Captioner]:
    """The configured scorers and captioner, built once per process and configuration."""
    parts = [config.scorers, config.captions.captioner, config.captions.options]
    key = json.dumps(parts, sort_keys=True, default=str)
    if key not in _COMPONENTS:
        captioner = build_captioner(config.captions.captioner, config.captions.options)
        _COMPONENTS[key] = build_scorers(config.scorers), captioner
    return _COMPONENTS[key]


def span_of(row: dict) -> str:
    """A clip's frame range, the key of its cached scores."""
    return f"{row['start_frame']}-{row['end_frame']}"


@dataclass
class Scoring:
    """What one stage runs on a clip: scorers (reusing cached scores), then the captioner when it has one
    (last: with `captions.only_kept` it needs every score to know whether the filters keep the clip)."""

    scorers: list[Scorer]
    captioner: Captioner | None
    config: CurateConfig

    def apply(self, row: dict, samples: ClipSamples | None, cached: dict[str, dict], scores: list) -> None:
        """Add the scores (and caption) of the clip to `row`; new scores are appended to `scores` as
        (span, cache key, values) for the run's cache. `samples` None: too short, duration only."""
        for scorer in self.scorers:
            key = scorer.cache_key()
            if key in cached:
                values = cached[key]
            elif samples is None:
                if scorer.name != "duration":
                    continue
                values = {
                    "duration_seconds": row["end_time"] - row["start_time"],
                    "duration_frames": row["end_frame"] - row["start_frame"],
                }
            else:
                values = scorer.score(samples)
                scores.append((span_of(row), key, values))
            row.update(values)
        config = self.config
        if (
            self.captioner is not None
            and samples is not None
            and not (config.captions.only_kept and decide(row, config.filters))
        ):
            row["caption"] = self.captioner.caption(samples, row)


def candidate_row(task: VideoTask, candidate: Candidate) -> tuple[dict, ClipSamples | None]:
    """A candidate's row before scoring (its thumbnail written), and the samples to score it on: None when
    it is too short to be kept (the duration filter drops it: nothing more is spent on it)."""
    clip_id = clip_id_for(task.video_id, candidate.start_frame, candidate.end_frame)
    row = {
        "clip_id": clip_id,
        "source": task.path,
        "video_id": task.video_id,
        "scene_index": candidate.scene_index,
        "start_frame": candidate.start_frame,
        "end_frame": candidate.end_frame,
        "start_time": candidate.start_time,
        "end_time": candidate.end_time,
        "fps": candidate.fps,
        "width": candidate.width,
        "height": candidate.height,
        "thumb": None,
        "caption": "",
    }
    samples = candidate.samples
    if samples is not None:
        row["thumb"] = _write_thumbnail(Path(task.out_dir), clip_id, samples.frames[len(samples.frames) // 2])
    clips = task.config.clips
    if candidate.end_time - candidate.start_time < clips.min_seconds and not clips.score_short:
        samples = None
    return row, samples


def score_video(
    task: VideoTask, scoring: Scoring, keep_samples: bool = True
) -> tuple[VideoResult, list[ClipSamples | None]]:
    """Analyse one video and score its candidates with `scoring`; returns the result (rows in order, no
    clip files) and each row's samples (for a later stage; None for all without `keep_samples`, so that
    each clip's frames are freed once it is scored)."""
    started = time.perf_counter()
    result = VideoResult(task.path, task.video_id, task.fingerprint, ok=False)

    def score(candidate: Candidate) -> tuple[dict, ClipSamples | None]:
        row, samples = candidate_row(task, candidate)
        scoring.apply(row, samples, task.cached.get(span_of(row), {}), result.scores)
        return row, samples if keep_samples else None

    samples = []
    parts = [*scoring.scorers, *([scoring.captioner] if scoring.captioner is not None else [])]
    threads = None if all(getattr(part, "thread_safe", False) for part in parts) else 1  # None: per core
    try:
        loads = [scorer.load for scorer in scoring.scorers]  # while the first frames decode
        result.video, scored = analyse_video(task.path, score, task.config, prepare=loads, threads=threads)
        result.rows, samples = [row for _, (row, _) in scored], [s for _, (_, s) in scored]
        result.ok = True
    except AnisoraError as exc:
        result.error, result.stage = str(exc), "analyse"
    result.seconds = time.perf_counter() - started
    return result, samples


def process_video(task: VideoTask) -> VideoResult:
    started = time.perf_counter()
    scorers, captioner = components(task.config)
    result, _ = score_video(task, Scoring(scorers, captioner, task.config), keep_samples=False)
    if result.ok and task.write_clips:
        try:
            write_kept_clips(result.rows, Path(task.out_dir), task.config)
        except AnisoraError as exc:
            result.ok, result.error, result.stage = False, str(exc), "clips"
    result.seconds = time.perf_counter() - started
    return result


def write_kept_clips(rows: list[dict], out: Path, config: CurateConfig) -> None:
    """Write the clip file of every kept row that has none yet (names are deterministic: no duplicates)."""
    for row in rows:
        if decide(row, config.filters):
            continue
        path = out / "clips" / f"{row['clip_id']}.mp4"
        if not path.exists():
            write_clip(
                row["source"],
                row["start_time"],
                row["end_time"],
                path,
                config.output,
                clip_crop(row, config.output),
            )


def _write_thumbnail(out: Path, clip_id: str, image: np.ndarray) -> str:
    relative = f"thumbs/{clip_id}.jpg"
    path = out / relative
    if not path.exists():
        h, w = image.shape[:2]
        small = cv2.resize(
            image, (THUMB_WIDTH, max(2, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA
        )
        with atomic_output(path) as tmp:
            cv2.imwrite(str(tmp), small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return relative
