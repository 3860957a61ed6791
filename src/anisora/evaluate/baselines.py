"""Reference systems that make a run's numbers readable: every case of a bench answered without a model.

- `truth`: the case's reference video itself (the ceiling of every ground-truth metric);
- `still`: the first guide image held for the whole clip (no motion at all);
- `crossfade`: a linear blend from the first guide to the last one (for cases with one guide: `still`);
- `interpolation`: the guides interpolated along their optical flow (`anisora.model.interpolation`), the
  pixels a residual demo model starts from and draws its change on (one guide: `still`);
- `round-trip`: the reference video encoded and decoded by a model's VAE (`--model`): what that model could
  give back at best, so its PSNRs are the ceiling every figure of the model sits under.
Videos are written as `<out>/videos/<case>.mp4` and scored like any outside videos (`score_videos`). A
round trip's run records its model's files (`anisora.model.hub.model_fingerprint`): its folder keeps one VAE's
videos, and another model's round trip there is refused before anything is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..media import load_image, probe, read_frames, write_video
from ..model.info import ModelInfo, model_directory
from ..model.request import resolve_frame
from ..model.vae import reconstruct
from .cases import Case, load_bench
from .runner import check_run, model_of, score_videos, shipped_models
from .scoring import MetricOptions

BASELINES = ("truth", "still", "crossfade", "interpolation", "round-trip")


def run_baseline(
    bench_path: str | Path,
    kind: str,
    out: str | Path,
    options: MetricOptions | None = None,
    progress: bool = True,
    name: str | None = None,
    model: str | Path | None = None,
) -> dict[str, Any]:
    """Answer every case of the bench as `kind` does, then score the videos; `model` (a model directory)
    is the round trip's and only its."""
    if kind not in BASELINES:
        raise InputError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")
    if (kind == "round-trip") != (model is not None):
        raise InputError("the round-trip baseline needs --model DIR, and only it takes one")
    bench = load_bench(bench_path)
    out = Path(out)
    made_by = vae = None
    if model is not None:  # its videos stay only while the model is the same
        model = model_directory(model)
        made_by = model_of(model)
        check_run(out, {"kind": "videos", **made_by}, ("model_sha256",), shipped_models())
        vae = _model_vae(model)
    videos = []
    for case in bench.cases:
        path = out / "videos" / f"{case.id}.mp4"
        if not path.is_file():
            _write(case, kind, path, vae)
        videos.append(path)
    return score_videos(videos, out, options, bench.path, name or kind, progress, made_by)


def _model_vae(model: Path):
    """The VAE of the model directory `model` (CogVideoX or Wan), float32 on the CPU."""
    if ModelInfo.read(model).backbone == "wan":
        from diffusers import AutoencoderKLWan as kind
    else:
        from diffusers import AutoencoderKLCogVideoX as kind
    return kind.from_pretrained(model / "vae", torch_dtype=torch.float32).eval()


def _write(case: Case, kind: str, path: Path, vae) -> None:
    if kind in ("truth", "round-trip") and case.reference is None:
        raise InputError(f"{case.id}: the {kind} baseline needs a reference video in every case")
    if kind == "truth":
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(case.reference, path)
        return
    if kind == "round-trip":
        info = probe(case.reference)
        video = reconstruct(vae, read_frames(case.reference, range(info.frame_count)))
        write_video(path, video, info.fps, lossless=True)
        return
    from ..model.conditioning import fit_image

    request = case.request
    if not request.guides or None in (request.frames, request.width, request.height, request.fps):
        raise InputError(f"{case.id}: the {kind} baseline needs guides and frames, fps, width, height")
    frames, height, width = request.frames, request.height, request.width
    ordered = sorted(request.guides, key=lambda g: resolve_frame(g.frame, frames))
    images = [fit_image(load_image(g.image), height, width)[0] for g in ordered]  # uint8, as the pipeline's
    if kind == "interpolation":
        from ..model.interpolation import keyframe_video

        video = keyframe_video(images, [resolve_frame(g.frame, frames) for g in ordered], frames)
    else:
        first = images[0].astype(np.float32)
        last = images[-1].astype(np.float32) if kind == "crossfade" else first
        weights = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None, None]
        video = (1.0 - weights) * first + weights * last
    # exact frames, as evaluate runs write them
    write_video(path, video.round().clip(0, 255).astype(np.uint8), request.fps, lossless=True)
