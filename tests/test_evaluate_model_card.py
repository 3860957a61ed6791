"""The demo model's quality figures and model card: metric definitions, held-out shots, the card's content."""

import json

import numpy as np
import pytest

from anisora.cli import main
from anisora.errors import InputError
from anisora.evaluate import model_quality as quality
from anisora.evaluate.model_card import stage_summary, write_model_card
from anisora.media import load_image, probe, psnr
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.toonworld.held_out import EVAL_SEED, plan_clean_shot

SMALL = quality.QualitySettings(shots=1, steps=1, width=64, height=48, frames=9, long_frames=17)


def test_psnr_and_crossfade():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 255, np.uint8)
    assert psnr(a, a) == 100.0
    assert psnr(a, b) == pytest.approx(0.0)
    fade = quality.crossfade(a, b, 5)
    assert fade.shape == (5, 4, 4, 3) and fade.dtype == np.uint8
    assert (fade[0] == 0).all() and (fade[-1] == 255).all() and (fade[2] == 128).all()
    with pytest.raises(ValueError):
        psnr(a, b[:2])


def test_mask_precision_is_one_when_nothing_moves_and_low_outside():
    video = np.zeros((4, 48, 48, 3), np.uint8)
    mask = np.zeros((48, 48), np.uint8)
    mask[:, :24] = 255
    assert quality.mask_precision(video, mask) == 1.0  # nothing moves: nothing escaped
    for t in range(4):
        video[t, 16:28, 28 + 3 * t : 40 + 3 * t] = 200  # a square moving right of the mask
    assert quality.mask_precision(video, mask) < 0.1


def test_motion_region_is_the_dilated_union():
    foreground = np.zeros((2, 30, 30), bool)
    foreground[0, 10, 10] = True
    foreground[1, 20, 20] = True
    region = quality.motion_region(foreground, dilation=2)
    assert region.dtype == np.uint8 and region[10, 12] == 255 and region[20, 18] == 255
    assert region[10, 13] == 0 and region[0, 0] == 0


def test_change_and_colour_figures():
    rng = np.random.default_rng(0)
    frame = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    assert quality.inter_frame_change(np.stack([frame] * 3)) == 0.0
    assert quality.inter_frame_change(np.stack([frame, 255 - frame])) > 50
    assert quality.colour_kept(frame, frame) == pytest.approx(1.0)
    grey = np.full_like(frame, 128)
    assert quality.colour_kept(frame, grey) < 0.1


def test_held_out_shots_move_and_come_from_the_evaluation_seed():
    settings = quality.QualitySettings(shots=3, width=64, height=48)
    shots = quality.held_out_shots(settings, 9, still_camera=True)
    assert len(shots) == 3 and all(s.label != "static" for s in shots)
    for shot in shots:
        assert shot.camera == "still" and shot.frames.shape == (9, 48, 64, 3)
        assert plan_clean_shot(EVAL_SEED, shot.index, 9, settings.fps, 64, 48).caption() == shot.caption


@pytest.fixture(scope="module")
def measured():
    pipe = AnisoraPipeline(**build_components("tiny", "anisora", motion_embedding=True))
    pipe.set_progress_bar_config(disable=True)
    return quality.measure_quality(pipe, SMALL)


def test_measure_quality_reports_every_figure(measured):
    assert measured["settings"]["shots"] == 1
    for key in ("first_frame_psnr", "interpolation_psnr", "crossfade_psnr", "mask_precision_with_mask"):
        assert len(measured[key]["values"]) == 1 and np.isfinite(measured[key]["mean"])
    assert measured["motion_levels"] == list(quality.MOTION_LEVELS) and len(measured["motion_measured"]) == 3
    assert measured["interpolation_gain_db"] == pytest.approx(
        measured["interpolation_psnr"]["mean"] - measured["crossfade_psnr"]["mean"]
    )
    assert 0.0 <= measured["long_clip_colour_kept"]["mean"] <= 1.0
    # the mask pins everything outside it to the guide, so the random model's motion stays inside
    assert measured["mask_precision_with_mask"]["mean"] >= measured["mask_precision_without_mask"]["mean"]


def _fake_run(folder, name, steps):
    folder.mkdir(parents=True)
    config = {
        "name": name,
        "data": dict(
            batch_size=4,
            resolutions=[[160, 96]],
            fps=8,
            min_seconds=2,
            max_seconds=4,
            image_share=0.1,
            num_shots=600,
            seed=0,
        ),
        "optim": {"lr": 1e-4},
        "lora": {"rank": 0},
    }
    (folder / "config.json").write_text(json.dumps(config))
    lines = [
        json.dumps({"step": s, "loss": 1.0 / s, "seconds": 1.5, "processes": 1}) for s in range(1, steps + 1)
    ]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_model_card_states_figures_targets_and_compute(measured, tmp_path):
    stage = stage_summary(_fake_run(tmp_path / "stage", "toonworld-stage3", 40))
    assert stage["steps"] == 40 and stage["wall_seconds"] == pytest.approx(60.0)
    vae = {"steps": 100, "wall_seconds": 600.0, "final_eval": {"psnr_image": 27.5, "psnr_clip": 26.0}}
    model = tmp_path / "model"
    model.mkdir()
    card = write_model_card(
        model, [stage], vae, measured, "2 CPU cores (test)", "make demo-model"
    ).read_text()
    assert "make demo-model" in card and "2 CPU cores (test)" in card and "Total wall time 11 min" in card
    assert "| toonworld-stage3 | 40 | 4 | 160x96 | 8 | 2-4 | 10% | seed 0, 0-599 | 0.0001 | 1.0 min |" in card
    assert f"{measured['first_frame_psnr']['mean']:.2f} dB" in card and ">= 28 dB" in card
    assert "27.50 dB (one frame)" in card and "**Limits.**" in card
    assert json.loads((model / "quality.json").read_text())["settings"]["steps"] == 1
    with pytest.raises(InputError, match="not a finished training run"):
        stage_summary(tmp_path / "missing")


def test_toonworld_keyframes_cli(tmp_path, capsys):
    out = tmp_path / "keys"
    assert (
        main(["toonworld-keyframes", "--out", str(out), "--size", "64x48", "--frames", "9", "--index", "1"])
        == 0
    )
    first, last, mask = (load_image(out / f"{n}.png") for n in ("first", "last", "mask"))
    assert first.shape == last.shape == (48, 64, 3) and not np.array_equal(first, last)
    assert 0 < (mask[..., 0] > 127).mean() < 1
    assert probe(out / "truth.mp4").frame_count == 9
    assert (out / "prompt.txt").read_text().strip() in capsys.readouterr().out
