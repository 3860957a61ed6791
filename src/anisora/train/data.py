"""Training samples: ToonWorld shots (with ground truth) and curated clips, fitted to shape buckets.

A batch is planned by `batch_plan(spec, seed, step)`, a pure function of the plan seed and the step (and the
data set's size), so a run resumed at step N sees exactly the data it would have seen. Every sample of a
batch shares one `Bucket` (width, height, frame count); a share of the batches are one-frame image samples.

Hold-out: ToonWorld training draws sample indices in [0, TRAIN_INDICES) of its seed; evaluation renders
from `EVAL_SEED` (`anisora.toonworld.held_out`), a seed training must never use.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from ..curate.scorers.motion import frames_motion_score
from ..errors import InputError
from ..files import atomic_output
from ..model.conditioning import (
    DEFAULT_AESTHETIC,
    FRAME_STEP,
    check_frame_count,
    fit_image,
    frames_for_seconds,
)
from ..prompts import training_prompt
from ..toonworld.held_out import plan_clean_shot, render_shot
from ..toonworld.shot import ShotPlan, plan_shot

TRAIN_INDICES = 10**9  # ToonWorld training sample indices are drawn from [0, TRAIN_INDICES)
# ToonWorld has no aesthetic model: every shot gets this score (below the official 5.5 the released models
# ask for); a model trained on it records it as its default (`data_presets`).
TOONWORLD_AESTHETIC = 5.0
PIXEL_MULTIPLE = 16  # 8x VAE downsampling, then 2x2 transformer patches


def data_presets(source: str) -> dict:
    """The `anisora_presets` a model trained on `source` records: the aesthetic score its prompts carried
    (a curation folder's clips carry their own scores, so those models keep the official default)."""
    return {"aesthetic": TOONWORLD_AESTHETIC} if source == "toonworld" else {}


@dataclass
class Sample:
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    prompt: str  # caption + the official score suffix
    caption: str
    motion_score: float
    aesthetic_score: float
    foreground: np.ndarray | None  # (F, H, W) bool where a character is (ToonWorld only)
    fps: float
    key: str  # stable id: "toonworld:s{seed}:i{index}" or "manifest:{clip_id}"
    label: str | None = None  # ToonWorld action ("running", "static" ...), for evaluation


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    num_frames: int  # 4k+1, or 1 for an image sample

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0 or value % PIXEL_MULTIPLE:
                raise InputError(f"bucket {name} must be a positive multiple of 16, got {value!r}")
        check_frame_count(self.num_frames)


def fit_to_bucket(
    frames: np.ndarray, bucket: Bucket, foreground: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The first `bucket.num_frames` frames, each resized to cover the bucket and centre-cropped; masks
    (F, H, W) get the same geometry with nearest-neighbour resampling."""
    if len(frames) < bucket.num_frames:
        raise InputError(f"{len(frames)} frames are fewer than the bucket's {bucket.num_frames}")
    frames = frames[: bucket.num_frames]
    fitted = np.stack([fit_image(f, bucket.height, bucket.width)[0] for f in frames])
    if foreground is None:
        return fitted, None
    masks = [_fit_mask(m, bucket.height, bucket.width) for m in foreground[: bucket.num_frames]]
    return fitted, np.stack(masks)


def _fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """The geometry of `fit_image` (cover, centre crop) with nearest-neighbour resampling."""
    h, w = mask.shape
    scale = max(height / h, width / w)
    rh, rw = max(height, round(h * scale)), max(width, round(w * scale))
    resized = cv2.resize(mask.astype(np.uint8), (rw, rh), interpolation=cv2.INTER_NEAREST)
    top, left = (rh - height) // 2, (rw - width) // 2
    return resized[top : top + height, left : left + width].astype(bool)


class Source(Protocol):
    def sample(self, index: int, bucket: Bucket) -> Sample: ...


class ToonWorldSource:
    """One procedural shot per (seed, shot), rendered at the bucket's size and frame count, played at `fps`.

    With several `speeds`, sample index i is shot i // len(speeds) played at speeds[i % len(speeds)]: drawn
    at fps / speed, so the same kind of action comes slower and faster, each with the motion score measured
    on its frames at `fps` (what motion control is trained on; speed 1 is the shot as planned).
    """

    def __init__(self, seed: int, fps: float, clean: bool = True, speeds: Sequence[float] = (1.0,)):
        if not (math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be positive, got {fps!r}")
        if not speeds or not all(isinstance(s, (int, float)) and 0.1 <= s <= 10 for s in speeds):
            raise InputError(f"speeds must be numbers within 0.1-10, got {list(speeds)!r}")
        self.seed, self.fps, self.clean, self.speeds = seed, fps, clean, tuple(float(s) for s in speeds)
        self._motion: dict[tuple[int, Bucket], float] = {}  # a shot's motion score, measured once

    def shot_and_speed(self, index: int) -> tuple[int, float]:
        return index // len(self.speeds), self.speeds[index % len(self.speeds)]

    def plan(self, index: int, bucket: Bucket) -> ShotPlan:
        shot, speed = self.shot_and_speed(index)
        size = (bucket.num_frames, self.fps / speed, bucket.width, bucket.height)
        if self.clean:
            return plan_clean_shot(self.seed, shot, *size)
        return plan_shot(shot, 0, *size, np.random.default_rng([self.seed, shot]), "en")

    def sample(self, index: int, bucket: Bucket) -> Sample:
        plan = self.plan(index, bucket)
        frames, foreground = render_shot(plan)
        if (index, bucket) not in self._motion:
            self._motion[index, bucket] = frames_motion_score(frames, self.fps)
        motion = self._motion[index, bucket]
        caption = plan.caption()
        shot, speed = self.shot_and_speed(index)
        return Sample(
            frames=frames,
            prompt=training_prompt(caption, TOONWORLD_AESTHETIC, motion),
            caption=caption,
            motion_score=motion,
            aesthetic_score=TOONWORLD_AESTHETIC,
            foreground=foreground,
            fps=self.fps,
            key=f"toonworld:s{self.seed}:i{shot}" + (f"@x{speed:g}" if speed != 1 else ""),
            label=plan.label,
        )


class ManifestSource:
    """The kept clips of an `anisora curate` folder, decoded at `fps` and fitted to a bucket.

    Prompts come from the manifest's `prompt` column (curation already appended the score suffix).
    Aesthetic score: `aesthetic_score`, else the classical `quality_score` (as curation's prompt does), else
    DEFAULT_AESTHETIC; a missing motion score is 0.0. `foreground` (see `anisora.train.foreground`) gives each
    clip per-frame foreground masks for motion-region training.
    """

    def __init__(self, curate_dir: str | Path, fps: float, foreground=None):
        if not (math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be positive, got {fps!r}")
        self.folder = Path(curate_dir)
        self.fps, self.foreground = fps, foreground
        from ..curate.export import load_manifest  # here: training on ToonWorld needs no video I/O (PyAV)

        self.rows = [r for r in load_manifest(self.folder) if r.get("keep")]
        if not self.rows:
            raise InputError(f"{self.folder}: the manifest has no kept clips")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def clip_seconds(self) -> list[float]:
        return [r["end_time"] - r["start_time"] for r in self.rows]

    def sample(self, index: int, bucket: Bucket) -> Sample:
        if not 0 <= index < len(self.rows):
            raise InputError(
                f"sample index {index} out of range: {self.folder} has {len(self.rows)} kept clips"
            )
        row = self.rows[index]
        # `anisora export` into the curation folder writes clips/<clip_id>.mp4 without updating clip_path
        path = self.folder / (row.get("clip_path") or f"clips/{row['clip_id']}.mp4")
        if not path.is_file():
            raise InputError(f"{path}: clip file missing (`anisora curate export {self.folder}` writes it)")
        frames = fit_to_bucket(self._decode(path, bucket), bucket)[0]
        aesthetic = next(
            (row[c] for c in ("aesthetic_score", "quality_score") if row.get(c) is not None),
            DEFAULT_AESTHETIC,
        )
        return Sample(
            frames=frames,
            prompt=row["prompt"],
            caption=row.get("caption") or "",
            motion_score=float(row.get("motion_score") or 0.0),
            aesthetic_score=float(aesthetic),
            foreground=self.foreground(frames) if self.foreground is not None else None,
            fps=self.fps,
            key=f"manifest:{row['clip_id']}",
        )

    def _decode(self, path: Path, bucket: Bucket) -> np.ndarray:
        from ..media import iter_frames, probe

        info = probe(path)
        cover = max(bucket.width / info.width, bucket.height / info.height)
        max_side = math.ceil(max(info.width, info.height) * cover) + 2  # decode small, never below cover
        frames = [f.image for f in itertools.islice(iter_frames(path, self.fps, max_side), bucket.num_frames)]
        if not frames:
            raise InputError(f"{path}: no frames could be decoded")
        # batch_plan picks clips long enough; this only absorbs rounding at the clip's very end
        frames += [frames[-1]] * (bucket.num_frames - len(frames))
        return np.stack(frames)


@dataclass(frozen=True)
class BucketSpec:
    resolutions: tuple[tuple[int, int], ...]  # (width, height), each a multiple of 16
    fps: float = 8.0
    min_seconds: float = 2.0
    max_seconds: float = 8.0
    image_share: float = 0.1  # probability that a batch is one-frame images
    batch_size: int = 1

    def __post_init__(self) -> None:
        if not self.resolutions:
            raise InputError("bucket spec needs at least one resolution")
        for width, height in self.resolutions:
            Bucket(width, height, 1)  # validates the size
        if not 2.0 <= self.min_seconds <= self.max_seconds <= 8.0:
            raise InputError(
                f"durations must satisfy 2 <= min <= max <= 8 s, got {self.min_seconds}-{self.max_seconds}"
            )
        if not 0.0 <= self.image_share <= 1.0:
            raise InputError(f"image_share must be in [0, 1], got {self.image_share}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        frames_for_seconds(self.min_seconds, self.fps)  # validates fps


def batch_plan(
    spec: BucketSpec,
    seed: int,
    step: int,
    num_samples: int | None = None,
    clip_seconds: Sequence[float] | None = None,
) -> tuple[Bucket, list[int]]:
    """The bucket and sample indices of batch `step`: a pure function of its arguments.

    `num_samples` None: unbounded ToonWorld, indices in [0, TRAIN_INDICES). Otherwise indices into a data set
    of that size, drawn with replacement; with `clip_seconds` (one per sample, as in
    `ManifestSource.clip_seconds`) video batches draw only clips long enough, and shrink the frame count
    when no clip is.
    """
    if clip_seconds is not None:
        if num_samples not in (None, len(clip_seconds)):
            raise InputError(f"num_samples {num_samples} disagrees with {len(clip_seconds)} clip durations")
        num_samples = len(clip_seconds)
    if num_samples is not None and num_samples < 1:
        raise InputError(f"num_samples must be at least 1, got {num_samples}")
    rng = np.random.default_rng([seed, step])
    is_image = rng.random() < spec.image_share
    width, height = spec.resolutions[int(rng.integers(len(spec.resolutions)))]
    seconds = float(rng.uniform(spec.min_seconds, spec.max_seconds))
    num_frames = (
        1
        if is_image
        else frames_for_seconds(seconds, spec.fps, min_s=spec.min_seconds, max_s=spec.max_seconds)
    )
    if num_samples is None:
        return Bucket(width, height, num_frames), [
            int(i) for i in rng.integers(0, TRAIN_INDICES, spec.batch_size)
        ]
    candidates = np.arange(num_samples)
    if clip_seconds is not None:
        lengths = np.asarray(clip_seconds, float)
        num_frames = min(num_frames, _frames_within(lengths.max(), spec.fps))
        # the last frame is sampled at (F - 1) / fps and must fall inside the clip
        candidates = candidates[lengths > (num_frames - 1) / spec.fps]
    indices = rng.choice(candidates, spec.batch_size)
    return Bucket(width, height, num_frames), [int(i) for i in indices]


def _frames_within(seconds: float, fps: float) -> int:
    """The largest 8k+1 frame count whose last frame time (F - 1) / fps lies before `seconds`."""
    return FRAME_STEP * max(0, math.ceil(seconds * fps / FRAME_STEP) - 1) + 1


def load_batch(source: Source, bucket: Bucket, indices: Sequence[int]) -> list[Sample]:
    return [source.sample(i, bucket) for i in indices]


class FeatureCache:
    """Outputs of frozen encoders (VAE moments and latents, text features) on disk, computed once.

    One file per (kind, key, encoders' weights id), so features of other weights are never mixed in; files
    appear complete or not at all, so processes may share a folder and a kill leaves nothing half-written.
    """

    def __init__(self, folder: str | Path, weights_id: str):
        self.folder, self.weights_id = Path(folder), weights_id

    def path(self, kind: str, key: str) -> Path:
        digest = hashlib.sha256(json.dumps([kind, key, self.weights_id]).encode()).hexdigest()
        return self.folder / kind / digest[:2] / f"{digest}.pt"

    def fetch(self, kind: str, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        path = self.path(kind, key)
        if path.exists():
            return torch.load(path, map_location="cpu", weights_only=True)
        value = compute().detach().cpu().contiguous()
        with atomic_output(path) as tmp:
            torch.save(value, tmp)
        return value


def weights_id(*modules: torch.nn.Module | None) -> str:
    """A digest of modules' configs and weights: the cache key part that changes when an encoder does. The
    configs' bookkeeping keys (`_name_or_path`, `_diffusers_version`, ...) are left out: with the folder a
    model was loaded from in the digest, each training stage, started from the previous stage's folder,
    encoded every clip, guide and prompt again."""
    digest = hashlib.sha256()
    for module in modules:
        if module is None:
            continue
        config = getattr(module, "config", None) or {}
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)  # transformers or diffusers
        config = {key: value for key, value in config.items() if not key.startswith("_")}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
