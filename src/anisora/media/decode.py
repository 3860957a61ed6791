"""Decoding video into RGB frames: native rate or resampled by timestamp, downsized, upright, seekable."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from anisora.errors import InputError, MediaError
from anisora.files import check_input_file

from ._containers import average_fps, media_errors, open_input, quarter_turns, video_stream
from .info import probe

# Timestamps within this many seconds count as equal: float seconds from integer ticks are not exact.
EPS = 1e-6
# FFmpeg's demuxer for mp4/mov (named "mov,mp4,m4a,3gp,3g2,mj2"): its header frame count is the sample
# table, one packet per entry, so fewer packets means a cut file. AVI headers also count dropped frames
# that are never delivered as packets, and Matroska has no count, so they are not checked.
_EXACT_COUNT_DEMUXER = "mov"
# FFmpeg's decoder threading for every decode here: "SLICE" (FFmpeg's default) keeps one core per decode for
# H.264 without slices; frame threading ("AUTO") measured ~20 % slower for 640x360 H.264 on our 2-core
# machines and leaves no core to the curation's scoring thread.
DECODER_THREAD_TYPE = "SLICE"


@dataclass(slots=True)
class Frame:
    """One output sample: its position in the output (`index`), the decoded frame it shows
    (`source_index`, counted from the first frame of the stream), its time in seconds on the stream's
    timestamp axis, and the RGB image (H, W, 3) uint8."""

    index: int
    source_index: int
    time: float
    image: np.ndarray


@dataclass(slots=True)
class _Decoded:
    """A decoded frame before RGB conversion, which is skipped for frames that are never emitted."""

    source_index: int
    time: float
    frame: VideoFrame


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = None,
    max_side: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Iterator[Frame]:
    """Yield the frames of a video as upright RGB arrays, optionally resampled, downsized and cut.

    - `fps=None`: every decoded frame once. Otherwise sample k is taken at t_k = t0 + k / fps (t0 = `start`,
      or the first frame's time) and shows the latest frame whose timestamp is <= t_k, so a variable
      frame rate video is resampled by time, frames repeat when upsampling and are skipped when
      downsampling. No sample lies past the last frame's end (its timestamp + its duration).
    - `max_side`: shrink (never enlarge) so the longer side is at most this many pixels, keeping aspect.
    - `start`/`end`: seconds on the stream's timestamp axis; the reader seeks to the keyframe before
      `start` instead of decoding from the beginning. After such a seek `source_index` is derived from
      the timestamp and the average rate (exact for constant frame rate video).

    Argument errors raise InputError here; file errors raise MediaError when iteration starts. Every
    sample gets its own array (a repeated frame is converted again), so callers may modify images in
    place. Reading a whole file that ends before the frame count its header promises raises
    MediaError("truncated ...").
    """
    _check_sampling(fps, max_side, start, end)
    check_input_file(path)
    return _iter_frames(path, fps, max_side, start, end)


def read_frames(
    path: str | os.PathLike[str], indices: Iterable[int], max_side: int | None = None
) -> np.ndarray:
    """Return the frames at `indices` (stream order, counted from 0) as a (T, H, W, 3) array.

    Indices may repeat and come in any order; the result follows their order. The file is decoded once,
    from the start to the largest index, converting only wanted frames. An index outside the frame count
    of the header raises InputError.
    """
    wanted = _check_indices(indices)
    info = probe(path)
    bad = wanted[(wanted < 0) | (wanted >= info.frame_count)]
    if bad.size:
        raise InputError(f"frame index {bad[0]} out of range: {path} has frames 0..{info.frame_count - 1}")
    if not wanted.size:
        height, width = _output_size(info.height, info.width, max_side)
        return np.empty((0, height, width, 3), np.uint8)
    images: dict[int, np.ndarray] = {}
    last = int(wanted.max())
    for frame in _iter_frames(path, None, max_side, None, None, keep=set(wanted.tolist()).__contains__):
        images[frame.source_index] = frame.image
        if frame.source_index == last:
            break
    missing = [i for i in wanted.tolist() if i not in images]
    if missing:
        raise MediaError(path, f"frame {missing[0]} could not be decoded (stream ended early)")
    return np.stack([images[i] for i in wanted.tolist()])


@dataclass(slots=True)
class RawFrame:
    """A decoded frame not yet converted, for callers that need several sizes of some frames and only a
    cheap thumbnail of the others (curation). Sizes are given upright (after rotation)."""

    index: int
    time: float
    frame: VideoFrame
    turns: int  # counter-clockwise quarter turns that make the frame upright

    def rgb(self, width: int | None = None, height: int | None = None, fast: bool = False) -> np.ndarray:
        """Upright RGB, resized by FFmpeg to (width, height) when given: area filter by default, or
        `fast` bilinear (half the cost, some aliasing: good enough for cut and change detection)."""
        if width is None or height is None:
            image = self.frame.to_ndarray(format="rgb24")
        else:
            w, h = (height, width) if self.turns % 2 else (width, height)
            filt = "FAST_BILINEAR" if fast else "AREA"
            image = (
                _reformatter(w, h, filt).reformat(self.frame, w, h, "rgb24", interpolation=filt).to_ndarray()
            )
        return np.ascontiguousarray(np.rot90(image, self.turns)) if self.turns else image


@functools.lru_cache(maxsize=8)
def _reformatter(width: int, height: int, interpolation: str) -> VideoReformatter:
    """One scaler per output size: PyAV rebuilds a scaler whenever the size changes, which costs ~3 ms, so
    alternating sizes through one scaler would cost more than the decoding."""
    return VideoReformatter()


def iter_raw_frames(path: str | os.PathLike[str]) -> Iterator[RawFrame]:
    """Every decoded frame once, unconverted, with the same error and truncation checks as iter_frames."""
    check_input_file(path)
    return _iter_raw(path)


def _iter_raw(path: str | os.PathLike[str]) -> Iterator[RawFrame]:
    with open_input(path) as container, media_errors(path, "decoding failed"):
        stream = video_stream(container, path)
        turns = None
        for item in _decode(container, stream, path, None):
            if turns is None:
                turns = quarter_turns(item.frame)
            yield RawFrame(item.source_index, item.time, item.frame, turns)


def _iter_frames(
    path: str | os.PathLike[str],
    fps: float | None,
    max_side: int | None,
    start: float | None,
    end: float | None,
    keep: Callable[[int], bool] | None = None,
) -> Iterator[Frame]:
    """The generator behind iter_frames; `keep` filters native frames by source index before conversion.

    FFmpeg errors anywhere (seeking, decoding, converting) become MediaError, raised mid-iteration.
    """
    with open_input(path) as container, media_errors(path, "decoding failed"):
        stream = video_stream(container, path)
        decoded = _decode(container, stream, path, start)
        if fps is None:
            samples = _native(decoded, start, end, keep)
        else:
            samples = _resample(decoded, fps, start, end, 1.0 / (average_fps(stream) or fps))
        convert: Callable[[VideoFrame], np.ndarray] | None = None
        for index, (time, item) in enumerate(samples):
            if convert is None:
                convert = _converter(item.frame, max_side)
            yield Frame(index, item.source_index, time, convert(item.frame))


def _decode(
    container: InputContainer, stream: VideoStream, path: str | os.PathLike[str], start: float | None
) -> Iterator[_Decoded]:
    """Decode frames in presentation order from the keyframe before `start` (or the beginning).

    When an mp4 is decoded from the beginning to the end of the stream, the number of packets read is
    compared with the header's frame count: a file cut short (its index up front still promising all
    frames) is an error, not a silently shorter video.
    """
    if not stream.codec_context.is_open:
        stream.codec_context.thread_type = DECODER_THREAD_TYPE
    fps = average_fps(stream)
    seeked = _seek(container, stream, start)
    exact_count = not seeked and _EXACT_COUNT_DEMUXER in container.format.name.split(",")
    source_index = -1
    packets = 0
    for packet in container.demux(stream):
        if packet.size:
            packets += 1
        for frame in packet.decode():
            time = frame.time
            if time is None:
                time = _untimed_frame_time(source_index + 1, fps, path)
            if seeked and source_index < 0:
                source_index = round((time - _stream_start(stream)) * fps) - 1
            source_index += 1
            yield _Decoded(source_index, time, frame)
    if exact_count and packets < stream.frames:
        raise MediaError(path, f"truncated: read {packets} of {stream.frames} frames")


def _seek(container: InputContainer, stream: VideoStream, start: float | None) -> bool:
    """Seek to the keyframe at or before `start`; False when `start` is at the beginning (no seek needed)."""
    if start is None or start <= _stream_start(stream) + EPS:
        return False
    container.seek(math.floor(start / stream.time_base), stream=stream, backward=True, any_frame=False)
    return True


def _untimed_frame_time(source_index: int, fps: float, path: str | os.PathLike[str]) -> float:
    """Time of a frame without a timestamp (raw elementary streams), from its index and the frame rate."""
    if not fps:
        raise MediaError(path, "frames have no timestamps and the stream states no frame rate")
    return source_index / fps


def _stream_start(stream: VideoStream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _native(
    decoded: Iterator[_Decoded], start: float | None, end: float | None, keep: Callable[[int], bool] | None
) -> Iterator[tuple[float, _Decoded]]:
    """Every decoded frame in [start, end) once, at its own timestamp."""
    begin = -math.inf if start is None else start - EPS
    stop = math.inf if end is None else end - EPS
    for item in decoded:
        if item.time >= stop:
            return
        if item.time >= begin and (keep is None or keep(item.source_index)):
            yield item.time, item


def _resample(
    decoded: Iterator[_Decoded], fps: float, start: float | None, end: float | None, default_duration: float
) -> Iterator[tuple[float, _Decoded]]:
    """Samples at t_k = t0 + k / fps, each showing the latest frame with timestamp <= t_k.

    t0 is `start`, or the first frame's time if that is later (there is nothing to show before it).
    Sampling ends at `end` or at the last frame's end time, whichever comes first.
    """
    stop = math.inf if end is None else end - EPS
    t0 = math.nan
    k = 0
    shown: _Decoded | None = None
    for item in decoded:
        if shown is None:
            t0 = item.time if start is None else max(start, item.time)
        while shown is not None and item.time > t0 + k / fps + EPS:
            if t0 + k / fps >= stop:
                return
            yield t0 + k / fps, shown
            k += 1
        shown = item
    if shown is None:
        return
    last = shown.frame
    duration = float(last.duration * last.time_base) if last.duration else default_duration
    stop = min(stop, shown.time + duration - EPS)
    while t0 + k / fps < stop:
        yield t0 + k / fps, shown
        k += 1


def _output_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled so the longer side is at most `max_side`; never enlarged, never below 1."""
    longest = max(height, width)
    if max_side is None or longest <= max_side:
        return height, width
    scale = max_side / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


def _converter(first: VideoFrame, max_side: int | None) -> Callable[[VideoFrame], np.ndarray]:
    """Build the per-frame RGB conversion once (size and rotation are fixed for the stream).

    Resizing happens before rotating, on the stored orientation, so the target size is computed on the
    display size and swapped back for 90/270 degree rotations.
    """
    turns = quarter_turns(first)
    height, width = first.height, first.width
    if turns % 2:
        out_w, out_h = _output_size(width, height, max_side)
    else:
        out_h, out_w = _output_size(height, width, max_side)
    resize = (out_h, out_w) != (height, width)

    def convert(frame: VideoFrame) -> np.ndarray:
        image = frame.to_ndarray(format="rgb24")
        if resize:
            image = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
        return image

    return convert


def _check_sampling(fps: float | None, max_side: int | None, start: float | None, end: float | None) -> None:
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps}")
    if max_side is not None and max_side < 1:
        raise InputError(f"max_side must be at least 1 pixel, got {max_side}")
    if start is not None and not (math.isfinite(start) and start >= 0):
        raise InputError(f"start must be a non-negative number of seconds, got {start}")
    if end is not None and not (end > (start or 0)):
        raise InputError(f"end ({end} s) must be after start ({start or 0} s)")


def _check_indices(indices: Iterable[int]) -> np.ndarray:
    wanted = np.asarray(list(indices))
    if wanted.size and wanted.dtype.kind not in "iu":
        raise InputError(f"frame indices must be integers, got {wanted.dtype} values")
    return wanted.astype(np.int64).reshape(-1)
