"""Shot-cut accuracy and speed of the scene detectors (`scenes.detector`) on ToonWorld episodes, whose ground
truth knows every cut and fade, every flash frame and every fight: PySceneDetect's adaptive and content
detectors (each with its fade detector) and TransNetV2, each with the flash rule (`scenes.flash_frames`, the
default 2) and without it (0). Every detector gets the same 160-px thumbnails of one decode, as in
`anisora curate`, and runs once: both rules read its cuts.

Prints, per detector and rule: precision, recall and F1 of cuts (a detected cut matches a true hard cut
within `--tolerance` frames, a fade anywhere from its start to its end, each true transition at most once),
F1 per difficulty, and milliseconds per frame of the detector and of the flash rule (decoding not included).
Difficulty: a true transition is a `fade`, else `flash` when a shot beside it has flash frames, else
`fight` when one is a fight, else `cut`; a false cut counts for the flash it lands on, else the fight, else
the fade, else `cut`.
Usage: python benchmarks/bench_cuts.py [--episodes 12] [--seconds 30] [--detectors adaptive,content,...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from anisora.curate.agreement import Counts
from anisora.curate.config import SceneConfig
from anisora.curate.scenes import CutFilter, make_detector
from anisora.media import iter_frames
from anisora.toonworld import plan_episode, write_episode

DETECTORS = ("adaptive", "content", "transnetv2")
DIFFICULTIES = ("cut", "fade", "flash", "fight")
RULES = {"on": SceneConfig().flash_frames, "off": 0}


class Fed:
    """A detector the benchmark feeds itself, read by several CutFilters: their push and finish pass."""

    def __init__(self, detector):
        self.detector = detector

    def push(self, index, thumbnail) -> None:
        pass

    def finish(self) -> None:
        pass

    @property
    def cuts(self) -> list[int]:
        return self.detector.cuts

    @property
    def horizon(self) -> int:
        return self.detector.horizon


def truths(gt: dict, tolerance: int) -> list[tuple[int, int, str]]:
    """Each true transition: the frames a detected cut may fall on, and its difficulty."""
    result = []
    for t in gt["transitions"]:
        beside = [s for s in gt["shots"] if t["frame"] in (s["start"], s["end"])]
        if t["type"] == "fade":
            result.append((t["start"], t["end"], "fade"))
            continue
        if any(s["flashes"] for s in beside):
            kind = "flash"
        elif any(s["label"] == "fighting" for s in beside):
            kind = "fight"
        else:
            kind = "cut"
        result.append((t["frame"] - tolerance, t["frame"] + tolerance, kind))
    return result


def false_cut_kind(cut: int, gt: dict, tolerance: int) -> str:
    shot = next(s for s in gt["shots"] if s["start"] <= cut < s["end"])
    if any(f["start"] - tolerance <= cut <= f["end"] + tolerance for f in shot["flashes"]):
        return "flash"
    if shot["label"] == "fighting":
        return "fight"
    if any(t["type"] == "fade" and t["start"] <= cut <= t["end"] for t in gt["transitions"]):
        return "fade"
    return "cut"


def score(cuts: list[int], gt: dict, tolerance: int, counts: dict[str, Counts]) -> None:
    """Greedy one-to-one matches of detected cuts to true transitions, counted per difficulty."""
    used = set()
    for low, high, kind in truths(gt, tolerance):
        hit = next((c for c in cuts if low <= c <= high and c not in used), None)
        if hit is None:
            counts[kind].fn += 1
        else:
            used.add(hit)
            counts[kind].tp += 1
    for cut in set(cuts) - used:
        counts[false_cut_kind(cut, gt, tolerance)].fp += 1


def total(counts: dict[str, Counts]) -> Counts:
    return Counts(*(sum(getattr(c, k) for c in counts.values()) for k in ("tp", "fp", "fn")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tolerance", type=int, default=2)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    args = parser.parse_args()
    detectors = args.detectors.split(",")
    counts = {(d, r): defaultdict(Counts) for d in detectors for r in RULES}
    seconds = defaultdict(float)  # by detector, and by (detector, "rule")
    frames, facts = 0, defaultdict(int)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.episodes):
            paths = write_episode(plan_episode(1000 + seed, 0, args.seconds, 640, 360, 24), tmp)
            gt = json.loads(Path(paths["json"]).read_text())
            for t in gt["transitions"]:
                facts[t["type"] + "s"] += 1
            facts["fights"] += sum(s["label"] == "fighting" for s in gt["shots"])
            facts["flashes"] += sum(len(s["flashes"]) for s in gt["shots"])
            thumbs = [f.image for f in iter_frames(paths["video"], max_side=160)]
            frames += len(thumbs)
            for name in detectors:
                detector = make_detector(SceneConfig(detector=name), 24.0).detector
                filters = {
                    rule: CutFilter(Fed(detector), SceneConfig(detector=name, flash_frames=n), 24.0)
                    for rule, n in RULES.items()
                }
                for index, thumb in enumerate(thumbs):
                    started = time.perf_counter()
                    detector.push(index, thumb)
                    pushed = time.perf_counter()
                    filters["on"].push(index, thumb)
                    seconds[name] += pushed - started
                    seconds[name, "rule"] += time.perf_counter() - pushed
                    filters["off"].push(index, thumb)
                detector.finish()
                for rule, cut_filter in filters.items():
                    score(cut_filter.finish(), gt, args.tolerance, counts[name, rule])
    print(
        f"{args.episodes} ToonWorld episodes of {args.seconds:g} s, 640x360 24 fps ({frames} frames): "
        f"{facts['cuts']} cuts, {facts['fades']} fades; {facts['fights']} fight shots, "
        f"{facts['flashes']} flashes"
    )
    print("F1 by difficulty; tp/fp/fn over all; ms/frame of the detector and of the flash rule")
    header = f"{'detector':11s} {'flash rule':10s} {'prec.':>6s} {'recall':>6s} {'F1':>6s}"
    header += "".join(f" {k:>6s}" for k in DIFFICULTIES) + f" {'tp/fp/fn':>10s} {'ms/frame':>9s} {'rule':>5s}"
    print(header)
    for name in detectors:
        for rule, n in RULES.items():
            by_kind = counts[name, rule]
            c = total(by_kind)
            line = f"{name:11s} {f'{rule} ({n})':10s} {c.precision:6.3f} {c.recall:6.3f} {c.f1:6.3f}"
            line += "".join(f" {by_kind[k].f1:6.3f}" for k in DIFFICULTIES)
            line += f" {f'{c.tp}/{c.fp}/{c.fn}':>10s}"
            if rule == "on":
                line += f" {1000 * seconds[name] / frames:9.2f} {1000 * seconds[name, 'rule'] / frames:5.2f}"
            print(line)
    for name in detectors:
        missed = {k: c.fn for k, c in counts[name, "on"].items() if c.fn}
        false = {k: c.fp for k, c in counts[name, "on"].items() if c.fp}
        print(f"{name}, flash rule on: missed {missed or 'none'}; false cuts {false or 'none'}")


if __name__ == "__main__":
    main()
