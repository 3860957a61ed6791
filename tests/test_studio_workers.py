"""Studio workers in numbers, on SQLite and on a real PostgreSQL server (tests/pg_server.py): model routing,
new columns added to an older database, exclusive claims by several processes, `anisora worker` processes
(one killed with SIGKILL mid-job: its job finishes once, on another worker), `--devices` (one process per
device, a killed one restarted), and a load test: 200 jobs, 3 workers and a studio server killed and started
again, after which every job ended once, the SQLite file is intact, every file in the data folder belongs to
a job or a shot, and no worker's memory grew."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from anisora.cli import main
from anisora.errors import InputError
from anisora.media import probe
from anisora.studio import jobs, service
from anisora.studio.db import Database, Job, Shot, open_db
from anisora.studio.supervisor import supervise, worker_devices
from anisora.studio.worker import Worker, remove_abandoned_staging, served_model_name

HANG_S = 900  # a guard against a hang, never a speed check: the CI machine may be slow and busy
CLAIMED = re.compile(r"worker (\S+) claimed job (\d+)")
# each worker process on one core: several share the machine's few cores
WORKER_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# The model and the web app are imported where they are used: spawned processes import this module.


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from anisora.model.pipeline import AnisoraPipeline
    from anisora.model.presets import build_components

    root = tmp_path_factory.mktemp("model") / "tiny"
    AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(root)
    return root


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/studio.sqlite"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db(url):
    database = open_db(url)
    yield database
    database.close()


def png(seed: int = 0) -> bytes:
    pixels = (np.random.default_rng(seed).random((64, 96, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def new_shots(db: Database, data: Path, count: int) -> list[int]:
    """`count` two-second shots without dialogue (the cheapest job) of one panel, in a new episode."""
    panel = service.save_upload(data, png())
    episode = service.create_episode(db, "load")["id"]
    shot = service.ShotIn(panel=panel, seconds=2.0)
    return [service.create_shot(db, data, episode, shot)["id"] for _ in range(count)]


def bare_shots(db: Database, count: int) -> list[int]:
    """Shots whose panel is never read (for tests that only move jobs through the queue)."""
    episode = service.create_episode(db, "queue")["id"]
    with db.session() as s:
        rows = [Shot(episode_id=episode, position=i, panel="panel.png") for i in range(count)]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def views(db: Database, job_ids) -> list[dict]:
    return [jobs.job_view(db, job_id) for job_id in job_ids]


def wait_until(condition, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(poll)


def start_worker(url: str, data: Path, model: Path, log: Path, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "anisora.cli", "worker", "--db", url, "--data", str(data)]
    command += ["--model", str(model), *options]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=WORKER_ENV)


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(HANG_S)


def claims(*logs: Path) -> list[tuple[str, int]]:
    """(worker id, job id) for every claim the workers logged, in log order."""
    text = "".join(log.read_text(errors="replace") for log in logs)
    return [(worker, int(job_id)) for worker, job_id in CLAIMED.findall(text)]


def worker_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:cpu"


def check_data_folder(db: Database, data: Path) -> None:
    """Every file under `data` is the database, an upload a shot uses, or a file of a finished job's
    result, and whole; nothing is left half-written (staging folders and temporary files). The shots are
    `new_shots`' (2 s, 17 frames)."""
    with db.session(write=False) as s:
        panels = {shot.panel for shot in s.query(Shot)}
        done = {job.id: job for job in s.query(Job).filter(Job.status == "done")}
    expected = {data / "uploads" / name for name in panels}
    for job in done.values():
        for stored in [job.result["video"], *job.result["parts"]]:
            expected |= {(data / stored).with_suffix(suffix) for suffix in (".mp4", ".wav", ".srt")}
    database = {"studio.sqlite", "studio.sqlite-wal", "studio.sqlite-shm"}
    found = {path for path in data.rglob("*") if path.is_file() and path.name not in database}
    assert not [path for path in data.rglob("*") if ".tmp" in path.name]
    assert found == expected
    for video in (path for path in found if path.suffix == ".mp4"):  # whole: readable to the last frame
        assert probe(video).frame_count == 17
    assert all(path.stat().st_size > 0 for path in found if path.suffix != ".srt")  # no dialogue: empty SRT


# --- the queue ---


def test_jobs_go_only_to_workers_serving_their_model(db):
    any_model = jobs.enqueue(db, bare_shots(db, 1)[0])
    for_tiny = jobs.enqueue(db, bare_shots(db, 1)[0], model="tiny")
    for_large = jobs.enqueue(db, bare_shots(db, 1)[0], model="large")
    assert [v["model"] for v in views(db, [any_model, for_tiny, for_large])] == [None, "tiny", "large"]
    assert jobs.claim(db, "w-large", "large") == any_model  # the oldest a worker can make
    assert jobs.claim(db, "w-large", "large") == for_large
    assert jobs.claim(db, "w-large", "large") is None
    assert jobs.claim(db, "w-any") is None  # a worker naming no model takes only jobs that name none
    assert jobs.claim(db, "w-tiny", "tiny") == for_tiny
    jobs.fail(db, for_tiny, "w-tiny", "boom")
    assert jobs.retry(db, for_tiny)["model"] == "tiny"  # a retried job keeps its model
    assert jobs.claim(db, "w-large", "large") is None
    for bad in ("", "../model", "a b", "x" * 101, "-x"):
        with pytest.raises(InputError, match="model name"):
            jobs.enqueue(db, bare_shots(db, 1)[0], model=bad)


def test_a_job_asks_for_its_model_through_the_api(tmp_path, live_server):
    from anisora.studio.app import create_app

    db = open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}")
    first, second, third = new_shots(db, tmp_path, 3)
    with live_server(create_app(db, tmp_path, reaper=False)) as base:

        def post(shot_id: int, body: dict | None) -> tuple[int, dict]:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(f"{base}/api/shots/{shot_id}/jobs", data=data, method="POST")
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        status, job = post(first, {"model": "tiny"})
        assert status == 201 and job["model"] == "tiny"
        status, job = post(second, None)  # the page sends no body: any worker
        assert status == 201 and job["model"] is None
        status, refusal = post(third, {"model": "../etc"})
        assert status == 400 and "model name" in refusal["detail"]
    db.close()


def test_a_worker_is_named_by_host_pid_and_device_and_serves_its_folder(tmp_path, model):
    db = open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}")
    first, second = Worker(db, tmp_path, str(model), device="cpu"), Worker(db, tmp_path, str(model))
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}:{os.getpid()}:cpu(#\d+)?", first.worker_id)
    assert second.worker_id != first.worker_id  # two workers of one process never share a name
    assert first.model_name == "tiny" and served_model_name(None) == "demo-model"
    assert Worker(db, tmp_path, str(model), model_name="v2").model_name == "v2"
    with pytest.raises(InputError, match="model name"):
        Worker(db, tmp_path, str(model), model_name="two words")
    with pytest.raises(InputError, match="device"):
        Worker(db, tmp_path, str(model), device="tpu:0")
    db.close()


def test_an_older_database_gets_the_new_columns(url):
    database = open_db(url)
    job_id = jobs.enqueue(database, bare_shots(database, 1)[0], model="tiny")
    with database.session() as s:  # as a studio made before jobs could ask for a model
        s.execute(text("ALTER TABLE job DROP COLUMN model"))
    database.close()
    database = open_db(url)
    assert jobs.job_view(database, job_id)["model"] is None
    assert jobs.claim(database, "w", "tiny") == job_id
    database.close()
    open_db(url).close()  # and opening it again changes nothing


def test_only_the_owner_publishes_and_abandoned_staging_is_removed(tmp_path):
    db = open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}")
    job_id = jobs.enqueue(db, bare_shots(db, 1)[0])
    jobs.claim(db, "lost")
    jobs.requeue_stale(db, 0)  # "lost" went silent; its job is taken back and claimed again
    jobs.claim(db, "owner")
    left = tmp_path / "results" / "shot1" / f".job{job_id}.0badc0de.tmp"  # "lost"'s unfinished files
    (left / "part1.mp4").parent.mkdir(parents=True)
    (left / "part1.mp4").write_bytes(b"half")
    published = []
    assert not jobs.finish(db, job_id, "lost", {}, publish=lambda: published.append("lost"))
    assert remove_abandoned_staging(db, tmp_path) == []  # its job runs: it may be the owner's
    with pytest.raises(OSError):
        jobs.finish(db, job_id, "owner", {}, publish=lambda: left.rename(tmp_path / "missing" / "x"))
    assert jobs.job_view(db, job_id)["status"] == "running"  # a publish that fails leaves the job as it was
    assert jobs.finish(db, job_id, "owner", {}, publish=lambda: published.append("owner"))
    assert published == ["owner"]
    assert remove_abandoned_staging(db, tmp_path) == [left] and not left.exists()
    db.close()


def _claim_all(url: str, name: str, start, results) -> None:
    db = open_db(url)
    start.wait()
    claimed = []
    while (job_id := jobs.claim(db, name)) is not None:
        assert jobs.report(db, job_id, name, 0.5, "working")
        assert jobs.finish(db, job_id, name, {"by": name})
        claimed.append(job_id)
    db.close()
    results.put((name, claimed))


def test_every_job_is_claimed_once_by_processes_racing_on_postgresql(postgres_url):
    url = postgres_url  # on SQLite: tests/test_studio_jobs.py
    db = open_db(url)
    queued = [jobs.enqueue(db, shot) for shot in bare_shots(db, 60)]
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(4), ctx.Queue()
    processes = [ctx.Process(target=_claim_all, args=(url, f"w{i}", start, results)) for i in range(4)]
    for process in processes:
        process.start()
    by_worker = dict(results.get(timeout=HANG_S) for _ in processes)
    for process in processes:
        process.join(HANG_S)
        assert process.exitcode == 0
    assert sorted(job for claimed in by_worker.values() for job in claimed) == queued
    for name, claimed in by_worker.items():
        for view in views(db, claimed):
            assert (view["status"], view["attempts"], view["worker"]) == ("done", 1, name)
            assert view["result"] == {"by": name}
    db.close()


# --- worker processes ---


def test_a_worker_killed_mid_job_loses_nothing(url, tmp_path, model):
    data = tmp_path / "data"
    db = open_db(url)
    shots = new_shots(db, data, 7)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    # the first worker samples 1000 steps a clip: it is still at its first job when it is killed
    victim = start_worker(url, data, model, logs[0], "--device", "cpu", "--steps", "1000")
    survivors = []
    try:
        first = jobs.enqueue(db, shots[0])

        def in_sampling() -> bool:
            view = jobs.job_view(db, first)
            return view["worker"] == worker_id(victim.pid) and view["stage"].startswith("generating")

        wait_until(in_sampling, "the first job sampling on the first worker")
        survivors = [
            start_worker(url, data, model, log, "--device", "cpu", "--steps", "1") for log in logs[1:]
        ]
        rest = [jobs.enqueue(db, shot) for shot in shots[1:]]
        victim.send_signal(signal.SIGKILL)
        victim.wait(HANG_S)
        everything = [first, *rest]
        wait_until(lambda: all(v["status"] == "done" for v in views(db, everything)), "every job done")
    finally:
        codes = [stop(process) for process in [victim, *survivors]]
    assert codes[1:] == [0, 0]  # SIGTERM: the survivors stop cleanly
    survivor_ids = {worker_id(process.pid) for process in survivors}
    first_view = jobs.job_view(db, first)
    assert first_view["attempts"] == 2 and first_view["worker"] in survivor_ids
    assert all(view["attempts"] == 1 and view["worker"] in survivor_ids for view in views(db, rest))
    claimed = claims(*logs)
    assert claimed.count((worker_id(victim.pid), first)) == 1
    assert Counter(job for _, job in claimed) == Counter({first: 2, **{job: 1 for job in rest}})
    assert (first_view["worker"], first) in claimed  # finished by the worker that claimed it again
    check_data_folder(db, data)
    db.close()


def test_devices_all_is_one_worker_per_gpu_or_one_on_cpu():
    import torch

    gpus = torch.cuda.device_count()
    assert worker_devices("all") == ([f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu"])
    assert worker_devices("cpu, cpu") == ["cpu", "cpu"]
    with pytest.raises(InputError, match="--devices"):
        worker_devices("cpu,,cuda:0")


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """`anisora worker` run in this process installs its stop handlers here: put pytest's back after."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def test_a_worker_stops_cleanly_when_asked_while_it_is_still_loading(tmp_path, monkeypatch):
    """The stop handlers come before torch and the model load (seconds on a busy machine): a SIGTERM then
    must not kill the worker (exit -15, as it did in a loaded test run)."""
    import anisora.model.loading as loading

    seen = []

    def loading_now(load):
        seen.append(signal.getsignal(signal.SIGTERM))
        raise InputError("stop here")

    monkeypatch.setattr(loading, "check_load", loading_now)
    url = f"sqlite:///{tmp_path / 'studio.sqlite'}"
    assert main(["worker", "--db", url, "--data", str(tmp_path), "--device", "cpu"]) == 2
    assert len(seen) == 1 and seen[0] not in (signal.SIG_DFL, signal.SIG_IGN, None)


def test_a_worker_for_a_missing_device_or_folder_says_so_in_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'studio.sqlite'}"
    assert main(["worker", "--db", url, "--data", str(tmp_path / "nowhere")]) == 2
    assert "data folder" in capsys.readouterr().err
    assert main(["worker", "--db", url, "--data", str(tmp_path), "--devices", "cpu,tpu:3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "device 'tpu:3'" in err


def test_a_worker_for_a_folder_that_is_no_model_says_so_before_starting(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'studio.sqlite'}"
    command = ["worker", "--db", url, "--data", str(tmp_path), "--devices", "cpu,cpu"]
    assert main([*command, "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a diffusers model directory" in err


def test_a_worker_refusing_its_input_stops_the_others(tmp_path):
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    waits = (
        "import pathlib, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: sys.exit(pathlib.Path({str(stopped)!r}).touch()))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(600)\n"
    )
    refuses = (
        "import pathlib, sys, time\n"
        f"while not pathlib.Path({str(ready)!r}).exists(): time.sleep(0.01)\n"
        "sys.exit(2)\n"
    )
    commands = [[sys.executable, "-c", waits], [sys.executable, "-c", refuses]]
    assert supervise(commands, threading.Event(), poll=0.05) == 2
    assert stopped.exists()  # the other worker was asked to stop (SIGTERM)


def test_a_database_error_does_not_end_a_worker(tmp_path, model, monkeypatch):
    worker = Worker(open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}"), tmp_path, str(model), device="cpu")
    stop, calls = threading.Event(), []

    def claim_while_the_database_restarts(*args) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        stop.set()

    monkeypatch.setattr(jobs, "claim", claim_while_the_database_restarts)
    worker.run_forever(stop, poll=0.01)
    assert len(calls) == 2  # it went on after the error


def test_devices_start_one_process_each_and_restart_a_killed_one(tmp_path, model):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'studio.sqlite'}"
    open_db(url).close()
    log = tmp_path / "workers.log"
    supervisor = start_worker(url, data, model, log, "--devices", "cpu,cpu", "--steps", "1")
    try:
        parent = psutil.Process(supervisor.pid)
        wait_until(lambda: len(parent.children()) == 2, "two worker processes")
        first, second = parent.children()
        wait_until(lambda: "serves model tiny" in log.read_text(), "a worker ready")
        first.kill()
        wait_until(lambda: {p.pid for p in parent.children()} - {first.pid, second.pid}, "a new worker")
        assert len(parent.children()) == 2 and second.is_running()
    finally:
        assert stop(supervisor) == 0
    assert not psutil.pid_exists(second.pid)


# --- load ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_studio(data: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "anisora.cli", "studio", "--data", str(data), "--port", str(port)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            [*command, "--workers", "0"], stdout=out, stderr=subprocess.STDOUT, env=WORKER_ENV
        )

    def answers() -> bool:
        assert server.poll() is None, log.read_text()
        try:
            api(f"http://127.0.0.1:{port}", "GET", "/api/episodes")
            return True
        except OSError:
            return False

    wait_until(answers, "the studio answering")
    return server


def queue_shots(base: str, panel: str, count: int) -> list[int]:
    episode = api(base, "POST", "/api/episodes", {"title": "load"})["id"]
    job_ids = []
    for _ in range(count):
        shot = api(base, "POST", f"/api/episodes/{episode}/shots", {"panel": panel, "seconds": 2.0})
        job_ids.append(api(base, "POST", f"/api/shots/{shot['id']}/jobs")["id"])
    return job_ids


def test_200_jobs_3_workers_and_a_restarted_server(tmp_path, model):
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'studio.sqlite'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log, workers_log = tmp_path / "studio.log", tmp_path / "workers.log"
    server = start_studio(data, port, server_log)
    db = open_db(url)
    panel = service.save_upload(data, png())
    supervisor = start_worker(url, data, model, workers_log, "--devices", "cpu,cpu,cpu", "--steps", "1")
    started = time.monotonic()
    try:
        job_ids = queue_shots(base, panel, 100)

        def done() -> int:
            return len(jobs.list_jobs(db, status="done", limit=1000))

        wait_until(lambda: done() >= 20, "20 jobs done")
        workers = psutil.Process(supervisor.pid).children()
        assert len(workers) == 3
        rss_at_20 = [process.memory_info().rss for process in workers]
        wait_until(lambda: done() >= 50, "50 jobs done")
        server.send_signal(signal.SIGKILL)  # the server dies under load and is started again
        server.wait(HANG_S)
        server = start_studio(data, port, server_log)
        job_ids += queue_shots(base, panel, 100)
        wait_until(lambda: done() == 200, "200 jobs done", poll=0.05)
        rss_at_200 = [process.memory_info().rss for process in workers]
        seconds = time.monotonic() - started
        assert psutil.Process(supervisor.pid).children() == workers  # none died and was restarted
    finally:
        stop(server)
        assert stop(supervisor) == 0
    growth = [after / before - 1 for before, after in zip(rss_at_20, rss_at_200, strict=True)]
    print(
        f"\n200 jobs, 3 workers: {seconds:.0f} s; worker RSS at job 20 "
        f"{[round(r / 2**20) for r in rss_at_20]} MiB, at job 200 {[round(r / 2**20) for r in rss_at_200]}"
        f" MiB (growth {', '.join(f'{g:+.1%}' for g in growth)})"
    )
    assert max(growth) <= 0.10
    final = views(db, job_ids)
    assert all((view["status"], view["attempts"]) == ("done", 1) for view in final)
    assert Counter(job for _, job in claims(workers_log)) == Counter(job_ids)  # each claimed exactly once
    assert {view["worker"] for view in final} == {worker_id(process.pid) for process in workers}
    check_data_folder(db, data)
    assert remove_abandoned_staging(db, data) == []
    db.close()
    with sqlite3.connect(data / "studio.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
