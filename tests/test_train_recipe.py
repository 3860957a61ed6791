"""The training recipe on tiny components: a run, kill -9 and resume, 2 CPU processes (gloo), region LoRA."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from anisora.errors import InputError
from anisora.model.conditioning import Guide
from anisora.model.presets import build_components
from anisora.model.weights import load_lora, load_pipeline
from anisora.train.config import OptimConfig, load_train_config
from anisora.train.recipe import check_stage_order, lr_factor, train


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    """A tiny VAE and a tiny T5 (tokenizer + encoder) saved the way a user's would be."""
    root = tmp_path_factory.mktemp("parts")
    components = build_components("tiny")
    components["vae"].save_pretrained(root / "vae")
    components["tokenizer"].save_pretrained(root / "t5" / "tokenizer")
    components["text_encoder"].save_pretrained(root / "t5" / "text_encoder")
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stage(parts: Path, out: Path, **sections) -> Path:
    values = {
        "name": out.name,
        "out": str(out),
        "init": {"architecture": "tiny", "vae": str(parts / "vae"), "text_encoder": str(parts / "t5")},
        "data": {"resolutions": [[32, 32]], "fps": 4, "min_seconds": 2, "max_seconds": 3, "batch_size": 2},
        "optim": {"steps": 4, "warmup_steps": 1},
        "checkpoint_every": 2,
    }
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def transformer_weights(run: Path) -> dict:
    return load_file(next((run / "final" / "transformer").glob("*.safetensors")))


def test_a_run_saves_a_model_that_generates(parts, tmp_path):
    final = train(load_train_config(stage(parts, tmp_path / "run")), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4] and all(np.isfinite(e["loss"]) for e in log)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step_00000002.pt",
        "step_00000004.pt",
    ]
    pipe = load_pipeline(final)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.fps == 4 and pipe.config.motion_embedding is True and pipe.layout == "anisora"
    image = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    out = pipe([Guide(image, 0)], num_frames=9, height=32, width=32, num_inference_steps=2, motion_score=1.0)
    assert out.frames.shape == (1, 9, 32, 32, 3)
    fresh = build_components("tiny", motion_embedding=True)["transformer"]  # training moved the weights
    trained = transformer_weights(tmp_path / "run")
    assert any(not torch.equal(trained[k], v) for k, v in fresh.state_dict().items() if k in trained)


# Runs `anisora train` with SIGKILL sent to itself right after the checkpoint of step 4 is saved: a kill -9
# at a known point, whatever the machine's speed (polling for the file from outside raced the next steps).
KILLED_AFTER_STEP_4 = """
import os, signal, sys
from anisora.cli import main
from anisora.train import recipe
save = recipe._save_checkpoint
def save_then_die(out, step, *args):
    save(out, step, *args)
    if step == 4:
        os.kill(os.getpid(), signal.SIGKILL)
recipe._save_checkpoint = save_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_and_the_same_command_continues_the_same_run(parts, tmp_path):
    steps = {"optim": {"steps": 8, "warmup_steps": 1}}
    reference = stage(parts, tmp_path / "whole", **steps)
    interrupted = stage(parts, tmp_path / "killed", **steps)
    command = [sys.executable, "-m", "anisora.cli", "train", "run", "--quiet", "--config"]
    subprocess.run([*command, str(reference)], check=True, capture_output=True)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_STEP_4, "train", "run", "--quiet", "--config", str(interrupted)],
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert (tmp_path / "killed" / "checkpoints" / "step_00000004.pt").exists()
    assert not (tmp_path / "killed" / "final").exists()
    resumed = subprocess.run(  # without --quiet: it says where it resumed
        [*command[:-2], "--config", str(interrupted)], check=True, capture_output=True, text=True
    )
    assert "resumed from" in resumed.stderr

    a, b = transformer_weights(tmp_path / "whole"), transformer_weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == list(range(1, 9))  # no step twice, none lost


def test_a_run_folder_started_from_another_model_is_not_resumed(parts, tmp_path):
    config = load_train_config(stage(parts, tmp_path / "run", optim={"steps": 2}))
    train(config, progress=False)
    recorded = (tmp_path / "run" / "config.json").read_text()
    other = stage(parts, tmp_path / "run", init={"model": str(tmp_path / "elsewhere")})
    with pytest.raises(InputError, match=r"holds a run with another init \(model: None, now '.*elsewhere'\)"):
        train(load_train_config(other), progress=False)
    assert (tmp_path / "run" / "config.json").read_text() == recorded


def test_two_cpu_processes_with_gloo(parts, tmp_path):
    config = stage(parts, tmp_path / "ddp", optim={"steps": 2, "warmup_steps": 1})
    port = free_port()  # a fixed port fails when another run of the suite holds it
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    command = [*launch, "-m", "anisora.cli", "train", "run", "--quiet", "--config", str(config)]
    subprocess.run(command, check=True, env={**os.environ, "ACCELERATE_USE_CPU": "true"})  # gloo backend
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [(e["step"], e["processes"]) for e in log] == [(1, 2), (2, 2)]  # one log, by the main process
    assert load_pipeline(tmp_path / "ddp" / "final").layout == "anisora"


def test_region_lora_is_saved_on_its_own_and_loads(parts, tmp_path):
    base = train(load_train_config(stage(parts, tmp_path / "base", optim={"steps": 1})), progress=False)
    lora = stage(
        parts,
        tmp_path / "lora",
        init={"model": str(base)},
        masking={"p_first": 1.0, "p_drop_all": 0.0},
        lora={"rank": 4, "region": True},
        data={"image_share": 0.0},
        optim={"steps": 3, "warmup_steps": 1},
    )
    final = train(load_train_config(lora), progress=False)
    assert [p.name for p in final.iterdir()] == ["pytorch_lora_weights.safetensors"]
    pipe = load_pipeline(base)
    load_lora(pipe, final)
    assert "lora" in pipe.get_active_adapters()


def test_residuals_to_the_guides_start_at_their_interpolation(parts, tmp_path):
    """Switched on for a clean-latent model, the output layer is zeroed: the prediction is exactly the guides'
    interpolation before training (latent, then flow); the flags are saved, residuals cannot be switched back,
    and v models refuse them."""
    from diffusers import CogVideoXDDIMScheduler

    from anisora.model.conditioning import ConditionRequest, build_conditioning
    from anisora.model.info import ModelInfo
    from anisora.model.pipeline import AnisoraPipeline
    from anisora.model.presets import scheduler_config
    from anisora.train.components import build_pipeline

    components = build_components("tiny", motion_embedding=True)
    components["scheduler"] = CogVideoXDDIMScheduler(
        **{**scheduler_config("tiny"), "prediction_type": "sample"}
    )
    AnisoraPipeline(**components).save_pretrained(tmp_path / "clean")
    residual = {"model": str(tmp_path / "clean"), "residual_to_guides": True}
    pipe = build_pipeline(load_train_config(stage(parts, tmp_path / "run", init=residual)))
    assert pipe.config.residual_to_guides and not pipe.transformer.proj_out.weight.any()
    rng = np.random.default_rng(0)
    keys = [Guide((rng.random((32, 32, 3)) * 255).astype(np.uint8), f) for f in (0, 8)]
    request = ConditionRequest(num_frames=9, height=32, width=32, guides=keys)
    cond = build_conditioning(request, pipe._encode_guides, latent_channels=pipe.vae.config.latent_channels)
    noisy = torch.randn(2, *cond.guide_latents.shape[1:])
    text = torch.randn(2, 8, pipe.transformer.config.text_embed_dim)
    predicted = pipe.predict(noisy, cond, text, torch.tensor([500, 500]), motion=torch.tensor([100.0, 100.0]))
    torch.testing.assert_close(predicted, cond.guide_interpolation().expand_as(predicted))

    final = train(load_train_config(stage(parts, tmp_path / "run", init=residual)), progress=False)
    assert load_pipeline(final).config.residual_to_guides
    with pytest.raises(InputError, match=r"init\.guide_interpolation is for residual models"):
        build_pipeline(load_train_config(stage(parts, tmp_path / "f", init={"guide_interpolation": "flow"})))

    # switched to the keyframes' flow interpolation: zeroed again, it predicts that; it trains and is saved
    flow = {**residual, "model": str(final), "guide_interpolation": "flow"}
    pipe = build_pipeline(load_train_config(stage(parts, tmp_path / "flow", init=flow)))
    assert pipe.config.guide_interpolation == "flow" and not pipe.transformer.proj_out.weight.any()
    info = ModelInfo.of(pipe)
    cond = build_conditioning(
        info.condition(9, 32, 32, keys), pipe._encode_guides, latent_channels=pipe.vae.config.latent_channels
    )
    assert cond.interpolated is not None
    predicted = pipe.predict(noisy, cond, text, torch.tensor([500, 500]), motion=torch.tensor([100.0, 100.0]))
    torch.testing.assert_close(predicted, cond.guide_interpolation().expand_as(predicted))
    flown = train(load_train_config(stage(parts, tmp_path / "flow", init=flow)), progress=False)
    assert ModelInfo.read(flown).interpolation == "flow"
    back = {"model": str(final), "residual_to_guides": False}
    with pytest.raises(InputError, match=r"set init\.residual_to_guides: true"):
        build_pipeline(load_train_config(stage(parts, tmp_path / "back", init=back)))
    with pytest.raises(InputError, match="needs a clean-latent"):  # the tiny preset predicts v
        build_pipeline(load_train_config(stage(parts, tmp_path / "v", init={"residual_to_guides": True})))


def test_a_stage_s_sampling_presets_are_saved_with_the_model(parts, tmp_path):
    from anisora.model.info import ModelInfo
    from anisora.model.motion_guidance import MotionGuidance
    from anisora.train.components import build_pipeline

    sampling = {"steps": 25, "keyframe_steps": 3, "guidance": 1.0, "scheduler": "ddim"}
    sampling |= {"motion_guidance": 2.0, "motion_guidance_reference": 9.5, "motion_guidance_until": 0.4}
    fresh = build_pipeline(load_train_config(stage(parts, tmp_path / "a", sampling=sampling)))
    fresh.save_pretrained(tmp_path / "a-model")
    info = ModelInfo.read(tmp_path / "a-model")
    assert (info.steps, info.keyframe_steps, info.guidance, info.scheduler) == (25, 3, 1.0, "ddim")
    assert info.motion_guidance == MotionGuidance(2.0, 9.5, 0.4)
    assert info.guide_fit_steps == 10
    later = stage(parts, tmp_path / "b", init={"model": str(tmp_path / "a-model")}, sampling={"steps": 30})
    presets = build_pipeline(load_train_config(later)).config.anisora_presets
    assert (presets["steps"], presets["scheduler"]) == (30, "ddim")  # a later stage keeps what it leaves out
    for wrong in ({"guidance": 0.5}, {"scheduler": "euler"}, {"motion_guidance_until": 0}):
        with pytest.raises(InputError, match=next(iter(wrong))):
            load_train_config(stage(parts, tmp_path / "c", sampling=wrong))


def test_stages_must_chain(parts, tmp_path):
    first = load_train_config(stage(parts, tmp_path / "one"))
    second = load_train_config(stage(parts, tmp_path / "two", init={"model": str(tmp_path / "elsewhere")}))
    with pytest.raises(InputError, match="must start from"):
        check_stage_order([first, second])
    chained = load_train_config(
        stage(parts, tmp_path / "two", init={"model": str(tmp_path / "one" / "final")})
    )
    check_stage_order([first, chained])


def test_a_vae_of_another_spatial_factor_than_the_architecture_is_refused(parts, tmp_path):
    """The "demo" architecture's 4x4 patches are sized for a 4x VAE: a "tiny" (8x) VAE would make 32x32-pixel
    tokens, so it is refused before training starts."""
    config = load_train_config(stage(parts, tmp_path / "run", init={"architecture": "demo"}))
    with pytest.raises(InputError, match="compresses 8x spatially; the 'demo' architecture's patches"):
        train(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_feature_cache_gives_the_same_run_without_encoding_again(parts, tmp_path, monkeypatch):
    """A finite ToonWorld set with a cache: the second run reads every latent and text feature from disk."""
    data = {"num_shots": 3, "cache": str(tmp_path / "features"), "image_share": 0.0}
    first = train(load_train_config(stage(parts, tmp_path / "a", data=data)), progress=False)
    files = list((tmp_path / "features").rglob("*.pt"))
    assert {f.parent.parent.name for f in files} == {"clip", "guide", "text"}

    from diffusers import AutoencoderKLCogVideoX

    def no_encoding(*args, **kwargs):
        raise AssertionError("the VAE encoded although the cache holds everything")

    monkeypatch.setattr(AutoencoderKLCogVideoX, "encode", no_encoding)
    second = train(load_train_config(stage(parts, tmp_path / "b", data=data)), progress=False)
    assert len(list((tmp_path / "features").rglob("*.pt"))) == len(files)
    losses = [
        [json.loads(line)["loss"] for line in (run.parent / "log.jsonl").read_text().splitlines()]
        for run in (first, second)
    ]
    assert losses[0] == losses[1]


def test_render_workers_give_the_same_run_and_resume_mid_run(parts, tmp_path):
    """data.workers renders batches ahead in other processes: the losses and weights are those of a run
    that renders in the training process, also when the run resumes from a checkpoint half-way."""
    inline = train(load_train_config(stage(parts, tmp_path / "inline")), progress=False)
    config = stage(parts, tmp_path / "workers", data={"workers": 2})
    train(load_train_config(config, settings=[(("optim", "steps"), 2)]), progress=False)
    ahead = train(load_train_config(config), progress=False)  # resumes at step 2 of 4
    losses = [
        [json.loads(line)["loss"] for line in (run.parent / "log.jsonl").read_text().splitlines()]
        for run in (inline, ahead)
    ]
    assert len(losses[1]) == 4 and losses[0] == losses[1]
    for name, value in transformer_weights(inline.parent).items():
        torch.testing.assert_close(transformer_weights(ahead.parent)[name], value, rtol=0, atol=0)


def test_a_time_budget_ends_at_a_checkpoint_and_equals_a_run_of_that_many_steps(parts, tmp_path):
    budget = train(load_train_config(stage(parts, tmp_path / "budget")), progress=False, minutes=1e-9)
    assert json.loads((budget.parent / "config.json").read_text())["optim"]["steps"] == 2
    counted = stage(parts, tmp_path / "counted", optim={"steps": 2})
    counted_final = train(load_train_config(counted), progress=False)
    for name, value in transformer_weights(counted_final.parent).items():
        torch.testing.assert_close(transformer_weights(budget.parent)[name], value, rtol=0, atol=0)


def test_a_time_budget_needs_a_constant_schedule(parts, tmp_path):
    config = stage(parts, tmp_path / "cosine", optim={"schedule": "cosine"})
    run = subprocess.run(
        [sys.executable, "-m", "anisora.cli", "train", "run", "--config", str(config), "--minutes", "1"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "optim.schedule=constant" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "cosine").exists()


def test_lr_factor_warms_up_then_is_constant_or_cosine():
    constant = OptimConfig(steps=100, warmup_steps=10)
    cosine = OptimConfig(steps=100, warmup_steps=10, schedule="cosine")
    assert lr_factor(constant, 0) == pytest.approx(0.1) and lr_factor(constant, 99) == 1.0
    assert lr_factor(cosine, 9) == 1.0 and lr_factor(cosine, 10) == 1.0
    after = [lr_factor(cosine, s) for s in range(10, 101)]
    assert all(a > b for a, b in itertools.pairwise(after)) and after[-1] == pytest.approx(0.1)
    with pytest.raises(InputError, match="schedule"):
        load_train_config(overrides={"optim": {"schedule": "linear"}})


def test_speeds_replay_toonworld_only(tmp_path):
    assert load_train_config(overrides={"data": {"speeds": [0.5, 2]}}).data.speeds == [0.5, 2]
    with pytest.raises(InputError, match=r"data: speeds replays ToonWorld shots only"):
        load_train_config(overrides={"data": {"source": str(tmp_path), "speeds": [2]}})


def test_targets_follow_the_schedulers_prediction_type():
    """v is learnt as diffusers defines it, unweighted; a clean-latent ("sample") prediction, the demo
    preset's, learns the latent itself weighted by 1 + SNR capped at 5, so that neither the low-noise steps
    (SNR up to ~1e3) nor the pure-noise step (SNR 0 on this schedule) are lost."""
    from anisora.model.presets import scheduler_config
    from anisora.train.recipe import SAMPLE_WEIGHT_CAP, _target

    latents, noise = torch.randn(3, 2, 4, 2, 2), torch.randn(3, 2, 4, 2, 2)
    steps = torch.tensor([0, 500, 999])
    v_scheduler = build_components("tiny")["scheduler"]
    target, weight = _target(v_scheduler, latents, noise, steps)
    torch.testing.assert_close(target, v_scheduler.get_velocity(latents, noise, steps))
    assert weight.flatten().tolist() == [1.0, 1.0, 1.0]

    from diffusers import CogVideoXDDIMScheduler

    sample_scheduler = CogVideoXDDIMScheduler(**scheduler_config("demo"))
    assert sample_scheduler.config.prediction_type == "sample"
    target, weight = _target(sample_scheduler, latents, noise, steps)
    assert target is latents
    alphas = sample_scheduler.alphas_cumprod[steps]
    expected = (1 + alphas / (1 - alphas)).clamp(max=SAMPLE_WEIGHT_CAP)
    assert weight.flatten().tolist() == pytest.approx(expected.tolist())
    assert weight.flatten()[0] == SAMPLE_WEIGHT_CAP and weight.flatten()[-1] == pytest.approx(1.0)
