"""One rule for a guide's place: index, negative index, "last", or a time in [0, 1] (AniSora V3)."""

import re

import pytest

from anisora.errors import InputError
from anisora.model.request import At, parse_frame, resolve_frame


def test_v3_times_give_the_official_frames():
    """The official V3 table for 81 frames: int((F - 1) t) rounded to a multiple of 8."""
    assert [resolve_frame(At(t), 81) for t in (0, 0.25, 0.5, 0.75, 1)] == [0, 16, 40, 64, 80]
    assert [resolve_frame(At(t), 49) for t in (0, 0.5, 1)] == [0, 24, 48]
    assert resolve_frame(At(1), 85) == 80  # 84 rounds to 80 (ties to even); never past the last frame
    assert resolve_frame(At(0.3), 17) == 0  # int(4.8) = 4, half of 8: Python's round ties to even, 0


@pytest.mark.parametrize(("spec", "frame"), [(0, 0), (16, 16), (-1, 16), (-17, 0), ("last", 16)])
def test_indices_and_last(spec, frame):
    assert resolve_frame(spec, 17) == frame


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (17, "guide frame 17 is outside the video: frames are 0-16, or -17..-1 from the end"),
        (-18, "guide frame -18 is outside"),
        (At(1.5), "a guide time must be in [0, 1]"),
        (At(float("nan")), "a guide time must be in [0, 1]"),
        (True, "a guide frame is an integer"),
        ("first", "a guide frame is an integer"),
    ],
)
def test_places_outside_the_clip_are_one_line(spec, message):
    with pytest.raises(InputError, match=re.escape(message)):
        resolve_frame(spec, 17)


def test_parse_frame():
    assert [parse_frame(t) for t in ("0", "-1", "last")] == [0, -1, "last"]
    with pytest.raises(InputError, match="integer or 'last'"):
        parse_frame("0.5")
