"""The asynchronous video API, in the shape of OpenAI's `/v1/videos`: create a video from an image and a
prompt, poll its status and progress, fetch its content, list and delete.

A video is a shot of the studio's "API videos" episode and the job that renders it, so it goes through the
same checks, queue and workers as the page's shots; its id is "video_<job id>". Statuses: queued (also while
paused), in_progress, completed, failed (also when cancelled).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import jobs, models, service
from .db import Database, Episode, Job, Shot

API_EPISODE = "API videos"
VIDEO_ID = re.compile(r"video_([1-9][0-9]{0,17})")
IMAGES = ("input_reference", "last_frame", "mask")  # the image fields a create request may carry
# `model` and `size` are accepted for OpenAI clients and not used: the studio's model sets both
FIELDS = ("prompt", "seconds", "motion", "seed", "model", "size", *IMAGES)
STATUS = {
    "queued": "queued",
    "paused": "queued",
    "running": "in_progress",
    "done": "completed",
    "failed": "failed",
    "cancelled": "failed",
}
# a create request's body: three images, base64 in JSON at worst, and the text fields
MAX_CREATE_BYTES = len(IMAGES) * (service.MAX_UPLOAD_BYTES * 4 // 3 + 4096) + 64 * 1024


def create_video(db: Database, data: Path, fields: dict[str, Any]) -> dict:
    """Check the fields (images as bytes, a `data:` URL, or the name of an earlier /api/uploads upload),
    store the images, add the shot and queue its job; returns the video object."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    if fields.get("input_reference") in (None, b"", ""):
        raise InputError("input_reference (the image to animate) is required")
    seed = _number(fields.get("seed"), "seed") or 0.0
    if not seed.is_integer():
        raise InputError(f"seed must be a whole number, got {seed}")
    shot = service.ShotIn(
        panel="",
        prompt=_text(fields.get("prompt")),
        motion=_number(fields.get("motion"), "motion"),
        seconds=_number(fields.get("seconds"), "seconds"),
        seed=int(seed),
    )
    service.check_prompt(shot.prompt, ())  # the cheap checks, before any image is stored
    service.check_timing(shot)
    given = {key for key in IMAGES if fields.get(key) not in (None, b"", "")}
    models.check_queueable(db, models.ShotNeeds("mask" in given, "last_frame" in given, shot.seconds))
    names = {key: _stored(data, fields[key], key) for key in given}
    shot = service.ShotIn(
        panel=names["input_reference"],
        prompt=shot.prompt,
        mask=names.get("mask"),
        last_frame=names.get("last_frame"),
        motion=shot.motion,
        seconds=shot.seconds,
        seed=shot.seed,
    )
    created = service.create_shot(db, data, _api_episode(db), shot)
    return video_object(db, jobs.enqueue(db, created["id"]))


def video_object(db: Database, job_id: int) -> dict:
    view = jobs.job_view(db, job_id)
    with db.session(write=False) as s:
        shot = s.get(Shot, view["shot_id"])
        prompt, seconds = shot.prompt, shot.seconds
    status = STATUS[view["status"]]
    return {
        "id": f"video_{job_id}",
        "object": "video",
        "model": "anisora",
        "status": status,
        "progress": round(100 * float(view["progress"] or 0.0)) if status != "completed" else 100,
        "stage": view["stage"],
        "created_at": _epoch(view["created"]),
        "prompt": prompt,
        "seconds": seconds,
        "error": {"message": view["error"]} if status == "failed" else None,
    }


def list_videos(db: Database) -> list[dict]:
    with db.session(write=False) as s:
        ids = [
            job.id
            for job in s.query(Job)
            .join(Shot)
            .join(Episode)
            .filter(Episode.title == API_EPISODE)
            .order_by(Job.id)
        ]
    return [video_object(db, job_id) for job_id in ids]


def job_of(db: Database, video_id: str) -> int:
    """The job id of a video id, or LookupError (404) for anything that is not one of this API's videos."""
    match = VIDEO_ID.fullmatch(video_id or "")
    if match is None:
        raise LookupError(f"no video {video_id[:40]!r}: ids look like video_12")
    job_id = int(match.group(1))
    with db.session(write=False) as s:
        job = s.get(Job, job_id) if job_id <= service.MAX_ID else None
        if job is None or s.get(Episode, s.get(Shot, job.shot_id).episode_id).title != API_EPISODE:
            raise LookupError(f"no video {video_id}")
    return job_id


def content(db: Database, data: Path, job_id: int) -> Path:
    view = jobs.job_view(db, job_id)
    if view["status"] != "done":
        raise jobs.JobConflict(f"video_{job_id} is {STATUS[view['status']]}, not completed")
    return data / view["result"]["video"]


def delete_video(db: Database, data: Path, job_id: int) -> dict:
    """Cancel the video's job if it is still active and remove its files; the job row stays (as cancelled or
    as it ended), so its id is never reused."""
    view = jobs.job_view(db, job_id)
    if view["status"] in ("queued", "running", "paused"):
        jobs.cancel(db, job_id)
    for name in (view["result"] or {}).values():
        if isinstance(name, str):
            (data / name).unlink(missing_ok=True)
    return {"id": f"video_{job_id}", "object": "video", "deleted": True}


def _api_episode(db: Database) -> int:
    with db.session() as s:
        episode = s.query(Episode).filter_by(title=API_EPISODE).order_by(Episode.id).first()
        if episode is None:
            episode = Episode(title=API_EPISODE)
            s.add(episode)
            s.flush()
        return episode.id


def _stored(data: Path, value: Any, key: str) -> str:
    """An image field as a stored upload's name."""
    if isinstance(value, bytes):
        return service.save_upload(data, value)
    if not isinstance(value, str):
        raise InputError(f"{key} must be an image file, a data: URL or an upload name")
    if value.startswith("data:"):
        head, _, payload = value.partition(",")
        if not head.endswith(";base64"):
            raise InputError(f"{key}: a data: URL must be base64 (data:image/png;base64,...)")
        if len(payload) > service.MAX_UPLOAD_BYTES * 4 // 3 + 4:
            raise service.too_large(key, service.MAX_UPLOAD_BYTES)
        try:
            return service.save_upload(data, base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            raise InputError(f"{key}: the data: URL is not valid base64") from None
    service.upload_path(data, value)  # an earlier upload: it must exist
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError("prompt must be text")
    return value


def _number(value: Any, key: str) -> float | None:
    """A number given as JSON or as form text ("4"); None when left out."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"{key} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key} must be a number, got {str(value)[:40]!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InputError(f"{key} must be a finite number")
    return number


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())
