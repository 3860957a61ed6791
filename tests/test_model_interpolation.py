"""Keyframes interpolated along their optical flow (`anisora.model.interpolation`) and the "flow" guides'
interpolation the conditioning module builds from it."""

import cv2
import numpy as np
import pytest
import torch

from anisora.errors import InputError
from anisora.model.conditioning import ConditionRequest, Guide, build_conditioning, flow_interpolation
from anisora.model.interpolation import between, keyframe_video


def scene(x: float, height: int = 96, width: int = 160) -> np.ndarray:
    """A textured background with a dark figure (a disc with a stripe) centred at column `x`."""
    rows, columns = np.mgrid[0:height, 0:width]
    picture = np.stack(
        [
            100 + 60 * np.sin(columns / 7.0),
            120 + 50 * np.cos(rows / 5.0),
            140 + 40 * np.sin((rows + columns) / 9.0),
        ],
        axis=-1,
    )
    figure = (columns - x) ** 2 + (rows - height / 2) ** 2 < 14**2
    picture[figure] = (30, 20, 90)
    picture[figure & (np.abs(rows - height / 2) < 3)] = (250, 230, 40)
    return picture.round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / error)


def test_in_betweens_follow_the_motion_where_a_cross_fade_ghosts():
    start, end = 50.0, 70.0  # the figure moves 20 px (most of its own width) in 8 frames
    video = keyframe_video([scene(start), scene(end)], [0, 8], 9)
    assert video.shape == (9, 96, 160, 3) and video.dtype == np.float32
    np.testing.assert_array_equal(video[0], scene(start))  # the keyframes themselves, exactly
    np.testing.assert_array_equal(video[8], scene(end))
    for k in (2, 4, 6):
        truth = scene(start + (end - start) * k / 8)
        crossfade = (1 - k / 8) * scene(start).astype(np.float32) + k / 8 * scene(end)
        moved, ghost = psnr(video[k], truth), psnr(crossfade, truth)
        assert moved > ghost + 4, (k, moved, ghost)


def test_held_before_the_first_keyframe_and_after_the_last():
    first, last = scene(60), scene(70)
    video = keyframe_video([first, last], [4, 12], 17)
    for k in range(5):
        np.testing.assert_array_equal(video[k], first)
    for k in range(12, 17):
        np.testing.assert_array_equal(video[k], last)
    still = keyframe_video([first], [0], 9)  # one keyframe: a still
    assert all(np.array_equal(frame, first) for frame in still)


def test_keyframes_out_of_order_or_outside_are_refused():
    with pytest.raises(ValueError, match="increase"):
        keyframe_video([scene(60), scene(70)], [8, 4], 9)
    with pytest.raises(ValueError, match="increase within 0-8"):
        keyframe_video([scene(60)], [9], 9)


C = 4


def pooled_encode(video: torch.Tensor) -> torch.Tensor:
    """(N, 3, F, H, W) -> (N, C, T, H/8, W/8): 8x8 cell means of the channel mean of frame 0 and of each
    group of 4 frames after it, plus the channel index (a stand-in for a causal VAE with known latents)."""
    n, _, f, h, w = video.shape
    frames = [video[:, :, :1]] + [video[:, :, i : i + 4] for i in range(1, f, 4)]
    cells = [x.mean(dim=(1, 2)).reshape(n, h // 8, 8, w // 8, 8).mean(dim=(2, 4)) for x in frames]
    return torch.stack(cells, dim=1)[:, None] + torch.arange(C).view(1, C, 1, 1, 1)


def test_the_flow_interpolation_is_the_encoded_keyframe_video_at_the_guides_strengths():
    keys = [Guide(scene(50), 0), Guide(scene(90), 16, 0.5)]
    request = ConditionRequest(num_frames=17, height=96, width=160, guides=keys, interpolation="flow")
    cond = build_conditioning(request, pooled_encode, latent_channels=C)
    video = flow_interpolation(keys, [k.image for k in keys], 17)
    assert video.shape == (1, 3, 17, 96, 160)
    expected = keyframe_video([k.image for k in keys], [0, 16], 17) / 127.5 - 1
    strength = np.linspace(1, 0.5, 17, dtype=np.float32)[:, None, None, None]
    np.testing.assert_allclose(video[0].permute(1, 2, 3, 0).numpy(), expected * strength, atol=1e-6)
    torch.testing.assert_close(cond.guide_interpolation(), pooled_encode(video).permute(0, 2, 1, 3, 4))
    latent = build_conditioning(
        ConditionRequest(num_frames=17, height=96, width=160, guides=keys), pooled_encode, latent_channels=C
    )
    torch.testing.assert_close(cond.interpolated_video, video)  # kept in pixels for `decode_change`
    assert latent.interpolated is None and not torch.equal(
        latent.guide_interpolation(), cond.guide_interpolation()
    )
    none = ConditionRequest(num_frames=17, height=96, width=160, interpolation="flow")
    assert (
        torch.count_nonzero(build_conditioning(none, pooled_encode, latent_channels=C).guide_interpolation())
        == 0
    )
    with pytest.raises(InputError, match="unknown guide interpolation 'optical'; choose one of latent, flow"):
        build_conditioning(
            ConditionRequest(num_frames=17, height=96, width=160, interpolation="optical"),
            pooled_encode,
            latent_channels=C,
        )


def panned(x: float, shift: float, height: int = 96, width: int = 160) -> np.ndarray:
    """A figure at column `x` on a set twice as wide (flat blocks of random colours, no repeating pattern),
    seen through a window `shift` px from the set's left edge: a pan."""
    cells = np.random.default_rng(0).random((height // 8, width // 4, 3)) * 200 + 30
    wide = cv2.resize(cells, (2 * width, height), interpolation=cv2.INTER_NEAREST)
    rows, columns = np.mgrid[0:height, 0 : 2 * width]
    wide[(columns - x - shift) ** 2 + (rows - height / 2) ** 2 < 14**2] = (30, 20, 90)
    start = round(shift)
    return wide[:, start : start + width].clip(0, 255).round().astype(np.uint8)


def test_a_camera_pan_is_followed_where_the_flow_alone_loses_it():
    from anisora.model.interpolation import camera_motion, local_flow

    first, last = panned(60, 0), panned(66, 48)  # the camera pans 48 px (a third of the picture) in 16 frames
    video = keyframe_video([first, last], [0, 16], 17)
    camera = camera_motion(first, last)
    np.testing.assert_allclose(camera[20:-20, 20:-20].mean(axis=(0, 1)), (-48, 0), atol=1.0)
    forward, backward = local_flow(first, last), local_flow(last, first)
    for k in (4, 8, 12):
        truth = panned(60 + 6 * k / 16, 48 * k / 16)
        alone = np.float32(between(first, last, k / 16, forward, backward))
        crossfade = (1 - k / 16) * first.astype(np.float32) + k / 16 * last
        assert psnr(video[k], truth) > max(psnr(alone, truth), psnr(crossfade, truth)) + 3, k


def test_a_figure_moving_over_a_still_set_is_not_taken_for_the_camera():
    from anisora.model.interpolation import camera_motion

    assert not camera_motion(scene(50), scene(70)).any()


def test_a_residual_model_that_changes_nothing_gives_its_flow_interpolation_in_pixels():
    """`decode_change`: the output is the pixel interpolation plus the decoded change, so an untrained
    residual model (zero output) gives the interpolation itself, not the VAE's copy of it."""
    from diffusers import CogVideoXDDIMScheduler

    from anisora.model.pipeline import AnisoraPipeline
    from anisora.model.presets import build_components, scheduler_config
    from anisora.model.vae import uint8_frames

    components = build_components("tiny", "anisora")
    clean = {**scheduler_config("tiny"), "prediction_type": "sample"}
    components["scheduler"] = CogVideoXDDIMScheduler.from_config(clean)
    pipe = AnisoraPipeline(**components, residual_to_guides=True, guide_interpolation="flow")
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        pipe.transformer.proj_out.weight.zero_()
        pipe.transformer.proj_out.bias.zero_()
    first, last = (cv2.resize(scene(x), (48, 32), interpolation=cv2.INTER_AREA) for x in (50, 90))
    interpolation = keyframe_video([first, last], [0, 8], 9)

    def error(decode_change: bool) -> float:
        made = pipe(
            [Guide(first, 0), Guide(last, 8)],
            num_frames=9,
            height=32,
            width=48,
            num_inference_steps=3,
            decode_change=decode_change,
            generator=torch.Generator().manual_seed(0),
        )
        return float(np.abs(uint8_frames(made.frames[0]) - interpolation).mean())

    # the tiny random VAE's copy is tens of levels off; the change is decoded from latents that differ
    # from the interpolation's only where frame 0 is pinned to its guide's own latent
    assert error(decode_change=True) < 2 < 10 < error(decode_change=False)


def test_generate_decodes_the_demo_models_change_unless_asked_for_the_whole_video(tmp_path):
    import json

    from anisora.cli import main
    from anisora.media import read_frames, save_image

    save_image(tmp_path / "first.png", scene(50))
    save_image(tmp_path / "last.png", scene(90))
    args = ["generate", "--guide", f"0:{tmp_path / 'first.png'}", "--guide", f"8:{tmp_path / 'last.png'}"]
    args += ["--steps", "2", "--frames", "9", "--lossless"]
    made = {}
    for extra, change in (([], True), (["--decode-whole"], False)):
        out = tmp_path / f"{change}.mp4"
        assert main([*args, *extra, "--out", str(out)]) == 0
        assert json.loads(out.with_suffix(".json").read_text())["resolved"]["decode_change"] is change
        made[change] = read_frames(out, range(9))
    # the keyframes come back nearer themselves when only the change is decoded
    for frame, image in ((0, scene(50)), (8, scene(90))):
        assert psnr(made[True][frame], image) > psnr(made[False][frame], image) + 3
