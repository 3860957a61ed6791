"""`anisora curate`: inputs -> per-video work (any runner) -> state -> manifest, failures, summary, report.

The manifest has a typed column for every output of every registered scorer whatever the inputs (null where a
clip has no value), and the shared outputs name sources relative to the output folder (see paths.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path

from tqdm import tqdm

from ..errors import AnisoraError, InputError
from ..files import atomic_output
from ..media import probe
from ..prompts import training_prompt
from .config import CurateConfig
from .filters import REASONS, decide, mark_duplicates
from .paths import output_folder, relative_source
from .ray_pipeline import run_ray
from .runners import run_local
from .scorers import REGISTRY, scorer_class
from .state import RunState
from .worker import CLIP_COLUMNS, VideoTask, video_id_for

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".flv", ".ts", ".mpg", ".mpeg", ".wmv"}
LIST_EXTENSIONS = {".txt", ".lst", ".list"}


def collect_inputs(inputs: list[str]) -> tuple[list[str], list[dict]]:
    """Video paths from files, folders (recursive, by extension, links followed) and text lists (one path per
    line, relative to the list's folder, '#' comments). What cannot be read (a missing file, an unreadable
    folder or list, a link loop) becomes a failure row, not an error and never a silent skip."""
    named: list[Path] = []
    failures: list[dict] = []
    for item in inputs:
        p = Path(os.path.abspath(item))
        if p.is_dir():
            named += _scan_folder(p, failures)
        elif p.suffix.lower() in LIST_EXTENSIONS and p.is_file():
            named += _read_list(p, failures)
        else:
            named.append(p)
    unique: dict[str, Path] = {}  # one video once, by the first name it was reached by
    for p in named:
        unique.setdefault(os.path.realpath(p), Path(os.path.abspath(p)))
    paths: list[str] = []
    for p in unique.values():
        problem = _file_problem(p)
        if problem is None:
            paths.append(str(p))
        else:
            failures.append(_input_failure(p, problem))
    return paths, failures


def _input_failure(path: str | Path, problem: str) -> dict:
    return {"source": str(path), "error": f"{path}: {problem}", "stage": "input"}


def _scan_folder(folder: Path, failures: list[dict]) -> list[Path]:
    """Files with a video extension under `folder`, links followed; unreadable folders and links back to a
    folder on the way down (the walk would never end) are failures."""
    found: list[Path] = []
    above: dict[str, frozenset[str]] = {str(folder): frozenset()}  # real paths of the folders on the way down

    def unreadable(exc: OSError) -> None:
        failures.append(_input_failure(exc.filename, exc.strerror.lower()))

    for parent, folders, files in os.walk(folder, onerror=unreadable, followlinks=True):
        chain = above.pop(parent) | {os.path.realpath(parent)}
        for name in list(folders):
            path = os.path.join(parent, name)
            if os.path.realpath(path) in chain:
                folders.remove(name)
                failures.append(_input_failure(path, "symbolic link loop (to a folder above it)"))
            else:
                above[path] = chain
        found += [Path(parent, name) for name in files if Path(name).suffix.lower() in VIDEO_EXTENSIONS]
    return sorted(found)


def _read_list(path: Path, failures: list[dict]) -> list[Path]:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        failures.append(_input_failure(path, exc.strerror.lower()))
        return []
    except UnicodeDecodeError:
        failures.append(_input_failure(path, "not a UTF-8 text list"))
        return []
    return [path.parent / line for line in lines if line and not line.startswith("#")]


def _file_problem(path: Path) -> str | None:
    """Why `path` cannot be a video file (None: a regular file, for the decoder to try)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # missing, a broken link, a link loop, a folder we may not enter
        return exc.strerror.lower()
    return None if stat.S_ISREG(mode) else "not a regular file"


def analysis_key(config: CurateConfig) -> str:
    """Settings that change the candidate rows; filters and output options are applied later, and the
    engine's settings change no row."""
    later = ("filters", "output", "overlap", "ray")
    relevant = {k: v for k, v in config.model_dump().items() if k not in later}
    return hashlib.sha1(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def _clean_stale_temporaries(out: Path) -> None:
    """A killed run can leave `.name.<hex>.tmp.ext` files behind: they are never finished outputs. Run at
    the start and again before the manifest: a killed Ray run's workers can outlive its driver for a moment
    and leave one after the next run has started."""
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
    out = output_folder(Path(out_dir), "clips", "thumbs")
    _clean_stale_temporaries(out)
    key = analysis_key(config)
    if workers > 1 or engine == "ray":  # processes fill the cores: a scoring thread each would only contend
        config = config.model_copy(update={"overlap": False})
    paths, input_failures = collect_inputs(inputs)
    if engine == "local":
        threading.Thread(target=_import_finalize, daemon=True, name="import-finalize").start()
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
        if engine == "ray":
            settings = config.ray.model_copy(update={"address": ray_address or config.ray.address})
            results = run_ray(tasks, workers, settings)
        else:
            results = run_local(tasks, workers)
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
        _clean_stale_temporaries(out)  # every writer of this run has finished
        return finalize(out, state, config, input_failures, time.perf_counter() - started)
    finally:
        state.close()


def _import_finalize() -> None:
    """Load what `finalize` needs while the videos decode: PyArrow, whose first Parquet write imports pandas,
    every scorer's module (the manifest's columns) and the report's templates (about 0.4 s of CPU at the end
    of every run otherwise)."""
    with contextlib.suppress(Exception):  # only a head start: finalize imports them again and says why
        import pyarrow as pa
        import pyarrow.parquet as pq

        from . import report  # noqa: F401

        pq.write_table(pa.Table.from_pylist([], schema=manifest_schema()), pa.BufferOutputStream())


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
    from .report import write_report

    rows = [manifest_row(row, out, config) for row in mark_duplicates(state.rows(), config.filters)]
    failures = [shared_failure(f, out) for f in (extra_failures or []) + state.failures()]
    _write_parquet(out / "manifest.parquet", rows, manifest_schema())
    _write_parquet(out / "failures.parquet", failures, _failure_schema())
    summary = summarize(rows, failures, state.videos(), seconds)
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    write_report(out, rows, failures, summary, config.filters.model_dump())
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
        "source": relative_source(row["source"], out),
        "keep": not reasons,
        "reasons": reasons,
        "prompt": training_prompt(row.get("caption", ""), aesthetic, motion)
        if None not in (aesthetic, motion)
        else row.get("caption", ""),
        "prompt_aesthetic_source": source,
        "clip_path": f"clips/{clip.name}" if not reasons and clip.exists() else None,
    }


def shared_failure(failure: dict, out: Path) -> dict:
    """A failure row that names its source relative to `out`, in its message too."""
    source = relative_source(failure["source"], out)
    return {**failure, "source": source, "error": failure["error"].replace(failure["source"], source)}


def manifest_schema():
    """Every manifest column, typed, whatever the rows hold: the clip, the outputs of every registered scorer
    (null where a clip has no value: too short, the scorer off) and the decision (a `pyarrow.Schema`)."""
    import pyarrow as pa

    types = {float: pa.float64(), int: pa.int64(), bool: pa.bool_(), str: pa.string()}
    decision = [
        ("duplicate_of", pa.string()),
        ("keep", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
        ("prompt", pa.string()),
        ("prompt_aesthetic_source", pa.string()),
        ("clip_path", pa.string()),
    ]
    columns = dict(CLIP_COLUMNS)
    for name in REGISTRY:
        columns |= scorer_class(name).outputs
    return pa.schema([(name, types[kind]) for name, kind in columns.items()] + decision)


def _failure_schema():
    import pyarrow as pa

    return pa.schema([("source", pa.string()), ("error", pa.string()), ("stage", pa.string())])


def _write_parquet(path: Path, rows: list[dict], schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema)
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
