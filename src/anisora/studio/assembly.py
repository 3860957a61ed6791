"""From dialogue audio to shot timing, and from generated parts to finished mp4s with sound and subtitles.

The dialogue of a shot is laid on one timeline: `LEAD_S` of silence, each line's speech with `GAP_S` between
lines, `TAIL_S` at the end. The shot lasts as long as that timeline (or the duration the user fixed; without
either, the model's own clip), as a frame count the model can make (`step`k+1 frames at the model's fps,
2-8 s; `step` is the model's `ModelInfo.frame_step`: 8 for CogVideoX, 4 for Wan). A part lasts at most the
model's clip (`ModelInfo.clip_frames`: a Wan release's 81 frames, a learned position embedding's rows; 8 s
where the model sets none). Dialogue longer than a part goes on in follow-on parts, each guided by the
previous part's last frame; cuts fall in a pause between lines when one lies in the second half of the part,
else mid-line. A part's picture is `frames / fps` long and its audio is its span of the timeline padded with
silence to that length, so picture and sound stay in step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..media import mux_audio, read_frames, write_video
from ..media.info import probe
from .subtitles import Cue, burn_subtitles, write_srt
from .tts import Speech, read_wav, write_wav

LEAD_S, GAP_S, TAIL_S = 0.3, 0.25, 0.4
MIN_S, MAX_S = 2.0, 8.0
SAMPLE_RATE = 24_000  # every engine's speech is resampled to this before it is laid on the timeline


@dataclass(frozen=True)
class Line:
    """A synthesized dialogue line: its speech and who says it."""

    text: str
    speaker: str | None
    samples: np.ndarray  # float32 mono at SAMPLE_RATE


@dataclass
class Timeline:
    samples: np.ndarray  # the whole dialogue, float32 mono at SAMPLE_RATE
    cues: list[Cue]  # one per line, in timeline seconds
    pauses: list[float] = field(default_factory=list)  # mid-points of the gaps between lines

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class Part:
    start: float  # timeline seconds where the part's sound starts ...
    end: float  # ... and ends; the picture may last longer (frames come in steps): silence fills it
    frames: int
    fps: float

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 speech at `target` Hz (polyphase filter)."""
    if rate == target:
        return samples.astype(np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def dialogue_timeline(lines: Sequence[Line]) -> Timeline:
    pieces, cues, pauses = [np.zeros(round(LEAD_S * SAMPLE_RATE), np.float32)], [], []
    t = LEAD_S
    for i, line in enumerate(lines):
        if i:
            pieces.append(np.zeros(round(GAP_S * SAMPLE_RATE), np.float32))
            pauses.append(t + GAP_S / 2)
            t += GAP_S
        pieces.append(line.samples)
        end = t + len(line.samples) / SAMPLE_RATE
        cues.append(Cue(t, end, line.text, line.speaker))
        t = end
    pieces.append(np.zeros(round(TAIL_S * SAMPLE_RATE), np.float32))
    return Timeline(np.concatenate(pieces), cues, pauses)


def frames_at_least(
    seconds: float, fps: float, step: int, max_s: float = MAX_S, max_frames: int | None = None
) -> int:
    """The fewest `step`k+1 frames lasting >= max(seconds, MIN_S) at `fps`, capped at the most that fit
    `max_s` (and `max_frames`)."""
    most = _longest(fps, step, max_s, max_frames)
    need = max(seconds, MIN_S) * fps
    frames = 1 + step * max(1, math.ceil((need - 1) / step - 1e-9))
    return min(frames, most)


def _longest(
    fps: float, step: int, max_s: float, max_frames: int | None = None, clip_frames: int | None = None
) -> int:
    """The most frames a part has: what fits `max_s`, at most the model's clip (one shorter than MIN_S is
    stretched to MIN_S) and at most `max_frames`, the model's hard limit."""
    frames = 1 + step * math.floor((max_s * fps - 1) / step + 1e-9)
    if clip_frames is not None:
        shortest = 1 + step * max(1, math.ceil((MIN_S * fps - 1) / step - 1e-9))
        frames = min(frames, max(1 + step * ((clip_frames - 1) // step), shortest))
    if max_frames is not None:
        frames = min(frames, 1 + step * ((max_frames - 1) // step))
    if frames / fps < MIN_S:
        most = f"{max_s:g} s" if max_frames is None else f"{frames} frames"
        raise InputError(f"no {step}k+1 frame count of at most {most} lasts {MIN_S:g} s at {fps:g} fps")
    return frames


def longest_seconds(
    fps: float, step: int, max_frames: int | None = None, clip_frames: int | None = None
) -> float:
    """The longest fixed shot length a model makes in one part: its longest part, or MAX_S when it sets no
    length."""
    if max_frames is None and clip_frames is None:
        return MAX_S
    return _longest(fps, step, MAX_S, max_frames, clip_frames) / fps


def default_seconds(
    default_frames: int, fps: float, step: int, max_frames: int | None = None, clip_frames: int | None = None
) -> float:
    """How long a shot without dialogue or fixed length lasts: the model's own clip, within MIN_S and its
    longest part."""
    return min(max(default_frames / fps, MIN_S), longest_seconds(fps, step, max_frames, clip_frames))


def _nearest(seconds: float, fps: float, step: int) -> int:
    """The `step`k+1 frame count nearest to `seconds` (a user's fixed shot length), at least MIN_S long."""
    frames = 1 + step * max(1, round((seconds * fps - 1) / step))
    return frames if frames / fps >= MIN_S else frames + step


def plan_parts(
    timeline_seconds: float,
    pauses: Sequence[float],
    fps: float,
    seconds: float | None,
    step: int,
    max_frames: int | None = None,
    clip_frames: int | None = None,
) -> list[Part]:
    """Cut the timeline into parts of `step`k+1 frames. `seconds`: the user's fixed shot length (None: fit
    to the dialogue); `max_frames`: the most a model makes at once (a learned position embedding's rows);
    `clip_frames`: the longest clip it was made for (`ModelInfo.clip_frames`). A cut goes in the last pause
    between lines in the second half of a part (the part's picture then runs on in silence to its last
    frame), else at the part's full length, mid-line."""
    if seconds is not None and not (MIN_S <= seconds <= MAX_S):
        raise InputError(f"shot duration must be {MIN_S:g}-{MAX_S:g} s, got {seconds}")
    most = _longest(fps, step, MAX_S, max_frames, clip_frames)
    window = most if seconds is None else _nearest(seconds, fps, step)
    if (max_frames is not None or clip_frames is not None) and window > most:
        raise InputError(
            f"this model makes at most {most} frames ({most / fps:.2f} s at {fps:g} fps) a part; "
            f"choose a shorter shot length than {seconds:g} s"
        )
    longest = window / fps
    parts, start = [], 0.0
    while True:
        remaining = timeline_seconds - start
        if remaining <= longest + 1e-9:
            frames = window if seconds is not None else frames_at_least(remaining, fps, step, max_frames=most)
            parts.append(Part(start, timeline_seconds, frames, fps))
            return parts
        late = [p for p in pauses if start + 0.5 * longest < p <= start + longest]
        cut = late[-1] if late else start + longest
        frames = window if seconds is not None else frames_at_least(cut - start, fps, step, longest + 1e-9)
        parts.append(Part(start, cut, frames, fps))
        start = cut


def part_audio(timeline: Timeline, part: Part) -> np.ndarray:
    """The part's span of the timeline, padded with silence to exactly the part's picture length."""
    first, last = round(part.start * SAMPLE_RATE), round(part.end * SAMPLE_RATE)
    audio = timeline.samples[first:last]
    return np.pad(audio, (0, round(part.seconds * SAMPLE_RATE) - len(audio)))


def part_cues(timeline: Timeline, part: Part) -> list[Cue]:
    """The cues that overlap the part's sound, clipped to it, in part seconds (a line cut by a part
    boundary shows in both parts)."""
    return [
        Cue(max(c.start, part.start) - part.start, min(c.end, part.end) - part.start, c.text, c.speaker)
        for c in timeline.cues
        if c.end > part.start and c.start < part.end
    ]


def finish_video(
    frames: np.ndarray, fps: float, audio: np.ndarray, cues: list[Cue], out: Path, burn: bool
) -> None:
    """`out` (mp4 with AAC audio), `out`.srt and `out`.wav from frames, audio and cues."""
    if burn and cues:
        frames = burn_subtitles(frames, fps, cues)
    silent = out.with_name(out.stem + ".silent.mp4")
    write_video(silent, frames, fps)
    write_wav(out.with_suffix(".wav"), Speech(audio, SAMPLE_RATE, {}))
    mux_audio(silent, out.with_suffix(".wav"), out)
    silent.unlink()
    write_srt(out.with_suffix(".srt"), cues)


def concat_videos(shots: Sequence[tuple[Path, list[Cue]]], out: Path, burn: bool = False) -> float:
    """Concatenate finished shots (each `x.mp4` with its `x.wav`) into `out` with one SRT (`burn`: burn the
    subtitles in; for shots made without). Returns the length in seconds."""
    if not shots:
        raise InputError("the episode has no finished shots")
    frames, audio, cues, t = [], [], [], 0.0
    fps = None
    for video, shot_cues in shots:
        info = probe(video)
        if fps is not None and abs(info.fps - fps) > 1e-6:
            raise InputError(f"{video.name} runs at {info.fps:g} fps, the episode at {fps:g}")
        fps = info.fps
        images = read_frames(video, range(info.frame_count))
        if frames and images.shape[1:] != frames[0].shape[1:]:
            raise InputError(f"{video.name} is {images.shape[2]}x{images.shape[1]}; shots must share a size")
        frames.append(images)
        audio.append(_read_wav(video.with_suffix(".wav")))
        cues += [Cue(c.start + t, c.end + t, c.text, c.speaker) for c in shot_cues]
        t += info.frame_count / info.fps
    finish_video(np.concatenate(frames), fps, np.concatenate(audio), cues, out, burn)
    return t


def _read_wav(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    if rate != SAMPLE_RATE:
        raise InputError(f"{path.name}: expected {SAMPLE_RATE} Hz audio, got {rate} Hz")
    return samples
