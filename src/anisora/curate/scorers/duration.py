"""Duration of a candidate clip (the paper keeps 2-20 s)."""

from __future__ import annotations

from .base import ClipSamples, Scorer


class DurationScorer(Scorer):
    """Scores: `duration_seconds`, `duration_frames`."""

    name = "duration"
    version = "1"

    def score(self, clip: ClipSamples) -> dict:
        return {"duration_seconds": clip.duration, "duration_frames": clip.num_frames}
