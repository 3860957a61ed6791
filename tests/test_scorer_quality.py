"""QualityScorer: classical quality (BRISQUE, sharpness, noise, exposure, colour), the offline default."""

import math
import pickle
import warnings

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from anisora.curate.scorers.base import ClipSamples, spread
from anisora.curate.scorers.quality import (
    QualityConfig,
    QualityScorer,
    colorfulness,
    combine,
    noise_sigma,
    picture_box,
)
from anisora.errors import InputError
from anisora.toonworld import ShotRenderer, plan_episode

W, H = 320, 180


def clip_of(frames) -> ClipSamples:
    frames = np.asarray(frames, dtype=np.uint8)
    k = len(frames)
    w, h = (frames.shape[2], frames.shape[1]) if k else (W, H)
    return ClipSamples("test.mp4", 24.0, w, h, 0, max(k, 1), frames, tuple(range(k)))


def kind_of(shot) -> str:
    d = shot.degrade
    if not d:
        return "clean"
    return "noise+blur" if d["noise"] and d["blur"] else "blur" if d["blur"] else "noise"


@pytest.fixture(scope="module")
def shots():
    """Clean shots and ToonWorld-degraded ones (noise + blur, blur only), found by their plans; shots
    without subtitles, which ToonWorld burns in crisp over a degraded picture."""
    found = {"clean": [], "noise+blur": [], "blur": [], "noise": []}
    for seed in range(1, 12):
        for shot in plan_episode(seed, seconds=40, width=W, height=H).shots:
            if not shot.letterbox and not shot.subtitles and len(found[kind_of(shot)]) < 3:
                found[kind_of(shot)].append(shot)
        if len(found["clean"]) == 3 and found["noise+blur"] and found["blur"]:
            return found
    pytest.fail(f"ToonWorld gave too few shots of each kind: {found}")


@pytest.fixture(scope="module")
def scorer():
    return QualityScorer()


def render(shot, count=3):
    """`count` frames from the middle half of a shot (clear of fades)."""
    renderer = ShotRenderer(shot)
    n = shot.num_frames
    return np.stack([renderer.render(n // 4 + j)[0] for j in spread(max(n // 2, 1), count)])


def test_degraded_frames_score_lower_than_clean_cartoon(shots, scorer):
    clean = [scorer.score(clip_of(render(shot)))["quality_score"] for shot in shots["clean"]]
    frames = render(shots["clean"][0])
    rng = np.random.default_rng(0)
    noisy = np.clip(frames + rng.normal(0, 10, frames.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames])
    worse = {
        "black": np.zeros_like(frames),
        "toonworld noise+blur": render(shots["noise+blur"][0]),
        "toonworld blur": render(shots["blur"][0]),
        "noise sigma 10": noisy,
        "blur sigma 2": blurred,
        "dark (x0.15)": (frames * 0.15).astype(np.uint8),
        "grey": np.repeat(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)[None, ..., None], 3, axis=-1),
    }
    for name, bad in worse.items():
        bad_score = scorer.score(clip_of(bad))["quality_score"]
        assert bad_score < min(clean) - 0.5, (name, bad_score, clean)
    assert min(clean) > 8.0  # clean ToonWorld frames are near the top of the scale
    assert scorer.score(clip_of(np.zeros_like(frames)))["quality_score"] == 0.0


def test_output_keys_types_and_frame_choice(shots):
    frames = render(shots["clean"][1], count=8)
    scorer = QualityScorer(QualityConfig(frames=2))
    out = scorer.score(clip_of(frames))
    assert set(out) == {
        "quality_score",
        "quality_brisque",
        "quality_sharpness",
        "quality_noise",
        "quality_brightness",
        "quality_clipped",
        "quality_colorfulness",
        "quality_frames",
    }
    assert all(type(v) in (float, int) for v in out.values())
    assert out["quality_frames"] == 2 and 0.0 <= out["quality_score"] <= 10.0
    # the two used frames are the centres of the two halves: indices 2 and 6 of 8
    assert spread(8, 2) == [2, 6] and spread(5, 0) == list(range(5)) and spread(3, 9) == [0, 1, 2]
    per_frame = [scorer.frame_scores(frames[i]) for i in (2, 6)]
    for key in ("score", "brisque", "sharpness", "noise", "brightness", "clipped", "colorfulness"):
        assert out[f"quality_{key}"] == pytest.approx(np.mean([f[key] for f in per_frame]))
    every = QualityScorer(QualityConfig(frames=0)).score(clip_of(frames[:3]))
    assert every["quality_frames"] == 3


def test_combined_score_follows_the_documented_formula():
    # everything at its best: 10
    assert combine(20.0, 10 * 10**1.5, 1.0, 128.0, 0.0, 45.0) == pytest.approx(10.0)
    # a hand computation: exposure min(100/40, 155/40, 1 - (0.35 - 0.25)/0.5) = 0.8
    sharp, clean, colour, brisque = math.log10(100 / 10) / 1.5, (6 - 3.5) / 5, 30 / 45, (100 - 60) / 80
    expected = 10 * 0.8 * (0.35 * sharp + 0.30 * clean + 0.25 * colour + 0.10 * brisque)
    assert combine(60.0, 100.0, 3.5, 100.0, 0.35, 30.0) == pytest.approx(expected)
    # without BRISQUE its weight is shared by the other terms
    no_brisque = 10 * 0.8 * (0.35 * sharp + 0.30 * clean + 0.25 * colour) / 0.9
    assert combine(None, 100.0, 3.5, 100.0, 0.35, 30.0, use_brisque=False) == pytest.approx(no_brisque)
    # monotone in each sensible direction
    base = dict(brisque=60.0, sharp=100.0, noise=3.0, brightness=120.0, clipped=0.3, colour=30.0)

    def f(**kw):
        return combine(**{**base, **kw})

    grid = np.linspace(0, 1, 21)
    for key, values, direction in (
        ("sharp", 10 ** (grid * 4), +1),
        ("colour", grid * 120, +1),
        ("noise", grid * 12, -1),
        ("brisque", grid * 150, -1),
        ("clipped", grid, -1),
        ("brightness", grid * 127.5, +1),  # up to mid grey ...
        ("brightness", 255 - grid * 127.5, +1),  # ... and down to it
    ):
        scores = np.array([f(**{key: v}) for v in values])
        assert np.all(np.diff(scores) * direction >= -1e-12), key
        assert scores.min() >= 0.0 and scores.max() <= 10.0
    assert f(brightness=0.0) == 0.0 and f(brightness=255.0) == 0.0 and f(clipped=0.75) == 0.0


def test_measures_on_known_images(scorer):
    rng = np.random.default_rng(1)
    assert colorfulness(np.full((40, 60, 3), 128, np.uint8)) == 0.0
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 255
    assert colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-5)
    flat = np.full((200, 300), 120.0)
    assert noise_sigma(flat.astype(np.uint8)) == 0.0
    noisy = np.clip(flat + rng.normal(0, 10, flat.shape), 0, 255).astype(np.uint8)
    assert noise_sigma(noisy) == pytest.approx(10.0, rel=0.1)
    img = np.full((H, W, 3), 200, np.uint8)
    img[:, W // 4 : 3 * W // 4] = 0  # half black (in the middle: bars at the edges would be trimmed)
    values = scorer.frame_scores(img)
    assert values["brightness"] == pytest.approx(100.0, abs=1e-6)
    assert values["clipped"] == pytest.approx(0.5, abs=1e-6)
    blurred = scorer.frame_scores(cv2.GaussianBlur(img, (0, 0), 3))["sharpness"]
    assert values["sharpness"] > 10 * blurred


def test_black_bars_are_trimmed(shots, scorer):
    frame = render(shots["clean"][0], count=1)[0]
    boxed = np.zeros((H + 48, W, 3), np.uint8)
    boxed[24 : 24 + H] = frame
    assert picture_box(cv2.cvtColor(boxed, cv2.COLOR_RGB2GRAY)) == (24, 24 + H, 0, W)
    a, b = scorer.frame_scores(frame), scorer.frame_scores(boxed)
    for key in ("brightness", "clipped", "colorfulness", "noise", "sharpness", "brisque", "score"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
    dark = np.full((H, W), 8, np.uint8)  # a dark frame is judged whole, not cropped to nothing
    assert picture_box(dark) == (0, H, 0, W)


def _package_brisque(image: np.ndarray, exact_zero: bool) -> float:
    """The brisque package's score; with `exact_zero`, its own MSCN with rounding-level values set to 0."""
    from brisque import BRISQUE

    class Snapped(BRISQUE):
        def calculate_mscn_coefficients(self, image, kernel_size=6, sigma=7 / 6):
            kernel = self.gaussian_kernel2d(kernel_size, sigma=sigma)
            mean = self.local_mean(image, kernel)
            centred = image - mean
            centred[np.abs(centred) < 1e-9] = 0.0
            return centred / (self.local_deviation(image, mean, kernel) + 1 / 255)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float((Snapped if exact_zero else BRISQUE)(url=False).score(image))


def test_brisque_is_the_package_score_on_the_resized_frame(shots):
    frame = cv2.resize(render(shots["clean"][2], 1)[0], (640, 360), interpolation=cv2.INTER_AREA)
    scorer = QualityScorer(QualityConfig(max_side=200))
    small = cv2.resize(frame, (200, 112), interpolation=cv2.INTER_AREA)
    # flat cartoon areas: the package's MSCN there is rounding noise whose sign moves its score; with those
    # values at their exact 0, the package and the OpenCV-filtered version agree
    assert scorer.brisque(frame) == pytest.approx(_package_brisque(small, exact_zero=True), rel=1e-9)
    noisy = np.clip(small + np.random.default_rng(0).normal(0, 12, small.shape), 0, 255).astype(np.uint8)
    scorer = QualityScorer(QualityConfig(max_side=1000))
    assert scorer.brisque(noisy) == pytest.approx(_package_brisque(noisy, exact_zero=False), rel=1e-9)


def test_flat_frames_no_warnings_and_brisque_none(scorer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value in (0, 128, 255):
            out = scorer.score(clip_of(np.full((2, H, W, 3), value, np.uint8)))
            assert out["quality_brisque"] is None
            expected = 3.0 if value == 128 else 0.0  # grey: only "clean" (weight 0.3) counts
            assert out["quality_score"] == pytest.approx(expected, abs=1e-9)


def test_empty_clip_options_errors_and_pickle(shots, scorer):
    empty = scorer.score(clip_of(np.zeros((0, H, W, 3), np.uint8)))
    assert empty["quality_frames"] == 0 and empty["quality_score"] is None
    frames = render(shots["clean"][2], count=2)
    fast = QualityScorer(QualityConfig(brisque=False)).score(clip_of(frames))
    assert fast["quality_brisque"] is None and 8.0 < fast["quality_score"] <= 10.0
    with pytest.raises(ValidationError):
        QualityConfig(frames=-1)
    with pytest.raises(InputError):
        QualityScorer.from_dict({"max_side": 8})
    with pytest.raises(InputError):
        QualityScorer.from_dict({"nope": 1})
    first = scorer.score(clip_of(frames))  # the BRISQUE model is loaded now
    data = pickle.dumps(scorer)
    assert len(data) < 1000  # the model stays behind
    again = pickle.loads(data)
    assert again.score(clip_of(frames)) == first
    assert again.cache_key() == scorer.cache_key() != QualityScorer(QualityConfig(frames=3)).cache_key()
