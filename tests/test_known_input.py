"""The anymask release's input: a reference video and its mask video become known pixels (`KnownSpec`),
through `sample`, the CLI and the official prompt file."""

import json

import numpy as np
import pytest

from anisora.cli import main
from anisora.errors import InputError
from anisora.media import write_video
from anisora.model.backbones.wan import AnisoraWanPipeline
from anisora.model.presets import build_wan_components
from anisora.model.request import KnownSpec, Request
from anisora.model.sampling import known_pixels, sample

H, W = 32, 48


def clip(frames: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((frames, H, W, 3)) * 255).astype(np.uint8)


def mask_video(frames: int) -> np.ndarray:
    """White (given) on the left half, black on the right."""
    mask = np.zeros((frames, H, W, 3), np.uint8)
    mask[:, :, : W // 2] = 255
    return mask


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("anymask") / "model"
    presets = {"fps": 16, "num_frames": 9, "height": H, "width": W, "steps": 2, "guidance": 1.0}
    AnisoraWanPipeline(**build_wan_components(), anisora_presets=presets).save_pretrained(folder)
    return folder


@pytest.fixture
def reference(tmp_path):
    """clip.mp4 (17 frames) and clip_mask.mp4 beside it, the official naming."""
    write_video(tmp_path / "clip.mp4", clip(17), 16)
    write_video(tmp_path / "clip_mask.mp4", mask_video(17), 16)
    return tmp_path / "clip.mp4"


def test_videos_are_sampled_evenly_and_the_mask_is_its_red_channel():
    video = clip(10)
    mask = np.zeros((10, H, W, 3), np.uint8)
    mask[..., 0] = 127
    mask[:, :4, :, 0] = 128  # the official threshold: > 0 after scaling to [-1, 1]
    mask[:, 4:8, :, 1:] = 255  # green and blue do not count
    known = known_pixels(KnownSpec(video, mask, "spatial"), 5)
    np.testing.assert_array_equal(known.video, video[[0, 2, 4, 6, 8]])
    assert known.mask.shape == (5, H, W) and known.mode == "spatial"
    assert (known.mask[:, :4] == 1).all() and (known.mask[:, 4:] == 0).all()


def test_a_video_beside_its_mask_is_read_from_files(reference):
    known = known_pixels(KnownSpec(str(reference)), 9)
    assert known.video.shape == (9, H, W, 3)
    assert (known.mask[:, :, : W // 2 - 2] == 1).all() and (known.mask[:, :, W // 2 + 2 :] == 0).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (KnownSpec(clip(9)), "need their mask as an array"),
        (KnownSpec(clip(9), mask_video(9), "sideways"), "mode must be one of temporal, spatial"),
        (KnownSpec(clip(9), np.zeros((9, 16, 16, 3), np.uint8)), "mask is 16x16 but its video is 48x32"),
        (KnownSpec(clip(9), np.zeros((9, H, W), np.uint8)), "must be an F x H x W x 3 uint8 array"),
    ],
)
def test_bad_known_pixels_are_one_line(spec, message):
    pipe = AnisoraWanPipeline(**build_wan_components())
    with pytest.raises(InputError, match=message):
        sample(pipe, Request(known=spec, frames=9, height=H, width=W, steps=1))


def test_generate_keeps_the_known_pixels_of_a_video(wan_dir, reference, tmp_path):
    out = tmp_path / "repaired.mp4"
    args = ["generate", "--model", str(wan_dir), "--known", str(reference), "--known-mode", "spatial"]
    assert main([*args, "--prompt", "a girl turns", "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    known = {"video": "clip.mp4", "mask": None, "mode": "spatial", "window": None, "start": 0.0, "end": None}
    assert sidecar["request"]["known"] == known
    assert sidecar["resolved"]["num_frames"] == 9


def test_known_pixels_are_refused_on_cogvideox_and_without_their_mask(wan_dir, reference, tmp_path, capsys):
    out = str(tmp_path / "x.mp4")
    assert main(["generate", "--known", str(reference), "--out", out]) == 2  # the demo model: CogVideoX
    assert "known pixels (the anymask release) run on Wan models only" in capsys.readouterr().err
    (tmp_path / "clip_mask.mp4").unlink()
    assert main(["generate", "--model", str(wan_dir), "--known", str(reference), "--out", out]) == 2
    assert "clip_mask.mp4" in capsys.readouterr().err
    assert main(["generate", "--known-mask", str(reference), "--out", out]) == 2
    assert "--known-mask goes with --known VIDEO" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_the_official_anymask_prompt_file(wan_dir, reference, tmp_path):
    prompts = tmp_path / "spa.txt"
    prompts.write_text("An anime scene. There is no text in the video.@@clip.mp4\n")
    out_dir = tmp_path / "out"
    args = ["generate", "--model", str(wan_dir), "--prompt-file", str(prompts), "--out-dir", str(out_dir)]
    assert main([*args, "--known-mode", "temporal"]) == 0
    request = json.loads((out_dir / "0.json").read_text())["request"]
    assert request["known"]["mode"] == "temporal" and request["known"]["video"].endswith("clip.mp4")


def test_windows_are_cut_and_joined_as_the_anymask_scripts_do(wan_dir, tmp_path):
    """A 2.75 s reference in 1 s windows: 1 + 1 + 0.5 s (the rest rounded down to half seconds), each as
    long as its window at the model's 16 fps (17, 17, 9 frames), joined without each window's last frame."""
    write_video(tmp_path / "long.mp4", clip(22), 8)
    write_video(tmp_path / "long_mask.mp4", mask_video(22), 8)
    pipe = AnisoraWanPipeline.from_pretrained(wan_dir)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    request = Request(known=KnownSpec(str(tmp_path / "long.mp4"), window=1.0), steps=1)
    result = sample(pipe, request, progress=lambda i, n: calls.append((i, n)))
    assert result.resolved["windows"] == [[0.0, 1.0, 17], [1.0, 2.0, 17], [2.0, 2.75, 9]]
    assert result.frames.shape == (16 + 16 + 8, H, W, 3) and result.resolved["num_frames"] == 40
    assert calls == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    ("known", "extra", "message"),
    [
        (dict(window=1.0), dict(frames=9), "windows set each clip's length"),
        (dict(start=5.0), {}, "has no frames from 5 s"),
        (dict(window=1.0, start=5.0), {}, "span starts at 5 s; .* lasts 1.06 s"),
        (dict(window=0.25), {}, "windows last at least 0.5 s"),
        (dict(start=2.0, end=1.0), {}, "0 <= start < end"),
    ],
)
def test_bad_spans_and_windows_are_one_line(reference, known, extra, message):
    pipe = AnisoraWanPipeline(**build_wan_components())
    with pytest.raises(InputError, match=message):
        sample(pipe, Request(known=KnownSpec(str(reference), **known), height=H, width=W, **extra))
