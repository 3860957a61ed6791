"""Where a guide goes: one rule for every caller (the CLI, bench files, the studio, the Python API).

A guide's place is a pixel frame index (negative counts from the end), "last", or `At(t)`, a share of the
clip in [0, 1] placed by AniSora V3's any-frame rule. This module needs neither torch nor a model, so bench
files and request checks use it before anything loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

from ..errors import InputError

V3_FRAME_STEP = 8  # AniSora V3 rounds a guide's time to a multiple of 8 frames


@dataclass(frozen=True)
class At:
    """A place given as a share `t` of the clip: 0 is the first frame, 1 the last."""

    t: float


FrameSpec = Union[int, Literal["last"], At]  # noqa: UP007 (a runtime alias: `|` fails on a Literal in 3.10)


def resolve_frame(spec: FrameSpec, num_frames: int) -> int:
    """The pixel frame `spec` names in a clip of `num_frames` frames.

    `At(t)` follows the official V3 code: frame int((F - 1) t), rounded to a multiple of 8 (ties to even), so
    for F = 81 the times 0 / .25 / .5 / .75 / 1 give frames 0 / 16 / 40 / 64 / 80; kept inside the clip.
    """
    last = num_frames - 1
    if spec == "last":
        return last
    if isinstance(spec, At):
        if not (isinstance(spec.t, (int, float)) and math.isfinite(spec.t) and 0 <= spec.t <= 1):
            raise InputError(f"a guide time must be in [0, 1] (0 first frame, 1 last), got {spec.t!r}")
        return min(round(int(last * spec.t) / V3_FRAME_STEP) * V3_FRAME_STEP, last)
    if isinstance(spec, bool) or not isinstance(spec, int):
        raise InputError(f"a guide frame is an integer, 'last' or a time in [0, 1], got {spec!r}")
    frame = spec + num_frames if spec < 0 else spec
    if not 0 <= frame <= last:
        raise InputError(
            f"guide frame {spec} is outside the video: frames are 0-{last}, or -{num_frames}..-1 from the end"
        )
    return frame


def parse_frame(text: str) -> FrameSpec:
    """A frame index (negative from the end) or "last", as written on a command line or in a bench file."""
    if text == "last":
        return "last"
    try:
        return int(text)
    except ValueError:
        raise InputError(f"a guide frame is an integer or 'last', got {text!r}") from None
