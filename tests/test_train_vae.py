"""Training the demo VAE: the loss falls, the saved directory loads and compresses 4x in time, 8x in space."""

import json
import math

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLCogVideoX

from anisora.cli import main
from anisora.errors import InputError
from anisora.train.vae import demo_vae_config, evaluate_vae, render_clean_clip, train_vae

TINY = {**demo_vae_config(), "block_out_channels": (8, 8, 8, 8), "latent_channels": 4, "norm_num_groups": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "demo_vae"
    history = train_vae(
        out,
        steps=16,
        batch_size=2,
        seed=0,
        lr=2e-3,
        config=TINY,
        num_frames=9,
        crop=(32, 32),
        eval_clips=1,
        scale_clips=2,
    )
    return out, history


def test_loss_decreases(trained):
    loss = trained[1]["loss"]
    assert np.mean(loss[-4:]) < np.mean(loss[:4])


def test_saved_vae_loads_and_encodes_a_clip(trained):
    out, history = trained
    assert (out / "diffusion_pytorch_model.safetensors").is_file()
    vae = AutoencoderKLCogVideoX.from_pretrained(out, torch_dtype=torch.float32).eval()
    clip = torch.from_numpy(render_clean_clip(10_000, 0, 17)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(clip).latent_dist.mode()
    assert latents.shape == (1, 4, 5, 12, 20)
    # scaling_factor came from the data (1 / latent std), not the class default
    assert vae.config.scaling_factor != AutoencoderKLCogVideoX().config.scaling_factor
    assert 0.2 < latents.std().item() * vae.config.scaling_factor < 5
    assert all(math.isfinite(v) for v in history["evals"][-1].values())


def test_evaluate_gives_finite_psnrs(trained):
    vae = AutoencoderKLCogVideoX.from_pretrained(trained[0], torch_dtype=torch.float32)
    psnr = evaluate_vae(vae, num_clips=1, num_frames=9)
    assert set(psnr) == {"psnr_image", "psnr_clip"}
    assert all(math.isfinite(v) and v > 0 for v in psnr.values())


def test_rejects_clip_lengths_the_vae_cannot_encode(tmp_path):
    with pytest.raises(InputError, match="8k\\+1"):
        train_vae(tmp_path, steps=1, num_frames=8)


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_rejects_a_squared_error_weight_that_is_not_a_finite_non_negative_number(tmp_path, weight):
    with pytest.raises(InputError, match="squared-error weight"):
        train_vae(tmp_path, steps=1, mse_weight=weight)


def test_train_vae_cli_writes_the_vae_and_its_history(tmp_path, capsys):
    out = tmp_path / "vae"
    args = ["train", "vae", "--out", str(out), "--steps", "1", "--frames", "1", "--crop", "16x16", "--quiet"]
    assert main([*args, "--mse-weight", "4"]) == 0
    history = json.loads((out / "training.json").read_text())
    assert len(history["loss"]) == 1 and history["settings"]["crop"] == [16, 16]
    assert history["settings"]["mse_weight"] == 4
    assert "1 steps" in capsys.readouterr().out
    config = AutoencoderKLCogVideoX.from_pretrained(out).config
    assert config.latent_channels == 16 and len(config.block_out_channels) == 3  # the demo preset: 4x spatial


def small_run(out, steps=8, **changes):
    settings = dict(steps=steps, batch_size=1, seed=0, lr=2e-3, config=TINY, num_frames=9, crop=(16, 16))
    settings |= dict(eval_every=0, eval_clips=1, scale_clips=1, checkpoint_every=4, progress=False)
    return train_vae(out, **(settings | changes))


def test_a_killed_run_continues_exactly(tmp_path, monkeypatch):
    whole = small_run(tmp_path / "whole")

    import anisora.train.vae as vae_module

    real_loss, calls = vae_module._loss, []

    def dies_at_step_7(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(vae_module, "_loss", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        small_run(tmp_path / "killed")
    assert not (tmp_path / "killed").exists() and (tmp_path / "killed.resume.pt").is_file()
    monkeypatch.setattr(vae_module, "_loss", real_loss)
    resumed = small_run(tmp_path / "killed")  # steps 5-8 only
    np.testing.assert_allclose(resumed["loss"], whole["loss"], rtol=1e-5)
    assert resumed["scaling_factor"] == pytest.approx(whole["scaling_factor"], rel=1e-5)


def test_a_finished_run_trains_further_and_a_changed_one_is_refused(tmp_path):
    small_run(tmp_path / "vae", steps=4)
    with pytest.raises(InputError, match="already trained 4 steps"):
        small_run(tmp_path / "vae", steps=4)
    with pytest.raises(InputError, match=r"other settings \(lr\)"):
        small_run(tmp_path / "vae", steps=6, lr=1e-3)
    assert len(small_run(tmp_path / "vae", steps=6)["loss"]) == 6


def test_a_decoder_fine_tune_keeps_the_encoder_and_its_latent_scale(trained, tmp_path):
    source = AutoencoderKLCogVideoX.from_pretrained(trained[0], torch_dtype=torch.float32)
    history = small_run(tmp_path / "tuned", steps=4, config=None, decoder_of=trained[0])
    tuned = AutoencoderKLCogVideoX.from_pretrained(tmp_path / "tuned", torch_dtype=torch.float32)
    assert history["settings"]["decoder_of"] == str(trained[0])
    assert tuned.config.scaling_factor == source.config.scaling_factor
    for name, weight in source.encoder.state_dict().items():
        assert torch.equal(tuned.encoder.state_dict()[name], weight), name
    changed = [
        n for n, w in source.decoder.state_dict().items() if not torch.equal(tuned.decoder.state_dict()[n], w)
    ]
    assert changed  # the decoder trained
    with pytest.raises(InputError, match=r"other settings \(.*decoder_of\)"):
        small_run(tmp_path / "tuned", steps=6, config=None)


def test_a_decoder_fine_tune_needs_a_vae_directory(tmp_path):
    with pytest.raises(InputError, match="not a VAE directory"):
        small_run(tmp_path / "tuned", config=None, decoder_of=tmp_path)
    with pytest.raises(InputError, match="keeps its VAE's config"):
        small_run(tmp_path / "tuned", decoder_of=tmp_path)
