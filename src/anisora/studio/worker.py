"""The studio worker: claims shot jobs from the queue and makes them (dub, time, generate, mux, subtitle).

One worker holds one model in memory. Progress goes to the queue at every sampling step; when the queue
answers that the job was paused or cancelled, the worker stops at that step and hands the job back. Results
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnisoraError, InputError
from ..media import load_image, probe
from . import jobs
from .assembly import (
    Line,
    concat_videos,
    dialogue_timeline,
    finish_video,
    part_audio,
    part_cues,
    plan_parts,
    resample,
)
from .db import Character, Database, DialogueLine, Job, Shot
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


def shot_size(panel_height: int, panel_width: int, model_height: int, model_width: int) -> tuple[int, int]:
    """(height, width): the model's pixel count at the panel's aspect ratio, in multiples of 16, so a
    portrait panel is not cropped to the model's landscape frame."""
    area, aspect = model_height * model_width, panel_width / panel_height
    width = max(16, round(math.sqrt(area * aspect) / 16) * 16)
    height = max(16, round(math.sqrt(area / aspect) / 16) * 16)
    return height, width


def shot_prompt(prompt: str, presets: list[str] | None) -> str:
    parts = [p.strip().rstrip(".") for p in [prompt, *(presets or [])] if p and p.strip()]
    return ". ".join(parts) + "." if parts else ""


class Worker:
    def __init__(
        self,
        db: Database,
        data: str | os.PathLike[str],
        model: str | None = None,
        steps: int = 25,
        burn_subtitles: bool = False,
        worker_id: str | None = None,
    ):
        self.db, self.data, self.model = db, Path(data), model
        self.steps, self.burn = steps, burn_subtitles
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._pipe = None

    @property
    def pipe(self):
        if self._pipe is None:
            from ..model.generate import GenerateJob, open_pipeline
            from ..model.weights import demo_model_dir

            self._pipe = open_pipeline(GenerateJob(model=str(self.model or demo_model_dir())))
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

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

    def _make(self, job_id: int) -> dict:
        import torch

        from ..model.conditioning import Guide

        spec = self._spec(job_id)
        started = time.perf_counter()
        self._report(job_id, 0.01, "dubbing")
        lines, dubbing = [], []
        for text, speaker, voice, emotion in spec.lines:
            speech = synthesize(text, voice, emotion)
            lines.append(Line(text, speaker, resample(speech.samples, speech.sample_rate)))
            dubbing.append(speech.applied)
        timeline = dialogue_timeline(lines)
        pipe = self.pipe
        fps = float(pipe.config.fps)
        parts = plan_parts(timeline.seconds, timeline.pauses, fps, spec.seconds)
        panel = load_image(spec.panel)
        scale = pipe.vae_scale_factor_spatial
        height, width = shot_size(
            *panel.shape[:2],
            pipe.transformer.config.sample_height * scale,
            pipe.transformer.config.sample_width * scale,
        )
        mask = load_image(spec.mask, background=(0, 0, 0)) if spec.mask else None
        last = load_image(spec.last_frame) if spec.last_frame else None
        keyframes = [(at, load_image(path)) for at, path in spec.keyframes]
        shot_seconds = sum(p.seconds for p in parts)
        late = [at for at, _ in keyframes if at >= shot_seconds]
        if late:
            raise InputError(f"a keyframe at {late[0]:g} s is after the shot's end ({shot_seconds:g} s)")
        out = self.data / "results" / f"shot{spec.shot_id}" / f"job{job_id}"
        shutil.rmtree(out, ignore_errors=True)  # a retried or re-queued job starts clean
        out.mkdir(parents=True)
        first, videos, model_seconds = panel, [], 0.0
        shot_cues, offset = [], 0.0  # subtitles in shot seconds (parts may end in silence)
        guide_frames: list[list[int]] = []  # per part
        for k, part in enumerate(parts):
            guides = {0: first}
            for at, image in keyframes:  # extra guides at their frame in this part
                if offset <= at < offset + part.seconds:
                    guides[min(round((at - offset) * fps), part.frames - 1)] = image
            if last is not None and k == len(parts) - 1:
                guides[part.frames - 1] = last
            guides = [Guide(image, frame) for frame, image in sorted(guides.items())]
            guide_frames.append([g.frame for g in guides])

            def step(i: int, total: int, k: int = k) -> None:
                self._report(
                    job_id, 0.05 + 0.9 * (k + i / total) / len(parts), f"generating part {k + 1}/{len(parts)}"
                )

            began = time.perf_counter()
            frames = pipe(
                guides,
                prompt=spec.prompt,
                num_frames=part.frames,
                height=height,
                width=width,
                motion_mask=mask if k == 0 else None,  # the mask is drawn on the panel, not on later parts
                motion_score=spec.motion,
                num_inference_steps=self.steps,
                generator=torch.Generator("cpu").manual_seed(spec.seed + k),
                progress=step,
            ).frames
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


def _copy_part(part: Path, shot: Path) -> float:
    for suffix in (".mp4", ".wav", ".srt"):
        shutil.copyfile(part.with_suffix(suffix), shot.with_suffix(suffix))
    info = probe(shot)
    return info.frame_count / info.fps
