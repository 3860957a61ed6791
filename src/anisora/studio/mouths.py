"""A shot's talking mouths: each marked character's mouth driven by its own lines, part by part, and the lip
sync of every marked mouth measured on the frames that come out.

The dubbing knows who says what when. A character's voice is the shot's dialogue with every other line
silenced; its loudness per video frame (`anisora.media.frame_envelope`, over each part's audio exactly as it
is muxed) gives the mouth's openings (`anisora.media.mouths.lip_flap`), and `Mouth.draw` drives the region
the user brushed on the panel, fitted to the video as the panel is. Only the speaking character's mouth
moves; the others stay shut. With animation off the frames are left alone and the lip sync is still
measured, so takes with and without compare (`anisora.evaluate.metrics.lip_sync`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..evaluate.metrics.lip_sync import STILL, lip_sync, mouth_activity, region_changes
from ..media import frame_envelope
from ..media.mouths import Mouth, lip_flap
from .assembly import SAMPLE_RATE, Part, Timeline, part_audio


@dataclass(frozen=True)
class MarkedMouth:
    """A character's brushed mouth region at the video's size."""

    character_id: int
    name: str
    region: np.ndarray  # (H, W) bool

    @classmethod
    def fit(cls, character_id: int, name: str, mask: np.ndarray, height: int, width: int) -> MarkedMouth:
        """From the mask as drawn on the panel ((h, w, 3) uint8, white = mouth), cropped and scaled as the
        panel is to the video's height x width."""
        from ..model.conditioning import fit_image  # torch: imported when a job runs

        region = fit_image(mask, height, width)[0].max(axis=2) >= 128
        if not region.any():
            raise InputError(
                f"the mouth marked for {name} covers no pixel of the {width}x{height} video:"
                " brush a larger region"
            )
        return cls(character_id, name, region)


def voice_of(timeline: Timeline, speakers: Sequence[int | None], character_id: int) -> Timeline:
    """The timeline with every line silenced but those `character_id` speaks (`speakers`: one per line)."""
    samples = np.zeros_like(timeline.samples)
    for cue, who in zip(timeline.cues, speakers, strict=True):
        if who == character_id:
            span = slice(round(cue.start * SAMPLE_RATE), round(cue.end * SAMPLE_RATE))
            samples[span] = timeline.samples[span]
    return Timeline(samples, timeline.cues, timeline.pauses)


@dataclass
class _Track:
    mouth: MarkedMouth
    envelope: np.ndarray  # the character's loudness at every frame of the shot
    openings: np.ndarray
    drawn: Mouth | None
    changes: list[np.ndarray] = field(default_factory=list)


class ShotMouths:
    """Drives (with `animate`) and measures the marked mouths of one shot; call `apply` on every part's
    frames in order, then `result`."""

    def __init__(
        self,
        mouths: Sequence[MarkedMouth],
        panel: np.ndarray,
        timeline: Timeline,
        speakers: Sequence[int | None],
        parts: Sequence[Part],
        animate: bool,
    ):
        from ..model.conditioning import fit_image

        self.animate = animate
        self.fps = parts[0].fps
        self._frame, self._last = 0, None
        self._tracks = []
        shown = fit_image(panel, *mouths[0].region.shape)[0] if animate and mouths else None  # as frame 0
        for mouth in mouths:
            voice = voice_of(timeline, speakers, mouth.character_id)
            envelope = np.concatenate(
                [frame_envelope(part_audio(voice, p), SAMPLE_RATE, p.fps, p.frames) for p in parts]
            )
            drawn = Mouth.find(shown, mouth.region) if shown is not None else None
            self._tracks.append(_Track(mouth, envelope, lip_flap(envelope, self.fps), drawn))

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """The next part's frames with its mouths driven (the same frames when animation is off)."""
        span = slice(self._frame, self._frame + len(frames))
        for track in self._tracks:
            if track.drawn is not None:
                frames = track.drawn.draw(frames, track.openings[span])
        for track in self._tracks:
            track.changes.append(region_changes(frames, track.mouth.region, self._last))
        self._frame, self._last = span.stop, frames[-1]
        return frames

    def result(self) -> dict:
        """Whether the mouths were animated, and each marked mouth's lip sync on the shot's frames."""
        sync = []
        for track in self._tracks:
            activity = mouth_activity(np.concatenate(track.changes))
            found = lip_sync(activity, track.envelope, self.fps, still=STILL)
            sync.append(
                {
                    "character_id": track.mouth.character_id,
                    "character": track.mouth.name,
                    "lip_sync": None if math.isnan(found.correlation) else round(found.correlation, 3),
                    "lag_frames": found.lag,
                }
            )
        return {"animated": self.animate, "sync": sync}
