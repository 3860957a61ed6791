"""The CLI: JSON output for good files, one line and exit code 2 for bad ones, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from anisora.cli import main
from anisora.media import write_video


def test_probe_prints_one_json_line_per_video(tmp_path, capsys):
    frames = np.zeros((12, 48, 64, 3), np.uint8)
    write_video(tmp_path / "a.mp4", frames, fps=12)
    write_video(tmp_path / "b.mp4", frames[:6], fps=24)
    assert main(["probe", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["frame_count"], d["fps"], d["width"], d["height"]) for d in lines] == [
        (12, 12, 64, 48),
        (6, 24, 64, 48),
    ]


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 20])
def test_bad_video_is_one_line_and_exit_code_2(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    run = subprocess.run(
        [sys.executable, "-m", "anisora.cli", "probe", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"anisora: error: {bad}: ")
    assert "Traceback" not in run.stderr


def test_bad_size_argument_is_rejected(capsys):
    assert main(["toonworld", "episodes", "--out", "x", "--size", "big"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("anisora: error: argument --size: expected WIDTHxHEIGHT")
