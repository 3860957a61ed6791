"""Benchmark runs: generate every case of a bench with a model, score each video, write results and report.

Resumable at the case: a video counts as made once its JSON sidecar exists (it is written after the mp4), a
score once scores/<case>.json exists with the current metric set's id (so changing the metrics re-scores,
even across an interrupted re-scoring). A case that fails (a bad guide image, an unreadable video) is
listed in failures.json and the run goes on; re-running retries it. Changing the model, the bench (its path or
its content) or the generation settings is refused, so one run folder never mixes two systems.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import __version__
from ..errors import InputError, MediaError
from ..files import atomic_output
from .cases import CASE_ID, Bench, Case, load_bench
from .report import write_report
from .results import write_record, write_results
from .scoring import MetricOptions, build_metrics, describe_metrics, score_file


@dataclass(frozen=True)
class GenerationSettings:
    """How every case is generated (per-case sizes, seeds and motion come from the bench)."""

    steps: int = 50
    guidance: float = 6.0
    scheduler: str = "dpm"
    lora: str | None = None
    lora_scale: float = 1.0
    dtype: str = "float32"
    device: str | None = None


def run_benchmark(
    bench_path: str | Path,
    model: str | Path,
    out: str | Path,
    settings: GenerationSettings = GenerationSettings(),
    options: MetricOptions | None = None,
    name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, score, write results and report; returns {"summary", "failures", "report"}."""
    bench = load_bench(bench_path)
    model = Path(model).resolve()
    out = Path(out)
    metrics = build_metrics(options or MetricOptions())
    run = {
        "name": name or model.name,
        "kind": "benchmark",
        "model": str(model),
        "bench": str(bench.path),
        "settings": asdict(settings),
        "bench_sha256": _digest(bench.path),
        "metrics": describe_metrics(metrics),
    }
    _start_run(out, run, ("model", "bench", "bench_sha256", "settings"))
    metrics_id = _metrics_id(metrics)
    failures = _generate(bench, model, out, settings, progress)
    records = []
    for case in tqdm(bench.cases, desc="score", unit="case", disable=not progress):
        sidecar = out / "videos" / f"{case.id}.json"
        if case.id in failures or not sidecar.is_file():
            continue
        done = _finished(out, case.id, metrics_id)
        if done is not None:
            records.append(done)
            continue
        try:
            record = score_file(metrics, out / "videos" / f"{case.id}.mp4", case, f"videos/{case.id}.mp4")
        except (InputError, MediaError) as exc:
            failures[case.id] = f"scoring: {exc}"
            continue
        record["seconds_generate"] = json.loads(sidecar.read_text(encoding="utf-8")).get("seconds_sample")
        record["metrics_id"] = metrics_id
        write_record(out, record)
        records.append(record)
    return _finish(out, records, failures)


def score_videos(
    videos: list[str | Path],
    out: str | Path,
    options: MetricOptions | None = None,
    bench_path: str | Path | None = None,
    name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score videos made elsewhere; with a bench, each video is the case its file name (stem) names and is
    scored against that case's guides, mask and reference."""
    if not videos:
        raise InputError("no videos to score")
    paths = [Path(v).resolve() for v in videos]
    stems = [p.stem for p in paths]
    bad = [s for s in stems if not CASE_ID.fullmatch(s)]
    if bad:
        raise InputError(f"video name {bad[0]!r} cannot be a case id: use letters, digits, '.', '_', '-'")
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise InputError(f"two videos are named {twice[0]!r}: each video's file name must be unique")
    bench = load_bench(bench_path) if bench_path else None
    cases = bench.by_id() if bench else {}
    if bench:
        unknown = [s for s in stems if s not in cases]
        if unknown:
            raise InputError(f"{unknown[0]}: no case of that id in {bench.path} (name videos <case id>.mp4)")
    out = Path(out)
    metrics = build_metrics(options or MetricOptions())
    run = {
        "name": name or (paths[0].parent.name or "videos"),
        "kind": "videos",
        "model": None,
        "bench": str(bench.path) if bench else None,
        "bench_sha256": _digest(bench.path) if bench else None,
        "settings": {},
        "metrics": describe_metrics(metrics),
    }
    _start_run(out, run, ("bench", "bench_sha256"))
    metrics_id = _metrics_id(metrics)
    records, failures = [], {}
    for path in tqdm(paths, desc="score", unit="video", disable=not progress):
        done = _finished(out, path.stem, metrics_id)
        if done is not None and path.is_file() and done["scored_mtime"] >= path.stat().st_mtime:
            records.append(done)
            continue
        try:
            record = score_file(metrics, path, cases.get(path.stem), str(path))
            record["scored_mtime"] = path.stat().st_mtime  # a video replaced later is scored again
        except (InputError, MediaError) as exc:
            failures[path.stem] = str(exc)
            continue
        record["seconds_generate"] = None
        record["metrics_id"] = metrics_id
        write_record(out, record)
        records.append(record)
    return _finish(out, records, failures)


def _start_run(out: Path, run: dict[str, Any], fixed: tuple[str, ...]) -> None:
    """Write run.json; refuse a folder that holds another system's run."""
    path = out / "run.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is unreadable ({exc}); use another --out") from None
        changed = [k for k in ("kind", *fixed) if old.get(k) != run[k]]
        if changed:
            raise InputError(
                f"{out} holds a run with another {', '.join(changed)}; use another --out "
                "(one folder holds one system's run)"
            )
        run = {**run, "created": old.get("created")}
    run = {"created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **run}
    run["anisora_version"] = __version__
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _metrics_id(metrics: list) -> str:
    return hashlib.sha256(json.dumps(describe_metrics(metrics), sort_keys=True).encode()).hexdigest()[:16]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _finished(out: Path, case: str, metrics_id: str) -> dict | None:
    """The case's score record if it was made with these metrics (else it is scored again)."""
    path = out / "scores" / f"{case}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # scored again and rewritten
    return record if isinstance(record, dict) and record.get("metrics_id") == metrics_id else None


def _generate(bench: Bench, model: Path, out: Path, settings: GenerationSettings, progress: bool) -> dict:
    """Make every missing video; returns {case id: error} for the cases that failed."""
    from ..model.generate import generate_to_file, open_pipeline

    pending = [c for c in bench.cases if not (out / "videos" / f"{c.id}.json").is_file()]
    failures: dict[str, str] = {}
    if not pending:
        return failures
    pipe = open_pipeline(_job(bench.cases[0], model, settings))
    pipe.set_progress_bar_config(disable=True)  # one bar over the cases, not one per case
    for case in tqdm(pending, desc="generate", unit="case", disable=not progress):
        try:
            generate_to_file(
                _job(case, model, settings), out / "videos" / f"{case.id}.mp4", overwrite=True, pipe=pipe
            )
        except (InputError, MediaError) as exc:
            failures[case.id] = f"generation: {exc}"
    return failures


def _job(case: Case, model: Path, settings: GenerationSettings):
    from ..model.generate import GenerateJob, GuideSpec

    return GenerateJob(
        model=str(model),
        guides=[GuideSpec(str(g.image), g.frame, g.strength) for g in case.guides],
        mask=str(case.mask) if case.mask else None,
        prompt=case.prompt,
        motion=case.motion,
        frames=case.frames,
        fps=case.fps,
        width=case.width,
        height=case.height,
        steps=settings.steps,
        guidance=settings.guidance,
        scheduler=settings.scheduler,
        seed=case.seed,
        lora=settings.lora,
        lora_scale=settings.lora_scale,
        dtype=settings.dtype,
        device=settings.device,
    )


def _finish(out: Path, records: list[dict], failures: dict[str, str]) -> dict[str, Any]:
    with atomic_output(out / "failures.json") as tmp:
        tmp.write_text(json.dumps(failures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = write_results(out, records)
    return {"summary": summary, "failures": failures, "report": write_report(out)}
