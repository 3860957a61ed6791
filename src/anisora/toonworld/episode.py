"""ToonWorld episodes: a sequence of shots joined by hard cuts and fades, written as mp4 + ground truth.

Files per episode in the output folder:
    <name>.mp4        H.264 video
    <name>.json       ground truth (schema below, `SCHEMA`)
    <name>.masks.npz  per-frame foreground label masks, one uint8 (frames, H, W) array per shot
                      ("shot_0000", ...): 0 = background, k = the character with mask_label k
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_output
from .effects import EFFECTS_KEY, add_effects
from .shot import ShotPlan, ShotRenderer, plan_shot

SCHEMA = "anisora.toonworld/1"
LANGUAGES = ("latin", "cjk", "mixed")
OPENING_KEY = 2**31 - 1  # the series opening's random stream: (seed, OPENING_KEY), no episode index


@dataclass
class EpisodePlan:
    name: str
    seed: int
    index: int
    fps: float
    width: int
    height: int
    language: str
    shots: list[ShotPlan]
    transitions: list[dict]  # one per shot boundary: {"frame", "type": "cut"|"fade", ...}
    opening_frames: int = 0  # the series opening (shot 0) every episode of the seed repeats

    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.shots)


def episode_name(seed: int, index: int) -> str:
    return f"toon_s{seed}_e{index:04d}"


def _shot_lengths(total: int, fps: float, rng: np.random.Generator) -> list[int]:
    """Mostly 2-6 s, some short (< 2 s, for curation to drop) and some long shots; they sum to `total`."""
    lengths: list[int] = []
    while sum(lengths) < total:
        kind = rng.random()
        seconds = (
            rng.uniform(0.8, 2.0) if kind < 0.15 else rng.uniform(6, 12) if kind > 0.85 else rng.uniform(2, 6)
        )
        lengths.append(max(round(seconds * fps), 2))
    lengths[-1] -= sum(lengths) - total
    if len(lengths) > 1 and lengths[-1] < fps * 0.5:  # no sliver at the end: merge it into the shot before
        sliver = lengths.pop()
        lengths[-1] += sliver
    return lengths


def plan_episode(
    seed: int,
    index: int = 0,
    seconds: float = 20.0,
    width: int = 320,
    height: int = 180,
    fps: float = 24.0,
    opening: float = 0.0,
) -> EpisodePlan:
    """`opening` > 0: the episode starts with that many seconds of the series' opening, one shot drawn from
    the seed alone, so every episode of the seed repeats it frame for frame (as openings and recaps repeat
    across a real series' episodes), then a cut."""
    if seconds <= 0 or fps <= 0:
        raise InputError(f"seconds and fps must be positive (got seconds={seconds}, fps={fps})")
    if width < 32 or height < 32 or width > 4096 or height > 4096:
        raise InputError(f"size {width}x{height} is out of range (32..4096 per side)")
    total, opening_frames = round(seconds * fps), round(opening * fps)
    if total < 2:
        raise InputError(f"{seconds} s at {fps} fps is less than two frames")
    if opening < 0 or (opening and not 2 <= opening_frames <= total - 2):
        raise InputError(f"the opening must be 0, or 2 frames up to the episode less 2, got {opening} s")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    language = LANGUAGES[int(rng.choice(3, p=(0.45, 0.35, 0.2)))]
    lengths = _shot_lengths(total - opening_frames, fps, rng)
    transitions, fades = [], [0] * (len(lengths) + 1)  # fades[k]: fade length at boundary k (before shot k)
    start = opening_frames
    if opening_frames:
        transitions.append({"frame": start, "type": "cut"})
    for k in range(1, len(lengths)):
        start += lengths[k - 1]
        if rng.random() < 0.25:
            n = min(round(fps * rng.uniform(0.25, 0.5)), lengths[k - 1] // 4, lengths[k] // 4)
            if n >= 2:
                fades[k] = n
                transitions.append({"frame": start, "type": "fade", "start": start - n, "end": start + n})
                continue
        transitions.append({"frame": start, "type": "cut"})
    shots, start = [], 0
    if opening_frames:
        series = np.random.default_rng(np.random.SeedSequence([seed, OPENING_KEY]))
        series_language = LANGUAGES[int(series.integers(len(LANGUAGES)))]
        shots.append(plan_shot(0, 0, opening_frames, fps, width, height, series, series_language))
        start = opening_frames
    effects = np.random.default_rng(np.random.SeedSequence([seed, index, EFFECTS_KEY]))
    for k, n in enumerate(lengths):
        shot = plan_shot(len(shots), start, n, fps, width, height, rng, language, fades[k], fades[k + 1])
        shots.append(shot)
        start += n
    # drawn after the shots, from their own stream, so the shots' draws stay what they always were; the series
    # opening repeats as it is
    own = 1 if opening_frames else 0
    shots[own:] = [add_effects(shot, effects) for shot in shots[own:]]
    name = episode_name(seed, index)
    return EpisodePlan(name, seed, index, fps, width, height, language, shots, transitions, opening_frames)


def render_episode(plan: EpisodePlan) -> Iterator[tuple[int, ShotPlan, np.ndarray, np.ndarray, dict]]:
    """Yields (episode frame index, shot, RGB image, label mask, frame ground truth) in order."""
    for shot in plan.shots:
        renderer = ShotRenderer(shot)
        for j in range(shot.num_frames):
            image, mask, boxes = renderer.render(j)
            yield shot.start + j, shot, image, mask, boxes


def ground_truth(plan: EpisodePlan, frames: list[dict]) -> dict:
    """The JSON document for an episode; `frames` holds the per-frame boxes from `render_episode`."""
    subtitles = []
    for shot in plan.shots:
        for ev in shot.subtitles:
            first = shot.start + ev.start
            subtitles.append(
                {
                    **asdict(ev),
                    "start": first,
                    "end": shot.start + ev.end,
                    "shot": shot.index,
                    "box": frames[first]["subtitles"][0] if frames[first]["subtitles"] else None,
                }
            )
    return {
        "schema": SCHEMA,
        "episode": plan.name,
        "seed": plan.seed,
        "index": plan.index,
        "fps": plan.fps,
        "width": plan.width,
        "height": plan.height,
        "num_frames": plan.num_frames,
        "duration": plan.num_frames / plan.fps,
        "language": plan.language,
        "opening_frames": plan.opening_frames,
        "video": f"{plan.name}.mp4",
        "masks": f"{plan.name}.masks.npz",
        "cuts": [t["frame"] for t in plan.transitions],
        "transitions": plan.transitions,
        "shots": [s.to_json() for s in plan.shots],
        "subtitles": subtitles,
        "frames": frames,
    }


class _MaskArchive(zipfile.ZipFile):
    """Streams one (frames, H, W) array per shot into an npz, so memory holds one shot at a time."""

    def __init__(self, path: Path):
        super().__init__(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)

    def add(self, name: str, masks: np.ndarray) -> None:
        with self.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, masks, allow_pickle=False)


def write_episode(plan: EpisodePlan, out_dir: str | os.PathLike, crf: int = 18) -> dict[str, Path]:
    """Render and write the episode's mp4, masks and JSON; each file appears complete or not at all."""
    from ..media import VideoWriter  # media pulls in PyAV; rendering alone does not need it

    out = Path(out_dir)
    paths = {
        kind: out / f"{plan.name}{suffix}"
        for kind, suffix in (("video", ".mp4"), ("masks", ".masks.npz"), ("json", ".json"))
    }
    frames, shot_masks = [], []
    with (
        atomic_output(paths["masks"]) as tmp_masks,
        _MaskArchive(tmp_masks) as archive,
        VideoWriter(paths["video"], plan.fps, crf=crf) as writer,
    ):
        for index, shot, image, mask, boxes in render_episode(plan):
            writer.write(image)
            shot_masks.append(mask)
            frames.append({"shot": shot.index, **boxes})
            if index == shot.start + shot.num_frames - 1:
                archive.add(f"shot_{shot.index:04d}", np.stack(shot_masks))
                shot_masks = []
    with atomic_output(paths["json"]) as tmp_json:
        tmp_json.write_text(json.dumps(ground_truth(plan, frames), ensure_ascii=False), encoding="utf-8")
    return paths


def load_masks(path: str | os.PathLike) -> np.ndarray:
    """All frames' label masks of an episode, (frames, H, W) uint8, from its .masks.npz (or .json) path."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_name(json.loads(path.read_text(encoding="utf-8"))["masks"])
    with np.load(path) as archive:
        return np.concatenate([archive[k] for k in sorted(archive.files)])
