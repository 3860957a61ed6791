"""Where the per-video work runs locally: in this process or in N processes (Ray: ray_pipeline.py)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

import cv2

from .worker import VideoResult, VideoTask, process_video

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def one_thread_per_library() -> None:
    """N worker processes on N cores: OpenCV's own thread pool would only oversubscribe them."""
    cv2.setNumThreads(1)


def _start_worker(parent: int) -> None:
    one_thread_per_library()
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent was killed (kill -9 skips the pool's shutdown) must not go on decoding and
    writing for an hour: Linux kills it with the parent; elsewhere a thread watches the parent's pid."""
    if not (sys.platform.startswith("linux") and _linux_death_signal()):
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def _linux_death_signal() -> bool:
    """SIGKILL when the thread that started this process ends: the pool starts workers from the thread that
    submits and waits for the work, so that is when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def run_local(tasks: list[VideoTask], workers: int) -> Iterator[VideoResult]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield process_video(task)
        return
    # spawn, not fork: the parent may hold threads (ONNX Runtime, progress bar) that fork would copy broken
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    ) as pool:
        futures = [pool.submit(process_video, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
