"""Writing RGB frames to an H.264 mp4 that every player opens, with exact frame timestamps."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.container import OutputContainer
from av.video.stream import VideoStream

from anisora.errors import InputError
from anisora.files import atomic_output

from ._containers import media_errors

# H.264 in yuv420p (the only chroma layout every browser and phone plays) with the index at the front
# of the file so playback can start before the download ends.
_CODEC = "libx264"
_PIX_FMT = "yuv420p"
# Exact frames for measurement: H.264 on the RGB planes themselves at qp 0. Chroma subsampling alone costs
# a clean ToonWorld clip 29-34 dB PSNR at 160x96, more than the errors a benchmark compares; ffmpeg and
# `anisora.media` decode it exactly, browsers do not play it (`playable` makes a copy that they do).
_LOSSLESS_CODEC = "libx264rgb"
_LOSSLESS_PIX_FMT = "rgb24"
_CONTAINER_OPTIONS = {"movflags": "+faststart"}
_PRESETS = frozenset(
    {
        "ultrafast",
        "superfast",
        "veryfast",
        "faster",
        "fast",
        "medium",
        "slow",
        "slower",
        "veryslow",
        "placebo",
    }
)


def exact_rate(fps: float | Fraction) -> Fraction:
    """The frame rate as an exact fraction, so timestamps in a 1/rate time base are exact integers.

    NTSC rates given in decimal (23.976, 29.97, 59.94) snap to their true value k*1000/1001 (players and
    editors expect 24000/1001, not 2997/125); integers and other floats become the nearest fraction with
    a denominator up to 1001000.
    """
    if isinstance(fps, Fraction) or fps == round(fps):
        return Fraction(fps)
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(fps - ntsc) < 0.005:
        return ntsc
    return Fraction(fps).limit_denominator(1001000)


class VideoWriter:
    """Context manager writing (H, W, 3) uint8 RGB frames to an H.264 mp4, one `write(frame)` at a time.

    The file appears at `path` only when the block ends without error: frames go to a temporary file
    next to it, renamed at the end. Frame k gets pts k in a 1/fps time base. yuv420p needs even sizes,
    so frames with an odd height or width are padded by repeating their last row or column: the video is
    (H + H % 2, W + W % 2). All frames must share one size; zero frames is an error (InputError).
    `lossless` stores the RGB frames exactly (and unpadded) instead, for measurement (`_LOSSLESS_CODEC`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        crf: int = 18,
        preset: str = "medium",
        lossless: bool = False,
    ) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be a positive number, got {fps}")
        if not 0 <= crf <= 51:
            raise InputError(f"crf must be in 0..51 (lower is better quality), got {crf}")
        if preset not in _PRESETS:
            raise InputError(f"unknown x264 preset {preset!r}; use one of {sorted(_PRESETS)}")
        self.path = path
        self.rate = exact_rate(fps)
        self.crf = crf
        self.preset = preset
        self.lossless = lossless
        self.frames_written = 0
        self._stack = ExitStack()
        self._container: OutputContainer | None = None
        self._stream: VideoStream | None = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(self.path))
            with media_errors(self.path, "cannot create video file"):
                self._container = stack.enter_context(
                    av.open(os.fspath(tmp), "w", format="mp4", options=_CONTAINER_OPTIONS)
                )
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Finish the file and move it into place, or on error discard it (closing the muxer first)."""
        try:
            if exc_type is None:
                with media_errors(self.path, "cannot finish video file"), self._stack:
                    self._finish()
            else:
                self._stack.__exit__(exc_type, exc, tb)
        finally:
            self._container = self._stream = None

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write() called outside its `with` block")
        frame = self._check_frame(frame)
        if not self.lossless and (frame.shape[0] % 2 or frame.shape[1] % 2):
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        stream = self._stream or self._add_stream(frame.shape[1], frame.shape[0])
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        with media_errors(self.path, "encoding failed"):
            self._container.mux(stream.encode(video_frame))
        self.frames_written += 1

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(
                f"frame {self.frames_written}: expected an (H, W, 3) uint8 RGB array, "
                f"got shape {frame.shape} dtype {frame.dtype}"
            )
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise InputError(
                f"frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, "
                f"but the video is {self._size[1]}x{self._size[0]}: all frames must share one size"
            )
        return frame

    def _add_stream(self, width: int, height: int) -> VideoStream:
        assert self._container is not None
        codec, pix_fmt = (_LOSSLESS_CODEC, _LOSSLESS_PIX_FMT) if self.lossless else (_CODEC, _PIX_FMT)
        stream = self._container.add_stream(codec, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = 1 / self.rate
        quality = {"qp": "0"} if self.lossless else {"crf": str(self.crf)}
        stream.options = {**quality, "preset": self.preset}
        self._stream = stream
        return stream

    def _finish(self) -> None:
        """Flush the frames the encoder still holds (it buffers for B-frames and lookahead)."""
        if self._stream is None:
            raise InputError(f"no frames to write to {self.path}")
        assert self._container is not None
        self._container.mux(self._stream.encode(None))


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float | Fraction,
    crf: int = 18,
    preset: str = "medium",
    lossless: bool = False,
) -> None:
    """Write frames ((T, H, W, 3) array or an iterable of (H, W, 3) uint8 RGB) to an H.264 mp4.

    See VideoWriter for the guarantees: atomic file creation, exact timestamps, odd sizes padded to even
    (or, `lossless`, the exact RGB frames).
    """
    with VideoWriter(path, fps, crf=crf, preset=preset, lossless=lossless) as writer:
        for frame in frames:
            writer.write(frame)


def playable(path: str | os.PathLike[str], cache: str | os.PathLike[str]) -> Path:
    """`path` when browsers play it (yuv420p H.264), else a yuv420p copy made once in the folder `cache`
    (a lossless measurement video, say); the copy is named by the source's path, size and time."""
    from .decode import iter_frames
    from .info import probe

    with av.open(os.fspath(path)) as container:
        pix_fmt = container.streams.video[0].codec_context.pix_fmt
    if pix_fmt == _PIX_FMT:
        return Path(path)
    stat = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    copy = Path(cache) / f"{key[:32]}.mp4"
    if not copy.is_file():
        Path(cache).mkdir(parents=True, exist_ok=True)
        write_video(copy, (frame.image for frame in iter_frames(path)), probe(path).fps)
    return copy
