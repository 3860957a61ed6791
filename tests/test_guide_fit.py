"""Guide fitting (anisora.model.guide_fit) on tiny random CogVideoX and Wan components."""

import cv2
import numpy as np
import pytest
import torch

from anisora.errors import InputError
from anisora.model import guide_fit
from anisora.model.backbones.wan import AnisoraWanPipeline
from anisora.model.conditioning import Guide
from anisora.model.guide_fit import fit_guides, fit_targets
from anisora.model.info import ModelInfo
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components, build_wan_components
from anisora.model.request import Request
from anisora.model.vae import uint8_frames

SIZE = dict(num_frames=9, height=32, width=48)


def smooth(seed: int) -> np.ndarray:
    """A smooth colour field: a picture a tiny random decoder can get near (random pixels it cannot)."""
    small = np.random.default_rng(seed).random((4, 6, 3))
    return (cv2.resize(small, (48, 32), interpolation=cv2.INTER_LINEAR) * 255).astype(np.uint8)


def make(pipe, guides, **kwargs):
    pipe.set_progress_bar_config(disable=True)
    kwargs = {**SIZE, "num_inference_steps": 3, "generator": torch.Generator().manual_seed(0), **kwargs}
    return pipe(guides, prompt="a girl waves", **kwargs)


def error(frame: np.ndarray, image: np.ndarray) -> float:
    return float(np.abs(frame.astype(int) - image).mean())


@pytest.fixture(scope="module")
def cogvideox():
    return AnisoraPipeline(**build_components("tiny", "anisora"))


def test_a_guide_at_a_later_frame_is_fitted_and_the_rest_kept(cogvideox):
    guides = [Guide(smooth(0), 0), Guide(smooth(1), 8)]
    plain = uint8_frames(make(cogvideox, guides).frames[0])
    fitted = uint8_frames(make(cogvideox, guides, guide_fit_steps=10).frames[0])
    assert error(fitted[8], smooth(1)) < 0.9 * error(plain[8], smooth(1))
    np.testing.assert_array_equal(uint8_frames(make(cogvideox, guides, guide_fit_steps=0).frames[0]), plain)
    # frame 0 is fitted too (the decoder's norms reach it from later frames); the unguided frames change far
    # less than the fitted one
    assert error(fitted[0], smooth(0)) <= error(plain[0], smooth(0))
    assert error(fitted[1:8], plain[1:8]) < error(fitted[8], plain[8])


def test_weak_guides_are_not_targets():
    image = smooth(0)
    guides = [Guide(image, 0), Guide(image, 4, 0.5), Guide(image, 8)]
    assert list(fit_targets(guides, 32, 48)) == [0, 8]
    target = fit_targets([Guide(np.full((64, 96, 3), 255, np.uint8), 8)], 32, 48)[8]
    assert target.shape == (3, 32, 48) and target.min().item() == 1.0  # fitted to the video size, in [-1, 1]


def test_only_the_guided_latent_frames_inside_the_motion_region_change(cogvideox):
    latents = make(cogvideox, [Guide(smooth(0), 0)], output_type="latent").frames
    movable = torch.zeros(1, 1, 1, 4, 6)
    movable[..., :3] = 1  # the left half may move
    targets = fit_targets([Guide(smooth(1), 8)], 32, 48)
    fitted = fit_guides(latents, cogvideox.decode_latents, targets, 3, time_dim=1, movable=movable)
    change = (fitted - latents).abs()
    assert change[:, 2, :, :, :3].max() > 0  # latent frame 2 holds pixel frame 8
    assert change[:, :2].max() == 0 and change[..., 3:].max() == 0
    assert fit_guides(latents, cogvideox.decode_latents, {}, 3, time_dim=1) is latents


def test_a_guide_already_drawn_costs_one_decode_and_a_fit_is_never_worse_than_none(cogvideox, monkeypatch):
    latents = make(cogvideox, [Guide(smooth(0), 0)], output_type="latent").frames
    decodes = []

    def decode(z):
        decodes.append(1)
        return cogvideox.decode_latents(z)

    with torch.no_grad():
        drawn = cogvideox.decode_latents(latents)[0, :, 8]
    assert fit_guides(latents, decode, {8: drawn}, 10, time_dim=1).equal(latents)
    assert len(decodes) == 1
    # a step far too large overshoots: the fit keeps the best latents it saw, here the ones it was given
    monkeypatch.setattr(guide_fit, "LEARNING_RATE", 100.0)
    targets = fit_targets([Guide(smooth(1), 8)], 32, 48)
    assert fit_guides(latents, cogvideox.decode_latents, targets, 3, time_dim=1).equal(latents)


def test_wan_fits_every_full_strength_guide_and_is_diffusers_without_steps():
    """Wan pins no frame, so frame 0 is fitted too; without steps the output is diffusers' decode."""
    pipe = AnisoraWanPipeline(**build_wan_components())
    guides = [Guide(smooth(0), 0), Guide(smooth(1), 8)]
    plain = uint8_frames(make(pipe, guides).frames[0])
    fitted = uint8_frames(make(pipe, guides, guide_fit_steps=10).frames[0])
    assert fitted.shape == plain.shape and fitted.dtype == np.uint8
    # the tiny random decoder saturates (Wan's decode clamps to [-1, 1]) over much of frame 8, where no
    # gradient reaches; frame 0 is where it shows
    assert error(fitted[0], smooth(0)) < error(plain[0], smooth(0)) - 0.5
    assert error(fitted[8], smooth(1)) <= error(plain[8], smooth(1))


def test_the_request_and_the_model_presets_set_the_steps():
    with pytest.raises(InputError, match="guide_fit_steps must be an integer >= 0"):
        Request(guide_fit_steps=-1).check()
    Request(guide_fit_steps=0).check()
    assert ModelInfo.wan({"guide_fit_steps": 4}).guide_fit_steps == 4
    assert ModelInfo.wan(None).guide_fit_steps == 0
    with pytest.raises(InputError, match="guide_fit_steps must be a int"):
        ModelInfo.wan({"guide_fit_steps": "many"})
