"""`anisora curate run --workers N`: the pool's worker processes never outlive a parent killed by kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anisora.toonworld import plan_episode, write_episode

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")

# Loaded by every Python process of the run (parent and spawned workers): a worker that gets a video marks
# itself busy and then works on it "forever", like one on a very long video, so the test does not depend on
# how fast this machine decodes.
BUSY_HOOK = """
import os, pathlib, time
import anisora.curate.worker


def process_video(task):
    pathlib.Path(os.environ["ANISORA_TEST_BUSY"], str(os.getpid())).touch()
    time.sleep(3600)


anisora.curate.worker.process_video = process_video
"""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def _alive(pid: int, started: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == started  # field 19: start time


def _wait_for(condition, seconds: float, what: str) -> None:
    """Poll `condition`; the bound is only a safety net for a hung run, not what the test measures."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    corpus = tmp_path / "corpus"
    for seed in range(3):
        write_episode(plan_episode(seed, 0, 1, 64, 48), corpus)
    hook, busy = tmp_path / "hook", tmp_path / "busy"
    hook.mkdir()
    busy.mkdir()
    (hook / "sitecustomize.py").write_text(BUSY_HOOK, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
        "ANISORA_TEST_BUSY": str(busy),
    }
    command = [
        sys.executable,
        "-m",
        "anisora.cli",
        "curate",
        "run",
        str(corpus),
        "--out",
        str(tmp_path / "out"),
    ]
    parent = subprocess.Popen(
        [*command, "--workers", "2", "--quiet", "--no-clips"],
        env=env,
        start_new_session=True,  # its own process group: cleaned up below whatever happens
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(
            lambda: len(list(busy.iterdir())) == 2 or parent.poll() is not None, 300, "workers never started"
        )
        assert parent.poll() is None, parent.stderr.read().decode()
        workers = {int(p.name): _stat(int(p.name)) for p in busy.iterdir()}
        assert all(fields is not None and int(fields[1]) == parent.pid for fields in workers.values())
        started = {pid: fields[19] for pid, fields in workers.items()}

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(
            lambda: not any(_alive(pid, start) for pid, start in started.items()),
            60,
            f"workers {sorted(started)} still run after their parent was killed",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
        parent.stderr.close()


# Where Linux's parent-death signal is not to be had, a thread in the worker watches the parent's pid.
WATCHED_CHILD = """
import os, time
from anisora.curate import runners

runners._linux_death_signal = lambda: False  # as on a platform without prctl
runners._exit_with_parent(os.getppid())
print(os.getpid(), flush=True)
time.sleep(3600)
"""
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
time.sleep(3600)
"""


def test_the_parent_watch_ends_an_orphan_without_prctl():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, WATCHED_CHILD], start_new_session=True, stdout=subprocess.PIPE
    )
    try:
        child = int(parent.stdout.readline())  # the child is watching by now
        started = _stat(child)[19]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not _alive(child, started), 60, f"the orphan {child} still runs")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
