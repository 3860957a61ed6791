"""`anisora curate`: inputs -> per-video work (any runner) -> state -> manifest, failures, summary, report."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import AnisoraError, InputError
from ..files import atomic_output
from ..media import probe
from ..prompts import training_prompt
from .config import CurateConfig
from .filters import REASONS, decide
from .report import write_report
from .runners import run_local, run_ray
from .state import RunState
from .worker import VideoTask, video_id_for

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".flv", ".ts", ".mpg", ".mpeg", ".wmv"}
LIST_EXTENSIONS = {".txt", ".lst", ".list"}


def collect_inputs(inputs: list[str]) -> tuple[list[str], list[dict]]:
    """Video paths from files, folders (recursive, by extension) and text lists (one path per line,
    relative to the list's folder, '#' comments). Missing inputs become failures, not errors."""
    named: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            named += sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file())
        elif p.suffix.lower() in LIST_EXTENSIONS and p.is_file():
            lines = (line.strip() for line in p.read_text(encoding="utf-8").splitlines())
            named += [p.parent / line for line in lines if line and not line.startswith("#")]
        else:
            named.append(p)
    paths: list[str] = []
    failures: list[dict] = []
    for p in dict.fromkeys(Path(os.path.abspath(x)) for x in named):
        if p.is_file():
            paths.append(str(p))
        else:
            failures.append({"source": str(p), "error": f"{p}: no such file", "stage": "input"})
    return paths, failures


def analysis_key(config: CurateConfig) -> str:
    """Settings that change the candidate rows; filters and output options are applied later."""
    relevant = {k: v for k, v in config.to_dict().items() if k not in ("filters", "output", "overlap")}
    return hashlib.sha1(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def _clean_stale_temporaries(out: Path) -> None:
    """A killed run can leave `.name.<hex>.tmp.ext` files behind: they are never finished outputs."""
    for folder in (out, out / "clips", out / "thumbs"):
        for tmp in folder.glob(".*.tmp*"):
            tmp.unlink(missing_ok=True)


def run_curate(
    inputs: list[str],
    out_dir: str | Path,
    config: CurateConfig,
    workers: int = 1,
    engine: str = "local",
    write_clips: bool = True,
    ray_address: str | None = None,
    progress: bool = True,
) -> dict:
    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be 'local' or 'ray', got {engine!r}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    started = time.perf_counter()
    out = Path(out_dir)
    for sub in ("clips", "thumbs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _clean_stale_temporaries(out)
    key = analysis_key(config)
    if workers > 1 or engine == "ray":  # processes fill the cores: a scoring thread each would only contend
        config = dataclasses.replace(config, overlap=False)
    paths, input_failures = collect_inputs(inputs)
    state = RunState(out)
    try:
        tasks, frames = [], {}
        for path in paths:
            vid, fingerprint = video_id_for(path), _fingerprint(path)
            if state.finished(vid, fingerprint, key):
                continue
            tasks.append(
                VideoTask(
                    path,
                    vid,
                    fingerprint,
                    str(out),
                    config,
                    write_clips,
                    state.cached_scores(vid, fingerprint),
                )
            )
            frames[path] = _frames_hint(path)
        results = run_ray(tasks, workers, ray_address) if engine == "ray" else run_local(tasks, workers)
        clips = done = 0
        with tqdm(
            total=sum(frames.values()), unit="frame", unit_scale=True, disable=not progress, desc="curate"
        ) as bar:
            for result in results:
                state.record(result, key)
                clips, done = clips + len(result.rows), done + 1
                bar.update(frames.get(result.path, 0))
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(
                    videos=f"{done}/{len(tasks)}", clips=clips, clips_per_s=f"{clips / elapsed:.1f}"
                )
        return finalize(out, state, config, input_failures, time.perf_counter() - started)
    finally:
        state.close()


def _frames_hint(path: str) -> int:
    """Frame count for the progress bar; a file that cannot be probed counts 0 (its worker reports why)."""
    try:
        return probe(path).frame_count
    except AnisoraError:
        return 0


def finalize(
    out: Path,
    state: RunState,
    config: CurateConfig,
    extra_failures: list[dict] | None = None,
    seconds: float | None = None,
) -> dict:
    """Decide every row with the current thresholds and write manifest, failures, summary and report."""
    rows = [manifest_row(row, out, config) for row in state.rows()]
    failures = (extra_failures or []) + state.failures()
    _write_parquet(out / "manifest.parquet", rows)
    _write_parquet(out / "failures.parquet", failures, schema=_FAILURE_SCHEMA)
    summary = summarize(rows, failures, state.videos(), seconds)
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    write_report(out, rows, failures, summary, dataclasses.asdict(config.filters))
    return summary


def manifest_row(row: dict, out: Path, config: CurateConfig) -> dict:
    reasons = decide(row, config.filters)
    aesthetic = row.get("aesthetic_score")
    source = "laion" if aesthetic is not None else "quality"
    aesthetic = aesthetic if aesthetic is not None else row.get("quality_score")
    motion = row.get("motion_score")
    clip = out / "clips" / f"{row['clip_id']}.mp4"
    return {
        **row,
        "keep": not reasons,
        "reasons": reasons,
        "prompt": training_prompt(row.get("caption", ""), aesthetic, motion)
        if None not in (aesthetic, motion)
        else row.get("caption", ""),
        "prompt_aesthetic_source": source,
        "clip_path": f"clips/{clip.name}" if not reasons and clip.exists() else None,
    }


_FAILURE_SCHEMA = pa.schema([("source", pa.string()), ("error", pa.string()), ("stage", pa.string())])


def _write_parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema else pa.table({})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def summarize(rows: list[dict], failures: list[dict], videos: list[dict], seconds: float | None) -> dict:
    kept = sum(r["keep"] for r in rows)
    reasons = {reason: sum(reason in r["reasons"] for r in rows) for reason in REASONS}
    return {
        "videos": len(videos) + sum(f["stage"] == "input" for f in failures),
        "videos_failed": len(failures),
        "candidates": len(rows),
        "kept": kept,
        "keep_rate": kept / len(rows) if rows else 0.0,
        "kept_seconds": sum(r["end_time"] - r["start_time"] for r in rows if r["keep"]),
        "source_seconds": sum(v.get("duration", 0.0) for v in videos),
        "reasons": {k: v for k, v in reasons.items() if v},
        "seconds": seconds,
    }
