"""anisora.studio.db and anisora.studio.jobs: models, URLs, the job status machine, stale jobs and the attempt
limit, one active job per shot, persistence, and exactly-once claiming by several processes on one SQLite
file."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from anisora.errors import InputError
from anisora.studio import jobs
from anisora.studio.db import (
    ACTIVE_STATUSES,
    ONE_ACTIVE_JOB,
    Character,
    Database,
    DialogueLine,
    Episode,
    Job,
    Shot,
    engine_options,
    episode_shots,
    open_db,
    shot_lines,
    utcnow,
)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/data/studio.sqlite"


@pytest.fixture
def db(url):
    database = open_db(url)
    yield database
    database.close()


def new_shot(db: Database, position: int = 0) -> int:
    with db.session() as s:
        episode = Episode(title="ep")
        s.add(episode)
        s.flush()
        shot = Shot(episode_id=episode.id, position=position, panel="panel.png", prompt="she waves")
        s.add(shot)
        s.flush()
        return shot.id


def row(db: Database, job_id: int) -> Job:
    with db.session(write=False) as s:
        return s.get(Job, job_id)


# --- models and URLs ---


def test_models_round_trip_and_ordering(db, url):
    with db.session() as s:
        hero = Character(name="小明", engine="espeak-ng", voice="cmn", speed=1.2, pitch=0.9)
        episode = Episode(title="第一集")
        s.add_all([hero, episode])
        s.flush()
        # shots and lines are added out of order; ties in position keep creation order
        for position, prompt in [(2, "c"), (0, "a"), (1, "b1"), (1, "b2")]:
            s.add(Shot(episode_id=episode.id, position=position, panel=f"{prompt}.png", prompt=prompt))
        s.flush()
        first = episode_shots(s, episode.id)[0]
        first.presets = ["wind", "blink"]
        for position, line in [(1, "再见"), (0, "你好")]:
            s.add(
                DialogueLine(
                    shot_id=first.id, position=position, character_id=hero.id, text=line, emotion="happy"
                )
            )
        episode_id, hero_id = episode.id, hero.id

    reopened = open_db(url)
    with reopened.session(write=False) as s:
        shots = episode_shots(s, episode_id)
        assert [shot.prompt for shot in shots] == ["a", "b1", "b2", "c"]
        assert [shot.prompt for shot in s.get(Episode, episode_id).shots] == ["a", "b1", "b2", "c"]
        assert shots[0].presets == ["wind", "blink"] and shots[1].presets == []
        assert shots[0].seconds is None and shots[0].mask is None and shots[0].seed == 0
        lines = shot_lines(s, shots[0].id)
        assert [line.text for line in lines] == ["你好", "再见"]
        assert [line.text for line in shots[0].lines] == ["你好", "再见"]
        assert lines[0].character.name == "小明"
        hero = s.get(Character, hero_id)
        assert hero.created.tzinfo is not None and hero.created.utcoffset() == timedelta(0)
        payload = {
            "character": hero.to_dict(),
            "shot": shots[0].to_dict(),
            "line": lines[0].to_dict(),
            "episode": s.get(Episode, episode_id).to_dict(),
        }
    reopened.close()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["character"] == {
        "id": hero_id,
        "name": "小明",
        "engine": "espeak-ng",
        "voice": "cmn",
        "speed": 1.2,
        "pitch": 0.9,
        "created": payload["character"]["created"],
    }
    assert datetime.fromisoformat(payload["shot"]["created"]).utcoffset() == timedelta(0)
    assert payload["shot"]["presets"] == ["wind", "blink"]


def test_datetimes_are_utc_and_naive_ones_are_refused(db):
    job_id = jobs.enqueue(db, new_shot(db))
    tokyo = datetime(2025, 1, 2, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    with db.session() as s:
        s.get(Job, job_id).heartbeat = tokyo
    assert row(db, job_id).heartbeat == datetime(2025, 1, 2, 0, 0, tzinfo=timezone.utc)
    with pytest.raises(Exception, match="naive datetime"), db.session() as s:
        s.get(Job, job_id).heartbeat = datetime(2025, 1, 2)
        s.flush()


def test_session_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Episode(title="lost"))
        s.flush()
        raise RuntimeError("boom")
    with db.session(write=False) as s:
        assert s.query(Episode).count() == 0


def test_sqlite_settings_and_created_folder(db, tmp_path):
    assert (tmp_path / "data" / "studio.sqlite").is_file()
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with pytest.raises(InputError, match="shot 999 does not exist"):
        jobs.enqueue(db, 999)


def test_in_memory_database_is_one_database():
    memory = open_db("sqlite://")
    job_id = jobs.enqueue(memory, new_shot(memory))
    assert jobs.job_view(memory, job_id)["status"] == "queued"
    memory.close()


def test_database_urls(tmp_path):
    parsed, options = engine_options("postgresql://studio:secret@db.example:5432/anisora")
    assert parsed.get_dialect().name == "postgresql" and options == {"pool_pre_ping": True}
    parsed, _ = engine_options("postgres://studio:secret@db.example/anisora")
    assert parsed.drivername == "postgresql"
    parsed, _ = engine_options("postgres+psycopg://db.example/anisora")
    assert parsed.drivername == "postgresql+psycopg"
    # on PostgreSQL the claim skips rows another claimer has locked
    sql = str(jobs.claim_query().compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE SKIP LOCKED" in sql and "LIMIT" in sql
    with pytest.raises(InputError, match="not a database URL"):
        open_db(str(tmp_path / "studio.sqlite"))
    with pytest.raises(InputError, match="unsupported database 'mysql'"):
        open_db("mysql://localhost/anisora")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="pip install psycopg"):
            open_db("postgresql://localhost/anisora")


# --- the status machine ---

STATES = ("queued", "running", "running+pause", "running+cancel", "paused", "done", "failed", "cancelled")


def job_in(state: str) -> tuple[Database, int]:
    """A job brought to `state` through the public API, alone in a new in-memory database."""
    db = open_db("sqlite://")
    job_id = jobs.enqueue(db, new_shot(db))
    if state == "queued":
        return db, job_id
    if state == "paused":
        jobs.pause(db, job_id)
        return db, job_id
    if state == "cancelled":
        jobs.cancel(db, job_id)
        return db, job_id
    assert jobs.claim(db, "w") == job_id
    if state == "done":
        assert jobs.finish(db, job_id, "w", {"video": "v.mp4"})
    elif state == "failed":
        assert jobs.fail(db, job_id, "w", "out of memory")
    elif state == "running+pause":
        jobs.pause(db, job_id)
    elif state == "running+cancel":
        jobs.cancel(db, job_id)
    return db, job_id


# (state, action) -> (status, control) after it; missing pairs are refused
ALLOWED = {
    ("queued", "pause"): ("paused", None),
    ("queued", "cancel"): ("cancelled", None),
    ("running", "pause"): ("running", "pause"),
    ("running", "cancel"): ("running", "cancel"),
    ("running+pause", "pause"): ("running", "pause"),
    ("running+pause", "resume"): ("running", None),
    ("running+pause", "cancel"): ("running", "cancel"),
    ("running+cancel", "cancel"): ("running", "cancel"),
    ("paused", "resume"): ("queued", None),
    ("paused", "cancel"): ("cancelled", None),
    ("failed", "retry"): ("queued", None),
    ("cancelled", "retry"): ("queued", None),
}


@pytest.mark.parametrize("action", ["pause", "resume", "cancel", "retry"])
@pytest.mark.parametrize("state", STATES)
def test_transition(state, action):
    db, job_id = job_in(state)
    before = jobs.job_view(db, job_id)
    if (state, action) in ALLOWED:
        view = getattr(jobs, action)(db, job_id)
        assert (view["status"], view["control"]) == ALLOWED[state, action]
        assert view == jobs.job_view(db, job_id)
    else:
        with pytest.raises(InputError, match=f"^job {job_id} is "):
            getattr(jobs, action)(db, job_id)
        assert jobs.job_view(db, job_id) == before  # a refused action changes nothing
    with pytest.raises(jobs.JobNotFound, match="job 12345 does not exist"):
        getattr(jobs, action)(db, 12345)
    db.close()


def test_refusal_messages():
    db, done = job_in("done")
    with pytest.raises(InputError) as err:
        jobs.retry(db, done)
    assert str(err.value) == f"job {done} is done; only failed or cancelled jobs can be retried"
    with pytest.raises(InputError, match="is done; only queued, paused or running jobs can be cancelled"):
        jobs.cancel(db, done)
    with pytest.raises(InputError, match="is done; only queued or running jobs can be paused"):
        jobs.pause(db, done)
    with pytest.raises(InputError, match="is done; only paused jobs can be resumed"):
        jobs.resume(db, done)
    db.close()
    db, cancelling = job_in("running+cancel")
    with pytest.raises(InputError, match="is being cancelled; it cannot be paused"):
        jobs.pause(db, cancelling)
    db.close()


def test_worker_life_cycle(db):
    first, second = jobs.enqueue(db, new_shot(db)), jobs.enqueue(db, new_shot(db))
    jobs.pause(db, first)
    assert jobs.claim(db, "w1") == second  # the oldest *queued* job
    assert jobs.claim(db, "w2") is None
    view = jobs.job_view(db, second)
    assert (view["status"], view["worker"], view["attempts"]) == ("running", "w1", 1)
    assert view["heartbeat"] is not None

    assert jobs.report(db, second, "w1", 0.25, "part 1/2")
    assert jobs.report(db, second, "w1", 7.0, "x" * 500)
    view = jobs.job_view(db, second)
    assert view["progress"] == 1.0 and len(view["stage"]) == 200  # clamped and cut
    assert jobs.report(db, second, "w1", float("nan"), "part 2/2")
    assert jobs.job_view(db, second)["progress"] == 1.0
    assert not jobs.report(db, second, "w2", 0.5, "not mine")

    # pause while running: the worker is told to stop, then releases the job
    jobs.pause(db, second)
    assert jobs.job_view(db, second)["status"] == "running"
    assert not jobs.report(db, second, "w1", 0.5, "part 2/2")
    assert not jobs.release(db, second, "w2")
    assert jobs.release(db, second, "w1")
    view = jobs.job_view(db, second)
    assert (view["status"], view["control"], view["worker"]) == ("paused", None, None)
    assert not jobs.finish(db, second, "w1", {"late": True})  # released: no longer w1's

    # resume: back in the queue, claimed again, then cancelled while running; a job handed back in good
    # order has not lost an attempt, so this claim is still its first
    jobs.resume(db, second)
    jobs.resume(db, first)
    assert jobs.claim(db, "w2") == first
    assert jobs.claim(db, "w2") == second
    assert jobs.job_view(db, second)["attempts"] == 1
    assert jobs.job_view(db, second)["progress"] == 0.0
    jobs.cancel(db, second)
    assert not jobs.report(db, second, "w2", 0.1, "dubbing")
    assert jobs.release(db, second, "w2")
    assert jobs.job_view(db, second)["status"] == "cancelled"

    # the other job fails, is retried from scratch and finishes
    assert jobs.fail(db, first, "w2", "panel.png: not an image")
    view = jobs.job_view(db, first)
    assert (view["status"], view["error"]) == ("failed", "panel.png: not an image")
    view = jobs.retry(db, first)
    assert (view["status"], view["error"], view["progress"], view["worker"]) == ("queued", None, 0.0, None)
    assert jobs.claim(db, "w3") == first
    assert jobs.finish(db, first, "w3", {"video": "results/shot1/job1/shot.mp4", "seconds": 4.1})
    view = jobs.job_view(db, first)
    assert (view["status"], view["progress"], view["attempts"]) == ("done", 1.0, 1)  # counted from the retry
    assert view["result"] == {"video": "results/shot1/job1/shot.mp4", "seconds": 4.1}
    assert not jobs.fail(db, first, "w3", "too late")
    assert not jobs.report(db, first, "w3", 1.0, "done")

    # a worker that shuts down hands its job back to the queue
    shot_id = new_shot(db)
    third = jobs.enqueue(db, shot_id)
    assert jobs.claim(db, "w4") == third
    assert jobs.release(db, third, "w4")
    assert jobs.job_view(db, third)["status"] == "queued"

    assert [j["id"] for j in jobs.list_jobs(db)] == [third, second, first]
    assert [j["id"] for j in jobs.list_jobs(db, status="cancelled")] == [second]
    assert [j["id"] for j in jobs.list_jobs(db, limit=1, shot_id=shot_id)] == [third]
    with pytest.raises(InputError, match="unknown job status 'lost'"):
        jobs.list_jobs(db, status="lost")


def test_stale_job_is_requeued_and_the_old_worker_ignored(db):
    stale, alive, stale_paused = (jobs.enqueue(db, new_shot(db)) for _ in range(3))
    assert jobs.claim(db, "old") == stale
    assert jobs.claim(db, "live") == alive
    assert jobs.claim(db, "old") == stale_paused
    jobs.pause(db, stale_paused)
    with db.session() as s:  # the old worker's last heartbeat was two minutes ago
        for job_id in (stale, stale_paused):
            s.get(Job, job_id).heartbeat = utcnow() - timedelta(minutes=2)

    assert jobs.requeue_stale(db, 60) == [stale, stale_paused]
    assert jobs.requeue_stale(db, 60) == []
    view = jobs.job_view(db, stale)
    assert (view["status"], view["worker"], view["progress"]) == ("queued", None, 0.0)
    assert jobs.job_view(db, stale_paused)["status"] == "paused"  # the pause asked for still holds
    assert jobs.job_view(db, alive)["status"] == "running"

    assert jobs.claim(db, "new") == stale
    # the old worker wakes up: everything it says about the job is ignored
    assert not jobs.report(db, stale, "old", 0.9, "part 2/2")
    assert not jobs.finish(db, stale, "old", {"video": "stale.mp4"})
    assert not jobs.fail(db, stale, "old", "late error")
    assert not jobs.release(db, stale, "old")
    view = jobs.job_view(db, stale)
    assert (view["status"], view["worker"], view["attempts"]) == ("running", "new", 2)
    assert jobs.finish(db, stale, "new", {"video": "fresh.mp4"})
    assert jobs.job_view(db, stale)["result"] == {"video": "fresh.mp4"}


def backdate_heartbeat(db: Database, job_id: int, seconds: float) -> None:
    """As if the job's worker had last beaten `seconds` ago."""
    with db.session() as s:
        s.get(Job, job_id).heartbeat = utcnow() - timedelta(seconds=seconds)


def test_a_job_lost_again_and_again_fails_with_the_reason(db):
    job_id = jobs.enqueue(db, new_shot(db))
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        assert jobs.claim(db, f"w{attempt}") == job_id
        backdate_heartbeat(db, job_id, 2 * jobs.STALE_S)
        assert jobs.requeue_stale(db, jobs.STALE_S) == [job_id]
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["attempts"], view["worker"]) == ("failed", jobs.MAX_ATTEMPTS, None)
    assert view["error"] == (
        f"gave up after {jobs.MAX_ATTEMPTS} attempts: its worker sent no heartbeat for {jobs.STALE_S:g} s"
    )
    assert jobs.claim(db, "w") is None  # the queue is free for other jobs
    jobs.retry(db, job_id)  # asked for again: a fresh set of attempts
    assert jobs.claim(db, "w") == job_id and jobs.job_view(db, job_id)["attempts"] == 1
    backdate_heartbeat(db, job_id, 2 * jobs.STALE_S)
    assert jobs.requeue_stale(db, jobs.STALE_S) == [job_id]
    assert jobs.job_view(db, job_id)["status"] == "queued"


def test_a_beat_keeps_a_job_from_going_stale(db):
    job_id = jobs.enqueue(db, new_shot(db))
    jobs.claim(db, "w")
    backdate_heartbeat(db, job_id, 2 * jobs.STALE_S)
    assert jobs.report(db, job_id, "w", 0.3, "generating part 1/1")
    assert jobs.beat(db, job_id, "w") and not jobs.beat(db, job_id, "other")
    assert jobs.requeue_stale(db, jobs.STALE_S) == []
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["progress"], view["stage"]) == ("running", 0.3, "generating part 1/1")


def test_the_database_keeps_one_active_job_per_shot(db):
    shot_id = new_shot(db)
    first = jobs.enqueue(db, shot_id)
    with pytest.raises(jobs.JobConflict, match=f"shot {shot_id} already has job {first} \\(queued\\)"):
        jobs.enqueue(db, shot_id)
    with pytest.raises(IntegrityError), db.session() as s:  # even past the check: the index refuses it
        s.add(Job(shot_id=shot_id, status="paused"))
        s.flush()
    jobs.cancel(db, first)
    second = jobs.enqueue(db, shot_id)  # a cancelled job is not active
    with pytest.raises(jobs.JobConflict, match=f"already has job {second}"):
        jobs.retry(db, first)
    assert jobs.job_view(db, first)["status"] == "cancelled"
    jobs.claim(db, "w")
    jobs.finish(db, second, "w", {})
    assert jobs.retry(db, first)["status"] == "queued"
    active = [j["id"] for j in jobs.list_jobs(db, shot_id=shot_id) if j["status"] in ACTIVE_STATUSES]
    assert active == [first]


def test_an_older_database_gets_the_one_active_job_index(url):
    db = open_db(url)
    shot_id = new_shot(db)
    with db.session() as s:  # as a database made before the index could hold them
        s.execute(text(f"DROP INDEX {ONE_ACTIVE_JOB.name}"))
        s.add_all([Job(shot_id=shot_id, status="running", worker="w"), Job(shot_id=shot_id, status="queued")])
    db.close()
    db = open_db(url)
    views = jobs.list_jobs(db, shot_id=shot_id)
    assert [(j["status"], j["worker"]) for j in views] == [("cancelled", None), ("running", "w")]
    with pytest.raises(jobs.JobConflict):
        jobs.enqueue(db, shot_id)
    db.close()


def test_jobs_of_dead_local_processes_are_requeued_at_once(db):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    host = socket.gethostname()
    owners = [f"{host}:{dead_pid}:7f00", f"{host}:{os.getpid()}:7f00", f"elsewhere:{dead_pid}:7f00", "w1"]
    ids = [jobs.enqueue(db, new_shot(db)) for _ in owners]
    for owner in owners:
        jobs.claim(db, owner)
    assert jobs.requeue_dead_local(db) == [ids[0]]  # not a live process, another host or a foreign id
    assert [jobs.job_view(db, i)["status"] for i in ids] == ["queued", "running", "running", "running"]
    assert jobs.requeue_dead_local(db, host="elsewhere") == [ids[2]]


def test_state_survives_a_restart_mid_job(url):
    first = open_db(url)
    shot_ids = [new_shot(first) for _ in range(3)]
    running, queued, failed = (jobs.enqueue(first, shot_id) for shot_id in shot_ids)
    assert jobs.claim(first, "server-1") == running
    assert jobs.report(first, running, "server-1", 0.4, "part 1/1")
    assert jobs.claim(first, "server-1") == queued  # then back to queued: release on shutdown
    assert jobs.release(first, queued, "server-1")
    assert jobs.claim(first, "server-1") == queued
    assert jobs.fail(first, queued, "server-1", "boom")
    jobs.cancel(first, failed)
    before = {j["id"]: j for j in jobs.list_jobs(first)}
    first.close()  # the server dies with `running` in progress

    second = open_db(url)
    assert {j["id"]: j for j in jobs.list_jobs(second)} == before
    with second.session(write=False) as s:
        assert s.get(Shot, shot_ids[0]).prompt == "she waves"
    assert jobs.requeue_stale(second, 0) == [running]
    assert jobs.claim(second, "server-2") == running
    assert jobs.job_view(second, running)["attempts"] == 2
    second.close()


# --- several processes, one SQLite file ---


def _claim_all(url: str, worker_id: str, start, results) -> None:
    db = open_db(url)
    start.wait()
    claimed = []
    while (job_id := jobs.claim(db, worker_id)) is not None:
        jobs.report(db, job_id, worker_id, 0.5, "working")
        jobs.finish(db, job_id, worker_id, {"by": worker_id})
        claimed.append(job_id)
    db.close()
    results.put((worker_id, claimed))


def test_every_job_is_claimed_exactly_once_by_four_processes(db, url):
    queued = [jobs.enqueue(db, new_shot(db)) for _ in range(40)]
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(url, f"w{i}", start, results)) for i in range(4)]
    for process in workers:
        process.start()
    claims = dict(results.get(timeout=60) for _ in workers)
    for process in workers:
        process.join(timeout=30)
        assert process.exitcode == 0
    every = [job_id for claimed in claims.values() for job_id in claimed]
    assert sorted(every) == queued  # each job once, none lost
    for worker_id, claimed in claims.items():
        for job_id in claimed:
            view = jobs.job_view(db, job_id)
            assert (view["status"], view["attempts"], view["worker"]) == ("done", 1, worker_id)
            assert view["result"] == {"by": worker_id}
