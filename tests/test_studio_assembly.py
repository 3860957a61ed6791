"""Shot timing from dialogue, follow-on parts, audio slicing, subtitles per part, mux and concatenation."""

import wave

import numpy as np
import pytest

from anisora.errors import InputError
from anisora.media import probe
from anisora.studio.assembly import (
    GAP_S,
    LEAD_S,
    SAMPLE_RATE,
    TAIL_S,
    Line,
    Part,
    concat_videos,
    dialogue_timeline,
    finish_video,
    frames_at_least,
    part_audio,
    part_cues,
    plan_parts,
)
from anisora.studio.subtitles import Cue

FPS = 8.0


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def timeline_of(*seconds: float):
    return dialogue_timeline([Line(f"line {i}", "Ann", tone(s)) for i, s in enumerate(seconds)])


def test_frame_counts_are_8k_plus_1_within_2_to_8_s():
    assert frames_at_least(0.1, FPS, 8) == 17  # 2 s at least
    assert frames_at_least(2.2, FPS, 8) == 25  # 17 frames last 2.125 s: too short
    assert frames_at_least(7.0, FPS, 8) == 57
    assert frames_at_least(30.0, FPS, 8) == 57  # 65 frames would last 8.125 s
    assert frames_at_least(3.0, 16.0, 8) == 49
    for seconds in np.linspace(0.1, 7.1, 50):
        frames = frames_at_least(seconds, FPS, 8)
        assert (frames - 1) % 8 == 0 and frames / FPS >= min(seconds, 7.125) - 1e-9


def test_timeline_lays_lines_with_lead_gap_and_tail():
    timeline = timeline_of(1.0, 0.5)
    assert timeline.seconds == pytest.approx(LEAD_S + 1.0 + GAP_S + 0.5 + TAIL_S, abs=1e-3)
    first, second = timeline.cues
    assert (first.start, first.end) == pytest.approx((LEAD_S, LEAD_S + 1.0), abs=1e-3)
    assert second.start == pytest.approx(LEAD_S + 1.0 + GAP_S, abs=1e-3)
    assert timeline.pauses == pytest.approx([LEAD_S + 1.0 + GAP_S / 2], abs=1e-3)


def test_short_dialogue_is_one_part_that_fits_it():
    timeline = timeline_of(1.5, 1.2)  # 3.65 s
    parts = plan_parts(timeline.seconds, timeline.pauses, FPS, None, 8)
    assert [p.frames for p in parts] == [33] and parts[0].seconds >= timeline.seconds


def test_long_dialogue_continues_in_parts_cut_between_lines():
    timeline = timeline_of(3.0, 3.0, 3.0, 3.0)  # 13.45 s
    parts = plan_parts(timeline.seconds, timeline.pauses, FPS, None, 8)
    assert len(parts) == 2
    assert all(p.seconds <= 8.0 and (p.frames - 1) % 8 == 0 for p in parts)
    assert parts[1].start == parts[0].end and parts[1].start in timeline.pauses  # cut in a pause
    assert parts[0].seconds >= parts[0].end - parts[0].start  # the picture runs on in silence
    assert parts[-1].end == timeline.seconds <= parts[-1].start + parts[-1].seconds
    sound = np.concatenate([part_audio(timeline, p)[: round((p.end - p.start) * SAMPLE_RATE)] for p in parts])
    assert np.array_equal(sound[: len(timeline.samples)], timeline.samples)  # every sample, once
    lines_in = [[c.text for c in part_cues(timeline, p)] for p in parts]
    assert lines_in == [["line 0", "line 1"], ["line 2", "line 3"]]


def test_a_line_longer_than_a_shot_is_cut_and_shown_in_both_parts():
    timeline = timeline_of(11.0)
    parts = plan_parts(timeline.seconds, timeline.pauses, FPS, None, 8)
    assert len(parts) == 2 and parts[0].frames == 57
    first, second = (part_cues(timeline, p) for p in parts)
    assert first[0].end == pytest.approx(parts[0].seconds) and second[0].start == 0.0
    assert parts[0].end == parts[0].start + parts[0].seconds  # no pause to cut in: cut at the full length
    audio = np.concatenate([part_audio(timeline, p) for p in parts])
    assert np.array_equal(audio[: len(timeline.samples)], timeline.samples)  # nothing lost at the cut


def test_fixed_duration_is_snapped_and_dialogue_beyond_it_continues():
    quiet = timeline_of()
    assert [p.frames for p in plan_parts(quiet.seconds, [], FPS, 3.0, 8)] == [25]
    long = timeline_of(2.0, 2.0)
    parts = plan_parts(long.seconds, long.pauses, FPS, 2.0, 8)
    assert [p.frames for p in parts] == [17, 17, 17]
    with pytest.raises(InputError, match="2-8 s"):
        plan_parts(5.0, [], FPS, 9.0, 8)


def test_a_learned_position_embedding_bounds_every_part():
    """AniSora V1 makes at most 49 frames (6.1 s at 8 fps): long dialogue takes more, shorter parts."""
    long = timeline_of(5.0, 5.0, 5.0)
    parts = plan_parts(long.seconds, long.pauses, 8.0, None, 8, max_frames=49)
    assert max(p.frames for p in parts) == 49 and sum(p.seconds for p in parts) >= long.seconds
    assert [p.frames for p in plan_parts(3.0, [], 8.0, 6.0, 8, max_frames=49)] == [49]
    with pytest.raises(InputError, match=r"at most 49 frames \(6.12 s at 8 fps\)"):
        plan_parts(3.0, [], 8.0, 8.0, 8, max_frames=49)
    with pytest.raises(InputError, match="of at most 9 frames lasts 2 s"):
        plan_parts(3.0, [], 16.0, None, 8, max_frames=9)


def test_part_audio_is_padded_to_the_picture():
    timeline = timeline_of(0.4)
    part = Part(0.0, timeline.seconds, 17, FPS)
    audio = part_audio(timeline, part)
    assert len(audio) == round(17 / FPS * SAMPLE_RATE)
    assert not audio[len(timeline.samples) :].any()


def test_finish_and_concat_make_synced_mp4s_with_subtitles(tmp_path):
    frames = np.zeros((17, 48, 64, 3), np.uint8)
    frames[:, :, :32] = 200
    cues = [Cue(0.3, 1.5, "你好", "Ann")]
    audio = tone(17 / FPS)
    finish_video(frames, FPS, audio, cues, tmp_path / "a.mp4", burn=True)
    finish_video(
        frames[:9].copy(), FPS, tone(9 / FPS), [Cue(0.1, 0.9, "bye", None)], tmp_path / "b.mp4", False
    )
    info = probe(tmp_path / "a.mp4")
    assert (info.frame_count, info.fps, info.has_audio) == (17, FPS, True)
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert w.getnframes() == len(audio) and w.getframerate() == SAMPLE_RATE
    assert "你好" in (tmp_path / "a.srt").read_text(encoding="utf-8")
    seconds = concat_videos(
        [(tmp_path / "a.mp4", cues), (tmp_path / "b.mp4", [Cue(0.1, 0.9, "bye", None)])], tmp_path / "ep.mp4"
    )
    assert seconds == pytest.approx(26 / FPS)
    assert probe(tmp_path / "ep.mp4").frame_count == 26
    srt = (tmp_path / "ep.srt").read_text(encoding="utf-8")
    assert "00:00:02,225 --> 00:00:03,025" in srt  # the second shot's cue, offset by the first's 2.125 s
    assert not list(tmp_path.glob("*.silent.mp4"))
