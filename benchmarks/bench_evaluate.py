"""Evaluation benchmark: scoring throughput of the offline default metrics, frames per second at 256x256 on
one core (OpenCV and BLAS limited to one thread), on held-out ToonWorld shots of 33 frames (4 s at 8 fps).

1. The metrics a video gets without any case input (motion smoothness, dynamic degree, motion score,
   subject and background consistency, BRISQUE imaging quality); goal >= 100 frames/s.
2. Every offline metric, with a case's inputs (input image, guides, motion mask, reference video).
3. Baseline in the same run: (1) with the `brisque` package's BRISQUE as it ships (scipy convolve2d),
   which the imaging-quality metric replaced with an OpenCV-filtered equivalent; printed as a ratio.
Decoding is not counted (frames are in memory). Each timing is the best of 3, because this machine is shared.
"""

from __future__ import annotations

import time
import warnings

import cv2
from threadpoolctl import threadpool_limits

from anisora.evaluate.metrics import offline_metrics
from anisora.toonworld.held_out import EVAL_SEED, motion_region, render_clean_shot

SIDE, FRAMES, VIDEOS, REPEATS = 256, 33, 3, 3


def shots() -> list:
    return [render_clean_shot(EVAL_SEED, index, FRAMES, 8.0, SIDE, SIDE) for index in range(VIDEOS)]


def case_inputs(shot) -> dict:
    return {
        "image": shot.frames[0],
        "guides": {0: shot.frames[0], FRAMES - 1: shot.frames[-1]},
        "mask": motion_region(shot.foreground) > 0,
        "reference": shot.frames,
        "fps": 8.0,
    }


def frames_per_second(metrics, videos, inputs=None) -> tuple[float, dict[str, float]]:
    """Best-of-REPEATS throughput of all `metrics` over `videos`, and each metric's seconds per frame."""
    seconds = {}
    for metric in metrics:
        best = float("inf")
        for _ in range(REPEATS):
            started = time.perf_counter()
            for i, video in enumerate(videos):
                given = {
                    k: [v]
                    for k, v in (inputs[i] if inputs else {}).items()
                    if k in metric.requires + metric.accepts
                }
                metric.score([video], **given)
            best = min(best, time.perf_counter() - started)
        seconds[metric.name] = best / (len(videos) * FRAMES)
    return 1.0 / sum(seconds.values()), seconds


def package_brisque(metric) -> None:
    """Swap the metric's BRISQUE for the package's own class (the baseline)."""
    from brisque import BRISQUE

    scorer = metric.scorer
    scorer._brisque_model()  # loads ours and the thread-pool controller
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scorer._brisque = BRISQUE(url=False)


def main() -> None:
    cv2.setNumThreads(1)
    data = shots()
    videos = [s.frames for s in data]
    with threadpool_limits(1):
        plain = [m for m in offline_metrics() if not m.requires]
        fps, per_metric = frames_per_second(plain, videos)
        print(f"default metrics, no case inputs: {fps:.0f} frames/s at {SIDE}x{SIDE}, one core (goal >= 100)")
        for name, spf in per_metric.items():
            print(f"  {name:26s} {1000 * spf:6.2f} ms/frame")
        everything = offline_metrics()
        fps_case, _ = frames_per_second(everything, videos, [case_inputs(s) for s in data])
        print(f"all {len(everything)} offline metrics with a case's inputs: {fps_case:.0f} frames/s")
        baseline = [m for m in offline_metrics() if not m.requires]
        for metric in baseline:
            if metric.name == "imaging_quality_brisque":
                package_brisque(metric)
        fps_base, _ = frames_per_second(baseline, videos)
        print(
            f"baseline (brisque package's scipy filtering): {fps_base:.0f} frames/s; "
            f"ours / baseline = {fps / fps_base:.2f}x"
        )


if __name__ == "__main__":
    main()
