"""Benchmark runs: generate every case of a bench with a model, score each video, write results and report.

Resumable at the case: a video counts as made once its JSON sidecar exists (it is written after the mp4), a
score once scores/<case>.json exists with the current metric set's id (so changing the metrics re-scores,
even across an interrupted re-scoring). A case that fails (a bad guide image, an unreadable video) is
listed in failures.json and the run goes on; re-running retries it. Every case is checked before the model
loads, so an invalid one never reaches it. Changing the model (its path or its files, as
`anisora.model.hub.model_fingerprint` names them), the bench (its path or its content) or the generation
settings is refused, so one run folder never mixes two systems. The run's files are meant to be
shared: their paths are relative to the run folder (the shipped demo model by name), never absolute.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import __version__
from ..errors import InputError, MediaError
from ..files import atomic_output, shareable_path
from ..model.request import LoadOptions, Request
from .cases import CASE_ID, Bench, Case, load_bench
from .report import write_report
from .results import write_record, write_results
from .scoring import WORKING_PIXELS, WORKING_SIDE, MetricOptions, build_metrics, describe_metrics, score_file


@dataclass(frozen=True)
class GenerationSettings:
    """How every case is generated: how the model loads, and the sampling settings the run puts on top of
    each case's request (None: the model's). Sizes, seeds and motion come from the bench."""

    steps: int | None = None
    guidance: float | None = None
    motion_guidance: float | None = None  # its scale; None: the model's preset
    scheduler: str | None = None  # None: the model's preset
    lora: str | None = None
    lora_scale: float = 1.0
    mask_lora: bool = True
    dtype: str = "float32"
    device: str | None = None
    decode_change: bool = True  # False: `--decode-whole` (the demo model decodes its whole video)

    def load(self, model: Path) -> LoadOptions:
        sampling = ("steps", "guidance", "motion_guidance", "decode_change")
        return LoadOptions(str(model), **{k: v for k, v in asdict(self).items() if k not in sampling})

    def request(self, case: Case | None = None) -> Request:
        """`case`'s request (or an empty one) with the run's sampling settings."""
        return replace(
            case.request if case else Request(),
            steps=self.steps,
            guidance=self.guidance,
            motion_guidance=self.motion_guidance,
            decode_change=self.decode_change,
        )


# How a refusal names a changed run.json key that is not a word.
FIXED_NAMES = {"model_sha256": "model (its files changed)", "bench_sha256": "bench content"}


def run_benchmark(
    bench_path: str | Path,
    model: str | Path,
    out: str | Path,
    settings: GenerationSettings = GenerationSettings(),
    options: MetricOptions | None = None,
    name: str | None = None,
    progress: bool = True,
    shard: tuple[int, int] = (1, 1),
    tasks: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Generate, score, write results and report; returns {"summary", "failures", "report"}. `shard`
    (K, N): only every N-th case from the K-th, so that N processes share one run folder; a shard writes no
    summary or report ("summary" and "report" None): a run without a shard then writes them. `tasks`: only
    the cases of these tasks (an ablation that differs from the model's run on some tasks only)."""
    from ..model.generate import validate

    index, count = shard
    if not 1 <= index <= count:
        raise InputError(f"shard {index}/{count}: K must be 1 to N")
    bench = load_bench(bench_path)
    model = Path(os.path.realpath(model))
    out = Path(out)
    cases = [c for c in bench.cases if tasks is None or c.task in tasks][index - 1 :: count]
    if not cases:
        raise InputError(f"bench {bench.name!r} has no case of task {', '.join(sorted(tasks or ()))}")
    pending = [c for c in cases if not (out / "videos" / f"{c.id}.json").is_file()]
    if pending:
        validate(settings.load(model), settings.request())  # a bad setting is one error, not one per case
    metrics = build_metrics(options or MetricOptions())  # may load metric models: after every check
    run = {
        "name": name or model.name,
        "kind": "benchmark",
        **model_of(model),
        "bench": str(bench.path),
        "settings": asdict(settings),
        "bench_sha256": _digest(bench.path),
        "metrics": describe_metrics(metrics),
    }
    fixed = ("model", "model_sha256", "bench", "bench_sha256", "settings")
    _start_run(out, run, fixed, shipped_models())
    metrics_id = _metrics_id(metrics)
    failures = _generate(pending, model, out, settings, progress)
    records = []
    for case in tqdm(cases, desc="score", unit="case", disable=not progress):
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
        records.append(_store(out, record, metrics_id))
    if count > 1:
        return {"summary": None, "failures": failures, "report": None}
    return _finish(out, records, failures)


def score_videos(
    videos: list[str | Path],
    out: str | Path,
    options: MetricOptions | None = None,
    bench_path: str | Path | None = None,
    name: str | None = None,
    progress: bool = True,
    model: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score videos made elsewhere; with a bench, each video is the case its file name (stem) names and is
    scored against that case's guides, mask and reference. A video that cannot be scored (unreadable, or
    naming no case of the bench) is a failure; the others are scored. `model`: the "model" and
    "model_sha256" of the model that made the videos, when one did (`model_of`); a run folder keeps one."""
    if not videos:
        raise InputError("no videos to score")
    paths = [Path(v) for v in videos]
    stems = [p.stem for p in paths]
    bad = [s for s in stems if not CASE_ID.fullmatch(s)]
    if bad:
        raise InputError(f"video name {bad[0]!r} cannot be a case id: use letters, digits, '.', '_', '-'")
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise InputError(f"two videos are named {twice[0]!r}: each video's file name must be unique")
    bench = load_bench(bench_path) if bench_path else None
    out = Path(out)
    metrics = build_metrics(options or MetricOptions())
    run = {
        "name": name or (Path(os.path.realpath(paths[0])).parent.name or "videos"),
        "kind": "videos",
        "model": None,
        "bench": str(bench.path) if bench else None,
        "bench_sha256": _digest(bench.path) if bench else None,
        "settings": {},
        "metrics": describe_metrics(metrics),
        **(model or {}),
    }
    fixed = ("bench", "bench_sha256", "model_sha256") if model else ("bench", "bench_sha256")
    _start_run(out, run, fixed, shipped_models())
    metrics_id = _metrics_id(metrics)
    records, failures = [], {}
    for path in tqdm(paths, desc="score", unit="video", disable=not progress):
        try:
            records.append(_video_record(out, metrics, metrics_id, path, bench))
        except (InputError, MediaError) as exc:
            failures[path.stem] = str(exc)
    return _finish(out, records, failures)


def shipped_models() -> dict[Path, str]:
    """The models a run names by name, not by path: the shipped demo model."""
    from ..model.weights import DEMO_MODEL, DEMO_MODEL_NAME

    return {DEMO_MODEL: DEMO_MODEL_NAME}


def model_of(model: Path) -> dict[str, str]:
    """A model folder as a run of videos it made records it (`score_videos`' `model`)."""
    from ..model.hub import model_fingerprint

    return {"model": str(Path(os.path.realpath(model))), "model_sha256": model_fingerprint(model)}


def _video_record(out: Path, metrics: list, metrics_id: str, path: Path, bench: Bench | None) -> dict:
    """The score record of a video made elsewhere: the stored one while the video is unchanged, else a new
    one (scored against the case its name gives, with a bench)."""
    case = bench.by_id().get(path.stem) if bench else None
    if bench and case is None:
        raise InputError(f"no case of that id in bench {bench.name!r} (name videos <case id>.mp4)")
    modified = _modified(path)
    done = _finished(out, path.stem, metrics_id)
    if done is not None and done.get("scored_mtime", -math.inf) >= modified:
        return done
    record = score_file(metrics, path, case, shareable_path(path, out))
    record["scored_mtime"] = modified  # a video replaced later is scored again
    record["seconds_generate"] = None
    return _store(out, record, metrics_id)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError as exc:  # missing, unreadable or a symlink loop: a failure of this video only
        raise MediaError(path, (exc.strerror or type(exc).__name__).lower()) from None


def _store(out: Path, record: dict, metrics_id: str) -> dict:
    """Write a new score record under RUN/scores, with the metric set that made it and its reference video
    relative to the run folder."""
    record["metrics_id"] = metrics_id
    if record.get("reference"):
        record["reference"] = shareable_path(record["reference"], out)
    write_record(out, record)
    return record


def check_run(
    out: Path, run: dict[str, Any], fixed: tuple[str, ...], shipped: dict[Path, str] | None = None
) -> dict[str, Any]:
    """`run` as run.json will hold it (its paths made shareable, an existing run's creation time kept);
    raises InputError when `out` holds a run that differs in its kind or in a `fixed` key. A key that an
    existing run lacks (written before anisora recorded it) is taken as matching."""
    run = _shareable_run(run, out, shipped)
    path = out / "run.json"
    if not path.is_file():
        return {"created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **run}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is unreadable ({exc}); use another --out") from None
    if not isinstance(old, dict):
        raise InputError(f"{path} is not a run description; use another --out")
    old = _shareable_run(old, out, shipped)
    changed = [FIXED_NAMES.get(k, k) for k in ("kind", *fixed) if old.get(k, run[k]) != run[k]]
    if changed:
        raise InputError(
            f"{out} holds a run with another {', '.join(changed)}; use another --out "
            "(one folder holds one system's run)"
        )
    return {"created": old.get("created"), **run}


def _start_run(
    out: Path, run: dict[str, Any], fixed: tuple[str, ...], shipped: dict[Path, str] | None = None
) -> None:
    """Write run.json (`check_run`)."""
    run = check_run(out, run, fixed, shipped)
    run["anisora_version"] = __version__
    with atomic_output(out / "run.json") as tmp:
        tmp.write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _shareable_run(run: dict[str, Any], out: Path, shipped: dict[Path, str] | None) -> dict[str, Any]:
    """`run` with its paths (model, bench, LoRA) relative to the run folder, files shipped in the package by
    name: run.json names no machine's folders. A run not yet shared has an absolute model or bench path and
    its LoRA from the working folder, as new runs and runs of older versions do; a shared run is kept."""
    if not any(isinstance(run.get(k), str) and os.path.isabs(run[k]) for k in ("model", "bench")):
        return run

    def shareable(value: Any) -> Any:
        return shareable_path(value, out, shipped) if isinstance(value, str) and value else value

    settings = run.get("settings")
    if isinstance(settings, dict) and "lora" in settings:
        settings = {**settings, "lora": shareable(settings["lora"])}
    return {
        **run,
        "model": shareable(run.get("model")),
        "bench": shareable(run.get("bench")),
        "settings": settings,
    }


def _metrics_id(metrics: list) -> str:
    """Names the metric set and the size videos are scored at: records made otherwise are scored again."""
    scoring = {"metrics": describe_metrics(metrics), "working_size": [WORKING_SIDE, WORKING_PIXELS]}
    return hashlib.sha256(json.dumps(scoring, sort_keys=True).encode()).hexdigest()[:16]


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


def _generate(
    pending: list[Case], model: Path, out: Path, settings: GenerationSettings, progress: bool
) -> dict:
    """Make the videos of the `pending` cases; returns {case id: error} for the cases that failed. Every case
    is checked before the model loads: an invalid one is a failure that never reaches the model."""
    from ..model.generate import generate_to_file, validate
    from ..model.loading import open_pipeline

    load = settings.load(model)
    requests, failures = {}, {}
    for case in pending:
        request = settings.request(case)
        try:
            validate(load, request)
            requests[case.id] = request
        except (InputError, MediaError) as exc:
            failures[case.id] = f"generation: {exc}"
    if not requests:
        return failures
    pipe = open_pipeline(load)
    pipe.set_progress_bar_config(disable=True)  # one bar over the cases, not one per case
    for case_id, request in tqdm(requests.items(), desc="generate", unit="case", disable=not progress):
        try:
            path = out / "videos" / f"{case_id}.mp4"  # exact frames: scores measure the model, not a codec
            generate_to_file(load, request, path, overwrite=True, pipe=pipe, lossless=True)
        except (InputError, MediaError) as exc:
            failures[case_id] = f"generation: {exc}"
    return failures


def _finish(out: Path, records: list[dict], failures: dict[str, str]) -> dict[str, Any]:
    with atomic_output(out / "failures.json") as tmp:
        tmp.write_text(json.dumps(failures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = write_results(out, records)
    return {"summary": summary, "failures": failures, "report": write_report(out)}
