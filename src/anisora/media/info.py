"""What a video file holds (size, rate, length, rotation), read from headers and a few packets."""

from __future__ import annotations

import itertools
import os
import statistics
from dataclasses import dataclass

from av.container import InputContainer
from av.video.stream import VideoStream

from anisora.errors import MediaError

from ._containers import (
    average_fps,
    duration_seconds,
    media_errors,
    open_input,
    quarter_turns,
    video_stream,
)

# Packets whose timestamps decide `variable_frame_rate`: ~20 s at 24 fps, read without decoding (~5 us each).
VFR_WINDOW = 500
# Packets arrive in decode order; with B-frames a frame can be decoded up to 16 packets after the frames it
# is displayed before (H.264's limit). Reading that many extra packets makes the first VFR_WINDOW
# presentation timestamps complete, with no gap from frames not yet read.
_REORDER_DEPTH = 16


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file.

    `width`/`height` are the display size, i.e. after applying `rotation`; `coded_width`/`coded_height`
    are the size of the frames as stored in the file. `rotation` is the counter-clockwise angle (0, 90,
    180 or 270) by which stored frames must be turned to be upright, from the display matrix (the
    convention of FFmpeg's `av_display_rotation_get` and PyAV's `VideoFrame.rotation`; a phone video
    tagged "rotate=90" reads 270). `fps` is the average frame rate; `frame_count` comes from the
    container header, or from counting packets when the header has none.
    """

    path: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: float
    frame_count: int
    duration: float
    rotation: int
    variable_frame_rate: bool
    codec: str
    has_audio: bool
    start_time: float


@dataclass(frozen=True)
class _PacketScan:
    """What a pass over the first packets tells: the first VFR_WINDOW presentation timestamps in order,
    how many packets were read, the first frame's rotation."""

    pts: list[int]
    count: int
    rotation: int


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video cheaply: headers and packet timestamps, plus one decoded frame for the rotation.

    Reads the timestamps of the first `VFR_WINDOW` packets to detect a variable frame rate, and demuxes
    (never decodes) the whole stream only when the header has no frame count. Raises MediaError for
    anything that is not a usable video.
    """
    with open_input(path) as container:
        stream = video_stream(container, path)
        with media_errors(path, "cannot read video packets"):
            scan = _scan_packets(container, stream, path, count_all=not stream.frames)
        frame_count = stream.frames or scan.count
        fps = average_fps(stream) or _rate_from_duration(container, stream, frame_count, path)
        coded_width, coded_height = stream.codec_context.width, stream.codec_context.height
        width, height = coded_width, coded_height
        if scan.rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=os.fspath(path),
            width=width,
            height=height,
            coded_width=coded_width,
            coded_height=coded_height,
            fps=fps,
            frame_count=frame_count,
            duration=duration_seconds(container, stream) or frame_count / fps,
            rotation=scan.rotation,
            variable_frame_rate=_is_variable_rate(scan.pts),
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
            start_time=float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0,
        )


def _scan_packets(
    container: InputContainer, stream: VideoStream, path: str | os.PathLike[str], count_all: bool
) -> _PacketScan:
    """Demux the first packets (all of them if `count_all`), decoding only until the first frame appears.

    The rotation lives in the display matrix, which PyAV exposes only on decoded frames, so one frame
    is decoded. The final empty packet PyAV yields flushes the decoder, so a one-frame video works too.
    """
    pts: list[int] = []
    count = 0
    rotation: int | None = None
    for packet in container.demux(stream):
        if rotation is None:
            rotation = next((quarter_turns(frame) * 90 for frame in packet.decode()), None)
        if packet.size == 0:
            continue
        count += 1
        if packet.pts is not None and len(pts) < VFR_WINDOW + _REORDER_DEPTH:
            pts.append(packet.pts)
        if rotation is not None and count >= VFR_WINDOW + _REORDER_DEPTH and not count_all:
            break
    if rotation is None:
        raise MediaError(path, "no decodable video frame")
    return _PacketScan(pts=sorted(pts)[:VFR_WINDOW], count=count, rotation=rotation)


def _is_variable_rate(pts: list[int]) -> bool:
    """True when consecutive presentation timestamps (in ticks, ascending) are not evenly spaced.

    Tolerates one tick of rounding (a 30 fps stream in a 1/1000 time base alternates 33 and 34) and 1 %
    of jitter.
    """
    deltas = [b - a for a, b in itertools.pairwise(pts)]
    if len(deltas) < 2:
        return False
    typical = statistics.median(deltas)
    tolerance = max(1.0, 0.01 * typical)
    return any(abs(delta - typical) > tolerance for delta in deltas)


def _rate_from_duration(
    container: InputContainer, stream: VideoStream, frame_count: int, path: str | os.PathLike[str]
) -> float:
    """Frames per second from count and duration, for the rare file whose header states no rate."""
    duration = duration_seconds(container, stream)
    if not duration or not frame_count:
        raise MediaError(path, "unknown frame rate")
    return frame_count / duration
