"""Reference systems that make a run's numbers readable: every case of a bench answered without a model.

- `truth`: the case's reference video itself (the ceiling of every ground-truth metric);
- `still`: the first guide image held for the whole clip (no motion at all);
- `crossfade`: a linear blend from the first guide to the last one (for cases with one guide: `still`).
Videos are written as `<out>/videos/<case>.mp4` and scored like any outside videos (`score_videos`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..media import load_image, write_video
from ..model.request import resolve_frame
from .cases import Case, load_bench
from .runner import score_videos
from .scoring import MetricOptions

BASELINES = ("truth", "still", "crossfade")


def run_baseline(
    bench_path: str | Path,
    kind: str,
    out: str | Path,
    options: MetricOptions | None = None,
    progress: bool = True,
    name: str | None = None,
) -> dict[str, Any]:
    if kind not in BASELINES:
        raise InputError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")
    bench = load_bench(bench_path)
    out = Path(out)
    videos = []
    for case in bench.cases:
        path = out / "videos" / f"{case.id}.mp4"
        if not path.is_file():
            _write(case, kind, path)
        videos.append(path)
    return score_videos(videos, out, options, bench.path, name or kind, progress)


def _write(case: Case, kind: str, path: Path) -> None:
    if kind == "truth":
        if case.reference is None:
            raise InputError(f"{case.id}: the truth baseline needs a reference video in every case")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(case.reference, path)
        return
    from ..model.conditioning import fit_image

    request = case.request
    if not request.guides or None in (request.frames, request.width, request.height, request.fps):
        raise InputError(f"{case.id}: the {kind} baseline needs guides and frames, fps, width, height")
    frames, height, width = request.frames, request.height, request.width
    ordered = sorted(request.guides, key=lambda g: resolve_frame(g.frame, frames))
    first = fit_image(load_image(ordered[0].image), height, width)[0].astype(np.float32)
    last = fit_image(load_image(ordered[-1].image), height, width)[0].astype(np.float32)
    if kind == "still" or len(ordered) == 1:
        last = first
    weights = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None, None]
    video = ((1.0 - weights) * first + weights * last).round().astype(np.uint8)
    write_video(path, video, request.fps)
