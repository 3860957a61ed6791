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
from .captions import build_captioner
from .clips import clip_crop, write_clip
from .config import CurateConfig
from .filters import decide
from .scorers import build_scorers

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


_SCORERS: dict[str, list] = {}  # per worker process: scorers load models once, not once per video
_CAPTIONERS: dict[str, object] = {}


def _scorers(config: CurateConfig) -> list:
    key = json.dumps(config.scorers, sort_keys=True, default=str)
    if key not in _SCORERS:
        _SCORERS[key] = build_scorers(config.scorers)
    return _SCORERS[key]


def _captioner(config: CurateConfig):
    key = json.dumps([config.captions.captioner, config.captions.options], sort_keys=True, default=str)
    if key not in _CAPTIONERS:
        _CAPTIONERS[key] = build_captioner(config.captions.captioner, config.captions.options)
    return _CAPTIONERS[key]


def process_video(task: VideoTask) -> VideoResult:
    started = time.perf_counter()
    result = VideoResult(task.path, task.video_id, task.fingerprint, ok=False)
    out = Path(task.out_dir)
    scorers = _scorers(task.config)
    captioner = _captioner(task.config)

    def score(candidate: Candidate) -> dict:
        span = f"{candidate.start_frame}-{candidate.end_frame}"
        cached = task.cached.get(span, {})
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
            row["thumb"] = _write_thumbnail(out, clip_id, samples.frames[len(samples.frames) // 2])
        seconds = candidate.end_time - candidate.start_time
        if seconds < task.config.clips.min_seconds and not task.config.clips.score_short:
            samples = None  # the duration filter drops it: spend nothing more on it
        for scorer in scorers:
            key = scorer.cache_key()
            if key in cached:
                values = cached[key]
            elif samples is None:  # too short, or no sampled frame inside: duration only
                if scorer.name != "duration":
                    continue
                values = {
                    "duration_seconds": seconds,
                    "duration_frames": candidate.end_frame - candidate.start_frame,
                }
            else:
                values = scorer.score(samples)
                result.scores.append((span, key, values))
            row.update(values)
        if samples is not None and not (task.config.captions.only_kept and decide(row, task.config.filters)):
            row["caption"] = captioner.caption(samples, row)
        return row

    try:
        result.video, scored = analyse_video(task.path, score, task.config)
        result.rows = [row for _, row in scored]
        if task.write_clips:
            result.stage = "clips"
            write_kept_clips(result.rows, out, task.config)
        result.ok, result.stage = True, None
    except AnisoraError as exc:
        result.error, result.stage = str(exc), result.stage or "analyse"
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
