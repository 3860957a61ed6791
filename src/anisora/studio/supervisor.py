"""`anisora worker --devices ...`: one worker process per device, kept running.

Each device gets its own `anisora worker --device DEVICE` process (its own CUDA context and model copy). A
worker that dies (killed, out of memory) is started again after `RESTART_S`; one that refused its input (exit
status 2: a bad URL, model or device) stops them all, as every restart would fail the same way. On SIGTERM or
SIGINT every worker is asked to stop (SIGTERM): each hands its running job back to the queue.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

from ..errors import InputError

RESTART_S = 5.0
log = logging.getLogger(__name__)
USAGE_ERROR = 2  # the exit status of `anisora` for bad input


def worker_devices(spec: str) -> list[str]:
    """The devices `--devices` names: "all" is one per visible GPU (one cpu worker where there is none);
    else a comma-separated list, in which a device may repeat ("cpu,cpu": two CPU workers)."""
    import torch

    if spec.strip() == "all":
        count = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(count)] if count else ["cpu"]
    devices = [part.strip() for part in spec.split(",")]
    if not all(devices):
        raise InputError(f"--devices {spec!r}: name devices separated by commas (cuda:0,cuda:1) or 'all'")
    return devices


def on_stop_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` (from the main thread only, as Python delivers signals there)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())


def supervise(commands: Sequence[Sequence[str]], stop: threading.Event, poll: float = 0.5) -> int:
    """Run one process per command until `stop` is set; restart one that dies. Returns 0 once stopped, or
    USAGE_ERROR when a worker refused its input."""
    processes = [subprocess.Popen(command) for command in commands]
    restart_at: dict[int, float] = {}
    status = 0
    while not stop.wait(poll):
        for i, process in enumerate(processes):
            code = process.poll()
            if code is None:
                continue
            if code == USAGE_ERROR:
                status = USAGE_ERROR
                stop.set()
            elif i not in restart_at:
                log.warning("worker process %s ended (%s); restarting it", process.pid, _how(code))
                restart_at[i] = time.monotonic() + RESTART_S
            elif time.monotonic() >= restart_at[i]:
                del restart_at[i]
                processes[i] = subprocess.Popen(commands[i])
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        process.wait()
    return status


def _how(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit status {code}"
