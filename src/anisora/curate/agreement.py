"""How well curation agrees with ToonWorld ground truth: cut F1, and per-clip subtitle, static and border
flags. Used by the tests and by anyone tuning thresholds on ToonWorld corpora."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def match_cuts(detected: list[int], truth: list[int], tolerance: int = 2) -> Counts:
    """Greedy one-to-one matching of cut frames within +-tolerance frames."""
    counts, used = Counts(), set()
    for cut in truth:
        match = next((d for d in detected if abs(d - cut) <= tolerance and d not in used), None)
        if match is None:
            counts.fn += 1
        else:
            counts.tp += 1
            used.add(match)
    counts.fp = len(set(detected) - used)
    return counts


def clip_truth(row: dict, gt: dict) -> dict:
    """Ground truth for a candidate clip: the shot it lies in (None if it spans a cut) and the share of its
    frames that show a subtitle."""
    start, end = row["start_frame"], row["end_frame"]
    shots = [s for s in gt["shots"] if s["start"] < end and start < s["end"]]
    frames = gt["frames"][start:end]
    subtitled = sum(1 for f in frames if f["subtitles"]) / max(len(frames), 1)
    return {"shot": shots[0] if len(shots) == 1 else None, "subtitle_share": subtitled}


def agreement(rows: list[dict], cuts: dict[str, list[int]], truths: dict[str, dict]) -> dict[str, Counts]:
    """rows: manifest rows; cuts: detected cuts per source; truths: ToonWorld JSON per source. Cuts and truths
    are keyed as the rows name sources (a manifest: relative to its folder, `paths.relative_source`).

    Only scored clips count (candidates under the minimum duration are not scored by default).
    Subtitles: a clip is positive when subtitles show in >= 50 % of its frames, negative when in none
    (in between is ambiguous and not counted). Static and letterbox: by the clip's shot, for clips inside
    one shot. Letterbox counts as found only when the crop box is within 2 pixels of the truth.
    """
    result = {name: Counts() for name in ("cuts", "subtitles", "static", "letterbox")}
    for source, gt in truths.items():
        c = match_cuts(cuts.get(source, []), gt["cuts"])
        result["cuts"].tp += c.tp
        result["cuts"].fp += c.fp
        result["cuts"].fn += c.fn
    for row in rows:
        gt = truths.get(row["source"])
        if gt is None:
            continue
        truth = clip_truth(row, gt)
        if row.get("motion_static") is None:  # not scored (too short for the duration filter)
            continue
        if truth["subtitle_share"] >= 0.5 or truth["subtitle_share"] == 0:
            result["subtitles"].add(truth["subtitle_share"] >= 0.5, bool(row.get("text_subtitle")))
        shot = truth["shot"]
        if shot is None:
            continue
        result["static"].add(shot["static"], bool(row.get("motion_static")))
        box = shot["letterbox"]["content_box"] if shot["letterbox"] else None
        found = bool(row.get("borders_letterbox") or row.get("borders_pillarbox"))
        if found and box is not None:
            found = all(
                abs(row[f"borders_crop_{k}"] - v) <= 2
                for k, v in zip(("x0", "y0", "x1", "y1"), box, strict=True)
            )
        result["letterbox"].add(box is not None, found)
    return result
