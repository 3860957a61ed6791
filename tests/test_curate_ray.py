"""`anisora curate run --engine ray` on a local Ray instance (each run starts and stops its own): the same
outputs as the local engine, model scorers in an actor pool loaded once per actor, and errors that reach
the user. The two-node cluster: test_curate_ray_cluster.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from anisora.curate.config import load_config
from anisora.curate.pipeline import run_curate
from anisora.curate.ray_pipeline import has_model_stage
from curate_ray_helpers import corpus, loads, outputs, ray_environment


@pytest.fixture
def ray_env(tmp_path, monkeypatch):
    environment = ray_environment(monkeypatch, tmp_path / "hook")
    yield
    environment.clean()


def _both(inputs: list[str], tmp_path, config, write_clips: bool = False):
    """The outputs of the local engine (one process) and of the Ray engine (two CPU tasks)."""
    run_curate(inputs, tmp_path / "local", config, workers=1, write_clips=write_clips, progress=False)
    run_curate(
        inputs, tmp_path / "ray", config, workers=2, engine="ray", write_clips=write_clips, progress=False
    )
    return outputs(tmp_path / "local"), outputs(tmp_path / "ray")


def test_ray_writes_what_the_local_engine_writes(ray_env, tmp_path):
    inputs = [str(corpus(tmp_path / "corpus", range(300, 303)))]
    config = load_config()
    assert not has_model_stage(config)  # the defaults: CPU stage and clip stage only
    local, ray = _both(inputs, tmp_path, config, write_clips=True)
    manifest, failures, clips = local
    assert manifest and clips and [f["source"] for f in failures] == ["../corpus/broken.mp4"]
    assert ray == local


def test_a_model_scorer_is_loaded_once_per_actor(ray_env, tmp_path):
    log = tmp_path / "loads"
    log.mkdir()
    inputs = [str(corpus(tmp_path / "corpus", range(310, 314)))]
    config = load_config(
        None,
        {
            "scorers": {"motion": {}, "quality": {}, "counting": {"log": str(log)}},
            "ray": {"model_actors": 2, "batch_size": 2, "cpus_per_actor": 0.5},
        },
    )
    assert has_model_stage(config)
    local, ray = _both(inputs, tmp_path, config)
    assert ray == local
    manifest = ray[0]
    scored = [r for r in manifest if r["counting_frames"] is not None]
    assert len(scored) > 2 and any(r["caption"] for r in manifest)  # more clips than actors; captions made
    processes = [pid for pid, _ in loads(log)]
    assert len(processes) == 1 + 2  # the local run's process once, then each of the two actors once
    assert len(set(processes)) == 3


def test_a_model_that_cannot_load_fails_every_video_with_its_reason(ray_env, tmp_path):
    inputs = [str(corpus(tmp_path / "corpus", range(320, 322)))]
    config = load_config(None, {"scorers": {"counting": {"unloadable": True}}})
    local, ray = _both(inputs, tmp_path, config)
    assert ray == local
    broken, *videos = ray[1]
    assert broken["source"] == "../corpus/broken.mp4" and len(videos) == 2
    assert all("cannot load the model (on purpose)" in f["error"] for f in videos)


def test_an_unexpected_worker_error_stops_the_run_and_reaches_the_user(ray_env, tmp_path):
    """As a user sees it: the command's one-line error names the worker's exception, and the worker's
    traceback is in the terminal above it."""
    inputs = [str(corpus(tmp_path / "corpus", range(330, 332)))]
    command = [sys.executable, "-m", "anisora.cli", "curate", "run", *inputs, "--out", str(tmp_path / "out")]
    command += ["--engine", "ray", "--workers", "2", "--quiet"]
    command += ["--set", f"scorers.counting.log={tmp_path}", "--set", "scorers.counting.crash_on=s331"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    message = "RuntimeError: counting scorer crashed on toon_s331_e0000.mp4"
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == f"anisora: error: {message} (-v shows the traceback)"
    assert 'curate_ray_helpers.py", line' in run.stderr and message in run.stderr


def _recorded(state) -> int:
    """Videos the run has recorded so far."""
    try:
        with sqlite3.connect(state, timeout=0.1) as db:
            return db.execute("SELECT count(*) FROM videos").fetchone()[0]
    except sqlite3.Error:  # not created yet, or being written
        return 0


def test_a_killed_ray_run_resumes(ray_env, tmp_path):
    """kill -9 of the command once it has recorded a video; the same command again completes the run, with
    the local engine's outputs."""
    inputs = [str(corpus(tmp_path / "corpus", range(340, 344), seconds=12))]
    run_curate(inputs, tmp_path / "local", load_config(), progress=False)
    command = [sys.executable, "-m", "anisora.cli", "curate", "run", *inputs, "--out", str(tmp_path / "ray")]
    command += ["--engine", "ray", "--workers", "2", "--quiet"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # a guard against a hang, not a speed check
    while _recorded(tmp_path / "ray" / "state.sqlite") < 2:  # broken.mp4 and a video
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert _recorded(tmp_path / "ray" / "state.sqlite") < 5  # killed with videos to do

    assert subprocess.run(command, capture_output=True).returncode == 1  # 1: broken.mp4 failed
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
