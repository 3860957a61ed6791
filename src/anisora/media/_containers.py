"""Opening FFmpeg containers so that every failure surfaces as a MediaError naming the file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import av
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from anisora.errors import MediaError
from anisora.files import check_input_file

# FFmpeg decodes ANSI/ASCII-art text files (".txt", ".bin", ...) as "video". They are text, not video.
_TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


def ffmpeg_reason(error: av.FFmpegError) -> str:
    """FFmpeg's message without the errno and the file name PyAV adds (the MediaError names the file)."""
    return error.strerror or str(error)


@contextmanager
def media_errors(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn FFmpeg errors raised in the block into `MediaError(path, "<what>: <FFmpeg's reason>")`."""
    try:
        yield
    except av.FFmpegError as error:
        raise MediaError(path, f"{what}: {ffmpeg_reason(error)}") from error


@contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[InputContainer]:
    """Open a media file for reading and close it when the block ends, whatever happens in it."""
    checked = check_input_file(path)
    with media_errors(path, "not a readable media file"):
        container = av.open(os.fspath(checked), metadata_errors="replace")
    with container:
        yield container


def video_stream(container: InputContainer, path: str | os.PathLike[str]) -> VideoStream:
    """The first real video stream; cover art (an "attached picture") does not count as video."""
    for stream in container.streams.video:
        if stream.disposition & Disposition.attached_pic:
            continue
        if stream.codec_context.name in _TEXT_ART_CODECS:
            codec = stream.codec_context.name
            raise MediaError(path, f"not a readable media file: FFmpeg reads it as {codec} text, not video")
        return stream
    raise MediaError(path, "no video stream")


def duration_seconds(container: InputContainer, stream: VideoStream) -> float:
    """Seconds: the stream's own duration if the container states it, else the container's, else 0."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def average_fps(stream: VideoStream) -> float:
    """The stream's average frame rate, falling back to the rates FFmpeg guesses when the header has none."""
    rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def quarter_turns(frame: VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that make a decoded frame upright, from its display matrix
    (rounded to the nearest quarter; mirroring in the matrix is ignored)."""
    return round(frame.rotation / 90) % 4
