"""`anisora curate` end to end on ToonWorld corpora with ground truth: accuracy, flywheel operations,
bad inputs and resuming after kill -9."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from anisora.cli import main
from anisora.curate.agreement import agreement, match_cuts
from anisora.curate.config import ClipConfig, CurateConfig, dump_config, load_config
from anisora.curate.paths import relative_source
from anisora.curate.pipeline import run_curate
from anisora.curate.scenes import candidate_windows
from anisora.curate.state import RunState
from anisora.errors import InputError
from anisora.media import probe, write_video
from anisora.toonworld import plan_episode, render_episode, write_episode

REPO = Path(__file__).resolve().parents[1]


def _corpus(folder: Path, seeds: range, seconds: float, size=(320, 180)) -> dict[str, dict]:
    """ToonWorld episodes written to `folder`; returns ground truth by absolute video path."""
    truths = {}
    for seed in seeds:
        paths = write_episode(plan_episode(seed, 0, seconds, *size), folder)
        truths[os.path.abspath(paths["video"])] = json.loads(paths["json"].read_text(encoding="utf-8"))
    return truths


def _manifest(out: Path) -> list[dict]:
    return pq.read_table(out / "manifest.parquet").to_pylist()


def test_candidate_windows_split_long_scenes():
    cfg = ClipConfig(min_seconds=2, max_seconds=20, window_seconds=10)
    assert candidate_windows(0, 480, 24, cfg) == [(0, 480)]  # exactly 20 s: one clip
    assert candidate_windows(0, 24 * 25, 24, cfg) == [(0, 240), (240, 480), (480, 600)]
    assert candidate_windows(100, 130, 24, cfg) == [(100, 130)]  # short: still a candidate (dropped later)


def test_cut_matching_counts():
    c = match_cuts([10, 52, 99], [11, 50, 70], tolerance=2)
    assert (c.tp, c.fp, c.fn) == (2, 1, 1)


def test_an_opening_shared_by_episodes_is_kept_once(tmp_path):
    """Two episodes of one series start with the same 3 s opening: its best-scored copy is kept, the other is
    dropped as a duplicate of it, and no clip of the episodes' own shots is."""
    corpus = tmp_path / "corpus"
    for index in (0, 1):
        write_episode(plan_episode(3, index, 12, 320, 180, 24, opening=3.0), corpus)
    out = tmp_path / "out"
    run_curate([str(corpus)], out, CurateConfig(), write_clips=False, progress=False)
    rows = _manifest(out)
    openings = [r for r in rows if r["start_frame"] == 0]
    assert len(openings) == 2 and all(r["dedup_hash"] for r in openings)
    duplicates = [r for r in rows if r["duplicate_of"] is not None]
    (duplicate,) = duplicates
    assert duplicate["start_frame"] == 0 and "duplicate" in duplicate["reasons"] and not duplicate["keep"]
    (kept,) = [r for r in openings if r is not duplicate]
    assert duplicate["duplicate_of"] == kept["clip_id"] and "duplicate" not in kept["reasons"]
    assert (kept["quality_score"] or 0) >= (duplicate["quality_score"] or 0)  # the best-scored copy stays
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reasons"]["duplicate"] == 1
    assert 'data-stage="duplicate"' in (out / "report.html").read_text()


def test_config_files_and_validation(tmp_path):
    shipped = load_config(REPO / "configs" / "curate.yaml")
    assert shipped == CurateConfig()  # the documented file is exactly the defaults
    assert load_config(None, {"filters": {"min_motion": 2.5}}).filters.min_motion == 2.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("filters:\n  min_motoin: 2\n", encoding="utf-8")
    with pytest.raises(InputError, match="min_motoin"):
        load_config(bad)
    assert load_config(None, {"scorers": {"motion": {}}}).scorers == {"motion": {}}
    assert "min_motion" in dump_config(CurateConfig())


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """Eight 30 s ToonWorld episodes curated with the default configuration, no clip files."""
    root = tmp_path_factory.mktemp("curate")
    truths = _corpus(root / "corpus", range(100, 108), 30)
    out = root / "out"
    summary = run_curate([str(root / "corpus")], out, CurateConfig(), write_clips=False, progress=False)
    return root, out, truths, summary


def test_agrees_with_toonworld_ground_truth(curated):
    _, out, truths, summary = curated
    rows = _manifest(out)  # names sources relative to `out`
    state = RunState(out)
    cuts = {relative_source(v["source"], out): v["cuts"] for v in state.videos()}
    state.close()
    result = agreement(rows, cuts, {relative_source(path, out): gt for path, gt in truths.items()})
    report = {k: (c.tp, c.fp, c.fn, round(c.precision, 3), round(c.recall, 3)) for k, c in result.items()}
    print("agreement (tp, fp, fn, precision, recall):", report, "summary:", summary)
    assert result["cuts"].f1 >= 0.95 and result["cuts"].tp >= 40
    assert result["subtitles"].recall >= 0.95 and result["subtitles"].precision >= 0.9
    assert result["subtitles"].tp >= 10
    assert result["static"].recall >= 0.95 and result["static"].precision >= 0.9 and result["static"].tp >= 3
    assert result["letterbox"].recall >= 0.95 and result["letterbox"].precision >= 0.9
    assert result["letterbox"].tp >= 1


def test_outputs_are_complete(curated):
    _, out, truths, summary = curated
    rows = _manifest(out)
    assert summary["candidates"] == len(rows) and summary["kept"] == sum(r["keep"] for r in rows) > 0
    assert pq.read_table(out / "failures.parquet").num_rows == 0
    assert json.loads((out / "summary.json").read_text())["kept"] == summary["kept"]
    assert "<svg" in (out / "report.html").read_text(encoding="utf-8")
    for row in rows:
        assert row["keep"] == (row["reasons"] == [])
        assert row["clip_path"] is None  # --no-clips
        assert (out / row["thumb"]).exists()
        assert row["end_time"] > row["start_time"]
        if row["keep"]:
            assert row["prompt"].endswith(f"motion score: {row['motion_score']:.1f}.")
    # candidates tile every source video without gaps or overlaps
    for source, truth in truths.items():
        spans = sorted(
            (r["start_frame"], r["end_frame"]) for r in rows if r["source"] == relative_source(source, out)
        )
        assert spans[0][0] == 0 and spans[-1][1] == truth["num_frames"]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_refilter_changes_decisions_without_rescoring(curated, monkeypatch):
    root, out, _, _ = curated
    copy = root / "refilter"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    before = _manifest(copy)
    strict = root / "strict.yaml"
    strict.write_text("filters:\n  min_motion: 20.0\n  drop_subtitles: true\n", encoding="utf-8")
    monkeypatch.setattr(av, "open", _no_decoding)  # re-filtering reads the saved scores, never a video
    assert main(["curate", "filter", str(copy), "--config", str(strict)]) == 0
    after = _manifest(copy)
    scores = [k for k in before[0] if k.startswith(("motion_", "text_", "quality_"))]
    assert [[r[k] for k in scores] for r in before] == [[r[k] for k in scores] for r in after]
    assert sum(r["keep"] for r in after) < sum(r["keep"] for r in before)
    assert all(not r["keep"] for r in after if r["text_subtitle"] or (r["motion_score"] or 0) < 20)
    by_settings = root / "refilter-set"  # the same change as --set overrides of the folder's config
    subprocess.run(["cp", "-r", str(out), str(by_settings)], check=True)
    settings = ["--set", "filters.min_motion=20.0", "--set", "filters.drop_subtitles=true"]
    assert main(["curate", "filter", str(by_settings), *settings]) == 0
    decisions = [(r["clip_id"], r["keep"], r["reasons"]) for r in _manifest(by_settings)]
    assert decisions == [(r["clip_id"], r["keep"], r["reasons"]) for r in after]
    assert load_config(by_settings / "config.yaml").filters.min_motion == 20.0


def _no_decoding(*args, **kwargs):
    raise AssertionError("a video was opened")


def test_export_subsets(curated):
    root, out, _, _ = curated
    rows = [r for r in _manifest(out) if r["keep"]]
    subtitled = [r for r in rows if r["text_subtitle"]]
    assert subtitled, "the corpus should keep some clips with subtitles"
    dropped = root / "no_subs"
    assert (
        main(
            [
                "curate",
                "export",
                str(out),
                "--out",
                str(dropped),
                "--subtitles",
                "drop",
                "--top-quality",
                "0.8",
            ]
        )
        == 0
    )
    table = pq.read_table(dropped / "train.parquet").to_pylist()
    assert table and not any(r["text_subtitle"] for r in table)
    assert len(table) <= round(0.8 * len(rows)) + 1
    for r in table:
        info = probe(dropped / r["clip_path"])
        assert info.frame_count == r["end_frame"] - r["start_frame"]
    cropped = root / "cropped"
    first = subtitled[0]
    assert (
        main(
            [
                "curate",
                "export",
                str(out),
                "--out",
                str(cropped),
                "--subtitles",
                "crop",
                "--rebalance",
                "text_subtitle",
                "--per-bucket",
                "1",
            ]
        )
        == 0
    )
    table = pq.read_table(cropped / "train.parquet").to_pylist()
    assert len(table) == 2 and {r["bucket"] for r in table} == {"True", "False"}
    crop_row = next(r for r in table if r["text_subtitle"])
    info = probe(cropped / crop_row["clip_path"])
    if crop_row["text_subtitle_band"] == "bottom":
        assert info.height <= crop_row["text_subtitle_y0"] + 1
    assert first["text_subtitle_band"] in ("bottom", "top")
    lines = (cropped / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["prompt"] for line in lines] == [r["prompt"] for r in table]


def test_export_tables_load_in_the_training_tools(curated):
    """datasets' video folder (through the export's dataset card), Open-Sora's CSV and finetrainers'
    prompt/video lists describe the same clips, with paths relative to the export folder."""
    from datasets import Video, load_dataset

    root, out, _, _ = curated
    tables = root / "tables"
    assert main(["curate", "export", str(out), "--out", str(tables), "--top-motion", "0.5"]) == 0
    rows = pq.read_table(tables / "train.parquet").to_pylist()
    assert rows
    # train.parquet here would make datasets' name-based split inference find no videos: the card decides
    # (its own cache: datasets keys a local folder's cache by names and patterns, not by where it is)
    loaded = load_dataset(str(tables), split="train", cache_dir=str(root / "datasets-cache"))
    loaded = loaded.cast_column("video", Video(decode=False))
    by_path = {Path(r["video"]["path"]).resolve(): r["text"] for r in loaded}
    assert by_path == {(tables / r["clip_path"]).resolve(): r["prompt"] for r in rows}
    with open(tables / "opensora.csv", newline="", encoding="utf-8") as f:
        sora = list(csv.DictReader(f))
    assert list(sora[0]) == ["path", "text", "num_frames", "height", "width", "fps", "aes", "flow", "ocr"]
    for line, row in zip(sora, rows, strict=True):
        clip = probe(tables / line["path"])
        assert not Path(line["path"]).is_absolute() and line["text"] == row["prompt"]
        assert (int(line["num_frames"]), int(line["height"]), int(line["width"])) == (
            clip.frame_count,
            clip.height,
            clip.width,
        )
        assert float(line["flow"]) == pytest.approx(row["motion_score"])
        assert float(line["ocr"]) == pytest.approx(row["text_area"])
    prompts = (tables / "prompt.txt").read_text(encoding="utf-8").splitlines()
    videos = (tables / "videos.txt").read_text(encoding="utf-8").splitlines()
    assert prompts == [r["prompt"] for r in rows] and videos == [r["clip_path"] for r in rows]
    assert all((tables / v).is_file() for v in videos)


def _wav(path: Path, seconds: float = 1.0) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(int(16000 * seconds)) * 0.1) * 3000).astype(np.int16).tobytes())


def _vfr_video(path: Path) -> None:
    plan = plan_episode(5, 0, 4, 160, 96)
    frames = [img for _, _, img, _, _ in render_episode(plan)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = t
            t += 33 if i % 3 else 50  # irregular frame durations
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_bad_and_unusual_inputs(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = write_episode(plan_episode(1, 0, 5, 160, 96), inputs)["video"]
    (inputs / "zero.mp4").write_bytes(b"")
    (inputs / "text.mp4").write_bytes(b"hello, this is not a video\n" * 50)
    data = good.read_bytes()
    (inputs / "truncated.mp4").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 3 : len(corrupt) // 3 + 4000] = os.urandom(4000)
    (inputs / "corrupt.mp4").write_bytes(bytes(corrupt))
    _wav(inputs / "audio_only.wav")
    audio_mp4 = inputs / "audio_only.mp4"
    with av.open(str(inputs / "audio_only.wav")) as src, av.open(str(audio_mp4), "w") as dst:
        out_stream = dst.add_stream("aac", rate=16000)
        for frame in src.decode(audio=0):
            frame.pts = None
            dst.mux(out_stream.encode(frame))
        dst.mux(out_stream.encode(None))
    write_video(inputs / "one_frame.mp4", np.zeros((1, 96, 160, 3), np.uint8), fps=24)
    write_video(inputs / "huge.mp4", np.full((3, 2160, 4096, 3), 90, np.uint8), fps=24, preset="ultrafast")
    _vfr_video(inputs / "vfr.mp4")
    rotated = inputs / "rotated.mp4"  # stored sideways, with a display matrix that turns it upright
    with av.open(str(good)) as src, av.open(str(rotated), "w") as dst:
        stream = dst.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 160, "yuv420p"
        stream.set_display_rotation(90)
        for frame in src.decode(video=0):
            image = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), -1))
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        dst.mux(stream.encode(None))
    listing = tmp_path / "list.txt"
    listing.write_text("in/vfr.mp4\n# a comment\nin/missing.mp4\n", encoding="utf-8")
    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    config.write_text("sampling:\n  max_pixels: 8000000\n", encoding="utf-8")
    args = [
        "curate",
        "run",
        str(inputs),
        str(listing),
        str(inputs / "audio_only.wav"),
        "--out",
        str(out),
        "--config",
        str(config),
        "--quiet",
    ]  # folders are scanned for video extensions: name the wav
    assert main(args) == 1  # something failed, and the run went on
    failures = {Path(f["source"]).name: f for f in pq.read_table(out / "failures.parquet").to_pylist()}
    expected = {
        "zero.mp4",
        "text.mp4",
        "truncated.mp4",
        "audio_only.wav",
        "audio_only.mp4",
        "missing.mp4",
        "huge.mp4",
    }
    assert set(failures) - {"corrupt.mp4"} == expected  # a corrupt middle may decode with errors concealed
    assert (
        "empty" in failures["zero.mp4"]["error"] and "no video stream" in failures["audio_only.wav"]["error"]
    )
    assert (
        "max_pixels" in failures["huge.mp4"]["error"] and "no such file" in failures["missing.mp4"]["error"]
    )
    assert all("\n" not in f["error"] for f in failures.values())
    rows = _manifest(out)
    by_source = {Path(r["source"]).name for r in rows}
    assert {"vfr.mp4", "one_frame.mp4", "rotated.mp4", good.name} <= by_source
    one = [r for r in rows if r["source"].endswith("one_frame.mp4")]
    assert len(one) == 1 and "too_short" in one[0]["reasons"]
    vfr = sorted((r for r in rows if r["source"].endswith("vfr.mp4")), key=lambda r: r["start_frame"])
    assert vfr[-1]["end_time"] == pytest.approx(probe(inputs / "vfr.mp4").duration, abs=0.06)
    # a second run does nothing new and says the same
    assert (
        main(
            [
                "curate",
                "run",
                str(inputs),
                str(listing),
                "--out",
                str(out),
                "--config",
                str(config),
                "--quiet",
            ]
        )
        == 1
    )
    assert _manifest(out) == rows


def test_resume_after_kill_9_gives_the_same_manifest(tmp_path):
    _corpus(tmp_path / "corpus", range(200, 204), 8, size=(160, 96))
    command = [sys.executable, "-m", "anisora.cli", "curate", "run", str(tmp_path / "corpus"), "--quiet"]
    reference = tmp_path / "reference"
    subprocess.run([*command, "--out", str(reference)], check=True, capture_output=True)
    resumed = tmp_path / "resumed"
    rng = np.random.default_rng(0)
    for _ in range(4):
        proc = subprocess.Popen(
            [*command, "--out", str(resumed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(float(rng.uniform(1.0, 4.0)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    subprocess.run([*command, "--out", str(resumed)], check=True, capture_output=True)

    assert _manifest(resumed) == _manifest(reference)
    kept = {f"{r['clip_id']}.mp4" for r in _manifest(resumed) if r["keep"]}
    assert kept and sorted(p.name for p in (resumed / "clips").iterdir()) == sorted(kept)
    for name in kept:
        a, b = probe(resumed / "clips" / name), probe(reference / "clips" / name)
        assert (a.frame_count, a.width, a.height) == (b.frame_count, b.width, b.height)
    assert not list(resumed.rglob(".*.tmp*"))


def test_two_workers_give_the_same_manifest(tmp_path):  # the Ray engine: test_curate_ray.py
    _corpus(tmp_path / "corpus", range(300, 302), 6, size=(160, 96))
    inputs = [str(tmp_path / "corpus")]
    config = CurateConfig()
    run_curate(inputs, tmp_path / "one", config, workers=1, write_clips=False, progress=False)
    run_curate(inputs, tmp_path / "two", config, workers=2, write_clips=False, progress=False)
    reference = _manifest(tmp_path / "one")
    assert reference and _manifest(tmp_path / "two") == reference


def test_changing_one_scorer_rescoring_only_that_scorer(tmp_path, monkeypatch):
    _corpus(tmp_path / "corpus", range(400, 401), 6, size=(160, 96))
    out, inputs = tmp_path / "out", [str(tmp_path / "corpus")]
    run_curate(inputs, out, CurateConfig(), write_clips=False, progress=False)
    before = _manifest(out)

    from anisora.curate.scorers.quality import QualityScorer
    from anisora.curate.scorers.text import TextScorer

    def must_not_run(self, clip):
        raise AssertionError(f"{self.name} was re-scored although its settings did not change")

    monkeypatch.setattr(TextScorer, "score", must_not_run)
    monkeypatch.setattr(QualityScorer, "score", must_not_run)
    changed = load_config(None, {"scorers": {**CurateConfig().scorers, "motion": {"max_pairs": 2}}})
    run_curate(inputs, out, changed, write_clips=False, progress=False)
    after = _manifest(out)
    assert [r["text_area"] for r in after] == [r["text_area"] for r in before]
    assert [r["motion_pairs"] for r in after] != [r["motion_pairs"] for r in before]
    assert max(r["motion_pairs"] for r in after) <= 2
