"""The models the studio's workers serve and what each can do: one account for the page, the server and the
workers.

A worker lists itself in the `worker` table while it runs (`presence`): the name jobs ask for its model by
and `describe`'s account of the model (fps, frame rule, clip and size, sampling presets, capabilities), all
from `ModelInfo`. It beats every few seconds; a row unseen for `jobs.STALE_S` is a worker gone (killed) and
is dropped. `served` groups the fresh rows by model for GET /api/models.

A shot is checked against those models when it is queued (`check_queueable`): a motion mask, guides past the
first frame (a last frame or keyframes) or a fixed length that a model which may take the job cannot honour
is refused in one line, naming a serving model that can when there is one. A job is queued unchecked while
no worker serves a model it may go to; the worker that claims it refuses it with the same line (`refusal`),
so the job fails with the reason instead of being made wrongly.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from ..errors import InputError
from . import jobs
from .assembly import MIN_S, default_seconds, longest_seconds, plan_parts
from .db import Database, ServingWorker, utcnow

if TYPE_CHECKING:
    from ..model.info import ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShotNeeds:
    """What a shot asks of a model beyond a first-frame clip."""

    mask: bool = False  # a motion region
    keyframes: bool = False  # guides past the first frame: a last frame or extra keyframes
    seconds: float | None = None  # a fixed length (None: fit to the dialogue)

    @classmethod
    def of(cls, shot) -> ShotNeeds:
        """From anything with a shot's mask, last_frame, keyframes and seconds (a row, a request, a spec)."""
        return cls(shot.mask is not None, shot.last_frame is not None or bool(shot.keyframes), shot.seconds)


def describe(name: str, info: ModelInfo, pipe) -> dict:
    """The served model `name` as the page and the server see it (JSON-ready)."""
    fps = float(info.fps)
    rule = (fps, info.frame_step, info.max_frames, info.clip_frames)
    low, high = info.motion_range
    return {
        "name": name,
        "backbone": info.backbone,
        "experts": 2 if getattr(pipe, "transformer_2", None) is not None else 1,  # Wan2.2's two
        "fps": info.fps,
        "frame_step": info.frame_step,
        "frame_rule": f"{info.frame_step}k+1",
        "default_frames": info.sample_frames,
        "clip_frames": info.clip_frames,
        "max_frames": info.max_frames,
        "width": info.width,
        "height": info.height,
        "size_multiple": info.spatial * info.patch,  # a shot: the model's pixel count at the panel's shape
        "fixed_size": info.learned_positions,
        "steps": info.steps,
        "guidance": info.guidance,
        "shift": getattr(pipe.scheduler.config, "flow_shift", None),  # Wan's flow shift; None for CogVideoX
        "durations": {
            "min": MIN_S,
            "max": round(longest_seconds(*rule), 3),
            "default": round(default_seconds(info.sample_frames, *rule), 3),
        },
        "keyframes": info.keyframes,
        "motion_mask": info.motion_mask,
        "motion": {"kind": info.motion_scores, "min": low, "max": high},
    }


def refusal(description: dict, needs: ShotNeeds) -> str | None:
    """Why the described model cannot make a shot with these needs (one line), or None when it can."""
    name = description["name"]
    if needs.mask and not description["motion_mask"]:
        return (
            f"model {name} cannot hold a region still (its scheduler samples without flow-matching sigmas):"
            " clear the motion mask"
        )
    if needs.keyframes and not description["keyframes"]:
        return f"model {name} is guided by the first frame only: remove the last frame and the keyframes"
    if needs.seconds is not None:
        try:
            plan_parts(
                MIN_S,
                [],
                description["fps"],
                needs.seconds,
                description["frame_step"],
                description["max_frames"],
                description["clip_frames"],
            )
        except InputError as error:
            return f"model {name}: {error}"
    return None


def served(db: Database) -> list[dict]:
    """Each model a live worker serves: its description and its workers' ids, by model name."""
    cutoff = utcnow() - timedelta(seconds=jobs.STALE_S)
    stmt = select(ServingWorker).where(ServingWorker.seen >= cutoff)
    models: dict[str, dict] = {}
    with db.session(write=False) as s:
        for row in s.scalars(stmt.order_by(ServingWorker.model, ServingWorker.started, ServingWorker.id)):
            models.setdefault(row.model, {**row.description, "workers": []})["workers"].append(row.id)
    return list(models.values())


def check_queueable(db: Database, needs: ShotNeeds, model: str | None = None) -> None:
    """InputError when a live worker's model that may take the job (any, or those named `model`) cannot make
    the shot; nothing when none is serving (its worker checks the job when it claims it)."""
    candidates = [m for m in served(db) if model is None or m["name"] == model]
    refused = [reason for m in candidates if (reason := refusal(m, needs)) is not None]
    if not refused:
        return
    able = [m["name"] for m in candidates if refusal(m, needs) is None]
    if able:  # the job asks for any model: a worker of a model that cannot might claim it
        raise InputError(f"{refused[0]}; or ask for model {able[0]}, which can")
    raise InputError(refused[0])


@contextmanager
def presence(
    db: Database, worker_id: str, description: dict, every: float = jobs.HEARTBEAT_S
) -> Iterator[None]:
    """The worker is listed as serving its model while the block runs: now, then seen every `every` s from a
    thread; its row is removed at the end."""
    _beat(db, worker_id, description)
    try:
        with jobs.repeating(
            every, lambda: _beat(db, worker_id, description), f"presence beat of {worker_id}"
        ):
            yield
    finally:
        try:
            with db.session() as s:
                s.execute(delete(ServingWorker).where(ServingWorker.id == worker_id))
        except Exception:  # its row goes stale instead
            log.warning("worker %s: could not remove its row:\n%s", worker_id, traceback.format_exc())


def _beat(db: Database, worker_id: str, description: dict) -> None:
    """The worker's row, fresh (made again if it was dropped while the worker could not beat); rows of workers
    gone for `jobs.STALE_S` are dropped."""
    now = utcnow()
    with db.session() as s:
        s.execute(delete(ServingWorker).where(ServingWorker.seen < now - timedelta(seconds=jobs.STALE_S)))
        row = s.get(ServingWorker, worker_id, with_for_update=True)
        if row is None:
            s.add(ServingWorker(id=worker_id, model=description["name"], description=description, seen=now))
        else:
            row.seen = now
