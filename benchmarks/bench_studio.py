"""Studio benchmarks, in one process on a temporary studio (SQLite), each printed against its goal:

1. Per-shot overhead beyond model time: a shot with a 3-line dialogue made by the worker with the shipped
   demo model (8 steps): claim, dubbing, timing, muxing, subtitles, database, minus the model's own calls;
   goal <= 1 s. Best of 3.
2. TTS + subtitles + mux for a 10-line dialogue (espeak-ng, mixed languages and emotions): synthesize,
   lay out, cut into parts, write each part's video (frames given: no model) with burned-in subtitles, its
   wav and SRT, mux; goal <= 3 s. Best of 3.
3. Memory growth over 100 consecutive small jobs (tiny random model, 2 steps, one line each): resident memory
   after job 100 against after job 10 (the warm-up); goal <= 10 %.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from anisora.media import save_image
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.studio import jobs
from anisora.studio.assembly import (
    Line,
    dialogue_timeline,
    finish_video,
    part_audio,
    part_cues,
    plan_parts,
    resample,
)
from anisora.studio.db import Character, DialogueLine, Episode, Shot, open_db
from anisora.studio.tts import VoiceProfile, synthesize
from anisora.studio.worker import Worker

TEN_LINES = [
    ("你好，今天的风很大。", "cmn", "happy"),
    ("Where are we going after school?", "en-us", "neutral"),
    ("我们去车站吧。", "cmn", "neutral"),
    ("Wait for me, I forgot my bag!", "en-us", "surprised"),
    ("唔该晒，我哋走啦。", "yue", "happy"),
    ("こんにちは、元気ですか。", "ja", "neutral"),
    ("The train leaves in five minutes.", "en-us", "fearful"),
    ("快点，快点！", "cmn", "angry"),
    ("I am sorry, I was late again.", "en-us", "sad"),
    ("没关系，我们一起走。", "cmn", "whisper"),
]


def studio(root: Path):
    db = open_db(f"sqlite:///{root / 'studio.sqlite'}")
    panel = np.zeros((96, 160, 3), np.uint8)
    panel[20:80, 60:100] = (230, 120, 60)
    save_image(root / "uploads" / f"{'0' * 32}.png", panel)
    with db.session() as s:
        s.add(Character(name="Ann", engine="espeak-ng", voice="en-us", speed=1.0, pitch=1.0))
        s.add(Episode(title="bench"))
    return db


def add_job(db, lines: list[str]) -> int:
    with db.session() as s:
        shot = Shot(
            episode_id=1, position=0, panel=f"{'0' * 32}.png", prompt="a girl talks", presets=[], seed=0
        )
        s.add(shot)
        s.flush()
        for i, text in enumerate(lines):
            s.add(DialogueLine(shot_id=shot.id, position=i, character_id=1, text=text, emotion="neutral"))
        shot_id = shot.id
    return jobs.enqueue(db, shot_id)


def overhead() -> None:
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        db = studio(Path(tmp))
        worker = Worker(db, tmp, steps=8)
        _ = worker.pipe
        for _ in range(3):
            job_id = add_job(db, ["Hello there.", "We should go now.", "The train is coming."])
            started = time.perf_counter()
            assert worker.run_once()
            wall = time.perf_counter() - started
            view = jobs.job_view(db, job_id)
            assert view["status"] == "done", view["error"]
            extra = wall - view["result"]["seconds_model"]
            best = extra if best is None else min(best, extra)
            model = view["result"]["seconds_model"]
    print(f"per-shot overhead beyond model time: {best:.2f} s (model {model:.2f} s; goal <= 1 s)")


def dialogue_assembly() -> None:
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            started = time.perf_counter()
            lines = []
            for text, voice, emotion in TEN_LINES:
                speech = synthesize(text, VoiceProfile("espeak-ng", voice), emotion)
                lines.append(Line(text, "Ann", resample(speech.samples, speech.sample_rate)))
            timeline = dialogue_timeline(lines)
            parts = plan_parts(timeline.seconds, timeline.pauses, 8.0, None)
            for k, part in enumerate(parts):
                frames = np.full((part.frames, 96, 160, 3), 90, np.uint8)
                out = Path(tmp) / f"part{k}.mp4"
                finish_video(
                    frames, 8.0, part_audio(timeline, part), part_cues(timeline, part), out, burn=True
                )
            seconds = time.perf_counter() - started
            best = seconds if best is None else min(best, seconds)
    print(
        f"TTS + subtitles + mux, 10 lines ({timeline.seconds:.1f} s of dialogue, {len(parts)} parts): "
        f"{best:.2f} s (goal <= 3 s)"
    )


def memory_growth() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny"
        AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(model)
        db = studio(Path(tmp))
        worker = Worker(db, tmp, model=str(model), steps=2)
        process, rss = psutil.Process(), {}
        for n in range(1, 101):
            add_job(db, [f"Line number {n}."])
            assert worker.run_once()
            if n in (10, 100):
                rss[n] = process.memory_info().rss
        done = len(jobs.list_jobs(db, "done", limit=1000))
    growth = 100.0 * (rss[100] - rss[10]) / rss[10]
    print(
        f"memory over 100 jobs ({done} done): {rss[10] / 2**20:.0f} MiB after job 10, "
        f"{rss[100] / 2**20:.0f} MiB after job 100: {growth:+.1f} % (goal <= 10 %)"
    )


def main() -> None:
    dialogue_assembly()
    overhead()
    memory_growth()


if __name__ == "__main__":
    main()
