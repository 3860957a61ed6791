"""Curation benchmarks, measured in one run on 60 s 1280x720 24 fps H.264 ToonWorld files:

1. `anisora curate run --no-clips` (probe, scenes, every default scorer, manifest, report; one worker, run
   in-process so Python start-up is not counted) / a bare PyAV decode loop of the same file; goal <= 1.5.
2. Frames per second of writing the kept clips (decode the ranges again, re-encode to H.264).
3. Speed-up of 2 workers over 1 on two such files (the CLI in fresh processes, as a user runs it).
Each timing is the best of its repeats, because this machine is shared.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import pyarrow.parquet as pq

from anisora.curate.config import CurateConfig
from anisora.curate.pipeline import run_curate
from anisora.curate.worker import write_kept_clips
from anisora.media import write_video
from anisora.toonworld import plan_episode, render_episode


def make_video(path: Path, seed: int) -> None:
    plan = plan_episode(seed, 0, 60.0, 1280, 720, 24)
    write_video(path, (img for _, _, img, _, _ in render_episode(plan)), fps=24, preset="veryfast")


def bare_decode(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
    return time.perf_counter() - start


def curate(inputs: list[Path], out: Path, workers: int, write_clips: bool = False) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = run_curate(
        [str(p) for p in inputs],
        out,
        CurateConfig(),
        workers=workers,
        write_clips=write_clips,
        progress=False,
    )
    return time.perf_counter() - start, summary


def cli_curate(inputs: list[Path], out: Path, workers: int) -> float:
    """The command as a user runs it: worker processes start cold either way, so this compares fairly."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "anisora.cli",
        "curate",
        "run",
        *map(str, inputs),
        "--out",
        str(out),
        "--no-clips",
        "--quiet",
        "--workers",
        str(workers),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = [root / f"toon_720p_{seed}.mp4" for seed in (0, 1)]
        for seed, video in enumerate(videos):
            make_video(video, seed)
        curate([videos[0]], root / "warm", 1)  # load models and caches once, as a long run would

        bare, ours = [], []
        for _ in range(2):
            bare.append(bare_decode(videos[0]))
            ours.append(curate([videos[0]], root / "one", 1)[0])
        seconds, summary = curate([videos[0]], root / "one", 1)
        ours.append(seconds)
        print(
            f"curate --no-clips, 60 s 1280x720, 1 worker: {min(ours):.2f} s; bare PyAV decode "
            f"{min(bare):.2f} s; ratio {min(ours) / min(bare):.2f} (goal <= 1.5); "
            f"{summary['candidates']} candidates, {summary['kept']} kept"
        )

        rows = [r for r in pq.read_table(root / "one" / "manifest.parquet").to_pylist() if r["keep"]]
        start = time.perf_counter()
        write_kept_clips(rows, root / "one", CurateConfig())
        elapsed = time.perf_counter() - start
        frames = sum(r["end_frame"] - r["start_frame"] for r in rows)
        print(
            f"writing kept clips: {frames} frames in {elapsed:.2f} s = {frames / elapsed:.0f} frames/s "
            f"({len(rows)} clips, 1280x720, libx264 veryfast crf 18)"
        )

        one = min(cli_curate(videos, root / "w1", 1) for _ in range(2))
        two = min(cli_curate(videos, root / "w2", 2) for _ in range(2))
        print(
            f"2 files, `anisora curate run --no-clips` (cold processes, model loading included): 1 worker "
            f"{one:.2f} s, 2 workers {two:.2f} s, speed-up {one / two:.2f}x"
        )


if __name__ == "__main__":
    main()
