"""The studio worker: claims shot jobs from the queue and makes them (dub, time, generate, drive the marked
mouths, mux, subtitle).

One worker serves one model on one device, loaded once and kept warm; it is named "HOST:PID:DEVICE" in the
queue, and claims only the jobs that ask for no model or for its own (by name: the model folder's, or
`model_name`). While it runs it is listed with its model and what the model can do (`models.presence`); a job
asking for what its model cannot do fails with the reason before anything is made. Shots follow the model's
own rules (`ModelInfo`): its fps and frame rule, its clip as the longest part (and as a silent shot's
length), its pixel count in multiples of its VAE factor x patch, its sampling presets.

Progress goes to the queue at every dubbed line and sampling step; when the queue answers that the job was
paused or cancelled, or the worker is asked to stop, it stops there and hands the job back. A
thread beats for the job every `jobs.HEARTBEAT_S` through every stage, so a long one (dubbing, decoding,
muxing) never looks like a lost worker. Between jobs a worker takes back the jobs of workers that died on
its host or went silent anywhere (`jobs.requeue_dead_local`, `jobs.requeue_stale`), so the queue heals
without a server. A job's inputs are loaded and checked before it is dubbed. Results go under
DATA/results/shot<id>/job<id>/: part<k>.mp4 (+ .wav, .srt) per model clip, shot.mp4 (+ .wav, .srt) for the
whole shot. They are written in a staging folder next to it (".job<id>.<random>.tmp") that becomes the job's
folder in the same transaction that marks the job done, and only if the job is still this worker's: no
reader sees a half-made result, and a worker that lost its job cannot overwrite the new owner's. Staging
folders left by a killed worker are removed when the job is claimed again and when a worker starts.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import secrets
import shutil
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from ..errors import AnisoraError, InputError, MediaError
from ..media import load_image, probe
from . import jobs, models
from .assembly import (
    Line,
    Timeline,
    concat_videos,
    default_seconds,
    dialogue_timeline,
    finish_video,
    part_audio,
    part_cues,
    plan_parts,
    resample,
)
from .db import Character, Database, DialogueLine, Job, Shot
from .mouths import MarkedMouth, ShotMouths
from .service import MAX_ASPECT, MAX_DIALOGUE_S, check_image_size, check_keyframes_fit, shot_prompt
from .tts import VoiceProfile, synthesize

log = logging.getLogger(__name__)
REAP_S = 5.0  # how often an idle or finishing worker looks for jobs whose worker is gone
STAGING = re.compile(r"\.job(\d+)\.[0-9a-f]+\.tmp")
_serial = itertools.count()  # tells apart the workers of one process on one device
# One model load at a time in a process: diffusers and transformers build modules on the meta device under a
# process-wide context, so two threads loading at once leave each other's weights on it.
_loading = threading.Lock()


class JobStopped(Exception):
    """The queue asked this worker to stop the job (paused, cancelled or re-queued)."""


@dataclass(frozen=True)
class ShotSpec:
    """What a job needs from the database, read once so no session stays open while the model runs."""

    shot_id: int
    prompt: str
    panel: Path
    mask: Path | None
    last_frame: Path | None
    keyframes: tuple[tuple[float, Path], ...]  # (seconds into the shot, image)
    motion: float | None
    seconds: float | None
    seed: int
    lines: tuple[tuple[str, str | None, VoiceProfile, str], ...]  # text, speaker, voice, emotion
    speakers: tuple[int | None, ...]  # the character id of each line
    mouths: tuple[tuple[int, str, Path], ...]  # character id, name, brushed mouth mask
    animate_mouths: bool


@dataclass(frozen=True)
class ShotImages:
    """A job's images, loaded and checked before the slow stages; the video size they make."""

    panel: np.ndarray
    mask: np.ndarray | None
    last_frame: np.ndarray | None
    keyframes: list[tuple[float, np.ndarray]]
    mouths: list[MarkedMouth]
    height: int
    width: int


def shot_size(
    panel_height: int, panel_width: int, model_height: int, model_width: int, cell: int = 16
) -> tuple[int, int]:
    """(height, width): the model's pixel count at the panel's aspect ratio (at most MAX_ASPECT:1), in
    multiples of `cell` (the model's VAE factor x patch, `ModelInfo.spatial * patch`), so a portrait panel
    is not cropped to the model's landscape frame."""
    area = model_height * model_width
    aspect = min(max(panel_width / panel_height, 1 / MAX_ASPECT), MAX_ASPECT)
    width = max(cell, round(math.sqrt(area * aspect) / cell) * cell)
    height = max(cell, round(math.sqrt(area / aspect) / cell) * cell)
    return height, width


def resolve_device(device: str | None) -> str:
    """The torch device a worker runs on, by name ("cpu", "cuda:1"): `device`, or cuda when present, else
    cpu; InputError for a device this machine lacks."""
    import torch

    from ..model.loading import device_of
    from ..model.request import LoadOptions

    resolved = device_of(LoadOptions("", device=device))
    if resolved.type == "cuda" and resolved.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(resolved)


def served_model_name(model: str | os.PathLike[str] | None) -> str:
    """The name jobs ask for a model by: the model folder's name (the shipped demo model's: "demo-model")."""
    from ..model.weights import DEMO_MODEL

    return jobs.check_model_name(Path(model or DEMO_MODEL).resolve().name)


class Worker:
    def __init__(
        self,
        db: Database,
        data: str | os.PathLike[str],
        model: str | None = None,
        steps: int | None = None,
        burn_subtitles: bool = False,
        worker_id: str | None = None,
        heartbeat_s: float = jobs.HEARTBEAT_S,
        device: str | None = None,
        model_name: str | None = None,
        guide_fit_steps: int | None = None,
    ):
        self.db, self.data, self.model = db, Path(data), model
        self.steps, self.burn, self.heartbeat_s = steps, burn_subtitles, heartbeat_s
        self.guide_fit_steps = guide_fit_steps
        self.device = resolve_device(device)
        self.model_name = jobs.check_model_name(model_name) if model_name else served_model_name(model)
        serial = next(_serial)
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{self.device}" + (f"#{serial}" if serial else "")
        )
        self._pipe = None
        self._stop = threading.Event()
        self._reaped = -math.inf  # time.monotonic() of the last look for lost jobs

    @property
    def pipe(self):
        if self._pipe is None:
            from ..model.loading import open_pipeline
            from ..model.request import LoadOptions
            from ..model.weights import demo_model_dir

            load = LoadOptions(str(self.model or demo_model_dir()), device=self.device)
            with _loading:
                self._pipe = open_pipeline(load)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    @property
    def model_info(self):
        from ..model.info import ModelInfo

        return ModelInfo.of(self.pipe)

    @property
    def description(self) -> dict:
        """The served model as the queue lists it (`models.describe`)."""
        return models.describe(self.model_name, self.model_info, self.pipe)

    def run_forever(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Make jobs until `stop` is set; a job running then is handed back to the queue at its next step."""
        self._stop = stop
        _ = self.pipe  # loaded before the first claim: a long load must not look like a dead worker
        remove_abandoned_staging(self.db, self.data)
        log.info("worker %s serves model %s", self.worker_id, self.model_name)
        with models.presence(self.db, self.worker_id, self.description, self.heartbeat_s):
            while not stop.is_set():
                try:
                    busy = self.run_once()
                except DBAPIError:  # the database restarting or unreachable: wait and try again
                    log.warning("worker %s: database error:\n%s", self.worker_id, traceback.format_exc())
                    busy = False
                if not busy:
                    stop.wait(poll)

    def run_once(self) -> bool:
        """Take back lost jobs (every `REAP_S`), then claim and make one job; False when none is queued for
        this worker."""
        if time.monotonic() - self._reaped >= REAP_S:
            for job_id in jobs.requeue_dead_local(self.db) + jobs.requeue_stale(self.db):
                log.info("worker %s re-queued job %s (its worker was lost)", self.worker_id, job_id)
            self._reaped = time.monotonic()
        job_id = jobs.claim(self.db, self.worker_id, self.model_name)
        if job_id is None:
            return False
        log.info("worker %s claimed job %s", self.worker_id, job_id)
        self.process(job_id)
        return True

    def process(self, job_id: int) -> None:
        staging = None
        try:
            with self._heartbeat(job_id):
                spec = self._spec(job_id)
                final = self.data / "results" / f"shot{spec.shot_id}" / f"job{job_id}"
                staging = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
                result = self._make(job_id, spec, staging, final)
            self._finish(job_id, result, staging, final)
        except JobStopped:
            jobs.release(self.db, job_id, self.worker_id)
            log.info("worker %s stopped job %s", self.worker_id, job_id)
        except AnisoraError as exc:
            jobs.fail(self.db, job_id, self.worker_id, str(exc))
            log.info("worker %s: job %s failed: %s", self.worker_id, job_id, exc)
        except DBAPIError:
            raise  # not the job's fault: the job stays running and is taken back once its heartbeat stops
        except Exception as exc:  # a bug must fail the job, not kill the worker loop
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            jobs.fail(self.db, job_id, self.worker_id, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def _finish(self, job_id: int, result: dict, staging: Path, final: Path) -> None:
        """The job done, its staging folder becoming its results folder in the same transaction."""
        if jobs.finish(self.db, job_id, self.worker_id, result, publish=lambda: _publish(staging, final)):
            log.info("worker %s finished job %s", self.worker_id, job_id)
        else:
            log.info("worker %s: job %s was no longer its own; its result is dropped", self.worker_id, job_id)

    def _heartbeat(self, job_id: int):
        """Beat for the job from a thread while the block runs; stop once it is no longer this worker's (its
        next report stops it)."""
        return jobs.repeating(
            self.heartbeat_s, lambda: jobs.beat(self.db, job_id, self.worker_id), f"heartbeat of job {job_id}"
        )

    def _report(self, job_id: int, progress: float, stage: str) -> None:
        if self._stop.is_set() or not jobs.report(self.db, job_id, self.worker_id, progress, stage):
            raise JobStopped

    def _spec(self, job_id: int) -> ShotSpec:
        uploads = self.data / "uploads"
        with self.db.session() as s:
            shot = s.get(Shot, s.get(Job, job_id).shot_id)
            lines = sorted(s.query(DialogueLine).filter_by(shot_id=shot.id), key=lambda line: line.position)
            voiced = []
            for line in lines:
                who = s.get(Character, line.character_id) if line.character_id else None
                voice = VoiceProfile(who.engine, who.voice, who.speed, who.pitch) if who else VoiceProfile()
                voiced.append((line.text, who.name if who else None, voice, line.emotion or "neutral"))
            mouths = tuple(
                (m["character_id"], s.get(Character, m["character_id"]).name, uploads / m["mask"])
                for m in shot.mouths or []
            )
            return ShotSpec(
                shot_id=shot.id,
                prompt=shot_prompt(shot.prompt, shot.presets),
                panel=uploads / shot.panel,
                mask=uploads / shot.mask if shot.mask else None,
                last_frame=uploads / shot.last_frame if shot.last_frame else None,
                keyframes=tuple((k["at"], uploads / k["image"]) for k in shot.keyframes or []),
                motion=shot.motion,
                seconds=shot.seconds,
                seed=shot.seed or 0,
                lines=tuple(voiced),
                speakers=tuple(line.character_id for line in lines),
                mouths=mouths,
                animate_mouths=shot.animate_mouths is not False,
            )

    def _images(self, spec: ShotSpec) -> ShotImages:
        from ..model.conditioning import fitted_motion_mask

        panel = _image(spec.panel, "panel")
        info = self.model_info
        height, width = info.height, info.width  # a learned position embedding has this size only
        if not info.learned_positions:
            height, width = shot_size(*panel.shape[:2], height, width, info.spatial * info.patch)
        mask = _image(spec.mask, "mask", background=(0, 0, 0)) if spec.mask else None
        if mask is not None:
            fitted_motion_mask(mask, panel, height, width, [])  # the model's own check, before the dubbing
        return ShotImages(
            panel=panel,
            mask=mask,
            last_frame=_image(spec.last_frame, "last frame") if spec.last_frame else None,
            keyframes=[(at, _image(path, "keyframe")) for at, path in spec.keyframes],
            mouths=[
                MarkedMouth.fit(who, name, _image(path, "mouth mask", background=(0, 0, 0)), height, width)
                for who, name, path in spec.mouths
            ],
            height=height,
            width=width,
        )

    def _dub(self, job_id: int, spec: ShotSpec) -> tuple[Timeline, list[dict]]:
        lines, dubbing = [], []
        for i, (text, speaker, voice, emotion) in enumerate(spec.lines):
            self._report(job_id, 0.01 + 0.04 * i / len(spec.lines), f"dubbing line {i + 1}/{len(spec.lines)}")
            speech = synthesize(text, voice, emotion)
            lines.append(Line(text, speaker, resample(speech.samples, speech.sample_rate)))
            dubbing.append(speech.applied)
        timeline = dialogue_timeline(lines)
        if timeline.seconds > MAX_DIALOGUE_S:
            raise InputError(
                f"the dialogue lasts {timeline.seconds:.0f} s; at most {MAX_DIALOGUE_S:g} s per shot"
                " (split it across shots)"
            )
        return timeline, dubbing

    def _make(self, job_id: int, spec: ShotSpec, out: Path, final: Path) -> dict:
        """Make the job's files in the staging folder `out` (made once the inputs passed their checks); the
        result names them as they will be once `out` is `final`."""
        from ..model.request import GuideSpec, Request
        from ..model.sampling import sample

        started = time.perf_counter()
        description = self.description
        refused = models.refusal(description, models.ShotNeeds.of(spec))
        if refused is not None:
            raise InputError(refused)
        images = self._images(spec)
        timeline, dubbing = self._dub(job_id, spec)
        info = self.model_info
        fps = float(info.fps)
        limits = (info.frame_step, info.max_frames, info.clip_frames)
        seconds = spec.seconds
        if seconds is None and not spec.lines:  # nothing to fit: the model's own clip
            seconds = default_seconds(info.sample_frames, fps, *limits)
        parts = plan_parts(timeline.seconds, timeline.pauses, fps, seconds, *limits)
        check_keyframes_fit((at for at, _ in images.keyframes), sum(p.seconds for p in parts))
        mouths = None
        if images.mouths:
            mouths = ShotMouths(
                images.mouths, images.panel, timeline, spec.speakers, parts, spec.animate_mouths
            )
        _start_staging(out, final)
        first, videos, model_seconds = images.panel, [], 0.0
        shot_cues, offset = [], 0.0  # subtitles in shot seconds (parts may end in silence)
        guide_frames: list[list[int]] = []  # per part
        for k, part in enumerate(parts):
            guides = {0: first}
            for at, image in images.keyframes:  # extra guides at their frame in this part
                if offset <= at < offset + part.seconds:
                    guides[min(round((at - offset) * fps), part.frames - 1)] = image
            if images.last_frame is not None and k == len(parts) - 1:
                guides[part.frames - 1] = images.last_frame
            guides = tuple(GuideSpec(image, frame) for frame, image in sorted(guides.items()))
            guide_frames.append([g.frame for g in guides])

            def step(i: int, total: int, k: int = k) -> None:
                self._report(
                    job_id, 0.05 + 0.9 * (k + i / total) / len(parts), f"generating part {k + 1}/{len(parts)}"
                )

            began = time.perf_counter()
            request = Request(
                guides,
                mask=images.mask if k == 0 else None,  # drawn on the panel, not on later parts
                prompt=spec.prompt,
                motion=spec.motion,
                frames=part.frames,
                height=images.height,
                width=images.width,
                steps=self.steps,
                guide_fit_steps=self.guide_fit_steps,
                seed=spec.seed + k,
            )
            sampled = sample(self.pipe, request, progress=step)
            frames = sampled.frames
            model_seconds += time.perf_counter() - began
            # the talking mouths go into the take; the next part is guided by the model's own last frame
            shown = mouths.apply(frames) if mouths is not None else frames
            video = out / f"part{k + 1}.mp4"
            finish_video(shown, fps, part_audio(timeline, part), part_cues(timeline, part), video, self.burn)
            videos.append((video, part_cues(timeline, part)))
            shot_cues += [(c.start + offset, c.end + offset, c.text, c.speaker) for c in videos[-1][1]]
            offset += part.seconds
            first = np.ascontiguousarray(frames[-1])
        self._report(job_id, 0.97, "assembling")
        shot = out / "shot.mp4"
        seconds = concat_videos(videos, shot) if len(videos) > 1 else _copy_part(videos[0][0], shot)

        def stored(path: Path) -> str:
            return (final / path.name).relative_to(self.data).as_posix()

        result = {
            "video": stored(shot),
            "srt": stored(shot.with_suffix(".srt")),
            "wav": stored(shot.with_suffix(".wav")),
            "parts": [stored(v) for v, _ in videos],
            "seconds": round(seconds, 3),
            "cues": shot_cues,
            "frames": [p.frames for p in parts],
            "guide_frames": guide_frames,
            "fps": fps,
            "sampling": {
                "steps": sampled.resolved["steps"],
                "guidance": sampled.resolved["guidance"],
                "shift": description["shift"],
            },
            "dubbing": dubbing,
            "model": self.model_name,
            "seconds_model": round(model_seconds, 3),
            "seconds_total": round(time.perf_counter() - started, 3),
        }
        if mouths is not None:
            result["mouths"] = mouths.result()
        return result


def _image(path: Path, what: str, **options) -> np.ndarray:
    """An input image, named by its role rather than by its path on the server."""
    try:
        image = load_image(path, **options)
    except MediaError as exc:
        raise InputError(f"{what} {path.name}: {exc.reason}") from None
    check_image_size(image.shape[1], image.shape[0], what)
    return image


def _copy_part(part: Path, shot: Path) -> float:
    for suffix in (".mp4", ".wav", ".srt"):
        shutil.copyfile(part.with_suffix(suffix), shot.with_suffix(suffix))
    info = probe(shot)
    return info.frame_count / info.fps


def _start_staging(staging: Path, final: Path) -> None:
    """Make the empty staging folder of the job whose results go to `final`, once the staging folders that
    earlier attempts left (a killed worker's) are removed."""
    for left in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(left, ignore_errors=True)
    staging.mkdir(parents=True)


def _publish(staging: Path, final: Path) -> None:
    """`staging` becomes `final` (replacing what an attempt that lost the job after publishing left)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def remove_abandoned_staging(db: Database, data: Path) -> list[Path]:
    """Remove the staging folders under DATA/results whose job is not running (their worker was killed);
    returns them. The folders are listed before the jobs are read: a job claimed meanwhile keeps its own."""
    found = {}
    for folder in (data / "results").glob("shot*/.job*.tmp"):
        match = STAGING.fullmatch(folder.name)
        if match:
            found[folder] = int(match.group(1))
    if not found:
        return []
    with db.session(write=False) as s:
        stmt = select(Job.id).where(Job.id.in_(set(found.values())), Job.status == "running")
        running = set(s.scalars(stmt))
    abandoned = [folder for folder, job_id in found.items() if job_id not in running]
    for folder in abandoned:
        shutil.rmtree(folder, ignore_errors=True)
    return abandoned
