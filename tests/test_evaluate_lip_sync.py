"""The lip-sync metric on known answers: ToonWorld's talking mouths open on a schedule the renderer knows
(`ActionPlan.syllables`, drawn at `Character.mouth`); a voice on that schedule must score high at lag 0, the
same voice shifted must be found shifted, and another schedule, noise or silence must not score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anisora.errors import InputError
from anisora.evaluate import METRICS
from anisora.evaluate.metrics.lip_sync import STILL, LipSync, lip_sync, mouth_activity, region_changes
from anisora.media import frame_envelope
from anisora.toonworld.actions import ActionPlan
from anisora.toonworld.backgrounds import paint_set
from anisora.toonworld.canvas import Canvas
from anisora.toonworld.character import Appearance, Camera, Character, Pose

FPS, SECONDS, RATE = 24.0, 8.0, 16_000
WIDTH, HEIGHT = 320, 192


def talking(seed: int, whole_pose: bool = False):
    """A ToonWorld character talking for SECONDS at FPS: (frames, mouth region, its plan, its voice's
    envelope). The voice is a 180 Hz tone whose loudness follows each syllable's mouth opening. Without
    `whole_pose` only the mouth moves; with it the head nods, the body breathes and the eyes blink too."""
    plan = ActionPlan.sample("talking", SECONDS, HEIGHT * 0.6, np.random.default_rng(seed))
    backdrop = paint_set("room", HEIGHT, WIDTH, np.random.default_rng(seed)).image[:, :WIDTH]
    look = Appearance("fair", "black", "spiky", "red", "blue", (40, 60, 120))
    character = Character(1, look, WIDTH * 0.5, HEIGHT * 0.88, HEIGHT * 0.6)
    frames = []
    for j in range(round(SECONDS * FPS)):
        pose = plan.pose(j / FPS)
        image = backdrop.copy()
        character.draw(Canvas(image), Camera(), pose if whole_pose else Pose(mouth=pose.mouth))
        frames.append(image)
    x, y, u = character.mouth(Camera(), Pose())
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    region = ((columns - x) / (0.6 * u)) ** 2 + ((rows - y) / (0.7 * u)) ** 2 <= 1
    t = np.arange(round(SECONDS * RATE)) / RATE
    voice = np.zeros_like(t)
    for start, end, openness in plan.syllables:
        inside = (t >= start) & (t < end)
        voice[inside] = openness * np.sin(np.pi * (t[inside] - start) / (end - start))
    voice *= np.sin(2 * np.pi * 180 * t)
    return np.stack(frames), region, plan, frame_envelope(voice, RATE, FPS, len(frames))


def delayed(envelope: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames), envelope[:-frames]])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_voice_on_the_mouths_schedule_scores_high_and_its_shift_is_found(seed):
    frames, region, _, envelope = talking(seed)
    activity = mouth_activity(region_changes(frames, region))
    on_time = lip_sync(activity, envelope, FPS)
    assert on_time.correlation >= 0.75 and abs(on_time.lag) <= 1, on_time
    late = lip_sync(activity, delayed(envelope, 3), FPS)  # the sound 3 frames after the picture
    assert late.correlation >= 0.75 and -4 <= late.lag <= -2, late
    assert late.at_zero < on_time.at_zero


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_another_schedule_noise_and_silence_do_not_score(seed):
    frames, region, _, _ = talking(seed)
    activity = mouth_activity(region_changes(frames, region))
    other = talking(seed + 100)[3]  # another character's voice
    noise = np.random.default_rng(seed).uniform(size=len(frames))
    assert lip_sync(activity, other, FPS).correlation <= 0.45
    assert lip_sync(activity, noise, FPS).correlation <= 0.45
    assert math.isnan(lip_sync(activity, np.zeros(len(frames)), FPS).correlation)


def test_a_whole_talking_pose_still_scores_high():
    """The head's nod and breathing also move the mouth region, off the voice: lower, still well apart."""
    for seed in (0, 1, 2, 3):
        frames, region, _, envelope = talking(seed, whole_pose=True)
        activity = mouth_activity(region_changes(frames, region))
        found = lip_sync(activity, envelope, FPS)
        other = lip_sync(activity, talking(seed + 100)[3], FPS)
        assert found.correlation >= 0.6 and abs(found.lag) <= 1, found
        assert found.correlation >= other.correlation + 0.3


def test_the_metric_class_scores_videos_and_checks_its_inputs():
    frames, region, _, envelope = talking(0)
    result = LipSync().score([frames], mask=[region], envelope=[envelope], fps=FPS)[0]
    expected = lip_sync(mouth_activity(region_changes(frames, region)), envelope, FPS)
    assert result.value == pytest.approx(expected.correlation)
    assert result.details["lag_frames"] == expected.lag and result.details["lag_s"] == expected.lag / FPS
    assert result.per_frame.shape == (len(frames),)
    assert METRICS["lip_sync"] is LipSync
    with pytest.raises(InputError, match="envelope must be 192 finite levels"):
        LipSync().score([frames], mask=[region], envelope=[envelope[:-1]], fps=FPS)
    with pytest.raises(InputError, match="envelope must be"):
        LipSync().score([frames], mask=[region], envelope=[-envelope], fps=FPS)
    with pytest.raises(InputError, match="needs the input envelope"):
        LipSync().score([frames], mask=[region])
    with pytest.raises(InputError, match="mouth region is empty"):
        LipSync().score([frames], mask=[np.zeros_like(region)], envelope=[envelope], fps=FPS)


def test_the_activity_is_centred_on_each_frame():
    frames = np.zeros((5, 4, 4, 3), np.uint8)
    frames[2] = 90  # one frame differs: the changes into it and out of it
    region = np.ones((4, 4), bool)
    changes = region_changes(frames, region)
    assert changes.tolist() == [0, 90, 90, 0]
    assert mouth_activity(changes).tolist() == [0, 45, 90, 45, 0]
    assert region_changes(frames[1:], region, before=frames[0]).tolist() == changes.tolist()


def test_a_mouth_that_never_visibly_moves_has_no_lip_sync():
    """Flicker under STILL grey levels, even in step with the voice, is not a mouth moving; more is."""
    frames, region, _, envelope = talking(0)
    loud = envelope > envelope.mean()
    half = region & (np.arange(region.shape[1]) % 2 == 0)  # every other column of the mouth region

    def flickering(cells: np.ndarray, levels: int) -> np.ndarray:
        """The first frame held, brighter by `levels` on `cells` while the voice is loud."""
        video = np.repeat(frames[:1], len(frames), axis=0).astype(np.int16)
        video += (loud[:, None, None] & cells)[..., None] * levels
        return np.clip(video, 0, 255).astype(np.uint8)

    metric = LipSync(fps=FPS)
    quiet, visible = flickering(half, 1), flickering(region, 10)
    assert 0 < mouth_activity(region_changes(quiet, region)).max() < STILL
    assert math.isnan(metric.score([quiet], mask=[region], envelope=[envelope])[0].value)
    assert metric.score([visible], mask=[region], envelope=[envelope])[0].value > 0.5
