"""The spatiotemporal mask module: frame mapping, re-projection, guide placement and every refused request."""

import numpy as np
import pytest
import torch

from anisora.errors import InputError
from anisora.model.conditioning import (
    REGION_FEATHER,
    ConditionRequest,
    Guide,
    HeldRegion,
    build_conditioning,
    check_frame_count,
    fit_image,
    frames_for_seconds,
    input_channels,
    latent_frame_count,
    latent_index,
    layout_for,
    pixel_frame_mask,
    reproject_mask,
    stack_conditionings,
)

C = 4  # latent channels of the fake encoder


def fake_encode(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, 1, H, W) -> (N, C, 1, H/8, W/8): channel means of 8x8 cells, plus the channel index, so every
    guide's latent is known exactly."""
    n, _, _, h, w = images.shape
    pooled = images[:, :, 0].reshape(n, 3, h // 8, 8, w // 8, 8).mean(dim=(3, 5))
    mean = pooled.mean(dim=1, keepdim=True)
    return (mean + torch.arange(C).view(1, C, 1, 1)).unsqueeze(2)


def image(value: int, h: int = 32, w: int = 48) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def build(**kwargs):
    request = ConditionRequest(**{"num_frames": 9, "height": 32, "width": 48, **kwargs})
    return build_conditioning(request, fake_encode, latent_channels=C)


def test_pixel_to_latent_mapping_first_last_and_groups():
    assert latent_index(0) == 0
    assert [latent_index(p) for p in (1, 2, 3, 4)] == [1, 1, 1, 1]
    assert [latent_index(p) for p in (5, 8, 9)] == [2, 2, 3]
    assert latent_frame_count(49) == 13 and latent_index(48) == 12  # last frame -> last latent frame
    assert latent_frame_count(1) == 1 and latent_frame_count(33) == 9


def test_frame_counts_and_durations():
    assert frames_for_seconds(2) == 33 and frames_for_seconds(3) == 49 and frames_for_seconds(8) == 129
    assert frames_for_seconds(6, fps=8) == 49
    for bad in (1.9, 8.5, float("nan")):
        with pytest.raises(InputError, match="2-8 s"):
            frames_for_seconds(bad)
    with pytest.raises(InputError, match="use 41 or 49"):
        check_frame_count(48)
    with pytest.raises(InputError, match="use 49 or 57"):
        check_frame_count(50)
    with pytest.raises(InputError, match=r"odd number of latent frames.*use 9 or 17"):
        check_frame_count(13)  # 4k+1, but 4 latent frames would decode to 16 frames
    with pytest.raises(InputError, match="positive"):
        check_frame_count(0)


def test_reprojection_hand_computed():
    # F = 9, guides at 0 and 6: frame 0 repeated 4 times, then [1..4], [5..8] folded onto 4 channels.
    mask = reproject_mask(pixel_frame_mask(9, [(0, 1.0), (6, 0.5)]))
    expected = [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0.5, 0, 0]]
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(reproject_mask([1.0]), [[1, 1, 1, 1]])
    np.testing.assert_array_equal(reproject_mask(pixel_frame_mask(5, [(4, 1.0)])), [[0] * 4, [0, 0, 0, 1]])


def test_guides_placed_at_their_latent_index_with_strength():
    guides = [Guide(image(255), 0), Guide(image(0), 6, 0.5), Guide(image(255), 12)]
    cond = build(num_frames=17, guides=guides)
    assert cond.guide_latents.shape == (1, 5, C, 4, 6) and cond.mask.shape == (1, 5, 4, 4, 6)
    g = cond.guide_latents[0]
    channel = torch.arange(C).view(C, 1, 1).float().expand(C, 4, 6)
    torch.testing.assert_close(g[0], 1.0 + channel)  # white -> +1
    torch.testing.assert_close(g[2], 0.5 * (-1.0 + channel))  # black at half strength
    torch.testing.assert_close(g[3], 1.0 + channel)
    assert torch.count_nonzero(g[1]) == 0 and torch.count_nonzero(g[4]) == 0
    assert cond.mask[0, :, :, 0, 0].tolist() == [[1] * 4, [0] * 4, [0, 0.5, 0, 0], [0, 0, 0, 1], [0] * 4]


def test_guide_sequence_is_zero_where_no_guide():
    cond = build(num_frames=17, guides=[Guide(image(255), 16, 0.5)])
    g = cond.guide_latents[0]
    assert torch.count_nonzero(g[:4]) == 0
    channel = torch.arange(C).view(C, 1, 1).float()
    torch.testing.assert_close(g[4], 0.5 * (1.0 + channel.expand(C, 4, 6)))
    assert cond.mask[0, :, :, 2, 3].tolist() == [[0] * 4] * 4 + [[0, 0, 0, 0.5]]


def test_guide_interpolation_holds_and_cross_fades_over_latent_frames():
    channel = torch.arange(C).view(C, 1, 1).float().expand(C, 4, 6)
    white, black = 1.0 + channel, -1.0 + channel
    first_last = build(num_frames=17, guides=[Guide(image(255), 0), Guide(image(0), 16)])
    base = first_last.guide_interpolation()[0]
    for t, share in enumerate([0, 0.25, 0.5, 0.75, 1]):  # latent frames 0-4 between the two keyframes
        torch.testing.assert_close(base[t], (1 - share) * white + share * black)
    middle = build(num_frames=17, guides=[Guide(image(0), 6, 0.5)])  # latent frame 2, half strength
    base = middle.guide_interpolation()[0]
    for t in range(5):  # held before and after the one guide, at the strength it was given
        torch.testing.assert_close(base[t], 0.5 * black)
    assert torch.count_nonzero(build(num_frames=17).guide_interpolation()) == 0
    batch = stack_conditionings([first_last, middle])  # each sample its own guides
    torch.testing.assert_close(
        batch.guide_interpolation(),
        torch.cat([first_last.guide_interpolation(), middle.guide_interpolation()]),
    )


def test_layouts_concatenate_noise_mask_guides():
    cond = build(guides=[Guide(image(255), 0)])
    noisy = torch.randn(2, 3, C, 4, 6)
    wide, narrow = cond.model_input(noisy, "anisora"), cond.model_input(noisy, "v1")
    assert wide.shape[2] == input_channels(C, "anisora") == 2 * C + 4
    assert narrow.shape[2] == input_channels(C, "v1") == 2 * C
    torch.testing.assert_close(wide[:, :, :C], noisy)
    torch.testing.assert_close(wide[:, :, C : C + 4], cond.mask.expand(2, -1, -1, -1, -1))
    torch.testing.assert_close(wide[:, :, C + 4 :], narrow[:, :, C:])
    assert layout_for(36, 16) == "anisora" and layout_for(32, 16) == "v1"
    with pytest.raises(InputError, match="fits no layout"):
        layout_for(33, 16)


def test_other_aspect_is_centre_cropped_and_reported():
    wide = np.zeros((32, 96, 3), np.uint8)
    wide[:, 24:72] = 200  # the middle half survives a crop to 48x32
    fitted, note = fit_image(wide, 32, 48)
    assert fitted.shape == (32, 48, 3) and note is not None and "cut" in note
    assert fitted[:, 2:-2].min() == 200
    assert fit_image(image(9, 64, 96), 32, 48)[1] is None  # same aspect: scaled only
    cond = build(guides=[Guide(wide, 0)])
    assert any("centre-cropped" in n for n in cond.notes)


def test_motion_mask_goes_to_latent_cells_by_max_pool():
    mask = np.zeros((32, 48), np.uint8)
    mask[10, 20] = 255  # one pixel may move -> exactly the latent cell (1, 2)
    cond = build(guides=[Guide(image(255), 0)], motion_mask=mask)
    region = cond.region[0, 0, 0]
    assert region.shape == (4, 6) and region.sum() == 1 and region[1, 2] == 1
    torch.testing.assert_close(cond.region_latent, cond.guide_latents[:, :1])
    # a mask drawn on a guide of another size but the same aspect is scaled like the guide
    half = np.zeros((16, 24, 3), np.uint8)
    half[:, 12:] = 255
    cond = build(guides=[Guide(image(255, 16, 24), 0)], motion_mask=half)
    assert cond.region[0, 0, 0, :, 3:].min() == 1 and cond.region[0, 0, 0, :, :3].max() == 0


def test_prompt_suffix_and_scores():
    assert build(prompt="  A girl waves ").prompt == "A girl waves"
    assert build(prompt="A girl waves", motion_score=1.25).prompt.endswith(
        "A girl waves. aesthetic score: 5.5. motion score: 1.2."  # the official default
    )
    own = build(prompt="x", motion_score=2.0, default_aesthetic=5.0, prompt_suffix=" No text.")
    assert own.prompt == "x. aesthetic score: 5.0. motion score: 2.0. No text."  # a model's own defaults
    cond = build(prompt="x", motion_score=2.0, aesthetic_score=6.04)
    assert cond.prompt == "x. aesthetic score: 6.0. motion score: 2.0." and cond.motion_score == 2.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"guides": [Guide(image(1), 9)]}, r"outside the video: frames are 0-8"),
        ({"guides": [Guide(image(1), -1)]}, r"give the last frame as 8, not -1"),
        ({"guides": [Guide(image(1), 2), Guide(image(1), 3)]}, r"frames 2 and 3 share latent frame 1"),
        ({"guides": [Guide(image(1), 5), Guide(image(1), 8)]}, r"share latent frame 2 \(pixel frames 5-8\)"),
        ({"guides": [Guide(image(1), 0, 1.5)]}, r"strength must be in \[0, 1\]"),
        ({"num_frames": 10}, r"not of the form 8k\+1"),
        ({"height": 40}, r"multiple of 16"),
        ({"motion_mask": np.ones((32, 48), np.uint8) * 255}, r"needs a guide image"),
        ({"guides": [Guide(image(1), 0)], "motion_mask": np.ones((30, 30), np.uint8) * 255}, r"aspect|draw"),
        ({"guides": [Guide(image(1), 0)], "motion_mask": np.zeros((32, 48), np.uint8)}, r"mask is empty"),
        ({"guides": [Guide(image(1), 0)], "motion_mask": np.ones((2, 32, 48, 3))}, r"2-D image"),
        ({"guides": [Guide(np.zeros((32, 48, 3), np.float32), 0)]}, r"uint8"),
        ({"guides": [Guide(np.zeros((32, 48, 2), np.uint8), 0)]}, r"H x W x 3"),
        ({"motion_score": -1.0}, r"motion score must be"),
        ({"aesthetic_score": float("inf")}, r"aesthetic score must be"),
    ],
)
def test_bad_requests_are_explained(kwargs, message):
    with pytest.raises(InputError, match=message):
        build(**kwargs)


def test_a_held_region_keeps_the_guide_outside_the_mask_and_fades_in_over_its_edge():
    guide = np.full((8, 12, 3), 200, np.uint8)
    mask = np.zeros((8, 12), bool)
    mask[:, 4:] = True  # columns 4-11 may move
    held = HeldRegion.of(guide, mask)
    moving = torch.full((1, 3, 2, 8, 12), -1.0)  # a black video
    out = held.apply(moving)
    torch.testing.assert_close(out[..., :4], torch.full_like(out[..., :4], 200 / 127.5 - 1))
    torch.testing.assert_close(out[..., 4 + REGION_FEATHER :], moving[..., 4 + REGION_FEATHER :])
    ramp = out[0, 0, 0, 0, 3 : 4 + REGION_FEATHER]  # strictly falling from the guide's grey to black
    assert bool((ramp[1:] < ramp[:-1]).all())
    with_mask = build_conditioning(
        ConditionRequest(
            9, 32, 48, [Guide(np.full((32, 48, 3), 7, np.uint8), 0)], np.full((32, 48), 255, np.uint8)
        ),
        lambda x: torch.zeros(x.shape[0], 16, 1, 4, 6),
        latent_channels=16,
    )
    assert with_mask.held is not None and float(with_mask.held.weight.min()) == 1.0  # all may move: no change
    assert build_conditioning(ConditionRequest(9, 32, 48, []), lambda x: x, latent_channels=16).held is None
