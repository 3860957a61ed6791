"""Where the per-video work runs: in this process, in N local processes, or on Ray Data."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

import cv2

from ..errors import InputError
from .worker import VideoResult, VideoTask, process_video


def _one_thread_per_library() -> None:
    """N worker processes on N cores: OpenCV's own thread pool would only oversubscribe them."""
    cv2.setNumThreads(1)


def run_local(tasks: list[VideoTask], workers: int) -> Iterator[VideoResult]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield process_video(task)
        return
    # spawn, not fork: the parent may hold threads (ONNX Runtime, progress bar) that fork would copy broken
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_one_thread_per_library
    ) as pool:
        futures = [pool.submit(process_video, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()


def _process_row(row: dict) -> dict:
    _one_thread_per_library()
    return {"result": process_video(row["task"])}


def run_ray(tasks: list[VideoTask], workers: int, address: str | None = None) -> Iterator[VideoResult]:
    """The same per-video work as Ray Data map tasks; `address` joins a running cluster ("auto" or
    "ray://host:10001"), none starts a local instance with `workers` CPUs."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs the ray extra: pip install 'anisora[ray]'") from None
    started = not ray.is_initialized()
    if started:
        options = {"address": address} if address else {"num_cpus": max(1, workers)}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **options)
    try:
        if tasks:
            dataset = ray.data.from_items([{"task": task} for task in tasks]).map(
                _process_row, num_cpus=1, concurrency=max(1, workers)
            )
            for row in dataset.iter_rows():
                yield row["result"]
    finally:
        if started:  # leave no local Ray instance behind
            ray.shutdown()
