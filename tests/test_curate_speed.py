"""The fast paths of `anisora curate` give what the libraries they stand in for give: the batched scene
detector the cuts of PySceneDetect's own detectors fed frame by frame, the text detector rapidocr's boxes,
BRISQUE the `brisque` package's score."""

from __future__ import annotations

import bisect
import math
import warnings

import numpy as np
import pytest

from anisora.curate.config import SceneConfig
from anisora.curate.scenes import PySceneDetector
from anisora.toonworld import plan_episode, render_episode


class FrameByFrame:
    """PySceneDetect's detectors fed one frame at a time, as the curation fed them before (reference)."""

    def __init__(self, config: SceneConfig, fps: float):
        from scenedetect import AdaptiveDetector, ContentDetector, ThresholdDetector

        if config.detector == "adaptive":
            self.content = AdaptiveDetector(
                adaptive_threshold=config.adaptive_threshold,
                min_content_val=config.min_content_val,
                min_scene_len=0,
            )
        else:
            self.content = ContentDetector(threshold=config.content_threshold, min_scene_len=0)
        self.fade = ThresholdDetector(threshold=config.fade_threshold, min_scene_len=0)
        self.fade_on = config.fade_threshold > 0
        self.fps, self.cuts = fps, []

    def push(self, index: int, rgb: np.ndarray) -> None:
        from scenedetect.common import FrameTimecode

        timecode, bgr = FrameTimecode(index, self.fps), rgb[..., ::-1]
        found = self.content.process_frame(timecode, bgr)
        if self.fade_on:
            found += self.fade.process_frame(timecode, bgr)
        for cut in found:
            if cut.frame_num > 0:
                bisect.insort(self.cuts, cut.frame_num)


def fading(a: list[np.ndarray], b: list[np.ndarray], black: int) -> list[np.ndarray]:
    """`a` fading out to black, `black` black frames, `b` fading in."""
    ramp = np.linspace(1.0, 0.0, 6)
    out = [(f * k).astype(np.uint8) for f, k in zip(a[-6:], ramp, strict=True)]
    into = [(f * k).astype(np.uint8) for f, k in zip(b[:6], ramp[::-1], strict=True)]
    return a[:-6] + out + [np.zeros_like(a[0])] * black + into + b[6:]


@pytest.fixture(scope="module")
def thumbnails() -> list[list[np.ndarray]]:
    """ToonWorld episodes at thumbnail size (hard cuts, fades, flashes, fights), and fades of every parity."""
    episodes = []
    for seed in range(6):
        plan = plan_episode(seed, 0, 12, 160, 90)
        episodes.append([image for _, _, image, _, _ in render_episode(plan)])
    shots = episodes[0][:60], episodes[1][:60]
    episodes += [fading(*shots, black) for black in (0, 1, 2, 3)]
    return episodes


@pytest.mark.parametrize("detector", ["adaptive", "content"])
@pytest.mark.parametrize("fade_threshold", [12.0, 0.0])
def test_the_vectorised_detector_gives_pyscenedetect_s_cuts(thumbnails, detector, fade_threshold):
    pytest.importorskip("scenedetect")
    config = SceneConfig(detector=detector, fade_threshold=fade_threshold, min_content_val=12.0)
    total = 0
    for frames in thumbnails:
        ours, reference = PySceneDetector(config, 24.0), FrameByFrame(config, 24.0)
        horizons = []
        for index, frame in enumerate(frames):
            ours.push(index, frame)
            reference.push(index, frame)
            horizons.append(ours.horizon)
            final = [c for c in reference.cuts if c < ours.horizon]
            assert [c for c in ours.cuts if c < ours.horizon] == final  # nothing final is missing or extra
        assert ours.finish() == reference.cuts
        assert horizons == sorted(horizons) and ours.horizon == len(frames)
        assert all(h <= i + 1 for i, h in enumerate(horizons))
        total += len(ours.cuts)
    assert total >= 20


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    """ToonWorld frames (subtitles, signs, fades, flashes) at two sizes, and noise."""
    frames = []
    for seed, (width, height) in ((100, (320, 180)), (101, (320, 180)), (102, (854, 480))):
        plan = plan_episode(seed, 0, 12, width, height)
        frames += [image for j, (_, _, image, _, _) in enumerate(render_episode(plan)) if j % 23 == 0]
    rng = np.random.default_rng(0)
    frames += [rng.integers(0, 256, (180, 320, 3), dtype=np.uint8), np.full((90, 160, 3), 128, np.uint8)]
    return frames


def test_the_text_detector_gives_rapidocr_s_boxes(pictures):
    pytest.importorskip("rapidocr")
    from anisora.curate.scorers.text import TextScorer, rapidocr_engine

    ours, theirs = TextScorer(), TextScorer()
    ocr = rapidocr_engine(theirs.config)
    theirs._detector = lambda bgr: getattr(ocr(bgr), "boxes", None)
    found = 0
    for frame in pictures:
        mine, reference = ours.detect(frame), theirs.detect(frame)
        assert len(mine) == len(reference)
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(mine, reference, strict=True))
        found += len(mine)
    assert found >= 10


def test_brisque_gives_the_brisque_package_s_score(pictures):
    pytest.importorskip("brisque")
    import cv2
    from brisque import BRISQUE

    from anisora.curate.scorers.quality import _ROUNDING, Brisque

    class Reference(BRISQUE):  # the package with the scorer's version-2 filtering, as the scorer ran it
        def calculate_mscn_coefficients(self, image, kernel_size=6, sigma=7 / 6):
            kernel = self.gaussian_kernel2d(kernel_size, sigma=sigma)

            def blur(x):
                return cv2.filter2D(x, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)

            mean = blur(image)
            deviation = np.sqrt(np.abs(mean**2 - blur(image**2)))
            centred = image - mean
            centred[np.abs(centred) < _ROUNDING] = 0.0
            return centred / (deviation + 1 / 255)

    ours, reference = Brisque(), Reference(url=False)
    scored = 0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package converts 1-element arrays to floats
        for frame in pictures[:-1]:  # not the flat one: BRISQUE is undefined there
            h, w = frame.shape[:2]
            scale = 256 / max(h, w)
            small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            mine, theirs = ours.score(small), reference.score(small)
            assert mine == pytest.approx(theirs, rel=0, abs=1e-9, nan_ok=True)  # NaN: a white frame
            scored += math.isfinite(mine)
    assert scored >= 20


def test_brisque_gives_one_score_per_frame_on_any_thread(pictures):
    """libsvm's own prediction sums in an OpenMP reduction whose order varies from call to call."""
    pytest.importorskip("brisque")
    from concurrent.futures import ThreadPoolExecutor

    from anisora.curate.scorers.quality import Brisque

    model, frames = Brisque(), pictures[:4]
    first = [model.score(frame) for frame in frames]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            assert list(pool.map(model.score, frames)) == first
