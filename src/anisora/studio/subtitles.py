"""Subtitles for dubbed shots: cues, SRT files, and subtitles burned into frames (CJK-capable).

Burned-in text is white with a black outline, centred at the bottom and wrapped to the frame width: Latin text
breaks at spaces, CJK text (and kana, Hangul, full-width punctuation) between any two characters.
"""

from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from anisora.errors import InputError
from anisora.files import atomic_output

SYSTEM_CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"  # Debian fonts-wqy-microhei

# Full-width punctuation that must not begin a line (kinsoku): it is kept with the character before it.
_NO_LINE_START = set("，。、！？；：）」』》〉】’”・ーぁぃぅぇぉっゃゅょァィゥェォッャュョ!),.:;?")


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start` to `end` seconds; `speaker`, if given, prefixes the text."""

    start: float
    end: float
    text: str
    speaker: str | None = None

    def label(self, speaker_prefix: bool = True) -> str:
        lines = [line.strip() for line in self.text.replace("\r\n", "\n").split("\n")]
        text = "\n".join(line for line in lines if line)  # a blank line would end the cue in an SRT file
        return f"{self.speaker}: {text}" if speaker_prefix and self.speaker else text


def srt_text(cues: list[Cue], speaker_prefix: bool = True) -> str:
    """The cues as SRT text, numbered from 1 in order of start time."""
    blocks = []
    for number, cue in enumerate(sorted(_checked(cues), key=lambda c: c.start), start=1):
        blocks.append(
            f"{number}\n{_timestamp(cue.start)} --> {_timestamp(cue.end)}\n{cue.label(speaker_prefix)}\n"
        )
    return "\n".join(blocks)


def write_srt(path: str | os.PathLike[str], cues: list[Cue], speaker_prefix: bool = True) -> None:
    """Write the cues as a UTF-8 SRT file, atomically."""
    text = srt_text(cues, speaker_prefix)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def default_font_path() -> str:
    """Debian's WenQuanYi Micro Hei when installed, else the subset of it that anisora.toonworld ships (ASCII
    and only the CJK characters of ToonWorld's phrases: install fonts-wqy-microhei for arbitrary Chinese)."""
    if Path(SYSTEM_CJK_FONT).is_file():
        return SYSTEM_CJK_FONT
    return str(resources.files("anisora.toonworld") / "assets" / "toonworld-sans.ttf")


def burn_subtitles(
    frames: np.ndarray,
    fps: float,
    cues: list[Cue],
    font_path: str | None = None,
    speaker_prefix: bool = True,
) -> np.ndarray:
    """Return a copy of `frames` (T, H, W, 3) uint8 RGB with each cue drawn on the frames it covers.

    Frame t shows the cues with start <= t / fps < end (overlapping cues stack); other frames are unchanged.
    """
    if (
        not isinstance(frames, np.ndarray)
        or frames.ndim != 4
        or frames.shape[3] != 3
        or frames.dtype != np.uint8
    ):
        raise InputError("frames must be a (T, H, W, 3) uint8 RGB array")
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"fps must be a positive number, got {fps!r}")
    cues = sorted(_checked(cues), key=lambda c: c.start)
    out = frames.copy()
    height, width = frames.shape[1:3]
    size = max(12, round(height / 16))
    font = _font(font_path or default_font_path(), size)
    overlays: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, int] | None] = {}
    for t in range(frames.shape[0]):
        now = t / fps
        active = tuple(i for i, cue in enumerate(cues) if cue.start <= now < cue.end)
        if not active:
            continue
        if active not in overlays:
            text = "\n".join(cues[i].label(speaker_prefix) for i in active)
            overlays[active] = _render(text, font, width, height)
        if overlays[active] is not None:
            _composite(out[t], *overlays[active])
    return out


def _checked(cues: list[Cue]) -> list[Cue]:
    for cue in cues:
        if not isinstance(cue, Cue):
            raise InputError(f"subtitle cues must be Cue objects, got {type(cue).__name__}")
        if not isinstance(cue.text, str) or not cue.label(speaker_prefix=False):
            raise InputError(f"subtitle cue at {cue.start} s has no text")
        if not (math.isfinite(cue.start) and math.isfinite(cue.end)) or cue.start < 0 or cue.end <= cue.start:
            raise InputError(f"subtitle cue times must satisfy 0 <= start < end, got {cue.start} - {cue.end}")
    return list(cues)


def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError as e:
        raise InputError(f"cannot load subtitle font {path}: {e}") from None


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _tokens(text: str) -> list[str]:
    """Split a line into the pieces a line break may fall between: words, spaces, single wide characters."""
    tokens: list[str] = []
    for char in text:
        glue = tokens and char in _NO_LINE_START and not tokens[-1].isspace()
        joins_word = tokens and not _is_wide(char) and not char.isspace() and _is_word(tokens[-1])
        if glue or joins_word:
            tokens[-1] += char
        else:
            tokens.append(char)
    return tokens


def _is_word(token: str) -> bool:
    return not token.isspace() and not _is_wide(token[-1])


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for token in _tokens(paragraph):
            if font.getlength(line + token) <= max_width or not line.strip():
                line += token
            else:
                lines.append(line.rstrip())
                line = token.lstrip()
            # A single word wider than the frame is broken between characters.
            while font.getlength(line) > max_width and len(line) > 1:
                cut = next(
                    (i for i in range(len(line) - 1, 1, -1) if font.getlength(line[:i]) <= max_width), 1
                )
                lines.append(line[:cut])
                line = line[cut:]
        if line.strip():
            lines.append(line.rstrip())
    return lines


def _render(
    text: str, font: ImageFont.FreeTypeFont, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Draw `text` once: (outline alpha, fill alpha, top row) of a full-width strip; None if nothing shows."""
    lines = _wrap(text, font, 0.9 * width)
    if not lines:
        return None
    size = font.size
    stroke = max(1, round(size / 12))
    step = round(size * 1.25)
    margin = 2 * stroke + size // 2
    fits = max(1, int((0.9 * height - margin) // step))
    if len(lines) > fits:
        lines = [*lines[: fits - 1], lines[fits - 1] + "…"]
    strip_h = min(height, step * len(lines) + margin)
    top = max(0, height - round(0.04 * height) - strip_h)
    fill = Image.new("L", (width, strip_h), 0)
    outline = Image.new("L", (width, strip_h), 0)
    fill_draw, outline_draw = ImageDraw.Draw(fill), ImageDraw.Draw(outline)
    for i, line in enumerate(lines):
        xy = (width / 2, stroke + size + i * step)  # baseline of line i, centred
        outline_draw.text(xy, line, font=font, fill=255, anchor="ms", stroke_width=stroke, stroke_fill=255)
        fill_draw.text(xy, line, font=font, fill=255, anchor="ms")
    return np.asarray(outline, np.float32) / 255, np.asarray(fill, np.float32) / 255, top


def _composite(frame: np.ndarray, outline: np.ndarray, fill: np.ndarray, top: int) -> None:
    """Blend black outline then white fill onto `frame` (in place) at rows top .. top + strip height."""
    region = frame[top : top + outline.shape[0]].astype(np.float32)
    region *= 1 - outline[..., None]
    region += (255 - region) * fill[..., None]
    frame[top : top + outline.shape[0]] = np.round(region).astype(np.uint8)
