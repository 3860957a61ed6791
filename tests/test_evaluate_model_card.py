"""The demo model's card and targets: read from training runs and finished `anisora evaluate` runs."""

import json
from dataclasses import replace

import numpy as np
import pytest
import yaml

from anisora.cli import main
from anisora.errors import InputError
from anisora.evaluate.baselines import run_baseline
from anisora.evaluate.model_card import earlier_training, stage_summary, vae_summary, write_model_card
from anisora.evaluate.runner import GenerationSettings, run_benchmark
from anisora.evaluate.targets import RunFigures, judge
from anisora.evaluate.toonworld_bench import build_toonworld_bench
from anisora.media import load_image, probe
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.toonworld.held_out import EVAL_SEED, held_out_shots, motion_region, plan_clean_shot


def test_motion_region_is_the_dilated_union():
    foreground = np.zeros((2, 30, 30), bool)
    foreground[0, 10, 10] = True
    foreground[1, 20, 20] = True
    region = motion_region(foreground, dilation=2)
    assert region.dtype == np.uint8 and region[10, 12] == 255 and region[20, 18] == 255
    assert region[10, 13] == 0 and region[0, 0] == 0


def test_held_out_shots_move_and_come_from_the_evaluation_seed():
    shots = held_out_shots(3, 9, 8.0, 64, 48, still_camera=True)
    assert len(shots) == 3 and all(s.label != "static" for s in shots)
    for shot in shots:
        assert shot.camera == "still" and shot.frames.shape == (9, 48, 64, 3)
        assert plan_clean_shot(EVAL_SEED, shot.index, 9, 8.0, 64, 48).caption() == shot.caption


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-label ToonWorld bench (i2v, interpolation, region, a 3-level motion sweep), a tiny model's run on
    it and the round-trip and cross-fade baselines' runs."""
    root = tmp_path_factory.mktemp("card")
    bench = build_toonworld_bench(
        root / "bench", per_cell=1, width=64, height=48, frames=9, labels=("walking",)
    )
    model = root / "model"
    AnisoraPipeline(**build_components("tiny", "anisora", motion_embedding=True)).save_pretrained(model)
    run_benchmark(bench, model, root / "run", GenerationSettings(steps=2), progress=False)
    run_baseline(bench, "round-trip", root / "trip", progress=False, model=model)
    run_baseline(bench, "crossfade", root / "fade", progress=False)
    return root


def test_figures_are_the_runs_task_means_and_targets_judge_them(runs):
    model, trip, fade = (RunFigures.read(runs / name) for name in ("run", "trip", "fade"))
    summary = json.loads((runs / "run" / "summary.json").read_text())
    assert model.first_frame == summary["by_task"]["i2v"]["guide_fidelity"]["mean"]
    assert model.between_moving == summary["by_task"]["interpolation"]["psnr_moving"]["mean"]
    assert model.mask_precision == summary["by_task"]["region"]["motion_mask_precision"]["mean"]
    region = summary["by_task"]["region"]
    # precision is defined for the clips that move only: how many did is part of the figure
    assert (model.mask_moving, model.mask_cases) == (
        region["motion_mask_precision"]["n"],
        region["psnr"]["n"],
    )
    assert model.mask_share == f"{model.mask_moving} of {model.mask_cases} region clips move"
    assert fade.mask_moving == 0 and fade.mask_precision is None  # nothing in a cross-fade's region moves
    assert model.motion_rising == summary["motion_control"]["rising_share"]
    assert (fade.name, trip.name) == ("crossfade", "round-trip")
    assert fade.motion_spearman is None  # a cross-fade ignores the asked score: the sweep's videos are one
    rows = {t.figure: t for t in judge(model, trip, fade, clip_seconds=12.5, model_mb=55.0)}
    between = rows["in-between frames PSNR, first + last given"]
    assert between.met == (model.between >= fade.between + 2.0)
    assert f"cross-fade {fade.between:.2f} dB" == between.without_model
    assert rows["model size on disk"].met is False and rows["model size on disk"].measured == "55.0 MB"
    mask = rows["motion-mask precision with the mask"]
    if model.mask_precision is not None:
        assert mask.measured == f"{model.mask_precision:.3f} ({model.mask_share})"
    else:
        assert mask.measured == "not measured" and mask.met is None
    assert rows["a 2 s clip with the CLI's defaults (keyframes), this machine"].met is True
    first = rows["frame 0 given, PSNR against it (i2v)"]
    assert first.met == (model.first_frame >= 28 and model.first_frame >= trip.first_frame - 0.3)
    vae = rows["the VAE alone: frame 0 through it (the round trip)"]
    assert (vae.measured, vae.met) == (f"{trip.first_frame:.2f} dB", trip.first_frame >= 30)
    # a figure that misses its goal by less than the shown digits says so
    close = replace(model, mask_precision=0.8997, motion_spearman=0.7996)
    rows = {t.figure: t for t in judge(close, trip, fade, clip_seconds=12.5, model_mb=1.0)}
    assert rows["motion-mask precision with the mask"].measured.startswith("0.8997 (rounds to 0.900)")
    assert rows["motion control: Spearman, asked vs measured"].measured == "0.7996 (rounds to 0.80)"
    assert not rows["motion-mask precision with the mask"].met
    unmeasured = {t.figure: t.met for t in judge(model, None, None, None, 1.0)}
    assert unmeasured["frame 0 given, PSNR against it (i2v)"] is None
    assert unmeasured["the same inside the moving region"] is None
    assert unmeasured["the VAE alone: frame 0 through it (the round trip)"] is None


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


def test_model_card_states_figures_targets_and_compute(runs, tmp_path):
    stage = stage_summary(_fake_run(tmp_path / "stage", "toonworld-stage3", 40))
    assert stage["steps"] == 40 and stage["wall_seconds"] == pytest.approx(60.0)
    vae = {"steps": 100, "wall_seconds": 600.0, "final_eval": {"psnr_image": 27.5, "psnr_clip": 26.0}}
    model, fade = RunFigures.read(runs / "run"), RunFigures.read(runs / "fade")
    targets = judge(model, None, fade, 3.0, 4.0)
    out = tmp_path / "model"
    out.mkdir()
    card = write_model_card(
        out, [stage], vae, targets, [model, fade], "2 CPU cores (test)", "make demo-model"
    )
    text = card.read_text()
    assert card.name == "README.md"  # what the Hub shows, with the metadata it filters by
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["pipeline_tag"] == "image-to-video" and front["library_name"] == "diffusers"
    assert front["license"] == "apache-2.0" and "anisora-open" in front["tags"]
    assert "make demo-model" in text and "2 CPU cores (test)" in text and "Total wall time 11 min" in text
    assert "| toonworld-stage3 | 40 | 4 | 160x96 | 8 | 2-4 | 10% | seed 0, 0-599 | 0.0001 | 1.0 min |" in text
    assert f"| {model.name} | {model.cases} | {model.first_frame:.2f} dB | {model.between:.2f} dB |" in text
    assert f"| crossfade | {fade.cases} | {fade.first_frame:.2f} dB |" in text
    assert "| 3.0 s |  | <= 20 s | yes |" in text
    assert "27.50 dB (one frame)" in text and "**Limits.**" in text
    assert model.cases and f"on {model.cases} cases of the bench" in text
    figures = json.loads((out / "figures.json").read_text())
    assert figures["runs"][1]["name"] == "crossfade" and len(figures["targets"]) == len(targets)
    with pytest.raises(InputError, match="not a finished training run"):
        stage_summary(tmp_path / "missing")


def test_model_card_cli_reads_the_runs_and_times_a_default_clip(runs, tmp_path, capsys):
    stage = _fake_run(tmp_path / "stage", "toonworld-stage3", 4)
    vae = tmp_path / "vae"
    vae.mkdir()
    history = {"loss": [1.0], "seconds": 60.0, "evals": [{"step": 1, "psnr_image": 20.0, "psnr_clip": 19.0}]}
    (vae / "training.json").write_text(json.dumps(history))
    model = tmp_path / "model"
    AnisoraPipeline(**build_components("tiny", "anisora", motion_embedding=True)).save_pretrained(model)
    args = ["evaluate", "model-card", "--model", str(model), "--vae-run", str(vae), "--stage", str(stage)]
    args += ["--eval-run", str(runs / "run"), "--crossfade", str(runs / "fade")]
    args += ["--round-trip", str(runs / "trip"), "--ablation", f"fewer steps={runs / 'run'}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "in-between frames PSNR, first + last given" in printed and "model size on disk" in printed
    text = (model / "README.md").read_text()
    assert "| fewer steps |" in text and "| round-trip |" in text and "no GPU" in text
    assert main([*args, "--compute", "one H200 for 9 min, then 2 CPU cores"]) == 0
    assert "Compute: one H200 for 9 min, then 2 CPU cores." in (model / "README.md").read_text()
    clip = next(
        t for t in json.loads((model / "figures.json").read_text())["targets"] if "2 s clip" in t["figure"]
    )
    assert clip["measured"].endswith(" s") and clip["met"] is not None
    assert main([*args[:-2], "--ablation", "no-name"]) == 2
    assert main([*args, "--notes", str(tmp_path / "missing.md")]) == 2
    assert "--notes" in capsys.readouterr().err


def test_a_card_continued_from_another_keeps_its_stages_vae_and_runs(runs, tmp_path, capsys):
    """A model trained further from a carded one: its card lists the earlier stages (from the earlier
    figures.json, the run folders being gone) and may show the earlier card's runs as rows."""
    first = tmp_path / "first"
    AnisoraPipeline(**build_components("tiny", "anisora", motion_embedding=True)).save_pretrained(first)
    vae = _vae_run(tmp_path / "vae", 50, 60.0, 21.0)
    figures = ["--eval-run", str(runs / "run"), "--crossfade", str(runs / "fade")]
    stage = _fake_run(tmp_path / "stage3", "toonworld-stage3", 4)
    base = ["evaluate", "model-card", "--vae-run", str(vae), "--stage", str(stage), *figures]
    assert main([*base, "--model", str(first), "--ablation", f"fewer steps={runs / 'run'}"]) == 0
    training = json.loads((first / "figures.json").read_text())["training"]
    assert [s["name"] for s in training["stages"]] == ["toonworld-stage3"] and training["vae"]["steps"] == 50

    second = tmp_path / "second"
    AnisoraPipeline(**build_components("tiny", "anisora", motion_embedding=True)).save_pretrained(second)
    stage4 = _fake_run(tmp_path / "stage4", "toonworld-stage4", 6)
    recorded = f"{first / 'figures.json'}#fewer steps"
    args = ["evaluate", "model-card", "--model", str(second), "--continues", str(first), *figures]
    assert main([*args, "--stage", str(stage4), "--ablation", f"the earlier model={recorded}"]) == 0
    text = (second / "README.md").read_text()
    assert text.index("| toonworld-stage3 | 4 |") < text.index("| toonworld-stage4 | 6 |")
    assert "50 steps in 1.0 min; held-out reconstruction 21.00 dB (one frame)" in text
    earlier = RunFigures.read(runs / "run")
    assert f"| the earlier model | {earlier.cases} | {earlier.first_frame:.2f} dB |" in text
    capsys.readouterr()
    for bad, words in (
        (["--continues", str(runs / "run")], "figures.json records no training parts"),
        (["--ablation", f"x={first / 'figures.json'}#no such run"], "records no run 'no such run'"),
    ):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert main(["evaluate", "model-card", "--model", str(second), "--vae-run", str(vae), *figures]) == 2
    assert "--stage" in capsys.readouterr().err


def test_toonworld_keyframes_cli(tmp_path, capsys):
    out = tmp_path / "keys"
    assert (
        main(
            ["toonworld", "keyframes", "--out", str(out), "--size", "64x48", "--frames", "9", "--index", "1"]
        )
        == 0
    )
    first, last, mask = (load_image(out / f"{n}.png") for n in ("first", "last", "mask"))
    assert first.shape == last.shape == (48, 64, 3) and not np.array_equal(first, last)
    assert 0 < (mask[..., 0] > 127).mean() < 1
    assert probe(out / "truth.mp4").frame_count == 9
    assert (out / "prompt.txt").read_text().strip() in capsys.readouterr().out


def _vae_run(folder, steps, seconds, psnr_image, **settings):
    folder.mkdir(parents=True)
    history = {"settings": {"steps": steps, **settings}, "loss": [0.1] * steps, "seconds": seconds}
    history["evals"] = [{"step": steps, "psnr_image": psnr_image, "psnr_clip": psnr_image - 2}]
    (folder / "training.json").write_text(json.dumps(history))
    return folder


def test_decoder_fine_tunes_are_stated_in_order_with_the_vae_they_tuned(runs, tmp_path):
    whole = _vae_run(tmp_path / "vae", 1124, 132.0, 27.3)
    tuned = _vae_run(tmp_path / "decoder", 900, 3600.0, 28.1, decoder_of=str(whole), batch_size=16, lr=3e-4)
    again = _vae_run(tmp_path / "again", 500, 1800.0, 29.0, decoder_of=str(tuned), mse_weight=20.0)
    vae = vae_summary(again)
    assert vae["steps"] == 1124 and [d["steps"] for d in vae["decoders"]] == [900, 500]
    model = RunFigures.read(runs / "run")
    out = tmp_path / "model"
    out.mkdir()
    targets = judge(model, None, None, 3.0, 4.0)
    text = write_model_card(
        out, [], vae, targets, [model], "cpu", "make", notes="Motion is *noisy*.\n"
    ).read_text()
    assert text.endswith("## Notes\n\nMotion is *noisy*.\n")
    assert "1124 steps in 2.2 min; held-out reconstruction 27.30 dB (one frame), 25.30 dB" in text
    assert (
        "--decoder-of`; batch 16, lr 0.0003): 900 steps in 60.0 min; held-out reconstruction 28.10 dB" in text
    )
    assert (
        "decoder alone again (" in text
        and "weighted 20): 500 steps in 30.0 min; held-out reconstruction 29.00" in text
    )
    assert "Total wall time 92 min" in text
    (whole / "training.json").unlink()
    with pytest.raises(InputError, match=r"training\.json"):
        vae_summary(again)
    # a fine-tune of a shipped VAE (no training history) extends the record its model's card kept
    (tuned / "training.json").unlink()
    kept = {
        "steps": 1124,
        "wall_seconds": 132.0,
        "settings": {},
        "final_eval": {},
        "decoders": [{"steps": 900}],
    }
    assert [d["steps"] for d in vae_summary(again, kept)["decoders"]] == [900, 500]


def test_a_card_that_kept_one_decoder_fine_tune_is_read_as_a_list_of_them(tmp_path):
    vae = {"steps": 1124, "decoder": {"steps": 1001}}
    (tmp_path / "figures.json").write_text(json.dumps({"training": {"stages": [], "vae": vae}}))
    assert earlier_training(tmp_path)["vae"] == {"steps": 1124, "decoders": [{"steps": 1001}]}
