"""`--engine ray`: curation as a Ray Data streaming pipeline, staged the way Ray Data video pipelines are.

    videos -> CPU stage (tasks) -> clips -> model stage (actor pool) -> clip stage (tasks) -> driver

- CPU stage (`flat_map`, at most `--workers` tasks of one CPU at a time, one video each): the single decode
  pass (cuts, candidate clips, samples), thumbnails and every scorer without a model; a row per candidate
  clip comes out, with its analysis frames when a model stage follows.
- model stage (`map_batches` over an actor pool; only when a configured scorer or the captioner uses a
  model, see `Configured.uses_model`): `ray.model_actors` actors, each reserving `ray.gpus_per_actor` GPUs,
  load the models once and take `ray.batch_size` clips a call: the model scorers, then the captions (which
  need every score). Without a model stage the CPU stage captions.
- clip stage (tasks; not with --no-clips): the files of the kept clips.
- driver: gathers each video's clips (they arrive in any order) into its `VideoResult`; pipeline.py records
  it in state.sqlite as soon as it is complete, so a killed run resumes, and writes the same manifest as
  the local engine.

Backpressure: the streaming executor starts a task only while the queue behind it fits its share of the
object store, the CPU stage runs at most `--workers` videos at once and each model actor holds at most
`ray.max_in_flight` batches, so a slow model stage pauses decoding instead of filling memory.

Errors: a video that cannot be used (an AnisoraError anywhere) becomes a failure row with its reason, as
with the local engine; any other exception stops the run and is raised in the driver as the original
exception; workers' output reaches the driver's terminal (Ray's log_to_driver).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import AnisoraError, InputError
from .captions import captioner_class
from .config import CurateConfig, RayConfig
from .runners import one_thread_per_library
from .scorers import scorer_class
from .scorers.base import ClipSamples
from .worker import (
    Scoring,
    VideoResult,
    VideoTask,
    components,
    score_video,
    span_of,
    write_kept_clips,
)


@dataclass
class ClipWork:
    """One candidate clip on its way through the stages. A video without candidates, or one that failed
    in the CPU stage, travels as a single ClipWork with no row and `count` 0."""

    video: VideoResult  # the video's outcome without rows and scores, shared by its clips
    position: int = 0
    count: int = 0
    row: dict | None = None
    samples: ClipSamples | None = None  # for the model stage
    cached: dict[str, dict] = field(default_factory=dict)
    scores: list[tuple[str, str, dict]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    stage: str | None = None


def has_model_stage(config: CurateConfig) -> bool:
    return captioner_class(config.captions.captioner).uses_model or any(
        scorer_class(name).uses_model for name in config.scorers
    )


def _cpu_scoring(config: CurateConfig) -> Scoring:
    scorers, captioner = components(config)
    model_stage = has_model_stage(config)
    cpu = [s for s in scorers if not s.uses_model]
    return Scoring(cpu, None if model_stage else captioner, config)


def analyse(item: dict) -> list[dict]:
    """CPU stage: one video in, a row per candidate clip out."""
    import ray

    one_thread_per_library()
    task: VideoTask = item["task"]
    result, samples = score_video(task, _cpu_scoring(task.config))
    result.node = ray.get_runtime_context().get_node_id()
    if not (result.ok and result.rows):
        return [{"work": ClipWork(result)}]
    header = replace(result, rows=[], scores=[])
    model_stage = has_model_stage(task.config)
    works = []
    for position, (row, clip_samples) in enumerate(zip(result.rows, samples, strict=True)):
        span = span_of(row)
        works.append(
            ClipWork(
                header,
                position,
                len(result.rows),
                row,
                replace(clip_samples, pairs=()) if model_stage and clip_samples is not None else None,
                task.cached.get(span, {}),
                [s for s in result.scores if s[0] == span],
            )
        )
    return [{"work": work} for work in works]


class ModelStage:
    """An actor of the model stage: builds the model scorers and the captioner and loads their models once,
    then scores and captions batches of clips."""

    def __init__(self, config: CurateConfig):
        scorers, captioner = components(config)
        self.scoring = Scoring([s for s in scorers if s.uses_model], captioner, config)
        try:
            for component in (*self.scoring.scorers, captioner):
                component.load()
        except AnisoraError:
            pass  # tried again by each clip that needs it, which then fails with the reason, as locally

    def __call__(self, batch: dict) -> dict:
        for work in batch["work"]:
            if work.row is None or work.error is not None:
                continue
            started = time.perf_counter()
            try:
                self.scoring.apply(work.row, work.samples, work.cached, work.scores)
            except AnisoraError as exc:
                work.error, work.stage = str(exc), "analyse"
            work.samples = None  # not shipped any further
            work.seconds += time.perf_counter() - started
        return batch


def write_clip(item: dict, out: str, config: CurateConfig) -> dict:
    """Clip stage: the file of a kept clip."""
    one_thread_per_library()
    work: ClipWork = item["work"]
    if work.row is not None and work.error is None:
        started = time.perf_counter()
        try:
            write_kept_clips([work.row], Path(out), config)
        except AnisoraError as exc:
            work.error, work.stage = str(exc), "clips"
        work.seconds += time.perf_counter() - started
    return item


def assemble(works: list[ClipWork]) -> VideoResult:
    """A video's result from all its clips: rows in order, their new scores, the first failure."""
    works = sorted(works, key=lambda w: w.position)
    result = works[0].video
    result.rows = [w.row for w in works if w.row is not None]
    result.scores = [s for w in works for s in w.scores]
    result.seconds += sum(w.seconds for w in works)
    failed = next((w for w in works if w.error is not None), None)
    if failed is not None:
        result.ok, result.error, result.stage = False, failed.error, failed.stage
    return result


def _gather(works: Iterator[ClipWork]) -> Iterator[VideoResult]:
    """Each video's result as soon as its last clip has come back."""
    pending: dict[str, list[ClipWork]] = {}
    for work in works:
        parts = pending.setdefault(work.video.video_id, [])
        parts.append(work)
        if len(parts) >= work.count:
            yield assemble(pending.pop(work.video.video_id))


_DATA_CONTEXT = {
    "enable_progress_bars": False,  # the driver's own bar counts frames and videos
    "raise_original_map_exception": True,  # not Ray Data's UserCodeException around it
    "enable_fallback_to_arrow_object_ext_type": True,  # rows hold Python objects: said so, no warning
}


def build_dataset(tasks: list[VideoTask], workers: int, settings: RayConfig):
    """The lazy Ray Data pipeline over `tasks` (they share one config, output folder and clips option)."""
    import ray

    config, first = tasks[0].config, tasks[0]
    dataset = ray.data.from_items([{"task": t} for t in tasks], override_num_blocks=len(tasks))
    dataset = dataset.flat_map(analyse, compute=ray.data.TaskPoolStrategy(size=workers), num_cpus=1)
    if has_model_stage(config):
        dataset = dataset.map_batches(
            ModelStage,
            fn_constructor_kwargs={"config": config},
            batch_size=settings.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                size=settings.model_actors, max_tasks_in_flight_per_actor=settings.max_in_flight
            ),
            num_cpus=settings.cpus_per_actor,
            num_gpus=settings.gpus_per_actor,
        )
    if first.write_clips:
        dataset = dataset.map(
            write_clip,
            fn_kwargs={"out": first.out_dir, "config": config},
            compute=ray.data.TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
    return dataset


def run_ray(tasks: list[VideoTask], workers: int, settings: RayConfig | None = None) -> Iterator[VideoResult]:
    """Each video's result as it completes. `settings.address` joins a running cluster; none starts a local
    instance with `workers` CPUs (plus the model actors')."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "--engine ray needs the project's ray extra: run `make install` "
            "(or `pip install -e '.[ray]'` in the AniSora-open checkout)"
        ) from None
    if not tasks:
        return
    settings = settings or RayConfig()
    started = not ray.is_initialized()
    if started:
        if settings.address:
            options = {"address": settings.address}
        else:
            actors = settings.model_actors * settings.cpus_per_actor
            options = {"num_cpus": workers + (math.ceil(actors) if has_model_stage(tasks[0].config) else 0)}
        # log_to_driver: what workers print (tracebacks, warnings) shows in the driver's terminal
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=True, **options)
    # its one message would be that the bars are off, as chosen here
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    saved = {name: getattr(context, name) for name in _DATA_CONTEXT}
    for name, value in _DATA_CONTEXT.items():
        setattr(context, name, value)
    try:
        rows = build_dataset(tasks, workers, settings).iter_rows()
        yield from _gather(row["work"] for row in rows)
    except ray.exceptions.RayTaskError as exc:
        if not isinstance(exc.cause, Exception):
            raise
        raise exc.cause from exc  # the worker's own exception; the remote traceback stays chained (-v)
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        if started:  # leave no local Ray instance behind
            ray.shutdown()
