"""AnisoraPipeline on tiny random CogVideoX components: sampling, CFG branches, layouts, weights, LoRA."""

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDPMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXTransformer3DModel,
)

from anisora.errors import InputError
from anisora.model import vae as vae_module
from anisora.model.conditioning import Guide
from anisora.model.info import ModelInfo
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components, transformer_config, vae_config
from anisora.model.vae import cpu_vae, onednn_convolutions, uint8_frames
from anisora.model.weights import load_lora, load_pipeline, widen_to_anisora

SIZE = dict(num_frames=9, height=32, width=48)


def tiny(layout="anisora", **kwargs) -> AnisoraPipeline:
    pipe = AnisoraPipeline(**build_components("tiny", layout, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def panel(seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((32, 48, 3)) * 255).astype(np.uint8)


def run(pipe, guides=None, seed=0, **kwargs):
    guides = [Guide(panel(), 0)] if guides is None else guides
    kwargs = {**SIZE, "num_inference_steps": 3, "generator": torch.Generator().manual_seed(seed), **kwargs}
    return pipe(guides, prompt="a girl waves", **kwargs)


def video(out) -> np.ndarray:
    """The one video of an "np" output as (F, H, W, 3) uint8, as `sampling.sample` gives it."""
    return uint8_frames(out.frames[0])


class Recorder:
    """Records the transformer's inputs at every call."""

    def __init__(self, pipe):
        self.calls = []
        pipe.transformer.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output):
        self.calls.append({k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})


@pytest.fixture(scope="module")
def pipe():
    return tiny()


def test_output_frames_and_seeds(pipe):
    a, b, c = run(pipe, seed=1), run(pipe, seed=1), run(pipe, seed=2)
    assert a.frames.shape == (1, 9, 32, 48, 3) and a.frames.dtype == np.float32
    np.testing.assert_array_equal(a.frames, b.frames)
    assert np.abs(video(a).astype(int) - video(c)).max() > 0
    assert a.prompt == "a girl waves"


def test_cfg_branches_keep_guides_and_drop_only_the_text(pipe):
    recorder = Recorder(pipe)
    run(pipe, guides=[Guide(panel(), 0), Guide(panel(1), 8)], guidance_scale=6.0)
    call = recorder.calls[0]
    x, text = call["hidden_states"], call["encoder_hidden_states"]
    assert x.shape == (2, 3, 12, 4, 6)  # batch 2: unconditional, conditional; 4 noise + 4 mask + 4 guides
    torch.testing.assert_close(x[0], x[1])  # same noisy latent, mask and guide latents in both branches
    assert torch.count_nonzero(x[0, :, 8:]) > 0
    assert (text[0] - text[1]).abs().max() > 0  # the text differs: "" vs the prompt
    recorder.calls.clear()
    run(pipe, guidance_scale=1.0)
    assert recorder.calls[0]["hidden_states"].shape[0] == 1  # no unconditional branch without CFG


def test_guide_placement_in_the_transformer_input(pipe):
    recorder = Recorder(pipe)
    run(pipe, guides=[Guide(panel(), 6)], guidance_scale=1.0)
    x = recorder.calls[0]["hidden_states"][0]
    mask, guides = x[:, 4:8], x[:, 8:]
    assert [bool(guides[t].abs().sum() > 0) for t in range(3)] == [False, False, True]
    assert mask[:, :, 0, 0].tolist() == [[0] * 4, [0] * 4, [0, 1, 0, 0]]


def test_dynamic_cfg_and_both_schedulers(pipe):
    plain, dynamic = run(pipe), run(pipe, use_dynamic_cfg=True)
    assert np.abs(video(plain).astype(int) - video(dynamic)).max() > 0
    dpm = tiny()
    dpm.scheduler = CogVideoXDPMScheduler.from_config(dpm.scheduler.config)
    steps = []
    out = run(dpm, progress=lambda i, n: steps.append((i, n)))
    assert out.frames.shape == (1, 9, 32, 48, 3) and steps == [(1, 3), (2, 3), (3, 3)]
    config = dpm.scheduler.config
    assert config.prediction_type == "v_prediction" and config.rescale_betas_zero_snr


@pytest.mark.parametrize("scheduler", [None, CogVideoXDPMScheduler])
def test_a_clean_latent_predictor_is_sampled_to_its_prediction(scheduler, monkeypatch):
    """The demo preset predicts the clean latent ("sample"): a transformer that always predicts the same
    latent must be sampled to exactly that latent, by DDIM and by DPM++, on the zero-terminal-SNR schedule."""
    pipe = tiny()
    config = {**pipe.scheduler.config, "prediction_type": "sample"}
    pipe.scheduler = (scheduler or type(pipe.scheduler)).from_config(config)
    clean = torch.randn(1, 3, 4, 4, 6, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(pipe, "predict", lambda noisy, *args, **kwargs: clean.expand_as(noisy))
    out = run(pipe, guides=[], output_type="latent", guidance_scale=1.0)
    torch.testing.assert_close(out.frames.float(), clean, rtol=1e-4, atol=1e-4)


def test_motion_region_pins_the_static_area_to_the_guide_latent(pipe):
    mask = np.zeros((32, 48), np.uint8)
    mask[:, :24] = 255  # the left half may move
    out = run(pipe, motion_mask=mask, output_type="latent")
    latents = out.frames[0]  # (T, C, h, w)
    pixels = torch.from_numpy(panel()).permute(2, 0, 1)[None, :, None] / 127.5 - 1
    guide = pipe._encode_guides(pixels)[0, :, 0]
    torch.testing.assert_close(latents[:, :, :, 3:], guide[None, :, :, 3:].expand(3, -1, -1, -1))
    assert (latents[1:, :, :, :3] - guide[None, :, :, :3]).abs().max() > 0.1  # the free half does move
    # in pixels the still half is the guide's own, where a pinned latent alone decodes to its lossy copy
    frames = video(run(pipe, motion_mask=mask)).astype(int)
    assert np.abs(frames[:, :, 24:] - panel()[:, 24:]).max() <= 1  # float rounding on the way to uint8
    unheld = video(run(pipe, motion_mask=np.full((32, 48), 255, np.uint8))).astype(int)
    assert np.abs(unheld[:, :, 24:] - panel()[:, 24:]).mean() > 2
    assert np.abs(frames[1:, :, :20] - panel()[:, :20]).mean() > 2  # past the feather the half moves


def test_a_full_strength_first_frame_guide_comes_back_as_its_vae_round_trip(pipe):
    """Latent frame 0 is pinned to the guide's latent, so frame 0 decodes as the guide's round trip (up to the
    VAE decoder's group norms, which see the whole clip); weaker guides and guides at other frames stay
    conditioning only."""
    pixels = torch.from_numpy(panel()).permute(2, 0, 1)[None, :, None] / 127.5 - 1
    guide = pipe._encode_guides(pixels)[0, :, 0]
    latents = run(pipe, output_type="latent").frames[0]
    torch.testing.assert_close(latents[0], guide, rtol=0, atol=1e-6)
    round_trip = pipe.decode_latents(guide[None, None])[0, :, 0]
    expected = ((round_trip.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pinned = np.abs(video(run(pipe))[0].astype(int) - expected).mean()
    free = np.abs(video(run(pipe, guides=[Guide(panel(), 0, 0.99)]))[0].astype(int) - expected).mean()
    assert pinned < 0.5 * free
    late = run(pipe, guides=[Guide(panel(), 8)], output_type="latent").frames[0]
    assert (late[2] - guide).abs().max() > 0.1


def test_a_4x_vae_with_4x4_patches_sizes_latents_regions_and_checks_from_its_configs():
    """The demo model's geometry: three VAE blocks (4x spatial) and 4x4 patches, so a token still covers
    16x16 pixels; latent shapes, the motion region's cells and the size rule follow the model's configs."""
    from diffusers import AutoencoderKLCogVideoX

    components = build_components("tiny")
    three = dict(block_out_channels=(8, 8, 8), down_block_types=("CogVideoXDownBlock3D",) * 3)
    components["vae"] = AutoencoderKLCogVideoX(
        **{**vae_config("tiny"), **three, "up_block_types": ("CogVideoXUpBlock3D",) * 3}
    ).eval()
    args = {**transformer_config("tiny"), "patch_size": 4, "sample_width": 16, "sample_height": 16}
    components["transformer"] = CogVideoXTransformer3DModel(**args).eval()
    pipe = AnisoraPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    info = ModelInfo.of(pipe)
    assert (info.spatial, info.patch, info.height, info.width) == (4, 4, 64, 64)
    mask = np.zeros((32, 48), np.uint8)
    mask[:, :24] = 255  # the left half may move: latent columns 0-5 of 12
    latents = run(pipe, motion_mask=mask, output_type="latent").frames[0]
    assert latents.shape == (3, 4, 8, 12)
    pixels = torch.from_numpy(panel()).permute(2, 0, 1)[None, :, None] / 127.5 - 1
    guide = pipe._encode_guides(pixels)[0, :, 0]
    torch.testing.assert_close(latents[:, :, :, 6:], guide[None, :, :, 6:].expand(3, -1, -1, -1))
    assert (latents[1:, :, :, :6] - guide[None, :, :, :6]).abs().max() > 0.1
    assert run(pipe).frames.shape == (1, 9, 32, 48, 3)
    with pytest.raises(InputError, match="multiple of 16 \\(4x VAE, 4x4 patches\\)"):
        run(pipe, width=40)


def assert_same_up_to_float32_rounding(a: torch.Tensor, b: torch.Tensor) -> None:
    """The widened input convolution sums the same products plus zeros, in a blocking that depends on its
    channel count and on the thread count; float32 rounding (about 1e-7 relative per operation) then grows
    through the layers and sampling steps, up to 3e-6 seen under load. 1e-4 of the latents' scale stays far
    below a real change (test_zero_init_widening_keeps_the_base_output shows one)."""
    scale = max(a.abs().max().item(), 1.0)
    assert (a - b).abs().max().item() <= 1e-4 * scale


def test_a_vae_call_without_native_bfloat16_runs_its_3d_convolutions_on_onednn(monkeypatch):
    """Without native bfloat16 a one-clip float32 3D convolution would run on PyTorch's reference kernel:
    `cpu_vae` sends every one to oneDNN, with the same decode and the same gradient to the latents, none to
    the VAE's weights, and leaves the VAE as it was."""
    vae = AutoencoderKLCogVideoX(**vae_config("tiny")).eval()
    latents = torch.randn(1, vae.config.latent_channels, 2, 6, 8, generator=torch.Generator().manual_seed(0))
    convs = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.Conv3d)]
    calls = []
    onednn = torch.mkldnn_convolution
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *args: calls.append(1) or onednn(*args))

    def decode_with_gradient(run):
        z = latents.clone().requires_grad_(True)
        video = run(lambda batch: vae.decode(batch).sample, z)
        video[:, :, 0].pow(2).mean().backward()
        return video.detach(), z.grad

    monkeypatch.setattr(vae_module, "native_bfloat16", lambda: False)
    ours, our_gradient = decode_with_gradient(lambda call, z: cpu_vae(vae, call, z))
    assert len(calls) >= 2 * len(convs)  # each decoder convolution forward and back at least once
    assert all(p.grad is None for p in vae.parameters())
    assert not any("_conv_forward" in m.__dict__ for m in convs)
    plain, plain_gradient = decode_with_gradient(lambda call, z: call(z))
    assert torch.allclose(ours, plain, atol=1e-5)
    assert (our_gradient - plain_gradient).norm() <= 1e-5 * plain_gradient.norm()
    calls.clear()
    monkeypatch.setattr(vae_module, "native_bfloat16", lambda: True)  # bfloat16 autocast instead
    with torch.no_grad():
        cpu_vae(vae, lambda batch: vae.decode(batch).sample, latents)
    assert calls == []


@pytest.mark.parametrize(
    "stride, padding, kernel", [(1, 1, 3), (1, 0, 1), (2, 1, 3), ((1, 2, 2), (0, 1, 1), 3)]
)
def test_onednn_convolutions_match_pytorch_and_their_input_gradient(stride, padding, kernel):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(4, 6, kernel, stride=stride, padding=padding).requires_grad_(False)
    x = torch.randn(1, 4, 5, 9, 11)

    def run(convolve):
        inputs = x.clone().requires_grad_(True)
        out = convolve(inputs)
        out.mul(torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        return out.detach(), inputs.grad

    with onednn_convolutions(conv):
        ours = run(conv)
    theirs = run(conv)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def test_zero_init_widening_keeps_the_base_output():
    base = tiny("v1")
    components = build_components("tiny", "v1")
    wide = AnisoraPipeline(**{**components, "transformer": widen_to_anisora(base.transformer)})
    wide.set_progress_bar_config(disable=True)
    assert base.layout == "v1" and wide.layout == "anisora"
    guides = [Guide(panel(), 0), Guide(panel(1), 8)]
    a = run(base, guides, output_type="latent").frames
    b = run(wide, guides, output_type="latent").frames
    assert_same_up_to_float32_rounding(a, b)
    with torch.no_grad():  # small mask-channel weights: a change far above the tolerance
        mask_weights = wide.transformer.patch_embed.proj.weight[:, 4:8]
        mask_weights.copy_(0.01 * torch.randn(mask_weights.shape, generator=torch.Generator().manual_seed(0)))
    c = run(wide, guides, output_type="latent").frames
    assert (a - c).abs().max().item() > 1e-2


def test_motion_embedding_changes_the_output_and_is_saved(tmp_path):
    pipe = tiny(motion_embedding=True)
    slow, fast = run(pipe, motion_score=0.5), run(pipe, motion_score=3.0)
    assert slow.prompt.endswith("motion score: 0.5.")
    assert np.abs(video(slow).astype(int) - video(fast)).max() > 0
    assert any("motion embedding used" in n for n in run(pipe).notes)
    pipe.save_pretrained(tmp_path)
    loaded = load_pipeline(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.motion_embedding is True and loaded.config.fps == 8
    np.testing.assert_array_equal(run(loaded, motion_score=3.0).frames, fast.frames)


def test_motion_guidance_acts_in_the_noisy_steps_only():
    """An extra pass at the reference score in the guided steps alone (DDIM's 4 steps: 999, 749, 499, 249;
    until 0.5 guides the first two); the prediction moves away from the reference's, and asking the
    reference itself changes nothing."""
    from anisora.model.motion_guidance import MotionGuidance

    pipe = tiny(motion_embedding=True)
    recorder = Recorder(pipe)
    plain = run(pipe, motion_score=3.0, num_inference_steps=4, output_type="latent").frames
    assert len(recorder.calls) == 4
    recorder.calls.clear()
    guided = MotionGuidance(scale=2.0, reference=1.0, until=0.5)
    moved = run(
        pipe, motion_score=3.0, num_inference_steps=4, output_type="latent", motion_guidance=guided
    ).frames
    ofs = [call["ofs"][0].item() for call in recorder.calls]  # with CFG, the batch is doubled
    timesteps = [call["timestep"][0].item() for call in recorder.calls]
    assert ofs == [300.0, 100.0, 300.0, 100.0, 300.0, 300.0] and timesteps == [999, 999, 749, 749, 499, 249]
    assert (moved - plain).abs().max().item() > 1e-3
    at_reference = MotionGuidance(scale=2.0, reference=3.0, until=0.5)
    same = run(
        pipe, motion_score=3.0, num_inference_steps=4, output_type="latent", motion_guidance=at_reference
    )
    torch.testing.assert_close(same.frames, plain, rtol=0, atol=0)
    with pytest.raises(InputError, match="needs a model with a motion embedding"):
        run(tiny(), num_inference_steps=1, motion_guidance=guided)
    with pytest.raises(InputError, match=r"motion guidance until must be in \(0, 1\]"):
        run(pipe, num_inference_steps=1, motion_guidance=MotionGuidance(2.0, 1.0, 0.0))


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_anisora", "AnisoraPipeline"]  # diffusers' custom-pipeline form
    assert list((tmp_path / "transformer").glob("*.safetensors"))
    loaded = load_pipeline(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(loaded).frames, run(pipe).frames)


def spiece_tokenizer(folder):
    """A T5 tokenizer folder as CogVideoX-5B-I2V ships it: spiece.model + tokenizer_config.json only."""
    import sentencepiece as spm

    folder.mkdir(parents=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("a girl waves her hand. aesthetic score: 5.0. motion score: 1.2.\n" * 20)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=30, pad_id=0, eos_id=1, unk_id=2,
        bos_id=-1, minloglevel=2,
    )  # fmt: skip
    corpus.unlink()
    (folder / "spiece.model").with_suffix(".vocab").unlink()
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "model_max_length": 64, "extra_ids": 0})
    )


def test_loads_a_cogvideox_i2v_directory_and_widens_it(tmp_path):
    from transformers import T5Tokenizer

    spiece_tokenizer(tmp_path / "spm")
    components = build_components("tiny", "v1", seed=3)
    components.pop("motion_embedding")
    components["tokenizer"] = T5Tokenizer.from_pretrained(tmp_path / "spm")
    components["text_encoder"].resize_token_embeddings(len(components["tokenizer"]))
    official = tmp_path / "CogVideoX-5b-I2V"
    CogVideoXImageToVideoPipeline(**components).save_pretrained(official)
    shutil.rmtree(official / "tokenizer")
    shutil.copytree(tmp_path / "spm", official / "tokenizer")
    index = json.loads((official / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXImageToVideoPipeline"

    v1 = load_pipeline(official)
    assert (
        v1.layout == "v1" and v1.config.motion_embedding is False and v1.config.fps == 8
    )  # CogVideoX-5B-I2V plays at 8 fps
    widened = load_pipeline(official, layout="anisora")
    assert widened.layout == "anisora"
    for p in (v1, widened):
        p.set_progress_bar_config(disable=True)
    a = run(v1, output_type="latent").frames
    b = run(widened, output_type="latent").frames
    assert_same_up_to_float32_rounding(a, b)


def test_lora_is_loaded_and_scaled(pipe, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    trained = tiny()
    trained.transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    )
    AnisoraPipeline.save_lora_weights(
        tmp_path, transformer_lora_layers=get_peft_model_state_dict(trained.transformer)
    )
    base = video(run(pipe))
    with_lora = tiny()
    load_lora(with_lora, tmp_path, scale=1.0)
    assert np.abs(video(run(with_lora)).astype(int) - base).max() > 0
    with_lora.set_adapters(["lora"], [0.0])
    np.testing.assert_array_equal(video(run(with_lora)), base)


def test_bad_model_inputs(tmp_path, pipe):
    with pytest.raises(InputError, match=r"no model_index\.json"):
        load_pipeline(tmp_path)
    with pytest.raises(InputError, match=r"LoRA .* does not exist"):
        load_lora(pipe, tmp_path / "missing")
    with pytest.raises(InputError, match="outside the video"):
        run(pipe, guides=[Guide(panel(), 9)])
    with pytest.raises(InputError, match="steps must be at least 1"):
        run(pipe, num_inference_steps=0)
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(InputError, match=r"cannot read .*model_index\.json"):
        load_pipeline(tmp_path)


def learned_positions_pipe() -> AnisoraPipeline:
    """The tiny pipeline with a learned position embedding (as CogVideoX-5B-I2V and AniSora V1 have), its rows
    planted with their own index so a row can be recognised in the transformer's input."""
    components = build_components("tiny")
    config = transformer_config("tiny", "anisora")
    config.update(use_learned_positional_embeddings=True, sample_height=4, sample_width=6)  # 32 x 48 pixels
    transformer = CogVideoXTransformer3DModel(**config).eval()
    pipe = AnisoraPipeline(**{**components, "transformer": transformer})
    pipe.set_progress_bar_config(disable=True)
    rows = transformer.patch_embed.pos_embedding
    with torch.no_grad():
        rows.copy_(torch.arange(rows.shape[1], dtype=rows.dtype)[None, :, None].expand_as(rows))
    return pipe


def positions_seen(pipe, num_frames: int) -> torch.Tensor:
    """The position embedding the transformer added at the first step (patch embedding with - without it)."""
    seen = []
    embed = pipe.transformer.patch_embed
    hook = embed.register_forward_hook(lambda module, args, out: seen.append((args, out)))
    run(pipe, num_frames=num_frames, num_inference_steps=1, guidance_scale=1.0)
    hook.remove()
    (text, image), with_positions = seen[0]
    embed.use_learned_positional_embeddings = embed.use_positional_embeddings = False
    bare = embed(text, image)
    embed.use_learned_positional_embeddings = embed.use_positional_embeddings = True
    return (with_positions - bare)[0, :, 0]


def test_a_learned_position_embedding_serves_shorter_clips_with_its_first_rows():
    """diffusers swaps a learned embedding for a computed one at any frame count but its own; the official
    code uses the learned one's first rows. Here 9 frames is the full grid and 1 frame its prefix."""
    pipe = learned_positions_pipe()
    full = pipe.transformer.patch_embed.pos_embedding.shape[1]
    torch.testing.assert_close(positions_seen(pipe, 9), torch.arange(full, dtype=torch.float32))
    prefix = 64 + 2 * 3  # text rows, then one latent frame: 4 x 6 latent cells in 2 x 2 patches
    torch.testing.assert_close(positions_seen(pipe, 1), torch.arange(prefix, dtype=torch.float32))
    assert pipe.transformer.patch_embed.pos_embedding.shape[1] == full  # restored after the call


@pytest.mark.parametrize(("num_frames", "height", "width"), [(17, 32, 48), (9, 48, 48)])
def test_sizes_a_learned_position_embedding_lacks_are_refused(num_frames, height, width):
    pipe = learned_positions_pipe()
    with pytest.raises(InputError, match=r"covers 48x32 with up to 9 frames"):
        run(pipe, num_frames=num_frames, height=height, width=width)


def test_a_hub_id_loads_from_the_local_cache_and_is_never_downloaded(tmp_path, monkeypatch):
    """`org/name` is looked up in the Hugging Face cache (its layout: models--org--name/refs/main and
    snapshots/<commit>/); one that is not there is one error line naming the download command."""
    import huggingface_hub.constants

    from anisora.model.info import ModelInfo, model_directory

    cache = tmp_path / "hub"
    commit = "0" * 40
    snapshot = cache / "models--studio--tiny-anisora" / "snapshots" / commit
    tiny().save_pretrained(snapshot)
    (cache / "models--studio--tiny-anisora" / "refs").mkdir()
    (cache / "models--studio--tiny-anisora" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_directory("studio/tiny-anisora") == snapshot
    assert ModelInfo.read("studio/tiny-anisora").layout == "anisora"
    pipe = load_pipeline("studio/tiny-anisora")
    assert pipe.transformer.config.in_channels == tiny().transformer.config.in_channels
    with pytest.raises(InputError, match="`hf download studio/missing`"):
        model_directory("studio/missing")
    assert model_directory(str(tmp_path)) == tmp_path  # a folder that exists is itself
