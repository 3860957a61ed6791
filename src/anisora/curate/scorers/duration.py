"""Duration of a candidate clip (the paper keeps 2-20 s)."""

from __future__ import annotations

from typing import ClassVar

from .base import ClipSamples, Scorer


class DurationScorer(Scorer):
    """Scores: `duration_seconds`, `duration_frames`."""

    name = "duration"
    version = "1"
    outputs: ClassVar[dict[str, type]] = {"duration_seconds": float, "duration_frames": int}
    thread_safe = True

    def score(self, clip: ClipSamples) -> dict:
        return {"duration_seconds": clip.duration, "duration_frames": clip.num_frames}
