"""Mistakes a user makes with `anisora curate`: bad config values, unreadable or looping inputs, an output
path that is a file, a missing Ray. Each is one clear line (or a failure row), never a traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import get_args

import pyarrow.parquet as pq
import pytest

from anisora.cli import main
from anisora.curate.config import X264_PRESETS, CurateConfig, load_config
from anisora.curate.ray_pipeline import run_ray
from anisora.errors import InputError


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("filters: {min_motion: high}", "filters.min_motion: expected a number, got 'high'"),
        ("filters: {min_motion: abc}", "filters.min_motion: expected a number, got 'abc'"),
        ("filters: {min_motion: .nan}", "filters.min_motion: expected a finite number, got nan"),
        ("filters: {max_text_area: .inf}", "filters.max_text_area: expected a finite number, got inf"),
        ("filters: {drop_static: 'no'}", "filters.drop_static: expected true or false, got 'no'"),
        ("sampling: {sample_fps: 0}", "sampling.sample_fps: must be > 0, got 0"),
        ("sampling: {frames_per_clip: 2.5}", "sampling.frames_per_clip: expected an integer, got 2.5"),
        ("sampling: {frames_per_clip: 0}", "sampling.frames_per_clip: must be >= 1, got 0"),
        ("clips: {window_seconds: 0}", "clips.window_seconds: must be > 0, got 0"),
        ("scenes: {thumbnail_width: 0}", "scenes.thumbnail_width: must be >= 16, got 0"),
        (
            "scenes: {detector: adaptve}",
            "scenes.detector: expected one of 'adaptive', 'content' or 'transnetv2', got 'adaptve'",
        ),
        ("output: {crf: 99}", "output.crf: must be <= 51, got 99"),
        ("output: {fps: 0}", "output.fps: must be > 0, got 0"),
        ("captions: {captioner: blip}", "captions.captioner: expected one of 'none', 'template' or 'qwen"),
        ("captions: {options: {colour: 1}}", "captions.options.colour: unknown key; known: text_percent"),
        ("filters: {min_motoin: 2}", "filters.min_motoin: unknown key (did you mean min_motion?); known: "),
        ("filters: {min_motion: 2e-4}", "write 2.0e-4, not 2e-4"),
        ("scorers: {text: {min_side: 900}}", "scorers.text: min_side must be at most limit_side (480)"),
        ("scorers: {text: {device: gpu}}", "scorers.text.device: expected one of 'cpu' or 'cuda', got 'gpu'"),
        # the pinned onnxruntime is the CPU wheel
        ("scorers: {text: {device: cuda}}", "scorers.text: device cuda needs onnxruntime's CUDA provider"),
        ("scorers: {motion: {max_pairs: many}}", "scorers.motion.max_pairs: expected an integer, got 'many'"),
        ("scorers: {motoin: {}}", "unknown scorer 'motoin'"),
        ("scorers: [motion]", "scorers: expected a mapping, got list"),
        ("overlap: 1", "overlap: expected true or false, got 1"),
    ],
)
def test_config_values_are_checked_at_load(tmp_path, yaml_text, message):
    with pytest.raises(InputError) as caught:
        load_config(_config(tmp_path, yaml_text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_valid_config_values_still_load(tmp_path):
    config = load_config(
        _config(
            tmp_path,
            "filters: {min_motion: 2, max_motion: null}\nscorers: {motion: , text: {frames: 2}}\n"
            "output: {fps: 12, max_side: 256}\n",
        )
    )
    assert config.filters.min_motion == 2 and config.filters.max_motion is None
    assert config.scorers == {"motion": {}, "text": {"frames": 2}}
    assert (config.output.fps, config.output.max_side) == (12, 256)
    assert load_config(None) == CurateConfig()


def test_output_presets_are_the_encoders():
    from anisora.media.encode import _PRESETS

    assert set(get_args(X264_PRESETS)) == _PRESETS


def test_bad_config_value_is_one_line_from_the_cli_before_any_work(tmp_path, capsys):
    config = _config(tmp_path, "sampling: {sample_fps: 0}")
    out = tmp_path / "out"
    assert main(["curate", "run", str(tmp_path), "--out", str(out), "--config", str(config), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"anisora: error: {config}: sampling.sample_fps: must be > 0, got 0"
    assert not out.exists()


def test_output_that_is_a_file_is_one_line_and_kept(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("finished work\n", encoding="utf-8")
    assert main(["curate", "run", str(tmp_path), "--out", str(target), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"anisora: error: --out {target}: is a file, not a folder"
    assert target.read_text(encoding="utf-8") == "finished work\n"


def test_export_to_a_file_is_one_line(tmp_path, capsys):
    import pyarrow as pa

    folder = tmp_path / "curated"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"clip_id": "a", "keep": False}]), folder / "manifest.parquet")
    target = tmp_path / "taken"
    target.write_text("x", encoding="utf-8")
    assert main(["curate", "export", str(folder), "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"anisora: error: --out {target}: is a file, not a folder"


@pytest.mark.parametrize("flag", ["--per-bucket", "--top-motion"])
def test_export_numbers_out_of_range_are_one_line(tmp_path, capsys, flag):
    import pyarrow as pa

    folder = tmp_path / "curated"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"clip_id": "a", "keep": True}]), folder / "manifest.parquet")
    assert main(["curate", "export", str(folder), "--rebalance", "keep", flag, "-1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"anisora: error: {flag} ") and "\n" not in error


def test_unreadable_folders_and_symlink_loops_are_failure_rows(tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in"
    locked = inputs / "locked"
    locked.mkdir(parents=True)
    (locked / "episode.mp4").write_bytes(b"x")
    (inputs / "loop.mp4").symlink_to(inputs / "loop.mp4")  # a link to itself: ELOOP
    (inputs / "nested").mkdir()
    (inputs / "nested" / "back").symlink_to(inputs, target_is_directory=True)  # a folder loop
    for a, b in (("x", "y"), ("y", "x")):  # two folders that link to each other: a loop through both
        (inputs / a).mkdir()
        (inputs / a / f"to_{b}").symlink_to(inputs / b, target_is_directory=True)
    (inputs / "x" / "clip.mp4").write_bytes(b"not a video")  # reached through x and through y/to_x: once
    (tmp_path / "ring.mp4").symlink_to(tmp_path / "ring.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text("in/loop.mp4\n", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("in/loop.mp4\n", encoding="utf-8")
    real_scandir, real_read_text = os.scandir, Path.read_text

    def denied(path) -> PermissionError:
        return PermissionError(13, "Permission denied", os.fspath(path))

    def scandir(path="."):  # root reads anything: deny what chmod 000 denies everyone else
        if os.fspath(path) == str(locked):
            raise denied(path)
        return real_scandir(path)

    def read_text(self, *args, **kwargs):
        if self == secret:
            raise denied(self)
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(Path, "read_text", read_text)
    locked.chmod(0)
    secret.chmod(0)
    out = tmp_path / "out"
    try:
        inputs_named = [inputs, tmp_path / "ring.mp4", listing, secret]
        code = main(["curate", "run", *map(str, inputs_named), "--out", str(out), "--quiet"])
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)
    assert code == 1
    failures = pq.read_table(out / "failures.parquet").to_pylist()
    errors = {Path(f["source"]).name: f["error"].lower() for f in failures}
    loops = ["in/loop.mp4", "in/nested/back", "in/x/to_y/to_x", "in/y/to_x/to_y", "ring.mp4"]
    expected = sorted(f"../{name}" for name in ["in/locked", "secret.txt", *loops])
    assert sorted(f["source"] for f in failures if f["stage"] == "input") == expected
    assert "permission denied" in errors["locked"] and "permission denied" in errors["secret.txt"]
    assert all("symbolic link" in errors[name] for name in ("loop.mp4", "ring.mp4", "back", "to_x", "to_y"))
    assert all("\n" not in f["error"] for f in failures)
    assert [f["source"] for f in failures if f["stage"] != "input"] == ["../in/x/clip.mp4"]  # not a video
    assert "8 failed input(s)" in capsys.readouterr().out


def test_ray_hint_names_the_project_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(InputError) as caught:
        next(run_ray([], 1))
    message = str(caught.value)
    assert (
        "make install" in message and "pip install -e '.[ray]'" in message and "anisora[ray]" not in message
    )
