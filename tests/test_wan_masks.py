"""AnisoraWanPipeline's known pixels (anymask release) and motion-region control, on tiny random Wan parts.

The expected model inputs are computed here the way the official anymask scripts do (torch layouts
F x 3 x H x W, `interpolate`, frame 0 repeated 4 times, folded onto channels), not with `conditioning`.
"""

import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler
from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor

from anisora.errors import InputError
from anisora.model.backbones.wan import AnisoraWanPipeline
from anisora.model.conditioning import Guide, KnownPixels, fit_image, fit_known
from anisora.model.presets import build_wan_components
from anisora.model.vae import uint8_frames

F, H, W = 9, 32, 48
SIZE = dict(num_frames=F, height=H, width=W)


def pixels(seed: int, frames: int = F, h: int = H, w: int = W) -> np.ndarray:
    return (np.random.default_rng(seed).random((frames, h, w, 3)) * 255).astype(np.uint8)


def planted_mask(seed: int = 7) -> np.ndarray:
    """Per-pixel random 0/1: no 8 x 8 cell is uniform, so the nearest resampling is visible."""
    return (np.random.default_rng(seed).random((F, H, W)) > 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def pipe() -> AnisoraWanPipeline:
    pipe = AnisoraWanPipeline(**build_wan_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Inputs:
    """What the transformer saw on each call: hidden states ([noise, mask, condition]) and CLIP tokens."""

    def __init__(self, module):
        self.hidden, self.image = [], []
        self.handle = module.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output):
        self.hidden.append(kwargs["hidden_states"].clone())
        self.image.append(kwargs["encoder_hidden_states_image"].clone())


def model_input(pipe, guides=(), **kwargs):
    inputs = Inputs(pipe.transformer)
    try:
        pipe(guides, prompt="a cat", num_inference_steps=1, output_type="latent", **SIZE, **kwargs)
    finally:
        inputs.handle.remove()
    (hidden,), (image,) = inputs.hidden, inputs.image  # guidance 1: one call
    return hidden, image


@torch.no_grad()
def encoded(pipe, video: torch.Tensor) -> torch.Tensor:
    """(F, 3, H, W) in [-1, 1] -> the normalised latent (1, C, T, h, w), as the official `WanVAE.encode`."""
    latent = retrieve_latents(pipe.vae.encode(video.permute(1, 0, 2, 3)[None]), sample_mode="argmax")
    config = pipe.vae.config
    mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(config.latents_std).view(1, -1, 1, 1, 1)
    return (latent - mean) / std


def official_mask_channels(binary: torch.Tensor, mode: str) -> torch.Tensor:
    """The anymask scripts' mask channels from a binary (F, 3, H, W) mask: resize to latent H x W, take one
    channel, repeat frame 0 four times, fold groups of 4 onto channels -> (4, T, h, w)."""
    msk = torch.nn.functional.interpolate(binary, size=(H // 8, W // 8), mode=mode)[:, 0][None]
    msk = torch.cat([msk[:, :1].repeat_interleave(4, dim=1), msk[:, 1:]], dim=1)
    return msk.view(1, msk.shape[1] // 4, 4, H // 8, W // 8).transpose(1, 2)[0]


def official_inputs(pipe, video: np.ndarray, mask: np.ndarray, mode: str):
    video = torch.from_numpy(video).float().permute(0, 3, 1, 2) / 255 * 2 - 1  # (F, 3, H, W)
    binary = torch.from_numpy(mask)[:, None].repeat(1, 3, 1, 1)
    return official_mask_channels(binary, mode), encoded(pipe, video * binary)


@pytest.mark.parametrize("mode", [None, "spatial", "temporal"])
def test_known_pixels_are_the_official_anymask_input(pipe, mode):
    """Condition = normalised VAE latent of video x mask; mask channels = the official re-projection of the
    per-pixel mask (nearest, or bicubic in the temporal script); the modes' whole frames are the scripts'."""
    video, mask = pixels(1), planted_mask()
    hidden, _ = model_input(pipe, known=KnownPixels(video, mask, mode))
    forced = mask.copy()
    if mode == "temporal":
        forced[::8] = 1  # every 8th frame given whole
    elif mode == "spatial":
        forced[0] = 1  # frame 0 given whole
    channels, condition = official_inputs(pipe, video, forced, "bicubic" if mode == "temporal" else "nearest")
    assert 0.0 < channels.mean() < 1.0
    assert torch.equal(hidden[0, 16:20], channels)
    assert (hidden[:, 20:] - condition).abs().max().item() <= 1e-6


def test_known_pixels_nearest_mask_takes_each_cells_top_left_pixel(pipe):
    """The same mask channels computed by hand: pixel (8i, 8j) of each frame, frame 0 x 4, folded."""
    mask = planted_mask()
    hidden, _ = model_input(pipe, known=KnownPixels(pixels(1), mask))
    cells = mask[:, ::8, ::8]  # (F, h, w)
    extended = np.concatenate([cells[:1]] * 4 + [cells[1:]])  # F + 3 = 12 frames
    expected = extended.reshape(3, 4, H // 8, W // 8).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(hidden[0, 16:20].numpy(), expected)


def test_whole_known_frames_are_exactly_guides(pipe):
    """Guides are known pixels with whole-frame masks = their strength: the same transformer input, bit for
    bit (noise, mask channels, condition latent, CLIP tokens), whatever the unknown pixels hold."""
    video = pixels(2)
    mask = np.zeros((F, H, W), np.float32)
    mask[0] = 1.0
    as_known = model_input(pipe, known=KnownPixels(video, mask), generator=torch.Generator().manual_seed(0))
    as_guide = model_input(pipe, [Guide(video[0], 0)], generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(as_known, as_guide, strict=True))

    mask[5] = 0.5
    as_known = model_input(pipe, known=KnownPixels(video, mask), generator=torch.Generator().manual_seed(0))
    as_guides = model_input(
        pipe, [Guide(video[0], 0), Guide(video[5], 5, 0.5)], generator=torch.Generator().manual_seed(0)
    )
    assert all(torch.equal(a, b) for a, b in zip(as_known, as_guides, strict=True))


def test_a_guide_wins_over_known_pixels_at_its_frame(pipe):
    video, guide = pixels(3), pixels(4, frames=1)[0]
    hidden, _ = model_input(
        pipe, [Guide(guide, 4, 0.5)], known=KnownPixels(video, np.ones((F, H, W), np.float32))
    )
    written = video.copy()
    written[4] = guide  # whole, whatever its strength
    channels, condition = official_inputs(pipe, written, np.ones((F, H, W), np.float32), "nearest")
    channels[3, 1] = 0.5  # pixel frame 4 = extended frame 7: channel 3 of latent frame 1, its strength
    assert torch.equal(hidden[0, 16:20], channels)
    assert (hidden[:, 20:] - condition).abs().max().item() <= 1e-6


def test_known_pixels_of_another_size_are_fitted_like_guides():
    """Cover and centre-crop: frames exactly as `fit_image`, the mask with the same crop (nearest)."""
    video = pixels(5, h=64, w=64)
    mask = np.zeros((F, 64, 64), np.float32)
    mask[:, 20:44, :32] = 1.0  # a box spanning the rows the crop keeps (16-48 of the 48x48 resize)
    notes = []
    fitted = fit_known(KnownPixels(video, mask, "spatial"), H, W, notes)
    assert fitted.video.shape == (F, H, W, 3) and fitted.mask.shape == (F, H, W)
    np.testing.assert_array_equal(fitted.video[3], fit_image(video[3], H, W)[0])
    rows = slice(20 * 48 // 64 - 8, 44 * 48 // 64 - 8)  # 64 -> 48 scale, 8 rows cropped at the top
    expected = np.zeros((H, W), np.float32)
    expected[rows, : 32 * 48 // 64] = 1.0
    np.testing.assert_array_equal(fitted.mask[1], expected)
    assert (fitted.mask[0] == 1).all()  # spatial: frame 0 given whole
    assert notes == ["known pixels: 64x64 image centre-cropped to the video's 48x32 aspect (33% of it cut)"]


def refuse_model_calls(pipe, monkeypatch):
    def called(*args, **kwargs):
        raise AssertionError("a model ran before the request was checked")

    for module in (pipe.vae, pipe.transformer, pipe.text_encoder, pipe.image_encoder):
        monkeypatch.setattr(module, "forward", called)
    monkeypatch.setattr(pipe.vae, "encode", called)


@pytest.mark.parametrize(
    "known, message",
    [
        (
            KnownPixels(pixels(0, frames=5), np.ones((5, H, W))),
            "has 5 frames but the video to generate has 9",
        ),
        (KnownPixels(pixels(0), np.ones((F, H, 40))), "mask must be F x H x W like its video"),
        (KnownPixels(pixels(0), np.full((F, H, W), 255, np.uint8)), "threshold a mask video first"),
        (KnownPixels(pixels(0).astype(np.float32), np.ones((F, H, W))), "must be uint8"),
        (KnownPixels(pixels(0)[..., 0], np.ones((F, H, W))), "must be F x H x W x 3 RGB"),
        (KnownPixels(pixels(0), np.full((F, H, W), np.nan)), "numbers in \\[0, 1\\]"),
        (KnownPixels(pixels(0), np.ones((F, H, W)), "keyframes"), "unknown known-pixels mode"),
    ],
)
def test_bad_known_pixels_are_one_line_before_any_model_runs(pipe, monkeypatch, known, message):
    refuse_model_calls(pipe, monkeypatch)
    with pytest.raises(InputError, match=message) as error:
        pipe(known=known, **SIZE)
    assert "\n" not in str(error.value)


def test_bad_motion_masks_and_empty_requests_are_refused_before_any_model_runs(pipe, monkeypatch):
    refuse_model_calls(pipe, monkeypatch)
    known = KnownPixels(pixels(0), np.ones((F, H, W)))
    with pytest.raises(InputError, match="motion mask needs a guide image"):
        pipe(known=known, motion_mask=np.ones((H, W)), **SIZE)
    with pytest.raises(InputError, match="draw the mask on the guide image"):
        pipe([Guide(pixels(0)[0], 0)], motion_mask=np.ones((10, 10)), **SIZE)
    with pytest.raises(InputError, match="needs at least one guide image or known pixels"):
        pipe(**SIZE)


# Motion region: a 32x48 latent-cell-aligned box in a 64x96 video (latent 8 x 12), white = may move.
RH, RW = 64, 96
BOX = (slice(16, 48), slice(32, 80))
OUTSIDE = torch.ones(RH // 8, RW // 8, dtype=torch.bool)  # latent cells that must stay still
OUTSIDE[2:6, 4:10] = False


def box_mask() -> np.ndarray:
    mask = np.zeros((RH, RW), np.uint8)
    mask[BOX] = 255
    return mask


def run(pipe, guide, motion_mask=None, output_type="latent", **kwargs):
    return pipe(
        [Guide(guide, 0)], prompt="a cat", motion_mask=motion_mask, num_frames=F, height=RH, width=RW,
        num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type=output_type, **kwargs,
    ).frames  # fmt: skip


def still_latent(pipe, guide: np.ndarray) -> torch.Tensor:
    """The first guide held still for the whole clip, encoded as one video and normalised."""
    still = torch.from_numpy(guide).float().permute(2, 0, 1)[None].repeat(F, 1, 1, 1) / 127.5 - 1
    return encoded(pipe, still)


def test_motion_mask_pins_the_latent_outside_the_region(pipe):
    guide = pixels(6, frames=1, h=RH, w=RW)[0]
    free, pinned = run(pipe, guide), run(pipe, guide, box_mask())
    static = still_latent(pipe, guide)
    assert torch.equal(pinned[..., OUTSIDE], static[..., OUTSIDE])  # exactly the still guide
    assert (free[..., OUTSIDE] - static[..., OUTSIDE]).abs().max() > 0.1
    assert (pinned[..., ~OUTSIDE] - static[..., ~OUTSIDE]).abs().max() > 0.1  # the region is generated


def test_motion_mask_keeps_the_first_guides_pixels_outside_the_region(pipe):
    """The pinned latent alone does not keep them: the tiny random VAE's decoder mixes the whole frame
    (mid-block attention), so the decoded video holds the guide's own pixels outside the mask instead."""
    guide = pixels(6, frames=1, h=RH, w=RW)[0]
    outside = np.ones((RH, RW), bool)
    outside[BOX] = False
    deep_inside = np.zeros((RH, RW), bool)
    deep_inside[20:44, 36:76] = True  # past the feather at the mask's edge
    free, pinned = (
        uint8_frames(run(pipe, guide, mask, output_type="np")[0]).astype(int) for mask in (None, box_mask())
    )
    assert np.abs(pinned - guide)[:, outside].max() <= 1  # float rounding on the way to uint8
    assert np.abs(free - guide)[:, outside].mean() > 2
    assert np.abs(pinned - guide)[1:, deep_inside].mean() > 2  # the region is generated


def test_an_all_white_motion_mask_changes_nothing(pipe):
    guide = pixels(6, frames=1, h=RH, w=RW)[0]
    assert torch.equal(run(pipe, guide, np.full((RH, RW), 255, np.uint8)), run(pipe, guide))


def test_the_callers_step_end_callback_sees_the_pinned_latents(pipe):
    """Between steps the latent outside the region is the still latent noised to the next step's sigma,
    (1 - sigma) x still + sigma x noise, the noise drawn from the generator after the initial latents."""
    guide = pixels(6, frames=1, h=RH, w=RW)[0]
    static = still_latent(pipe, guide)
    generator = torch.Generator().manual_seed(0)
    shape = (1, 16, 3, RH // 8, RW // 8)
    randn_tensor(shape, generator=generator)  # the initial latents
    noise = randn_tensor(shape, generator=generator)
    seen = []

    def callback(pipeline, step, timestep, tensors):
        seen.append((step, float(pipeline.scheduler.sigmas[step + 1]), sorted(tensors), tensors["latents"]))
        return {}

    out = run(
        pipe,
        guide,
        box_mask(),
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["prompt_embeds"],
    )
    assert [(step, keys) for step, _, keys, _ in seen] == [
        (i, ["latents", "prompt_embeds"]) for i in range(4)
    ]
    for step, sigma, _, latents in seen[:-1]:
        expected = (1 - sigma) * static + sigma * noise
        assert (latents[..., OUTSIDE] - expected[..., OUTSIDE]).abs().max() <= 1e-6, step
    assert torch.equal(seen[-1][3][..., OUTSIDE], static[..., OUTSIDE])
    assert torch.equal(out, seen[-1][3])  # the callback returned no latents: the pinned ones stand


def test_a_motion_mask_needs_a_flow_matching_scheduler():
    components = build_wan_components()
    pipe = AnisoraWanPipeline(**{**components, "scheduler": UniPCMultistepScheduler()})
    with pytest.raises(InputError, match="needs a flow-matching scheduler"):
        pipe([Guide(pixels(0)[0], 0)], motion_mask=np.full((H, W), 255, np.uint8), **SIZE)
