"""The records and aggregates of an `anisora evaluate` run directory (layout in the evaluate docs).

`write_record` stores one case's record under RUN/scores (the resumable unit), `read_records` reads them
back, `summarize` aggregates metric means per task and action label, `write_results` writes the finished
run's results.jsonl, results.csv and summary.json, and `load_run` reads a finished run for reports and
comparisons. JSON is strict everywhere: NaN and infinities are stored as null.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files import SHIPPED, atomic_output
from .cases import CASE_ID
from .metrics import METRICS

# Pseudo-metrics taken from a metric's details: (name, metric, detail key).
DETAIL_METRICS = (
    ("motion_mask_recall", "motion_mask_precision", "recall"),
    ("motion_mask_iou", "motion_mask_precision", "iou"),
    ("psnr_unguided", "psnr", "unguided"),
    ("psnr_moving", "psnr", "moving"),
)
# Metrics whose values are not in [0, 1] (units in DESCRIPTIONS).
UNBOUNDED = frozenset({"motion_score", "psnr", "psnr_unguided", "psnr_moving", "guide_fidelity"})
# Metrics where a higher value is not simply better: the amount of motion, the share of moving videos.
UNRANKED = frozenset({"motion_score", "dynamic_degree"})
DESCRIPTIONS = {
    "motion_smoothness": "how well frame interpolation rebuilds the in-between frames (VBench)",
    "dynamic_degree": "share of videos with clear, deliberate motion (VBench)",
    "motion_score": "amount of motion: mean of the largest optical flow, pixels at 480p (curation score)",
    "subject_consistency": "similarity of each frame to the first and the previous one (VBench)",
    "background_consistency": "the subject-consistency formula on background features (VBench)",
    "i2v_subject": "agreement with the input image and steadiness (VBench-I2V subject)",
    "i2v_background": "agreement with the input image and steadiness (VBench-I2V background)",
    "aesthetic_quality": "LAION aesthetic predictor / 10 (VBench)",
    "imaging_quality_brisque": "(100 - BRISQUE) / 100, in place of VBench's MUSIQ",
    "text_video_consistency": "CLIP similarity of the frames and the prompt",
    "motion_mask_precision": "share of the moving pixels that lie inside the motion mask",
    "motion_mask_recall": "share of the motion mask (that truly moves) that moves",
    "motion_mask_iou": "intersection over union of the moving pixels and the motion mask",
    "psnr": "PSNR against the ground-truth video, dB",
    "psnr_unguided": "PSNR of the frames not given as guides, dB",
    "psnr_moving": "PSNR of the frames not given as guides, inside the truly moving region, dB",
    "ssim": "SSIM against the ground-truth video",
    "guide_fidelity": "PSNR at the guide frames, dB",
}


def direction(metric: str) -> str:
    """How to read a metric's value, for people."""
    if metric == "motion_score":
        return "more motion (neither better nor worse)"
    if metric == "dynamic_degree":
        return "a share (how many videos move clearly)"
    return "higher is better"


def metric_order(names: Iterable[str]) -> list[str]:
    """`names` in the order of `METRICS`, each pseudo-metric after its metric, unknown names last (sorted)."""
    known: list[str] = []
    for name in METRICS:
        known.append(name)
        known.extend(pseudo for pseudo, source, _ in DETAIL_METRICS if source == name)
    rank = {name: i for i, name in enumerate(known)}
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), n))


def number(value: Any) -> float | None:
    """`value` as a finite float; None for None, NaN, infinities, booleans and anything not a real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _clean(value: Any) -> Any:
    """`value` with NaN and infinities as None and numpy scalars as Python numbers, ready for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return number(value)
    return value


def to_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON (no NaN) of `value`; NaN and infinities become null."""
    return json.dumps(_clean(value), allow_nan=False, ensure_ascii=False, indent=indent)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file, so readers never see a partial file."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def names_a_path(value: Any) -> bool:
    """Whether a value of run.json or a record is a file's path (not empty, not a shipped file's name)."""
    return isinstance(value, str) and bool(value) and not value.startswith(SHIPPED)


def run_file(run_dir: str | os.PathLike[str], value: Any) -> Path | None:
    """A file named in run.json or a record, from here: such paths are relative to the run folder (absolute
    in runs written by older versions). None where `value` names no path."""
    return Path(os.path.normpath(Path(run_dir) / value)) if names_a_path(value) else None


def check_case_id(case: Any, where: str) -> str:
    if not isinstance(case, str) or not CASE_ID.fullmatch(case):
        raise InputError(f"{where}: case id {case!r} must be letters, digits, '.', '_' or '-'")
    return case


# ------------------------------------------------------------------------------------------ records


def write_record(run_dir: str | os.PathLike[str], record: dict) -> Path:
    """Write one case's record to RUN/scores/<case>.json atomically and return its path."""
    case = check_case_id(record.get("case"), "record")
    return write_text_atomic(Path(run_dir) / "scores" / f"{case}.json", to_json(record, indent=1) + "\n")


def _parse_record(text: str, where: str) -> dict:
    try:
        record = json.loads(text)
    except ValueError as error:  # JSONDecodeError and invalid UTF-8 both derive from it
        raise InputError(f"{where}: not a valid score record (corrupt or partial JSON: {error})") from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: not a valid score record (expected a JSON object)")
    check_case_id(record.get("case"), where)
    return record


def read_records(run_dir: str | os.PathLike[str], order: Sequence[str] | None = None) -> list[dict]:
    """The records in RUN/scores: in `order` (case ids; ids without a record are skipped, records not in
    `order` follow, sorted) when given, else sorted by case id. A corrupt file raises InputError."""
    by_case: dict[str, dict] = {}
    folder = Path(run_dir) / "scores"
    # Names starting with "." are temporary files of writes in progress.
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read the score record ({error})") from None
        record = _parse_record(text, str(path))
        by_case[record["case"]] = record
    first = [c for c in dict.fromkeys(order or ()) if c in by_case]
    rest = sorted(set(by_case) - set(first))
    return [by_case[c] for c in first + rest]


# ------------------------------------------------------------------------------------------ summary


def record_values(record: dict) -> dict[str, float | None]:
    """A record's metric values, pseudo-metrics included; None where NaN or not a number."""
    scores = record.get("scores") or {}
    values = {str(k): number(v) for k, v in scores.items()}
    details = record.get("details") or {}
    for pseudo, metric, key in DETAIL_METRICS:
        detail = details.get(metric)
        if isinstance(detail, dict) and key in detail:
            values[pseudo] = number(detail[key])
    return values


def _stats(records: Sequence[dict]) -> dict[str, dict]:
    columns: dict[str, list[float]] = {}
    for record in records:
        for metric, v in record_values(record).items():
            column = columns.setdefault(metric, [])
            if v is not None:
                column.append(v)
    out = {}
    for metric in metric_order(columns):
        values = np.asarray(columns[metric], np.float64)
        if values.size:
            out[metric] = {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}
        else:
            out[metric] = {"mean": None, "std": None, "n": 0}
    return out


def _groups(records: Sequence[dict], key) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        k = key(record)
        if k is not None:
            groups.setdefault(k, []).append(record)
    return dict(sorted(groups.items()))


def motion_control(records: Sequence[dict]) -> dict | None:
    """How the measured motion (the `motion_score` metric) follows the asked one over the "motion" cases, or
    None without any: Spearman's rank correlation over every case, the share of shots (cases sharing a
    reference video) whose measured motion rises strictly with the asked score, and the mean measured
    motion at each asked score."""
    points = [
        (number(r.get("motion")), record_values(r).get("motion_score"), r.get("reference"))
        for r in records
        if r.get("task") == "motion"
    ]
    points = [(asked, measured, shot) for asked, measured, shot in points if None not in (asked, measured)]
    if not points:
        return None
    from scipy.stats import spearmanr

    asked, measured = (np.array([p[k] for p in points], np.float64) for k in (0, 1))
    shots: dict[str, list[tuple[float, float]]] = {}
    for a, m, shot in points:
        if shot is not None:
            shots.setdefault(shot, []).append((a, m))
    swept = [sorted(values) for values in shots.values() if len({a for a, _ in values}) > 1]
    rising = sum(all(m1 < m2 for (_, m1), (_, m2) in itertools.pairwise(s)) for s in swept)
    levels = sorted(set(asked.tolist()))
    varied = len(levels) > 1 and np.ptp(measured) > 0
    return {
        "cases": len(points),
        "spearman": float(spearmanr(asked, measured).statistic) if varied else None,
        "shots": len(swept),
        "rising_shots": int(rising),
        "rising_share": rising / len(swept) if swept else None,
        "levels": levels,
        "measured_mean": [float(measured[asked == level].mean()) for level in levels],
    }


def summarize(records: Sequence[dict]) -> dict:
    """Mean, population std and n of every metric (and pseudo-metric): overall, by task, by action label,
    by "task/label". NaN and missing values are left out (n counts the values used; a metric with no value
    has mean and std None). Records without a task or label count only in the groups that need neither.
    With "motion" cases, `motion_control` too."""
    control = motion_control(records)
    return {
        "cases": len(records),
        "overall": _stats(records),
        "by_task": {k: _stats(g) for k, g in _groups(records, lambda r: r.get("task")).items()},
        "by_label": {k: _stats(g) for k, g in _groups(records, lambda r: r.get("label")).items()},
        "by_task_label": {
            k: _stats(g)
            for k, g in _groups(
                records, lambda r: f"{r['task']}/{r['label']}" if r.get("task") and r.get("label") else None
            ).items()
        },
        **({"motion_control": control} if control else {}),
    }


# ------------------------------------------------------------------------------------------ results


CSV_HEAD = ("case", "task", "label", "dim", "prompt", "motion")
CSV_TAIL = ("seconds_generate", "seconds_score")


def _csv_cell(value: Any) -> str:
    if value is None or isinstance(value, (str, bool)):
        return "" if value is None else str(value)
    v = number(value)
    return "" if v is None else repr(v)


def results_csv(records: Sequence[dict]) -> str:
    """The flat table: case, task, label, dim, prompt, one column per metric (sorted), the timings."""
    metrics = sorted({str(m) for r in records for m in (r.get("scores") or {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_HEAD, *metrics, *CSV_TAIL])
    for r in records:
        scores = r.get("scores") or {}
        writer.writerow(
            [_csv_cell(r.get(k)) for k in CSV_HEAD]
            + [_csv_cell(scores.get(m)) for m in metrics]
            + [_csv_cell(r.get(k)) for k in CSV_TAIL]
        )
    return buffer.getvalue()


def write_results(run_dir: str | os.PathLike[str], records: Sequence[dict]) -> dict:
    """Write RUN/results.jsonl (records in the given order), results.csv and summary.json, each atomically;
    return the summary."""
    run = Path(run_dir)
    summary = summarize(records)
    write_text_atomic(run / "results.jsonl", "".join(to_json(r) + "\n" for r in records))
    write_text_atomic(run / "results.csv", results_csv(records))
    write_text_atomic(run / "summary.json", to_json(summary, indent=1) + "\n")
    return summary


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read it as JSON ({error})") from None


def load_run(run_dir: str | os.PathLike[str]) -> tuple[dict, list[dict], dict]:
    """(run.json, the records of results.jsonl in their order, their summary) of a finished run."""
    run = Path(run_dir)
    if not (run / "run.json").is_file():
        raise InputError(f"{run} is not an evaluate run directory (no run.json)")
    info = _read_json(run / "run.json")
    if not isinstance(info, dict):
        raise InputError(f"{run / 'run.json'}: expected a JSON object")
    results = run / "results.jsonl"
    if not results.is_file():
        raise InputError(f"{run} has no results.jsonl: the run has not finished")
    try:
        lines = results.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{results}: cannot read it ({error})") from None
    records = [_parse_record(line, f"{results}:{i}") for i, line in enumerate(lines, 1) if line.strip()]
    seen: set[str] = set()
    for record in records:
        if record["case"] in seen:
            raise InputError(f"{results}: case {record['case']} appears twice")
        seen.add(record["case"])
    return info, records, summarize(records)
