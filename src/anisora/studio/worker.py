"""The studio worker: claims shot jobs from the queue and makes them (dub, time, generate, mux, subtitle).

One worker holds one model in memory. Progress goes to the queue at every dubbed line and sampling step;
when the queue answers that the job was paused or cancelled, the worker stops there and hands the job back.
A thread beats for the job every `jobs.HEARTBEAT_S` through every stage, so a long one (dubbing, decoding,
muxing) never looks like a lost worker. A job's inputs are loaded and checked before it is dubbed. Results
go under DATA/results/shot<id>/job<id>/: part<k>.mp4 (+ .wav, .srt) per model clip, shot.mp4 (+ .wav, .srt)
for the whole shot.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnisoraError, InputError, MediaError
from ..media import load_image, probe
from . import jobs
from .assembly import (
    Line,
    Timeline,
    concat_videos,
    dialogue_timeline,
    finish_video,
    part_audio,
    part_cues,
    plan_parts,
    resample,
)
from .db import Character, Database, DialogueLine, Job, Shot
from .service import MAX_ASPECT, MAX_DIALOGUE_S, check_image_size, check_keyframes_fit, shot_prompt
from .tts import VoiceProfile, synthesize

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ShotImages:
    """A job's images, loaded and checked before the slow stages; the video size they make."""

    panel: np.ndarray
    mask: np.ndarray | None
    last_frame: np.ndarray | None
    keyframes: list[tuple[float, np.ndarray]]
    height: int
    width: int


def shot_size(panel_height: int, panel_width: int, model_height: int, model_width: int) -> tuple[int, int]:
    """(height, width): the model's pixel count at the panel's aspect ratio (at most MAX_ASPECT:1), in
    multiples of 16, so a portrait panel is not cropped to the model's landscape frame."""
    area = model_height * model_width
    aspect = min(max(panel_width / panel_height, 1 / MAX_ASPECT), MAX_ASPECT)
    width = max(16, round(math.sqrt(area * aspect) / 16) * 16)
    height = max(16, round(math.sqrt(area / aspect) / 16) * 16)
    return height, width


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
    ):
        self.db, self.data, self.model = db, Path(data), model
        self.steps, self.burn, self.heartbeat_s = steps, burn_subtitles, heartbeat_s
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._pipe = None

    @property
    def pipe(self):
        if self._pipe is None:
            from ..model.loading import open_pipeline
            from ..model.request import LoadOptions
            from ..model.weights import demo_model_dir

            self._pipe = open_pipeline(LoadOptions(str(self.model or demo_model_dir())))
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    @property
    def model_info(self):
        from ..model.info import ModelInfo

        return ModelInfo.of(self.pipe)

    def run_forever(self, stop: threading.Event, poll: float = 0.5) -> None:
        _ = self.pipe  # loaded before the first claim: a long load must not look like a dead worker
        while not stop.is_set():
            if not self.run_once():
                stop.wait(poll)

    def run_once(self) -> bool:
        """Claim and make one job; False when the queue is empty."""
        job_id = jobs.claim(self.db, self.worker_id)
        if job_id is None:
            return False
        self.process(job_id)
        return True

    def process(self, job_id: int) -> None:
        try:
            with self._heartbeat(job_id):
                result = self._make(job_id)
        except JobStopped:
            jobs.release(self.db, job_id, self.worker_id)
        except AnisoraError as exc:
            jobs.fail(self.db, job_id, self.worker_id, str(exc))
        except Exception as exc:  # a bug must fail the job, not kill the worker loop
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            jobs.fail(self.db, job_id, self.worker_id, f"internal error: {type(exc).__name__}: {exc}")
        else:
            jobs.finish(self.db, job_id, self.worker_id, result)

    @contextmanager
    def _heartbeat(self, job_id: int) -> Iterator[None]:
        """Beat for the job from a thread while the block runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_s):
                try:
                    if not jobs.beat(self.db, job_id, self.worker_id):
                        return  # no longer this worker's job: its next report stops it
                except Exception:  # e.g. the database restarting: the next beat may get through
                    log.warning("heartbeat of job %s failed:\n%s", job_id, traceback.format_exc())

        thread = threading.Thread(target=beat, name=f"heartbeat-job{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _report(self, job_id: int, progress: float, stage: str) -> None:
        if not jobs.report(self.db, job_id, self.worker_id, progress, stage):
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
            )

    def _images(self, spec: ShotSpec) -> ShotImages:
        from ..model.conditioning import fitted_motion_mask

        panel = _image(spec.panel, "panel")
        info = self.model_info
        height, width = info.height, info.width  # a learned position embedding has this size only
        if not info.learned_positions:
            height, width = shot_size(*panel.shape[:2], height, width)
        mask = _image(spec.mask, "mask", background=(0, 0, 0)) if spec.mask else None
        if mask is not None:
            fitted_motion_mask(mask, panel, height, width, [])  # the model's own check, before the dubbing
        return ShotImages(
            panel=panel,
            mask=mask,
            last_frame=_image(spec.last_frame, "last frame") if spec.last_frame else None,
            keyframes=[(at, _image(path, "keyframe")) for at, path in spec.keyframes],
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

    def _make(self, job_id: int) -> dict:
        from ..model.request import GuideSpec, Request
        from ..model.sampling import sample

        spec = self._spec(job_id)
        started = time.perf_counter()
        images = self._images(spec)
        timeline, dubbing = self._dub(job_id, spec)
        info = self.model_info
        fps = float(info.fps)
        parts = plan_parts(
            timeline.seconds, timeline.pauses, fps, spec.seconds, info.frame_step, info.max_frames
        )
        check_keyframes_fit((at for at, _ in images.keyframes), sum(p.seconds for p in parts))
        out = self.data / "results" / f"shot{spec.shot_id}" / f"job{job_id}"
        shutil.rmtree(out, ignore_errors=True)  # a retried or re-queued job starts clean
        out.mkdir(parents=True)
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
                seed=spec.seed + k,
            )
            frames = sample(self.pipe, request, progress=step).frames
            model_seconds += time.perf_counter() - began
            video = out / f"part{k + 1}.mp4"
            finish_video(frames, fps, part_audio(timeline, part), part_cues(timeline, part), video, self.burn)
            videos.append((video, part_cues(timeline, part)))
            shot_cues += [(c.start + offset, c.end + offset, c.text, c.speaker) for c in videos[-1][1]]
            offset += part.seconds
            first = np.ascontiguousarray(frames[-1])
        self._report(job_id, 0.97, "assembling")
        shot = out / "shot.mp4"
        seconds = concat_videos(videos, shot) if len(videos) > 1 else _copy_part(videos[0][0], shot)
        return {
            "video": shot.relative_to(self.data).as_posix(),
            "srt": shot.with_suffix(".srt").relative_to(self.data).as_posix(),
            "wav": shot.with_suffix(".wav").relative_to(self.data).as_posix(),
            "parts": [v.relative_to(self.data).as_posix() for v, _ in videos],
            "seconds": round(seconds, 3),
            "cues": shot_cues,
            "frames": [p.frames for p in parts],
            "guide_frames": guide_frames,
            "fps": fps,
            "dubbing": dubbing,
            "seconds_model": round(model_seconds, 3),
            "seconds_total": round(time.perf_counter() - started, 3),
        }


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
