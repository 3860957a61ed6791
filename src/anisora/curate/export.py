"""Training sets from a curation manifest: clip files for kept rows, a stricter final-stage subset,
a subtitle-free subset (drop or crop the subtitle band) and rebalancing by label or motion bucket; the set is
described in the tables training tools read (`formats`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import InputError
from ..files import atomic_output
from .clips import clip_crop, write_clip
from .config import OutputConfig
from .formats import write_training_tables
from .paths import absolute_source, output_folder, relative_source


@dataclass(frozen=True)
class ExportOptions:
    top_quality: float | None = (
        None  # keep the best share (0-1] by aesthetic score, or quality score without it
    )
    top_motion: float | None = None  # keep the most moving share (0-1] by motion_score
    subtitles: str = "keep"  # keep | drop | crop (cut the subtitle band off)
    rebalance: str | None = None  # "motion" (motion-score quartiles) or any manifest column (e.g. a label)
    per_bucket: int | None = None  # cap per bucket; default: the smallest bucket's size
    seed: int = 0

    def __post_init__(self) -> None:
        for flag, share in (("--top-quality", self.top_quality), ("--top-motion", self.top_motion)):
            if share is not None and not 0 < share <= 1:
                raise InputError(f"{flag} must be a share in (0, 1], got {share}")
        if self.subtitles not in ("keep", "drop", "crop"):
            raise InputError(f"--subtitles must be keep, drop or crop, got {self.subtitles!r}")
        if self.per_bucket is not None and self.per_bucket < 1:
            raise InputError(f"--per-bucket must be at least 1, got {self.per_bucket}")

    def needed_scores(self) -> list[tuple[str, tuple[str, ...]]]:
        """(option, the score columns it filters on, any one will do) for the options in use."""
        needs = []
        if self.top_quality is not None:
            needs.append(("--top-quality", ("aesthetic_score", "quality_score")))
        if self.top_motion is not None:
            needs.append(("--top-motion", ("motion_score",)))
        if self.subtitles != "keep":
            needs.append((f"--subtitles {self.subtitles}", ("text_subtitle",)))
        if self.rebalance == "motion":
            needs.append(("--rebalance motion", ("motion_score",)))
        return needs


def load_manifest(path: Path) -> list[dict]:
    if path.is_dir():
        path = path / "manifest.parquet"
    if not path.exists():
        raise InputError(f"{path}: no manifest here (run `anisora curate run` first)")
    return pq.read_table(path).to_pylist()


def _check_columns(rows: list[dict], options: ExportOptions) -> None:
    """Filtering on what the manifest lacks would export nothing, or everything, without a word: refuse."""
    if not rows:
        return
    by = options.rebalance
    if by not in (None, "motion") and by not in rows[0]:
        raise InputError(
            f"--rebalance {by}: no such manifest column; use 'motion' or one of {sorted(rows[0])}"
        )
    for option, columns in options.needed_scores():
        if not any(row.get(column) is not None for row in rows for column in columns):
            raise InputError(
                f"{option}: the manifest has no {' or '.join(columns)} values (is that scorer off? "
                "`anisora curate filter DIR` gives a manifest from an older version every score column)"
            )


def _top(rows: list[dict], share: float | None, score) -> list[dict]:
    if share is None:
        return rows
    values = [score(r) for r in rows]
    known = [v for v in values if v is not None]
    if not known:
        return []
    cutoff = np.quantile(known, 1 - share)
    return [r for r, v in zip(rows, values, strict=True) if v is not None and v >= cutoff]


def _quality(row: dict):
    return row.get("aesthetic_score") if row.get("aesthetic_score") is not None else row.get("quality_score")


def _rebalance(rows: list[dict], by: str | None, per_bucket: int | None, seed: int) -> list[dict]:
    if by is None or not rows:
        return rows
    if by == "motion":
        motion = np.array([r.get("motion_score") or 0.0 for r in rows])
        edges = np.quantile(motion, [0.25, 0.5, 0.75])
        keys = [f"motion_q{int(np.searchsorted(edges, m, side='right'))}" for m in motion]
    else:
        keys = [str(r.get(by)) for r in rows]
    buckets: dict[str, list[dict]] = {}
    for key, row in zip(keys, rows, strict=True):
        buckets.setdefault(key, []).append(row)
    cap = per_bucket or min(len(b) for b in buckets.values())
    rng = np.random.default_rng(seed)
    chosen = []
    for key in sorted(buckets):
        bucket = buckets[key]
        picks = sorted(rng.choice(len(bucket), size=min(cap, len(bucket)), replace=False))
        chosen += [dict(bucket[i], bucket=key) for i in picks]
    return sorted(chosen, key=lambda r: (r["source"], r["start_frame"]))


def _subtitle_crop(row: dict, box: tuple[int, int, int, int] | None, height: int):
    """Narrow the crop box to the part of the picture above (or below) a subtitle band."""
    x0, y0, x1, y1 = box or (0, 0, row["width"], height)
    top, bottom = row.get("text_subtitle_y0"), row.get("text_subtitle_y1")
    if row.get("text_subtitle_band") == "bottom":
        y1 = min(y1, int(top))
    elif row.get("text_subtitle_band") == "top":
        y0 = max(y0, int(bottom))
    y0, y1 = y0 + (y1 - y0) % 2, y1  # keep even sizes for yuv420p
    return (x0, y0, x1, y1) if y1 - y0 >= 16 else None


def select(rows: list[dict], options: ExportOptions) -> list[dict]:
    _check_columns(rows, options)
    chosen = [r for r in rows if r["keep"]]
    chosen = _top(chosen, options.top_quality, _quality)
    chosen = _top(chosen, options.top_motion, lambda r: r.get("motion_score"))
    if options.subtitles == "drop":
        chosen = [r for r in chosen if not r.get("text_subtitle")]
    return _rebalance(chosen, options.rebalance, options.per_bucket, options.seed)


def export(
    manifest_dir: Path, out: Path | None, options: ExportOptions, output: OutputConfig, progress: bool = True
) -> dict:
    """Write clip files (and, for a separate `out`, a training table) for the selected rows.

    With `out` None the kept clips go to the curation folder's own clips/ (what `--no-clips` skipped).
    Sources are read relative to the curation folder and written relative to `out`.
    """
    rows = select(load_manifest(manifest_dir), options)
    target = manifest_dir if out is None else output_folder(out, "clips")
    written = skipped = 0
    records = []
    for row in tqdm(rows, desc="export", unit="clip", disable=not progress):
        source = absolute_source(row["source"], manifest_dir)
        path = target / "clips" / f"{row['clip_id']}.mp4"
        crop = clip_crop(row, output)
        if options.subtitles == "crop" and row.get("text_subtitle"):
            crop = _subtitle_crop(row, crop, row["height"])
            if crop is None:
                skipped += 1
                continue
        if not path.exists():
            write_clip(source, row["start_time"], row["end_time"], path, output, crop)
            written += 1
        records.append(
            {
                **row,
                "source": relative_source(source, target),
                "clip_path": f"clips/{path.name}",
                "crop": list(crop) if crop else None,
            }
        )
    summary = {
        "selected": len(rows),
        "written": written,
        "already_there": len(records) - written,
        "skipped_subtitle_crop": skipped,
    }
    if out is not None:
        with atomic_output(out / "train.parquet") as tmp:
            pq.write_table(pa.Table.from_pylist(records) if records else pa.table({}), tmp)
        write_training_tables(out, records)
        with atomic_output(out / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
