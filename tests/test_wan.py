"""AnisoraWanPipeline (AniSora V2-V3.2 on diffusers' Wan) on tiny random components."""

import json

import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline
from PIL import Image

from anisora.errors import InputError
from anisora.model.backbones.wan import AnisoraWanPipeline
from anisora.model.conditioning import Guide, pixel_frame_mask, reproject_mask
from anisora.model.presets import build_wan_components

SIZE = dict(num_frames=9, height=32, width=48)
SIZE_REQUEST = dict(frames=9, height=32, width=48)


def panel(seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((32, 48, 3)) * 255).astype(np.uint8)


def tiny(experts=False) -> AnisoraWanPipeline:
    pipe = AnisoraWanPipeline(**build_wan_components(experts=experts))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Calls:
    """The hidden states each transformer saw, call by call."""

    def __init__(self, *modules):
        self.seen = {id(m): [] for m in modules}
        for module in modules:
            module.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output):
        self.seen[id(module)].append(kwargs["hidden_states"].clone())

    def of(self, module) -> list[torch.Tensor]:
        return self.seen[id(module)]


def test_one_guide_at_frame_0_matches_diffusers():
    """With a first-frame guide AniSora's conditioning is diffusers' own: the same latents, same seed."""
    pipe = tiny()
    ours = pipe(
        [Guide(panel(), 0)], prompt="a cat", num_inference_steps=3, guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0), output_type="latent", **SIZE,
    ).frames  # fmt: skip
    reference = WanImageToVideoPipeline(**build_wan_components())
    reference.set_progress_bar_config(disable=True)
    theirs = reference(
        image=Image.fromarray(panel()), prompt="a cat", num_inference_steps=3, guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0), output_type="latent", **SIZE,
    ).frames  # fmt: skip
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_guides_at_any_frame_are_in_the_mask_and_the_condition():
    pipe = tiny()
    calls = Calls(pipe.transformer)
    guides = [Guide(panel(), 0), Guide(panel(1), 5, 0.5)]
    out = pipe(guides, prompt="a cat", num_inference_steps=1, **SIZE)
    assert out.frames.shape == (1, 9, 32, 48, 3) and out.frames.dtype == np.float32
    (seen,) = calls.of(pipe.transformer)  # guidance 1: one call, no unconditional pass
    expected = reproject_mask(
        pixel_frame_mask(9, [(0, 1.0), (5, 0.5)])
    ).T  # (4 mask channels, 3 latent frames)
    np.testing.assert_array_equal(seen[0, 16:20, :, 0, 0].numpy(), expected)
    alone = tiny()
    calls_alone = Calls(alone.transformer)
    alone([Guide(panel(), 0)], prompt="a cat", num_inference_steps=1, **SIZE)
    condition, condition_alone = seen[0, 20:], calls_alone.of(alone.transformer)[0][0, 20:]
    assert (condition[:, 2] - condition_alone[:, 2]).abs().max() > 0.01  # frame 5 lies in latent frame 2


def test_wan22_experts_switch_at_the_boundary():
    """8 steps with shift 5: timesteps 999 972 937 893 | 833 750 625 418; the high-noise expert takes
    t >= 900. One transformer call per step at guidance 1, two above it."""
    pipe = tiny(experts=True)
    calls = Calls(pipe.transformer, pipe.transformer_2)
    pipe([Guide(panel(), 0)], prompt="a cat", num_inference_steps=8, guidance_scale=1.0, **SIZE)
    assert (len(calls.of(pipe.transformer)), len(calls.of(pipe.transformer_2))) == (3, 5)
    calls = Calls(pipe.transformer, pipe.transformer_2)
    pipe([Guide(panel(), 0)], prompt="a cat", num_inference_steps=8, guidance_scale=2.0, **SIZE)
    assert (len(calls.of(pipe.transformer)), len(calls.of(pipe.transformer_2))) == (6, 10)


def test_any_4k_plus_1_frames_and_bad_requests():
    pipe = tiny()
    assert (
        pipe([Guide(panel(), 0)], num_inference_steps=1, num_frames=5, height=32, width=48).frames.shape[1]
        == 5
    )
    with pytest.raises(InputError, match="not of the form 4k\\+1"):
        pipe([Guide(panel(), 0)], num_frames=7, height=32, width=48)
    with pytest.raises(InputError, match="at least one guide"):
        pipe([], **SIZE)
    with pytest.raises(InputError, match="outside the video"):
        pipe([Guide(panel(), 9)], **SIZE)


def test_generate_runs_a_wan_directory_with_its_release_presets(tmp_path):
    """A saved Wan directory loads by its model_index; steps, guidance and fps come from its presets."""
    from anisora.cli import main
    from anisora.media import probe, save_image

    presets = {"fps": 12, "num_frames": 9, "height": 32, "width": 48, "steps": 2, "guidance": 1.0}
    AnisoraWanPipeline(**build_wan_components(experts=True), anisora_presets=presets).save_pretrained(
        tmp_path / "v3.2"
    )
    save_image(tmp_path / "first.png", panel())
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(tmp_path / "v3.2"), "--image", str(tmp_path / "first.png")]
    assert main([*args, "--at", f"1:{tmp_path / 'first.png'}", "--out", str(out)]) == 0
    info = probe(out)
    assert (info.frame_count, info.width, info.height, info.fps) == (9, 48, 32, 12)
    resolved = json.loads(out.with_suffix(".json").read_text())["resolved"]
    assert (resolved["backbone"], resolved["steps"], resolved["guidance"]) == ("wan", 2, 1.0)
    assert resolved["guide_frames"] == [0, 8]

    plain = tmp_path / "wan2.1"  # as diffusers (and `anisora convert wan`) name the class
    WanImageToVideoPipeline(**build_wan_components()).save_pretrained(plain)
    args = ["generate", "--model", str(plain), "--image", str(tmp_path / "first.png"), "--size", "48x32"]
    assert main([*args, "--frames", "5", "--steps", "1", "--out", str(tmp_path / "plain.mp4")]) == 0
    assert main([*args, "--frames", "7", "--out", str(tmp_path / "bad.mp4")]) == 2  # Wan: 4k+1


def test_sample_reports_progress_and_uses_the_release_suffix_and_mask():
    """`sample` drives a Wan pipeline like a CogVideoX one: progress per step, the release's prompt suffix
    and aesthetic default, and a motion mask."""
    from anisora.model.request import GuideSpec, Request
    from anisora.model.sampling import sample

    presets = {"steps": 3, "guidance": 1.0, "prompt_suffix": " There is no text in the video."}
    pipe = AnisoraWanPipeline(**build_wan_components(), anisora_presets=presets)
    pipe.set_progress_bar_config(disable=True)
    mask = np.zeros((32, 48), np.uint8)
    mask[8:24, 16:32] = 255
    calls = []
    request = Request((GuideSpec(panel(), 0),), mask=mask, prompt="a girl", motion=3.0, **SIZE_REQUEST)
    result = sample(pipe, request, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result.prompt == "a girl. aesthetic score: 5.5. motion score: 3.0. There is no text in the video."
    assert result.frames.shape == (9, 32, 48, 3) and result.resolved["backbone"] == "wan"
