"""anisora.media: probe, decode (timestamp resampling, seeking, rotation), encode, mux audio, images, errors.

Every input is built here, in tmp_path: small clips whose frames encode their own index as 8 black/white
stripes (bit b = stripe b), which survives H.264 compression, so a decoded image tells which source frame
it is.
"""

from __future__ import annotations

import math
import os
import wave
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from anisora.errors import InputError, MediaError
from anisora.media import (
    VideoWriter,
    iter_frames,
    load_image,
    mux_audio,
    playable,
    probe,
    read_frames,
    save_image,
    write_video,
)

H, W = 48, 64  # clip size: 8 stripes of 8 pixels
FPS = 24
N = 48  # 2 s


# ---------------------------------------------------------------- helpers


def index_image(i: int, height: int = H, width: int = W) -> np.ndarray:
    """A frame showing `i` in binary: stripe b (of 8, left to right) is white when bit b is set."""
    bits = (i >> np.arange(8)) & 1
    row = np.repeat(bits * 255, width // 8).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], height, axis=0), 3, axis=2)


def decoded_index(image: np.ndarray) -> int:
    """The index `index_image` drew, read from the centre of each stripe."""
    stripes = np.array_split(image.mean(axis=2), 8, axis=1)
    bits = [s[:, s.shape[1] // 4 : s.shape[1] - s.shape[1] // 4].mean() > 128 for s in stripes]
    return sum(int(bit) << b for b, bit in enumerate(bits))


def write_clip(
    path: Path,
    images: list[np.ndarray],
    times: list[float] | None = None,
    fps: int = FPS,
    rotation: int = 0,
    gop: int = 12,
) -> Path:
    """Write with PyAV directly: explicit timestamps (`times` in seconds), a display rotation, short GOPs."""
    time_base = Fraction(1, 1200)
    times = times if times is not None else [i / fps for i in range(len(images))]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        stream.options = {"crf": "18", "g": str(gop), "preset": "veryfast"}
        if rotation:
            stream.set_display_rotation(rotation)
        for image, t in zip(images, times, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def smooth_frames(n: int, height: int, width: int) -> np.ndarray:
    """Slowly moving soft gradients: content H.264 reproduces closely (no edges, no noise)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 128 + 80 * np.sin((xx + 2 * i) / 25)
        frames[i, ..., 1] = 128 + 80 * np.cos((yy - i) / 25)
        frames[i, ..., 2] = 128 + 80 * np.sin((xx + yy + 3 * i) / 32)
    return frames


def source_indices(frames) -> list[int]:
    return [f.source_index for f in frames]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A 2 s 24 fps counting clip with short GOPs (so seeks land mid-clip), and a VFR clip."""
    root = tmp_path_factory.mktemp("clips")
    vfr_times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0]
    return {
        "counting": write_clip(root / "counting.mp4", [index_image(i) for i in range(N)]),
        "vfr": write_clip(root / "vfr.mp4", [index_image(i) for i in range(len(vfr_times))], times=vfr_times),
    }


# ---------------------------------------------------------------- write / probe round trip


def test_round_trip_keeps_count_rate_size_and_pixels(tmp_path):
    frames = smooth_frames(24, 64, 96)
    path = tmp_path / "smooth.mp4"
    write_video(path, frames, fps=24)

    info = probe(path)
    assert (info.frame_count, info.fps, info.width, info.height) == (24, 24.0, 96, 64)
    assert info.duration == pytest.approx(1.0)
    assert (info.codec, info.rotation, info.has_audio, info.variable_frame_rate) == ("h264", 0, False, False)
    decoded = np.stack([f.image for f in iter_frames(path)])
    assert decoded.shape == frames.shape
    error = np.abs(decoded.astype(np.int16) - frames).mean()
    assert error < 2.5  # measured 1.59 at crf 18 (1.35 of it is yuv420p itself: 1.35 at crf 0)


def test_odd_size_is_padded_by_repeating_the_last_row_and_column(tmp_path):
    frames = smooth_frames(6, 31, 33)
    path = tmp_path / "odd.mp4"
    write_video(path, frames, fps=12)

    info = probe(path)
    assert (info.width, info.height) == (34, 32)
    decoded = np.stack([f.image for f in iter_frames(path)]).astype(np.int16)
    assert np.abs(decoded[:, :31, :33] - frames).mean() < 3.0
    assert np.abs(decoded[:, :31, 33] - frames[:, :, 32]).mean() < 4.0  # padded column copies the last one
    assert np.abs(decoded[:, 31, :33] - frames[:, 30, :]).mean() < 4.0  # padded row copies the last one


def test_ntsc_rate_gives_exact_timestamps(tmp_path):
    path = tmp_path / "ntsc.mp4"
    write_video(path, [index_image(i) for i in range(10)], fps=29.97, preset="ultrafast")

    assert probe(path).fps == pytest.approx(30000 / 1001, abs=1e-9)
    times = [f.time for f in iter_frames(path)]
    assert times == pytest.approx([k * 1001 / 30000 for k in range(10)], abs=1e-6)


def test_writer_creates_the_file_only_when_the_block_ends(tmp_path):
    path = tmp_path / "out" / "clip.mp4"  # the missing folder is created
    with VideoWriter(path, fps=24, preset="ultrafast") as writer:
        for i in range(5):
            writer.write(index_image(i))
        assert not path.exists()
    assert probe(path).frame_count == 5
    assert os.listdir(path.parent) == ["clip.mp4"]


def test_lossless_video_keeps_the_exact_rgb_frames_and_has_a_playable_copy(tmp_path):
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, 63)[None, None, :, None] + np.arange(5)[:, None, None, None] * 10
    noise = rng.integers(0, 16, (5, 47, 63, 3))  # every pixel its own value; odd sizes: stored unpadded
    frames = (ramp + noise).astype(np.uint8)
    path = tmp_path / "exact.mp4"
    write_video(path, frames, fps=8, lossless=True)
    np.testing.assert_array_equal(read_frames(path, range(5)), frames)
    copy = playable(path, tmp_path / "copies")
    assert copy != path and playable(path, tmp_path / "copies") == copy  # made once
    with av.open(str(copy)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert probe(copy).frame_count == 5 and probe(copy).fps == 8
    assert np.abs(read_frames(copy, [2])[0][:47, :63].astype(int) - frames[2]).mean() < 8  # the same picture
    lossy = tmp_path / "lossy.mp4"
    write_video(lossy, frames, fps=8)
    assert playable(lossy, tmp_path / "copies") == lossy


def test_failed_write_leaves_neither_target_nor_temp_file(tmp_path):
    frames = [index_image(0), index_image(1), index_image(2, height=32)]
    with pytest.raises(InputError, match="frame 2 is 64x32, but the video is 64x48"):
        write_video(tmp_path / "bad.mp4", frames, fps=24)
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=24)
    with pytest.raises(InputError, match="uint8"):
        write_video(tmp_path / "float.mp4", np.zeros((2, 8, 8, 3)), fps=24)
    assert os.listdir(tmp_path) == []


def test_existing_file_survives_a_failed_rewrite(tmp_path):
    path = tmp_path / "keep.mp4"
    write_video(path, [index_image(i) for i in range(3)], fps=24, preset="ultrafast")
    with pytest.raises(InputError):
        write_video(path, [index_image(0), np.zeros((4, 4, 3), np.uint8)], fps=24)
    assert probe(path).frame_count == 3
    assert os.listdir(tmp_path) == ["keep.mp4"]


def test_bad_writer_arguments_raise_input_error(tmp_path):
    for kwargs in (
        {"fps": 0},
        {"fps": -24},
        {"fps": math.nan},
        {"fps": 24, "crf": 60},
        {"fps": 24, "preset": "x"},
    ):
        with pytest.raises(InputError):
            VideoWriter(tmp_path / "x.mp4", **kwargs)


# ---------------------------------------------------------------- decoding and resampling


def test_native_iteration_yields_every_frame_once(clips):
    frames = list(iter_frames(clips["counting"]))
    assert [f.index for f in frames] == list(range(N))
    assert source_indices(frames) == list(range(N))
    assert [decoded_index(f.image) for f in frames] == list(range(N))
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(N)], abs=1e-6)


@pytest.mark.parametrize("fps", [10, 60])
def test_resampling_picks_the_latest_frame_at_each_sample_time(clips, fps):
    frames = list(iter_frames(clips["counting"], fps=fps))
    # sample k at k/fps shows frame floor(k * 24 / fps); samples stop before the clip's end at 2.0 s
    expected = [k * FPS // fps for k in range(2 * fps)]
    assert source_indices(frames) == expected
    assert [decoded_index(f.image) for f in frames] == expected
    assert [f.time for f in frames] == pytest.approx([k / fps for k in range(2 * fps)])
    assert [f.index for f in frames] == list(range(2 * fps))


def test_upsampled_repeats_are_independent_arrays(clips):
    samples = iter_frames(clips["counting"], fps=60)  # samples 3 (1.2 frames) and 4 (1.6) show frame 1
    third = [next(samples) for _ in range(4)][3]
    third.image[:] = 0
    fourth = next(samples)
    assert third.source_index == fourth.source_index == 1
    assert decoded_index(fourth.image) == 1


def test_variable_frame_rate_is_resampled_by_timestamp(clips):
    # frames at 0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0 s; samples every 0.1 s up to the last frame's end
    frames = list(iter_frames(clips["vfr"], fps=10))
    expected = [0, 1, 2, 2, 3, 5, 5, 5, 5, 6, 7]
    assert source_indices(frames) == expected
    assert [decoded_index(f.image) for f in frames] == expected
    assert probe(clips["vfr"]).variable_frame_rate is True
    assert probe(clips["counting"]).variable_frame_rate is False


def test_max_side_keeps_aspect_and_never_upscales(clips):
    small = next(iter_frames(clips["counting"], max_side=32))
    assert small.image.shape == (24, 32, 3)
    assert next(iter_frames(clips["counting"], max_side=1000)).image.shape == (H, W, 3)
    sampled = list(iter_frames(clips["counting"], max_side=16, fps=12))
    assert [decoded_index(f.image) for f in sampled] == source_indices(sampled)
    assert sampled[0].image.shape == (12, 16, 3)


def test_start_and_end_seek_to_the_right_frames(clips):
    # x264 put keyframes at frames 0, 8, 16, 24 ...: start=1.05 s seeks to frame 24, then skips to frame 26
    frames = list(iter_frames(clips["counting"], start=1.05, end=1.5))
    assert source_indices(frames) == list(range(26, 36))
    assert [decoded_index(f.image) for f in frames] == list(range(26, 36))
    assert frames[0].time == pytest.approx(26 / FPS)

    # resampled: t0 = start, and the frame on screen at 0.55 s is frame 13 (shown from 0.5417 s)
    sampled = list(iter_frames(clips["counting"], fps=10, start=0.55, end=1.0))
    # t = 0.55 0.65 0.75 0.85 0.95 s -> t * 24 = 13.2 15.6 18.0 20.4 22.8 (frame 18 starts exactly at 0.75)
    expected = [13, 15, 18, 20, 22]
    assert source_indices(sampled) == expected
    assert [decoded_index(f.image) for f in sampled] == expected
    assert [f.time for f in sampled] == pytest.approx([0.55 + k / 10 for k in range(5)])


def test_bad_sampling_arguments_raise_input_error(clips):
    for kwargs in ({"fps": 0}, {"fps": -1}, {"max_side": 0}, {"start": -1}, {"start": 1.0, "end": 0.5}):
        with pytest.raises(InputError):
            iter_frames(clips["counting"], **kwargs)


def test_read_frames_follows_the_order_of_indices(clips):
    indices = [30, 2, 2, 47, 0, 13]
    stack = read_frames(clips["counting"], indices)
    native = [f.image for f in iter_frames(clips["counting"])]
    assert stack.shape == (6, H, W, 3) and stack.dtype == np.uint8
    for row, index in zip(stack, indices, strict=True):
        assert np.array_equal(row, native[index])
    assert read_frames(clips["counting"], [5], max_side=32).shape == (1, 24, 32, 3)
    assert read_frames(clips["counting"], []).shape == (0, H, W, 3)


@pytest.mark.parametrize("bad", [48, -1, 1000])
def test_read_frames_rejects_indices_out_of_range(clips, bad):
    with pytest.raises(InputError, match=rf"frame index {bad} out of range.*0\.\.47"):
        read_frames(clips["counting"], [0, bad])


def test_rotated_video_comes_out_upright(tmp_path):
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:8, :8] = 255  # a white block in the top-left corner of the stored frame
    path = write_clip(tmp_path / "rotated.mp4", [stored] * 4, rotation=90)

    info = probe(path)
    assert (info.rotation, info.width, info.height) == (90, 32, 64)
    assert (info.coded_width, info.coded_height) == (64, 32)
    image = next(iter_frames(path)).image
    assert image.shape == (64, 32, 3)
    # turning 90 degrees counter-clockwise (FFmpeg's "transpose=cclock") moves top-left to bottom-left
    assert image[-8:, :8].mean() > 200 and image[:8, :8].mean() < 50
    assert next(iter_frames(path, max_side=32)).image.shape == (32, 16, 3)


# ---------------------------------------------------------------- audio


@pytest.mark.parametrize(
    ("audio_seconds", "shortest", "expected"), [(1, True, 1.0), (3, True, 2.0), (3, False, 3.0)]
)
def test_mux_audio_copies_video_and_encodes_audio(clips, tmp_path, audio_seconds, shortest, expected):
    out = tmp_path / "with_audio.mp4"
    mux_audio(clips["counting"], write_wav(tmp_path / "tone.wav", audio_seconds), out, shortest=shortest)

    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert float(audio.duration * audio.time_base) == pytest.approx(expected, abs=0.05)
    info = probe(out)
    assert info.has_audio and info.frame_count == N and info.duration == pytest.approx(2.0)
    original = [f.image for f in iter_frames(clips["counting"])]
    assert all(np.array_equal(a.image, b) for a, b in zip(iter_frames(out), original, strict=True))
    assert os.listdir(tmp_path) == sorted(["tone.wav", "with_audio.mp4"])


def test_mux_audio_rejects_unreadable_audio_and_writes_nothing(clips, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not audio\n" * 50)
    with pytest.raises(MediaError) as caught:
        mux_audio(clips["counting"], text, tmp_path / "out.mp4")
    assert caught.value.path == str(text)
    with pytest.raises(MediaError, match="no audio stream"):
        mux_audio(clips["counting"], clips["counting"], tmp_path / "out.mp4")
    assert os.listdir(tmp_path) == ["notes.txt"]


# ---------------------------------------------------------------- unusable video files


def _truncated(tmp_path: Path, faststart: bool) -> Path:
    frames = [index_image(i) for i in range(N)]
    source = tmp_path / "whole.mp4"
    if faststart:
        write_video(source, frames, fps=FPS, preset="ultrafast")
    else:
        write_clip(source, frames)  # PyAV's default: index (moov) at the end
    data = source.read_bytes()
    source.unlink()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_VIDEOS = {
    "missing": (lambda tmp_path: tmp_path / "nope.mp4", "no such file"),
    "directory": (lambda tmp_path: tmp_path, "is a directory"),
    "empty": (lambda tmp_path: _write(tmp_path / "empty.mp4", b""), "empty file"),
    "text": (lambda tmp_path: _write(tmp_path / "notes.txt", b"hello\n" * 200), "not a readable media file"),
    "random": (
        lambda tmp_path: _write(tmp_path / "noise.mp4", np.random.default_rng(0).bytes(5000)),
        "not a readable",
    ),
    "wav": (lambda tmp_path: write_wav(tmp_path / "tone.wav", 0.5), "no video stream"),
    "truncated moov-at-end": (lambda tmp_path: _truncated(tmp_path, faststart=False), "not a readable"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", sorted(BAD_VIDEOS))
def test_unusable_video_raises_media_error_everywhere(tmp_path, kind):
    make, reason = BAD_VIDEOS[kind]
    path = make(tmp_path)
    for call in (probe, lambda p: list(iter_frames(p)), lambda p: read_frames(p, [0])):
        with pytest.raises(MediaError, match=reason) as caught:
            call(path)
        assert caught.value.path == str(path)


def test_truncated_faststart_video_raises_media_error(tmp_path):
    path = _truncated(tmp_path, faststart=True)
    with pytest.raises(MediaError, match=r"truncated|decoding failed"):
        list(iter_frames(path))
    with pytest.raises(MediaError):
        list(iter_frames(path, fps=10))
    with pytest.raises(MediaError):
        read_frames(path, [N - 1])


def test_video_cut_at_a_packet_boundary_is_reported_truncated(tmp_path):
    whole = tmp_path / "whole.mp4"
    write_video(whole, [index_image(i) for i in range(N)], fps=FPS, preset="ultrafast")  # index up front
    with av.open(str(whole)) as container:
        positions = [p.pos for p in container.demux(video=0) if p.size]
    path = _write(tmp_path / "cut.mp4", whole.read_bytes()[: positions[30]])  # packets 0..29 stay whole

    assert probe(path).frame_count == N  # the header still promises every frame
    with pytest.raises(MediaError, match=f"truncated: read 30 of {N} frames"):
        list(iter_frames(path))


# ---------------------------------------------------------------- images


def test_load_image_converts_modes_to_rgb(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :2, 3] = 255  # opaque
    rgba[:, 2:4, 3] = 0  # transparent
    rgba[:, 4:, 3] = 128  # half
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    flat = load_image(tmp_path / "rgba.png", background=(0, 0, 250))
    assert flat.shape == (4, 6, 3) and flat.dtype == np.uint8
    assert flat[0, 0].tolist() == [200, 0, 0]
    assert flat[0, 2].tolist() == [0, 0, 250]
    assert np.abs(flat[0, 4].astype(int) - [100, 0, 125]).max() <= 1

    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    palette.save(tmp_path / "p.png", transparency=1)
    assert load_image(tmp_path / "p.png", background=(7, 8, 9))[0, 0].tolist() == [7, 8, 9]

    gray16 = np.array([[0, 32896, 65535]], np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    assert load_image(tmp_path / "gray16.png")[0, :, 0].tolist() == [0, 128, 255]

    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    red = load_image(tmp_path / "cmyk.jpg")[0, 0].astype(int)
    assert red[0] > 200 and red[1:].max() < 60


def test_load_image_applies_exif_orientation(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)  # left half red, stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(image).save(tmp_path / "phone.jpg", exif=exif, quality=95)

    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:20, :, 0].mean() > 200 and upright[20:, :, 0].mean() < 50  # the left half is now on top


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid 8x8 PNG whose header claims `width` x `height`: tiny on disk, huge once decoded."""
    Image.new("1", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")  # then width and height (4 bytes each), 5 more bytes, and the chunk's CRC
    data[ihdr + 4 : ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(data[ihdr : ihdr + 17])).to_bytes(4, "big")
    return _write(path, bytes(data))


def test_load_image_refuses_a_decompression_bomb_before_decoding(tmp_path):
    bomb = _png_declaring(tmp_path / "bomb.png", 8000, 8000)
    with pytest.raises(MediaError, match="8000x8000 = 64000000 pixels, over the limit of 50000000"):
        load_image(bomb)
    with pytest.raises(MediaError, match="8x8 = 64 pixels, over the limit of 10"):
        load_image(_saved_rgb(tmp_path / "small.png"), max_pixels=10)
    # beyond Pillow's own hard limit (~179 Mpx) Pillow refuses first; that is a MediaError too
    huge = _png_declaring(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(MediaError, match=r"image too large.*400000000 pixels"):
        load_image(huge, max_pixels=10**12)


def _saved_rgb(path: Path) -> Path:
    Image.new("RGB", (8, 8)).save(path)
    return path


def test_unreadable_images_raise_media_error(tmp_path):
    whole = tmp_path / "whole.png"
    Image.fromarray(smooth_frames(1, 64, 64)[0]).save(whole)
    truncated = _write(tmp_path / "truncated.png", whole.read_bytes()[: whole.stat().st_size // 2])
    cases = {
        tmp_path / "missing.png": "no such file",
        _write(tmp_path / "empty.png", b""): "empty file",
        _write(tmp_path / "notes.txt", b"hello\n" * 50): "not a readable image",
        truncated: "corrupt or truncated image",
        tmp_path: "is a directory",
    }
    for path, reason in cases.items():
        with pytest.raises(MediaError, match=reason):
            load_image(path)


def test_save_image_round_trip_and_formats(tmp_path):
    image = smooth_frames(1, 30, 40)[0]
    save_image(tmp_path / "a.png", image)
    assert np.array_equal(load_image(tmp_path / "a.png"), image)
    save_image(tmp_path / "b.jpg", image)
    assert np.abs(load_image(tmp_path / "b.jpg").astype(int) - image).mean() < 4
    with pytest.raises(InputError, match=r"\.png, \.jpg or \.jpeg"):
        save_image(tmp_path / "c.gif", image)
    with pytest.raises(InputError, match="uint8"):
        save_image(tmp_path / "d.png", image.astype(np.float32))
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.jpg"]
