"""ToonWorld's effects (fights, flash frames): they appear in episodes, are not cuts, are true of the pixels,
and leave every other shot byte for byte as it was before they existed."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from anisora.toonworld import ShotRenderer, plan_episode
from anisora.toonworld.held_out import EVAL_SEED, plan_clean_shot
from anisora.toonworld.shot import FLASH_LEVELS, plan_shot

# sha256 (first 16 hex) of every frame, mask and box of a shot, 24 frames 96x64 at 12 fps, computed before
# effects were added
TRAINING = {(0, 0): "891ca3d44c14fda5", (0, 1): "8883b962943f4b15", (3, 7): "4c1d1ee2dace1a7b"}
TRAINING |= {(12, 5): "ceadfcbbc592817a", (1, 2): "0d1b5b0f56b7df27", (5, 9): "12eea7b3321971a8"}
HELD_OUT = ["640acd62f7d2de85", "3f8623df53dab708", "8808ae176e2fec32", "aed74dd5beef1a97"]
# the shots of episodes (seed, 0), 30 s 96x64 at 12 fps, before effects
EPISODES = {
    0: "84d9c094bf21388a a0f2738007268f1b ec4888f61789a361 16661f53458b60d5 cb86130d99da2437 "
    "dbecfeefaff21d6b",
    4: "2f94fb574fe041e8 927c19c93e9c8698 36c84bea3171c487 baa6a16a0f777d59 ae04b6a5d99b51bf "
    "06a83e864b381aab 4e3e348f5df0c7f9",
}


def _digest(plan) -> str:
    digest, renderer = hashlib.sha256(), ShotRenderer(plan)
    for j in range(plan.num_frames):
        image, mask, boxes = renderer.render(j)
        digest.update(image.tobytes())
        digest.update(mask.tobytes())
        digest.update(repr(boxes).encode())
    return digest.hexdigest()[:16]


def test_training_and_held_out_shots_and_episode_shots_without_effects_are_unchanged():
    for (seed, index), expected in TRAINING.items():
        plan = plan_shot(index, 0, 24, 12.0, 96, 64, np.random.default_rng([seed, index]), "en")
        assert _digest(plan) == expected
    assert [_digest(plan_clean_shot(EVAL_SEED, i, 24, 12.0, 96, 64)) for i in range(4)] == HELD_OUT
    changed = 0
    for seed, digests in EPISODES.items():
        shots = plan_episode(seed, 0, 30, 96, 64, 12.0).shots
        assert len(shots) == len(digests.split())
        for shot, before in zip(shots, digests.split(), strict=True):
            effects = shot.label == "fighting" or bool(shot.flashes)
            assert (_digest(shot) != before) == effects
            changed += effects
    assert changed == 3


@pytest.fixture(scope="module")
def episodes():
    return [plan_episode(seed, 0, 30, 160, 96) for seed in range(12)]


def test_episodes_hold_fights_and_flashes_and_their_cuts_are_only_the_shot_starts(episodes):
    fights = [s for plan in episodes for s in plan.shots if s.label == "fighting"]
    flashed = [s for plan in episodes for s in plan.shots if s.flashes]
    assert len(fights) >= 3 and len(flashed) >= 5
    assert {f.color for s in flashed for f in s.flashes} == set(FLASH_LEVELS)
    assert {f.length for s in flashed for f in s.flashes} == {1, 2}
    for shot in fights:
        assert shot.drawing_step == 2 and "punches" in shot.caption()
        assert {m.plan.action for m in shot.cast} == {"fighting"}
    for plan in episodes:
        assert [t["frame"] for t in plan.transitions] == [s.start for s in plan.shots[1:]]
        for shot in plan.shots:
            assert not (shot.static and (shot.flashes or shot.label == "fighting"))
            frames = sorted(shot.flash_frames)
            # inside the shot, clear of its fades and ends: a flash is never next to a transition
            assert all(shot.fade_in + 3 <= j < shot.num_frames - shot.fade_out - 3 for j in frames)
            spans = shot.to_json()["flashes"]
            assert sum(s["end"] - s["start"] for s in spans) == len(frames)
            assert all(shot.start <= s["start"] < s["end"] <= shot.start + shot.num_frames for s in spans)


def test_flash_frames_are_flat_and_show_nothing(episodes):
    shot = next(s for plan in episodes for s in plan.shots if s.flashes and not s.degrade and not s.subtitles)
    renderer = ShotRenderer(shot)
    x0, y0, x1, y1 = shot.content_box
    for flash in shot.flashes:
        around = [renderer.render(j)[0].astype(int) for j in (flash.start - 1, flash.start + flash.length)]
        for j in range(flash.start, flash.start + flash.length):
            image, mask, boxes = renderer.render(j)
            assert np.all(image[y0:y1, x0:x1] == FLASH_LEVELS[flash.color]) and not mask.any()
            assert boxes["scene_text"] == []
            assert all(np.abs(frame - image).mean() > 40 for frame in around)


def test_fights_make_a_large_move_on_every_other_frame(episodes):
    shot = next(
        s
        for plan in episodes
        for s in plan.shots
        if s.label == "fighting" and s.camera == "still" and not s.flashes and not s.degrade
    )
    renderer = ShotRenderer(shot)
    masks = [renderer.render(j)[1] > 0 for j in range(shot.fade_in, shot.num_frames - shot.fade_out)]
    changed = [np.logical_xor(a, b).sum() / max(a.sum(), 1) for a, b in itertools.pairwise(masks)]
    # a drawing holds for two frames; from one drawing to the next, much of the character moves
    drawn = [c for i, c in enumerate(changed) if (shot.fade_in + i + 1) % 2 == 0]
    held = [c for i, c in enumerate(changed) if (shot.fade_in + i + 1) % 2 == 1]
    assert max(held) == 0 and np.median(drawn) > 0.3
