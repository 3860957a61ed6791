"""Curation speed against a bare PyAV decode of the same file, measured in one run as ratios of medians over
interleaved repetitions (this machine is shared, so absolute times move; a ratio of neighbouring runs moves
much less). The bare decode decodes every frame and touches nothing (`for frame in container.decode(video=0):
pass`, no RGB conversion), with the decoder thread settings `anisora.media` uses.

1. Cold processes, as a user runs it: `anisora curate run FILE --out DIR --no-clips --workers 1` / a cold
   `python -c` process doing the bare decode, on a 30 s 1280x720 24 fps ToonWorld episode of several shots;
   goal <= 2.0.
2. In-process: `run_curate` (one worker, every default scorer, models already loaded) / the bare decode in the
   same process, on a 10-minute 640x360 ToonWorld episode; goal <= 1.3.
3. Where the time goes, as CPU time (`time.process_time`, one thread, so less disturbed by other work on the
   machine) / the bare decode's CPU time, on both files (the 10-minute one's first 2 minutes): the decode
   loop, the thumbnails, the whole decode pass (cuts, repeated frames, analysis frames), each scorer over
   every scored clip, and in cold processes the imports of the command and the pipeline, loading the scorers'
   models, and what writing the outputs imports (PyArrow, pandas, the report's templates).
4. Frames per second of writing the kept clips of file 1 (decode the ranges again, re-encode to H.264).
5. Speed-up of `--workers 2` over `--workers 1` on file 1 and a second such episode (cold processes).

Every default scorer is on in 1 and 2. The ToonWorld files take a few minutes to render; `--media DIR` keeps
them for the next run.
Usage: python benchmarks/bench_curate.py [--repeats 3] [--media DIR] [--skip-long]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import pyarrow.parquet as pq

from anisora.curate.analyse import _Pass
from anisora.curate.config import CurateConfig
from anisora.curate.paths import absolute_source
from anisora.curate.pipeline import run_curate
from anisora.curate.scorers import build_scorers
from anisora.curate.worker import write_kept_clips
from anisora.media import iter_raw_frames
from anisora.media.decode import DECODER_THREAD_TYPE
from anisora.toonworld import plan_episode, write_episode

SHORT = (7, 30.0, 1280, 720)  # seed, seconds, width, height
LONG = (11, 600.0, 640, 360)
COLD_GOAL, WARM_GOAL = 2.0, 1.3

BARE_DECODE = """\
import sys
import av
with av.open(sys.argv[1]) as container:
    stream = container.streams.video[0]
    stream.codec_context.thread_type = sys.argv[2]
    for frame in container.decode(stream):
        pass
"""


def episode(folder: Path, seed: int, seconds: float, width: int, height: int) -> tuple[Path, int]:
    """A ToonWorld episode (rendered once into `folder`): its video and its number of shots."""
    plan = plan_episode(seed, 0, seconds, width, height, 24)
    video, truth = folder / f"{plan.name}.mp4", folder / f"{plan.name}.json"
    if not (video.exists() and truth.exists()):
        paths = write_episode(plan, folder)
        video, truth = paths["video"], paths["json"]
    return video, len(json.loads(truth.read_text(encoding="utf-8"))["shots"])


def bare_decode(path: Path, frames: int | None = None) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = DECODER_THREAD_TYPE
        for index, _ in enumerate(container.decode(stream)):
            if index + 1 == frames:
                break


def curate(path: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    return run_curate([str(path)], out, CurateConfig(), workers=1, write_clips=False, progress=False)


def anisora_command() -> list[str]:
    script = Path(sys.executable).with_name("anisora")
    return [str(script)] if script.exists() else [sys.executable, "-m", "anisora.cli"]


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(ours, bare, repeats: int) -> tuple[float, list[float]]:
    """Median of ours / median of bare over `repeats` alternating runs, and each run's own ratio."""
    mine, theirs = [], []
    for _ in range(repeats):
        theirs.append(timed(bare))
        mine.append(timed(ours))
    return statistics.median(mine) / statistics.median(theirs), [
        a / b for a, b in zip(mine, theirs, strict=True)
    ]


def cli_curate(videos: list[Path], out: Path, workers: int) -> None:
    """`anisora curate run VIDEOS --out OUT --no-clips --workers N` in a fresh process, as a user runs it."""
    shutil.rmtree(out, ignore_errors=True)
    command = [*anisora_command(), "curate", "run", *map(str, videos), "--out", str(out), "--no-clips"]
    subprocess.run([*command, "--workers", str(workers)], check=True, capture_output=True)


def cold_ratio(video: Path, out: Path, repeats: int) -> tuple[float, list[float]]:
    bare = [sys.executable, "-c", BARE_DECODE, str(video), DECODER_THREAD_TYPE]
    return interleaved(
        lambda: cli_curate([video], out, 1),
        lambda: subprocess.run(bare, check=True, capture_output=True),
        repeats,
    )


def cpu(run) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def child_cpu(code: str) -> float:
    """CPU seconds of a fresh `python -c code` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def breakdown(path: Path, frames: int | None, what: str) -> None:
    """Item 3: CPU time of each part / CPU time of the bare decode (medians of 3)."""
    config = CurateConfig()

    def loop(thumbnails: bool) -> None:
        for raw in iter_raw_frames(path):
            if thumbnails:
                raw.rgb(160, 90, fast=True)
            if raw.index + 1 == frames:
                break

    def decode_pass() -> list:
        run, found = _Pass(str(path), config.scenes, config.clips, config.sampling), []
        for candidate in run.run():
            found.append(candidate)
            if frames and candidate.end_frame >= frames:
                break
        return found

    def median(run) -> float:
        return statistics.median(cpu(run) for _ in range(3))

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # OpenCV's own pool would add its threads' time
    bare = median(lambda: bare_decode(path, frames))
    parts = {
        "decode loop": median(lambda: loop(False)),
        "+ thumbnails": median(lambda: loop(True)),
        "whole pass": median(decode_pass),
    }
    clips = [c.samples for c in decode_pass() if c.samples is not None]
    clips = [s for s in clips if s.duration >= config.clips.min_seconds]
    scorers = build_scorers(config.scorers)
    for scorer in scorers:
        scorer.load()
        scorer.score(clips[0])
    for scorer in scorers[1:]:  # not duration
        parts[scorer.name] = median(lambda scorer=scorer: [scorer.score(clip) for clip in clips])
    cv2.setNumThreads(threads)
    shares = ", ".join(f"{name} {seconds / bare:.2f}" for name, seconds in parts.items())
    print(f"3. CPU / bare decode CPU, {what} ({len(clips)} scored clips): {shares}", flush=True)


def cold_start(reference: Path) -> None:
    """Item 3, cold processes: CPU of imports, model loading and the output imports / the bare decode's."""
    imports = "import anisora.cli, anisora.curate.cli, anisora.curate.pipeline, anisora.curate.worker"
    models = "from anisora.curate.config import CurateConfig\n"
    models += "from anisora.curate.scorers import build_scorers\n"
    models += "[s.load() for s in build_scorers(CurateConfig().scorers)]"
    finalize = "from anisora.curate.pipeline import _import_finalize\n_import_finalize()"
    bare = statistics.median(cpu(lambda: bare_decode(reference)) for _ in range(3))
    python, base, loaded, written = (
        statistics.median(child_cpu(code) for _ in range(3))
        for code in ("pass", imports, f"{imports}\n{models}", f"{imports}\n{finalize}")
    )
    print(
        f"3. cold start CPU / bare decode CPU of file 1: Python {python / bare:.2f}, imports "
        f"{(base - python) / bare:.2f}, scorer models {(loaded - base) / bare:.2f}, output imports "
        f"{(written - base) / bare:.2f}",
        flush=True,
    )


def report(what: str, ratio: float, runs: list[float], goal: float) -> None:
    met = "met" if ratio <= goal else "NOT met"
    each = ", ".join(f"{r:.2f}" for r in runs)
    print(f"{what}: {ratio:.2f} (goal <= {goal}: {met}; runs {each})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--media", type=Path, help="folder for the ToonWorld files (kept; default: temporary)"
    )
    parser.add_argument("--skip-long", action="store_true", help="leave out the 10-minute file (2.)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        media = args.media or root / "media"
        media.mkdir(parents=True, exist_ok=True)
        short, shots = episode(media, *SHORT)

        ratio, runs = cold_ratio(short, root / "cold", args.repeats)
        report(
            f"1. cold `anisora curate run --no-clips --workers 1` / cold bare decode, 30 s 1280x720 24 fps, "
            f"{shots} shots, median of {args.repeats}",
            ratio,
            runs,
            COLD_GOAL,
        )

        curate(short, root / "warm")  # loads the models once, as a long run would
        if not args.skip_long:
            long, shots = episode(media, *LONG)
            ratio, runs = interleaved(
                lambda: curate(long, root / "long"), lambda: bare_decode(long), args.repeats
            )
            summary = json.loads((root / "long" / "summary.json").read_text(encoding="utf-8"))
            report(
                f"2. in-process `run_curate` / bare decode, 10 min 640x360 24 fps, {shots} shots, "
                f"{summary['candidates']} candidates, median of {args.repeats}",
                ratio,
                runs,
                WARM_GOAL,
            )

        breakdown(short, None, "file 1")
        cold_start(short)
        if not args.skip_long:
            breakdown(long, 2880, "file 2, first 2 min")

        manifest = pq.read_table(root / "warm" / "manifest.parquet").to_pylist()
        rows = [{**r, "source": absolute_source(r["source"], root / "warm")} for r in manifest if r["keep"]]
        elapsed = timed(lambda: write_kept_clips(rows, root / "warm", CurateConfig()))
        frames = sum(r["end_frame"] - r["start_frame"] for r in rows)
        print(
            f"4. writing kept clips: {frames / elapsed:.0f} frames/s ({len(rows)} clips, {frames} frames, "
            f"1280x720, libx264 veryfast crf 18)"
        )

        videos = [short, episode(media, SHORT[0] + 1, *SHORT[1:])[0]]
        two, _ = interleaved(
            lambda: cli_curate(videos, root / "two", 2),
            lambda: cli_curate(videos, root / "one", 1),
            args.repeats,
        )
        print(f"5. two 30 s 720p files, cold processes: --workers 2 is {1 / two:.2f}x as fast as --workers 1")


if __name__ == "__main__":
    main()
