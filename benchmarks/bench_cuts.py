"""Shot-cut accuracy and speed of the scene detectors (`scenes.detector`) on ToonWorld episodes, whose ground
truth knows every cut and fade: PySceneDetect's adaptive and content detectors (each with its fade detector)
and TransNetV2. Every detector gets the same 160-px thumbnails of one decode, as in `anisora curate`.

Prints, per detector: precision, recall and F1 of cuts (a detected cut matches a true hard cut within
`--tolerance` frames, a fade anywhere from its start to its end, each true transition at most once), and the
detector's own milliseconds per frame (decoding not included).
Usage: python benchmarks/bench_cuts.py [--episodes 12] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from anisora.curate.agreement import Counts
from anisora.curate.config import SceneConfig
from anisora.curate.scenes import make_detector
from anisora.media import iter_frames
from anisora.toonworld import plan_episode, write_episode

DETECTORS = ("adaptive", "content", "transnetv2")


def spans(transitions: list[dict], tolerance: int) -> list[tuple[int, int]]:
    """The frames a detected cut may fall on for each true transition."""
    return [
        (t["start"], t["end"]) if t["type"] == "fade" else (t["frame"] - tolerance, t["frame"] + tolerance)
        for t in transitions
    ]


def match(cuts: list[int], truth: list[tuple[int, int]]) -> int:
    """Greedy one-to-one matches of detected cuts to true transitions."""
    used, matched = set(), 0
    for low, high in truth:
        hit = next((c for c in cuts if low <= c <= high and c not in used), None)
        if hit is not None:
            used.add(hit)
            matched += 1
    return matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tolerance", type=int, default=2)
    args = parser.parse_args()
    counts = {name: Counts() for name in DETECTORS}
    seconds = dict.fromkeys(DETECTORS, 0.0)
    frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.episodes):
            paths = write_episode(plan_episode(1000 + seed, 0, args.seconds, 640, 360, 24), tmp)
            truth = spans(json.loads(Path(paths["json"]).read_text())["transitions"], args.tolerance)
            thumbs = [f.image for f in iter_frames(paths["video"], max_side=160)]
            frames += len(thumbs)
            for name in DETECTORS:
                started = time.perf_counter()
                detector = make_detector(SceneConfig(detector=name), 24.0)
                for index, thumb in enumerate(thumbs):
                    detector.push(index, thumb)
                cuts = detector.finish()
                seconds[name] += time.perf_counter() - started
                matched = match(cuts, truth)
                counts[name].tp += matched
                counts[name].fp += len(cuts) - matched
                counts[name].fn += len(truth) - matched
    print(f"{args.episodes} ToonWorld episodes of {args.seconds:g} s: {frames} frames")
    for name in DETECTORS:
        c = counts[name]
        print(
            f"{name:11s} precision {c.precision:.3f} recall {c.recall:.3f} F1 {c.f1:.3f} "
            f"(tp {c.tp}, fp {c.fp}, fn {c.fn}); {1000 * seconds[name] / frames:.2f} ms/frame"
        )


if __name__ == "__main__":
    main()
