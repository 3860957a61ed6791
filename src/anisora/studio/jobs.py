"""The persistent job queue: one row per job in the studio database, shared by the server and its workers.

Status machine::

    queued --claim--> running --finish--> done
                              --fail----> failed
                              --release-> paused / cancelled (as asked) / queued (worker shutting down)
    queued --pause--> paused --resume--> queued
    queued / paused --cancel--> cancelled
    failed / cancelled --retry--> queued

A running job cannot be stopped from outside: pause / cancel set `control`, the worker's next `report` answers
False, the worker stops and calls `release`, which settles the job. A worker that stops beating (its process
or host died) is found by `requeue_stale` (or at once by `requeue_dead_local` when its process on this host
is gone; the server and every worker call both) and its job goes back to the queue; whatever that worker says
about the job afterwards is ignored, since the job is no longer its own. A job lost `MAX_ATTEMPTS` times
fails with the reason instead of going back again.
Claiming is atomic across processes and hosts: on SQLite every write transaction starts with BEGIN IMMEDIATE
(one writer at a time, see db.py); on PostgreSQL the claim takes the oldest queued row with SELECT ... FOR
UPDATE SKIP LOCKED. A shot has at most one active (queued, running or paused) job: the database enforces it
(db.ONE_ACTIVE_JOB), and enqueue and retry answer JobConflict.

A job may ask for a model by name (`enqueue(..., model=NAME)`); a worker claims only the jobs that ask for no
model or for the one it serves.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import InputError
from .db import ACTIVE_STATUSES, JOB_STATUSES, Database, Job, Shot, utcnow

log = logging.getLogger(__name__)

STALE_S = 60.0  # a running job whose worker has not beaten for this long is taken back
HEARTBEAT_S = 10.0  # how often a worker beats for its job, whatever stage it is in
MAX_ATTEMPTS = 3  # a job whose worker was lost this many times fails instead of going back to the queue
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a served model's name, as jobs ask for it

# What `release` and `requeue_stale` make of a running job, by the control that was asked for.
_SETTLED = {"pause": "paused", "cancel": "cancelled", None: "queued"}


class JobNotFound(InputError):
    """No job has this id."""


class JobConflict(InputError):
    """The shot already has an active job."""


def _job(session: Session, job_id: int) -> Job:
    # FOR UPDATE on PostgreSQL (a no-op on SQLite, whose write sessions already hold the lock)
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist")
    return job


def _owned(session: Session, job_id: int, worker_id: str) -> Job | None:
    """The job if `worker_id` is running it, else None (released, re-queued or claimed by another)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.status != "running" or job.worker != worker_id:
        return None
    return job


def _view(session: Session, job: Job) -> dict[str, Any]:
    session.flush()  # so `updated` is the new time
    return job.to_dict()


def _refuse(job: Job, allowed: str, action: str) -> InputError:
    return InputError(f"job {job.id} is {job.status}; only {allowed} jobs can be {action}")


def _check_no_active_job(session: Session, shot_id: int) -> None:
    """JobConflict when the shot has an active job (the index catches what this misses on PostgreSQL)."""
    stmt = select(Job).where(Job.shot_id == shot_id, Job.status.in_(ACTIVE_STATUSES)).limit(1)
    active = session.scalars(stmt).first()
    if active is not None:
        raise JobConflict(f"shot {shot_id} already has job {active.id} ({active.status})")


@contextmanager
def _one_active_job(db: Database) -> Iterator[Session]:
    """A write session for a job becoming active: a second active job of its shot (a race the check lost, on
    PostgreSQL) breaks the unique index, the only constraint such a write can break, and is a JobConflict."""
    try:
        with db.session() as s:
            yield s
    except IntegrityError:
        raise JobConflict("the shot already has an active job") from None


def check_model_name(name: str) -> str:
    """`name` if it can name a served model (letters, digits, ".", "_", "-"; at most 100), else InputError."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise InputError(
            f"model name {str(name)[:120]!r} is not valid: 1-100 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def enqueue(db: Database, shot_id: int, model: str | None = None) -> int:
    """Queue a generation of a shot, for any worker or only for those serving `model`; returns the job id.
    JobConflict when the shot has an active job."""
    if model is not None:
        check_model_name(model)
    with _one_active_job(db) as s:
        if s.get(Shot, shot_id) is None:
            raise InputError(f"shot {shot_id} does not exist")
        _check_no_active_job(s, shot_id)
        job = Job(shot_id=shot_id, status="queued", stage="queued", model=model)
        s.add(job)
        s.flush()
        return job.id


def claim_query(model: str | None = None) -> Select[tuple[Job]]:
    """The oldest queued job that asks for no model or for `model`, locked for this transaction; rows another
    claimer holds are skipped."""
    servable = Job.model.is_(None) if model is None else or_(Job.model.is_(None), Job.model == model)
    stmt = select(Job).where(Job.status == "queued", servable).order_by(Job.id).limit(1)
    return stmt.with_for_update(skip_locked=True)


def claim(db: Database, worker_id: str, model: str | None = None) -> int | None:
    """Take the oldest queued job `worker_id` can make, serving `model` (running, attempts + 1); None when
    there is none."""
    with db.session() as s:
        job = s.scalars(claim_query(model)).first()
        if job is None:
            return None
        job.status, job.worker, job.heartbeat = "running", worker_id, utcnow()
        job.attempts += 1
        job.progress, job.stage, job.control, job.error, job.result = 0.0, "claimed", None, None, None
        return job.id


def beat(db: Database, job_id: int, worker_id: str) -> bool:
    """A heartbeat alone, from the worker running the job; False when the job is no longer this worker's."""
    with db.session() as s:
        job = _owned(s, job_id, worker_id)
        if job is None:
            return False
        job.heartbeat = utcnow()
        return True


def report(db: Database, job_id: int, worker_id: str, progress: float, stage: str) -> bool:
    """Heartbeat and progress from the worker running the job. False means stop now: a pause or cancel was
    asked (then call `release`), or the job is no longer this worker's."""
    with db.session() as s:
        job = _owned(s, job_id, worker_id)
        if job is None:
            return False
        job.heartbeat = utcnow()
        if job.control is not None:
            return False
        if math.isfinite(progress):
            job.progress = min(max(float(progress), 0.0), 1.0)
        job.stage = stage[:200]
        return True


def release(db: Database, job_id: int, worker_id: str) -> bool:
    """The worker stopped the job: settle it as paused / cancelled as asked, else back to queued (the worker
    is shutting down). False (and nothing changed) when the job is no longer this worker's."""
    with db.session() as s:
        job = _owned(s, job_id, worker_id)
        if job is None:
            return False
        job.status = job.stage = _SETTLED[job.control]
        job.control = job.worker = job.heartbeat = None
        job.attempts = max(0, job.attempts - 1)  # handed back in good order: not an attempt lost
        return True


def finish(
    db: Database,
    job_id: int,
    worker_id: str,
    result: dict[str, Any],
    publish: Callable[[], None] | None = None,
) -> bool:
    """The job is done with `result` (JSON-ready); ignored (False) when the job is no longer this worker's.
    `publish` (putting the result's files in place) runs only for the job's owner, while the job's row is
    locked, so that only the owner publishes; if it raises, the job is left as it was."""
    with db.session() as s:
        job = _owned(s, job_id, worker_id)
        if job is None:
            return False
        if publish is not None:
            publish()
        job.status, job.progress, job.stage, job.result = "done", 1.0, "done", dict(result)
        job.control, job.heartbeat = None, utcnow()
        return True


def fail(db: Database, job_id: int, worker_id: str, error: str) -> bool:
    """The job failed with `error` (one line for the user); ignored (False) when no longer this worker's."""
    with db.session() as s:
        job = _owned(s, job_id, worker_id)
        if job is None:
            return False
        job.status, job.stage, job.error = "failed", "failed", str(error)
        job.control, job.heartbeat = None, utcnow()
        return True


def pause(db: Database, job_id: int) -> dict[str, Any]:
    """Pause a queued job now, or ask the worker to stop a running one. Returns the job's view."""
    with db.session() as s:
        job = _job(s, job_id)
        if job.status == "queued":
            job.status = job.stage = "paused"
        elif job.status == "running":
            if job.control == "cancel":
                raise InputError(f"job {job_id} is being cancelled; it cannot be paused")
            job.control = "pause"
        else:
            raise _refuse(job, "queued or running", "paused")
        return _view(s, job)


def resume(db: Database, job_id: int) -> dict[str, Any]:
    """Queue a paused job again (or withdraw a pause not yet acted on). Returns the job's view."""
    with db.session() as s:
        job = _job(s, job_id)
        if job.status == "paused":
            job.status = job.stage = "queued"
        elif job.status == "running" and job.control == "pause":
            job.control = None
        else:
            raise _refuse(job, "paused", "resumed")
        return _view(s, job)


def cancel(db: Database, job_id: int) -> dict[str, Any]:
    """Cancel a queued or paused job now, or ask the worker to stop a running one. Returns the job's view."""
    with db.session() as s:
        job = _job(s, job_id)
        if job.status in ("queued", "paused"):
            job.status = job.stage = "cancelled"
        elif job.status == "running":
            job.control = "cancel"
        else:
            raise _refuse(job, "queued, paused or running", "cancelled")
        return _view(s, job)


def retry(db: Database, job_id: int) -> dict[str, Any]:
    """Queue a failed or cancelled job again, from the start (with `MAX_ATTEMPTS` new attempts). Returns the
    job's view; JobConflict when its shot has another active job."""
    with _one_active_job(db) as s:
        job = _job(s, job_id)
        if job.status not in ("failed", "cancelled"):
            raise _refuse(job, "failed or cancelled", "retried")
        _check_no_active_job(s, job.shot_id)
        job.status = job.stage = "queued"
        job.progress, job.error, job.control, job.result, job.worker, job.heartbeat = (
            0.0,
            None,
            None,
            None,
            None,
            None,
        )
        job.attempts = 0
        return _view(s, job)


def _take_back(job: Job, why: str) -> None:
    """A running job whose worker is gone (`why`): back to the queue, to paused / cancelled when that was
    asked, or failed after `MAX_ATTEMPTS` attempts (a job that kills or stalls every worker must not hold the
    queue for good)."""
    job.status = _SETTLED[job.control]
    if job.status == "queued" and job.attempts >= MAX_ATTEMPTS:
        job.status, job.error = "failed", f"gave up after {job.attempts} attempts: {why}"
    job.stage = "re-queued (worker lost)" if job.status == "queued" else job.status
    job.progress, job.control, job.worker, job.heartbeat = 0.0, None, None, None


def requeue_stale(db: Database, older_than_s: float = STALE_S) -> list[int]:
    """Running jobs whose worker has not reported for `older_than_s` seconds go back to the queue (to paused /
    cancelled when that was asked; failed after `MAX_ATTEMPTS`). Call it at server start and periodically.
    Returns their ids."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with db.session() as s:
        stale = or_(Job.heartbeat.is_(None), Job.heartbeat < cutoff)
        # skip_locked: on PostgreSQL a row locked right now belongs to a worker that is alive and reporting
        stmt = (
            select(Job)
            .where(Job.status == "running", stale)
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        )
        moved = []
        for job in s.scalars(stmt):
            _take_back(job, f"its worker sent no heartbeat for {older_than_s:g} s")
            moved.append(job.id)
        return moved


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def requeue_dead_local(db: Database, host: str | None = None) -> list[int]:
    """Running jobs whose worker ran on this host (worker id "HOST:PID[:...]", as the studio worker names
    itself) in a process that no longer exists: taken back at once, without waiting for their heartbeat to
    go stale. Returns their ids. Workers on other hosts are left to `requeue_stale`."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return []
    prefix = f"{host or socket.gethostname()}:"
    with db.session() as s:
        stmt = select(Job).where(Job.status == "running", Job.worker.startswith(prefix, autoescape=True))
        moved = []
        for job in s.scalars(stmt.order_by(Job.id).with_for_update(skip_locked=True)):
            pid = job.worker[len(prefix) :].split(":")[0]
            if pid.isdigit() and not _process_exists(int(pid)):
                _take_back(job, "its worker process died")
                moved.append(job.id)
        return moved


def job_view(db: Database, job_id: int) -> dict[str, Any]:
    """The job as a JSON-ready dict (every column; datetimes ISO 8601 UTC). JobNotFound for an unknown id."""
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} does not exist")
        return job.to_dict()


def list_jobs(
    db: Database, status: str | None = None, limit: int = 100, shot_id: int | None = None
) -> list[dict[str, Any]]:
    """Jobs newest first, optionally of one status and/or one shot."""
    if status is not None and status not in JOB_STATUSES:
        raise InputError(f"unknown job status {status!r}; one of {', '.join(JOB_STATUSES)}")
    if limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if shot_id is not None:
        stmt = stmt.where(Job.shot_id == shot_id)
    with db.session(write=False) as s:
        return [job.to_dict() for job in s.scalars(stmt)]


@contextmanager
def repeating(every: float, beat: Callable[[], bool | None], what: str) -> Iterator[None]:
    """Call `beat` every `every` s from a thread while the block runs, until it returns False. A call that
    fails (e.g. the database restarting) is logged and the next one tried."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            try:
                if beat() is False:
                    return
            except Exception:
                log.warning("%s failed:\n%s", what, traceback.format_exc())

    thread = threading.Thread(target=loop, name=what, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
