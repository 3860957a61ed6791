"""Soundtracks: adding one to a video without re-encoding the picture, and its loudness per video frame."""

from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from anisora.errors import InputError, MediaError
from anisora.files import atomic_output

from ._containers import duration_seconds, media_errors, open_input, video_stream

_AUDIO_CODEC = "aac"
_AUDIO_FORMAT = "fltp"  # the sample format FFmpeg's AAC encoder takes


def mux_audio(
    video_path: str | os.PathLike[str],
    audio_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    shortest: bool = True,
) -> None:
    """Write `out_path`: the video stream of `video_path` copied bit for bit, plus the first audio stream
    of `audio_path` (wav or anything FFmpeg reads) encoded to AAC, in an mp4 with the index up front.

    With `shortest=True` the audio is cut at the video's duration; the video is never cut (that would
    need re-encoding). Other streams of the video file (its own audio, subtitles) are dropped. Mono stays
    mono; anything with more channels is mixed to stereo. The output appears only when complete. An
    unreadable input raises MediaError naming that input.
    """
    with open_input(video_path) as video_in, open_input(audio_path) as audio_in:
        source_video = video_stream(video_in, video_path)
        source_audio = _audio_stream(audio_in, audio_path)
        limit = duration_seconds(video_in, source_video) if shortest else None
        with (
            atomic_output(out_path) as tmp,
            media_errors(out_path, "cannot write"),
            av.open(os.fspath(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            out_video = _copy_of(out, source_video, video_path)
            layout = "mono" if source_audio.channels == 1 else "stereo"
            out_audio = out.add_stream(_AUDIO_CODEC, rate=source_audio.rate, layout=layout)
            _interleave(
                out,
                _copied_packets(video_in, source_video, out_video, video_path),
                _encoded_audio(audio_in, source_audio, out_audio, audio_path, limit),
            )


def _copy_of(out: OutputContainer, source: VideoStream, path: str | os.PathLike[str]) -> VideoStream:
    """An output stream taking the source's packets unchanged; mp4 refuses some codecs (ProRes ...)."""
    try:
        return out.add_stream_from_template(source)
    except ValueError as error:
        raise MediaError(path, f"cannot copy its video into an mp4: {error}") from error


def _audio_stream(container: InputContainer, path: str | os.PathLike[str]) -> AudioStream:
    if not container.streams.audio:
        raise MediaError(path, "no audio stream")
    return container.streams.audio[0]


def _copied_packets(
    container: InputContainer, source: VideoStream, target: VideoStream, path: str | os.PathLike[str]
) -> Iterator[Packet]:
    """The video's packets re-addressed to the output stream (PyAV rescales their timestamps on mux)."""
    with media_errors(path, "cannot read video packets"):
        for packet in container.demux(source):
            if not packet.size:  # the empty packet PyAV yields at the end of the stream
                continue
            packet.stream = target
            yield packet


def _encoded_audio(
    container: InputContainer,
    source: AudioStream,
    target: AudioStream,
    path: str | os.PathLike[str],
    limit: float | None,
) -> Iterator[Packet]:
    """AAC packets of the source audio, cut after `limit` seconds of samples when given (0: unknown, no cut).

    The encoder takes frames of any length and re-chunks them itself, so the cut simply shortens the
    frame that crosses the limit. Timestamps count samples from 0: the audio starts with the video.
    """
    max_samples = round(limit * target.rate) if limit else None
    written = 0
    with media_errors(path, "decoding audio failed"):
        for frame in _encoder_input(container, source, target):
            if max_samples is not None:
                if written >= max_samples:
                    break
                if written + frame.samples > max_samples:
                    frame = _truncated(frame, max_samples - written)
            frame.pts = written
            written += frame.samples
            yield from target.encode(frame)
        yield from target.encode(None)


def _encoder_input(
    container: InputContainer, source: AudioStream, target: AudioStream
) -> Iterator[av.AudioFrame]:
    """Decoded audio in the encoder's sample format and layout (planar, so cutting is slicing)."""
    resampler = av.AudioResampler(format=_AUDIO_FORMAT, layout=target.layout, rate=target.rate)
    for decoded in container.decode(source):
        yield from resampler.resample(decoded)
    yield from resampler.resample(None)


def _truncated(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """The first `samples` samples of a planar audio frame."""
    planes = frame.to_ndarray()[:, :samples]
    cut = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(planes), format=frame.format.name, layout=frame.layout
    )
    cut.sample_rate, cut.time_base = frame.sample_rate, frame.time_base
    return cut


def _interleave(out: OutputContainer, video: Iterator[Packet], audio: Iterator[Packet]) -> None:
    """Mux both packet streams in time order, so players need not jump around the file."""
    pending = next(audio, None)
    for packet in video:
        while pending is not None and _seconds(pending) <= _seconds(packet):
            out.mux(pending)
            pending = next(audio, None)
        out.mux(packet)
    while pending is not None:
        out.mux(pending)
        pending = next(audio, None)


def _seconds(packet: Packet) -> float:
    timestamp = packet.dts if packet.dts is not None else packet.pts
    return float(timestamp * packet.time_base) if timestamp is not None and packet.time_base else 0.0


def frame_envelope(samples: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """The loudness of mono `samples` at each of `frames` video frames: the RMS over the 1/`fps` s centred
    on the frame's time j / `fps` (float64; 0 where the sound has ended)."""
    if sample_rate <= 0 or fps <= 0 or frames < 0:
        raise InputError(f"frame_envelope needs a positive rate and fps, got {sample_rate} Hz, {fps} fps")
    squares = np.concatenate([[0.0], np.cumsum(np.square(np.asarray(samples, np.float64)))])
    centres = np.arange(frames) / fps * sample_rate
    half = sample_rate / fps / 2
    start = np.clip(np.round(centres - half).astype(np.int64), 0, len(samples))
    end = np.clip(np.round(centres + half).astype(np.int64), 0, len(samples))
    window = round(2 * half)  # every window is divided by its full length, so the sound's ends fade out
    return np.sqrt(np.maximum(squares[end] - squares[start], 0.0) / max(window, 1))
