"""The README's diffusers example, run as a user would paste it into a notebook (keyframes drawn by
ToonWorld), so the documented calls cannot drift from the pipeline."""

import os
import re
from pathlib import Path

import numpy as np

from anisora.media import read_frames, save_image
from anisora.toonworld.held_out import held_out_shots

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_diffusers_example_runs(tmp_path, monkeypatch):
    code = readme_block("#### Use it from diffusers")
    assert "num_inference_steps=2," in code  # the demo model's keyframe preset, and quick
    frames = held_out_shots(1, 17, 8, 160, 96)[0].frames
    (tmp_path / "keys").mkdir()
    save_image(tmp_path / "keys/first.png", frames[0])
    save_image(tmp_path / "keys/last.png", frames[-1])
    os.symlink(ROOT / "src", tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["out"].frames.shape == (4, 17, 96, 160, 3)
    clip = read_frames(tmp_path / "shot.mp4", range(17))
    assert clip.shape == (17, 96, 160, 3) and np.ptp(clip) > 0
