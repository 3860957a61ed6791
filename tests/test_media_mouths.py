"""Talking mouths: a voice's loudness per frame (`frame_envelope`), its openings (`lip_flap`), and the mouth
region a panel's mouth is found in and driven by them (`Mouth`), on a ToonWorld face whose mouth is known."""

from __future__ import annotations

import numpy as np
import pytest

from anisora.errors import InputError
from anisora.evaluate.metrics.lip_sync import lip_sync, mouth_activity, region_changes
from anisora.media import frame_envelope
from anisora.media.mouths import CLOSED, DEFAULT_COLOUR, HALF, OPEN, Mouth, lip_flap
from anisora.toonworld.backgrounds import paint_set
from anisora.toonworld.canvas import Canvas
from anisora.toonworld.character import Appearance, Camera, Character, Pose


def face(width: int = 160, height: int = 96):
    """A ToonWorld close-up: the panel, its mouth region (a disc of 0.5u around it), the mouth (x, y, u)."""
    image = paint_set("park", height, width, np.random.default_rng(3)).image[:, :width].copy()
    u = 0.16 * height
    character = Character(1, Appearance("fair", "black", "spiky", "red", "blue", (40, 60, 120)), width * 0.4,
                          height * 0.42 + 7.6 * u, 9.6 * u)  # fmt: skip
    character.draw(Canvas(image), Camera(), Pose())
    x, y, u = character.mouth(Camera(), Pose())
    rows, columns = np.mgrid[0:height, 0:width]
    return image, (columns - x) ** 2 + (rows - y) ** 2 <= (0.5 * u) ** 2, (x, y, u)


def test_frame_envelope_is_the_rms_around_each_frame():
    rate, fps = 1000, 10
    samples = np.zeros(1000)
    samples[300:500] = 0.5  # loud from 0.3 s to 0.5 s; frame j's window is (j - 0.5) / 10 to (j + 0.5) / 10 s
    envelope = frame_envelope(samples, rate, fps, 12)
    assert envelope[[0, 1, 2, 6, 7, 11]].tolist() == [0] * 6  # silent windows, and past the sound's end
    assert envelope[4] == pytest.approx(0.5)
    assert envelope[3] == pytest.approx(0.5 * np.sqrt(0.5)) and envelope[5] == pytest.approx(
        0.5 * np.sqrt(0.5)
    )
    with pytest.raises(InputError, match="positive rate"):
        frame_envelope(samples, rate, 0, 12)


def test_lip_flap_closes_in_silence_and_flaps_while_speaking():
    envelope = np.array([0, 0, 0.05, 1, 1, 1, 1, 1, 0.4, 0.4, 0.4, 0, 0, 1.0])
    assert lip_flap(envelope, 8).tolist() == [0, 0, 0, 1, 0.5, 1, 0.5, 1, 0.5, 1, 0.5, 0, 0, 1]
    # at 24 fps a drawing is held two frames, anime's "twos"
    assert lip_flap(envelope, 24).tolist() == [0, 0, 0, 1, 1, 0.5, 0.5, 1, 1, 0.5, 0.5, 0, 0, 1]
    assert lip_flap(np.zeros(5), 8).tolist() == [0] * 5
    with pytest.raises(InputError, match="finite levels"):
        lip_flap(np.array([0.1, np.nan]), 8)


def test_the_mouth_is_found_where_the_panel_draws_it():
    panel, region, (x, y, u) = face()
    mouth = Mouth.find(panel, region)
    assert mouth.colour.tolist() == [120, 40, 40]  # ToonWorld's closed-mouth line
    open_cover = mouth.openings[OPEN]
    rows, columns = np.nonzero(open_cover > 0.5)
    y0, x0 = mouth.box[:2]
    assert abs(columns.mean() + x0 - x) < 0.75 and abs(rows.mean() + y0 - y) < 0.75
    width = columns.max() - columns.min() + 1
    assert 0.5 * u <= width <= 0.8 * u  # the line is 0.5u long; the opening a little wider
    assert mouth.openings[HALF].sum() < open_cover.sum()
    # the opening stays inside the brushed region (up to its feathered edge)
    outside = np.ones(panel.shape[:2], bool)
    outside[mouth.box[0] : mouth.box[2], mouth.box[1] : mouth.box[3]] = False
    assert not (outside & region).any()
    # with nothing darker in the region, the opening is centred in it and dark red
    plain = np.full_like(panel, 200)
    assert Mouth.find(plain, region).colour.tolist() == list(DEFAULT_COLOUR)


def test_drawing_drives_only_the_region_and_closed_shows_the_panel():
    panel, region, _ = face()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, *panel.shape), dtype=np.uint8)  # what a model might have made
    mouth = Mouth.find(panel, region)
    out = mouth.draw(frames, np.array([CLOSED, HALF, OPEN]))
    y0, x0, y1, x1 = mouth.box
    outside = np.ones(panel.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (out[:, outside] == frames[:, outside]).all()
    inner = np.zeros_like(region)
    inner[y0:y1, x0:x1] = mouth.alpha > 0.99
    closed = np.abs(out[0][inner].astype(int) - panel[inner])
    assert closed.max() <= 3  # closed: the panel's own mouth, whatever the model made there
    dark = [int((out[k][region].astype(int).sum(axis=1) < 250).sum()) for k in range(3)]
    assert dark[0] < dark[1] < dark[2]  # the closed line, half open, open
    assert (frames[:, inner] != out[:, inner]).any()  # a new array: the input is untouched
    with pytest.raises(InputError, match="one per frame"):
        mouth.draw(frames, np.array([0, 0.3, 1]))
    with pytest.raises(InputError, match="empty"):
        Mouth.find(panel, np.zeros_like(region))
    with pytest.raises(InputError, match="frame's shape"):
        Mouth.find(panel, region[:-1])


def test_a_driven_mouth_is_in_sync_with_its_voice_and_the_lag_is_found_exactly():
    """Speech bursts at 8 fps (the demo model's rate) drive the mouth: the metric finds lag 0, and a voice
    moved by k frames at -k."""
    panel, region, _ = face()
    rng = np.random.default_rng(0)
    envelope, t = np.zeros(8 * 20), 2
    while t < len(envelope) - 15:
        length = int(rng.integers(4, 13))
        envelope[t : t + length] = rng.uniform(0.3, 1.0, size=length)
        t += length + int(rng.integers(2, 10))
    video = Mouth.find(panel, region).draw(np.repeat(panel[None], len(envelope), 0), lip_flap(envelope, 8))
    activity = mouth_activity(region_changes(video, region))
    found = lip_sync(activity, envelope, 8)
    assert found.correlation > 0.9 and found.lag == 0
    for k in (1, 2):
        assert lip_sync(activity, np.concatenate([np.zeros(k), envelope[:-k]]), 8).lag == -k
        assert lip_sync(activity, np.concatenate([envelope[k:], np.zeros(k)]), 8).lag == k
