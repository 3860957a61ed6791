"""Perceptual hashes of a clip's frames, for near-duplicate removal (openings, endings and recaps repeat
across a series' episodes; `anisora.curate.filters.mark_duplicates` compares them)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from .base import ClipSamples, Scorer, ScorerConfig, spread


class DedupConfig(ScorerConfig):
    frames: Annotated[int, Field(ge=1)] = 3
    """hashed frames, spread evenly over the clip"""


class DedupScorer(Scorer):
    """Scores: `dedup_hash`, the 64-bit DCT perceptual hash (`imagehash.phash`) of `frames` of the clip's
    frames, hexadecimal, separated by spaces. Robust to re-encoding, resizing and small colour shifts."""

    name = "dedup"
    version = "1"
    Config = DedupConfig
    outputs: ClassVar[dict[str, type]] = {"dedup_hash": str}
    thread_safe = True

    def load(self) -> None:
        import imagehash  # noqa: F401
        import scipy.fftpack  # noqa: F401  (imagehash.phash imports it on its first call)

    def score(self, clip: ClipSamples) -> dict:
        import imagehash
        from PIL import Image

        picks = spread(len(clip.frames), self.config.frames)
        hashes = [str(imagehash.phash(Image.fromarray(clip.frames[i]))) for i in picks]
        return {"dedup_hash": " ".join(hashes)}
