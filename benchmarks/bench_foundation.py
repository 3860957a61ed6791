"""Foundation benchmarks, measured in one run on one core:

1. ToonWorld rendering throughput at 128x128 (frames + masks + ground-truth boxes), goal >= 1000 frames/s.
2. `anisora.media.iter_frames` at native fps vs a bare PyAV decode loop on the same 60 s 640x360 H.264
   file, goal ratio <= 1.2. Runs alternate and the best of each is kept, because this machine is shared.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import tempfile
import time
from pathlib import Path

import av
import cv2

from anisora.media import iter_frames, write_video
from anisora.toonworld import plan_episode, render_episode


def toonworld_fps(seconds: float = 60.0, seeds: int = 3) -> float:
    frames, elapsed = 0, 0.0
    for seed in range(seeds):
        plan = plan_episode(seed, 0, seconds, 128, 128, 24)
        start = time.perf_counter()
        for _ in render_episode(plan):
            frames += 1
        elapsed += time.perf_counter() - start
    return frames / elapsed


def bare_pyav(path: Path) -> int:
    n = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def ours(path: Path) -> int:
    return sum(1 for _ in iter_frames(path))


def decode_ratio(path: Path, repeats: int = 3) -> tuple[float, float, float]:
    best = {bare_pyav: float("inf"), ours: float("inf")}
    counts = {}
    for _ in range(repeats):
        for fn in best:
            start = time.perf_counter()
            counts[fn] = fn(path)
            best[fn] = min(best[fn], time.perf_counter() - start)
    assert counts[bare_pyav] == counts[ours], counts
    return best[ours] / best[bare_pyav], best[bare_pyav], best[ours]


def main() -> None:
    cv2.setNumThreads(1)
    fps = toonworld_fps()
    print(f"toonworld render 128x128, 1 core: {fps:,.0f} frames/s (goal >= 1000)")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "toon_60s_640x360.mp4"
        plan = plan_episode(0, 0, 60.0, 640, 360, 24)
        write_video(video, (img for _, _, img, _, _ in render_episode(plan)), fps=24, preset="veryfast")
        ratio, bare, mine = decode_ratio(video)
        print(
            f"decode 60 s 640x360 H.264 ({plan.num_frames} frames): bare PyAV {bare:.2f} s, "
            f"iter_frames {mine:.2f} s, ratio {ratio:.3f} (goal <= 1.2)"
        )


if __name__ == "__main__":
    main()
