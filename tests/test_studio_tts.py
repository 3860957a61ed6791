"""Dubbing: TTS engines, emotion mapping, WAV output, SRT and burned-in (CJK) subtitles."""

from __future__ import annotations

import subprocess
import wave
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from anisora.errors import InputError
from anisora.studio import tts
from anisora.studio.subtitles import Cue, burn_subtitles, default_font_path, srt_text, write_srt

EN = tts.VoiceProfile("espeak-ng", "en-us")
LINE = "The quick brown fox jumps over the lazy dog once again."


def rms(speech: tts.Speech) -> float:
    return float(np.sqrt(np.mean(speech.samples.astype(np.float64) ** 2)))


def needs(engine: str) -> None:
    reason = tts.engines()[engine]
    if reason:
        pytest.skip(reason)


def test_engines_report_availability():
    available = tts.engines()
    assert set(available) == set(tts.ENGINES)
    assert available["espeak-ng"] is None
    assert {"cmn", "yue", "ja", "en-us"} <= set(tts.voices("espeak-ng"))
    assert "indextts" in available["indextts2"]
    assert tts.voices("indextts2") == []
    with pytest.raises(InputError, match=r"indextts2.*unavailable"):
        tts.synthesize("你好", tts.VoiceProfile("indextts2", "narrator"))


def test_indextts2_needs_a_weights_directory(monkeypatch, tmp_path):
    real_find_spec = tts.importlib.util.find_spec
    monkeypatch.setattr(
        tts.importlib.util, "find_spec", lambda name: object() if name == "indextts" else real_find_spec(name)
    )
    monkeypatch.delenv(tts.INDEXTTS2_ENV, raising=False)
    assert tts.INDEXTTS2_ENV in tts.engines()["indextts2"]
    monkeypatch.setenv(tts.INDEXTTS2_ENV, str(tmp_path))
    assert "config.yaml" in tts.engines()["indextts2"]


@pytest.mark.parametrize(
    ("voice", "text"),
    [("cmn", "你好"), ("yue", "你好，早晨"), ("ja", "こんにちは"), ("en-us", "Hello there")],
)
def test_each_language_speaks(voice, text):
    speech = tts.synthesize(text, replace(EN, voice=voice))
    assert speech.samples.dtype == np.float32
    assert np.abs(speech.samples).max() <= 1.0
    assert 0.3 < speech.seconds < 3.0
    assert rms(speech) > 0.02
    assert speech.applied["voice"] == voice


def test_mandarin_is_read_as_mandarin():
    # espeak-ng 1.51's cmn voice reads the tone numbers of its pinyin as English words ("ni three hao three").
    speech = tts.synthesize("你好", replace(EN, voice="cmn"))
    voice = speech.applied["engine_args"]["-v"]
    phonemes = subprocess.run(
        ["espeak-ng", "-v", voice, "-q", "-x", "--stdin"], input="你好".encode(), capture_output=True
    )
    assert b"(en)" not in phonemes.stdout
    assert speech.seconds < 1.2


def test_japanese_kanji_are_read():
    pytest.importorskip("pyopenjtalk", reason="pyopenjtalk-plus reads kanji as kana")
    speech = tts.synthesize("今日は良い天気", replace(EN, voice="ja"))
    assert any("kana" in note for note in speech.applied["notes"])
    assert 0.5 < speech.seconds < 2.0  # not "Chinese letter" spelled out for every kanji


def test_duration_scales_with_speed():
    normal = tts.synthesize(LINE, EN).seconds
    fast = tts.synthesize(LINE, replace(EN, speed=2.0)).seconds
    slow = tts.synthesize(LINE, replace(EN, speed=0.5)).seconds
    assert fast < 0.65 * normal
    assert slow > 1.5 * normal


def test_emotion_mapping_is_recorded_and_changes_the_audio():
    speech = {emotion: tts.synthesize(LINE, EN, emotion) for emotion in tts.EMOTIONS}
    neutral = speech["neutral"]
    for emotion, s in speech.items():
        assert s.applied["emotion"] == emotion
        assert s.applied["emotion_mapping"].startswith(f"{emotion}: ")
        if emotion != "neutral":
            assert s.samples.shape != neutral.samples.shape or not np.array_equal(s.samples, neutral.samples)
    assert speech["happy"].applied["rate"] > 1 and speech["happy"].applied["pitch"] > 1
    assert speech["happy"].seconds < neutral.seconds < speech["sad"].seconds
    assert speech["sad"].applied["pitch"] < 1
    assert speech["angry"].applied["volume"] > 1 and rms(speech["angry"]) > rms(neutral)
    assert speech["whisper"].applied["variant"] == "whisper"
    assert speech["whisper"].applied["engine_args"]["-v"] == "en-us+whisper"
    assert rms(speech["whisper"]) < 0.7 * rms(neutral)


def test_profile_pitch_and_variant_reach_espeak():
    speech = tts.synthesize("Hello", tts.VoiceProfile("espeak-ng", "cmn+f3", speed=1.0, pitch=1.4))
    assert speech.applied["variant"] == "f3"
    assert speech.applied["engine_args"]["-p"] > 50
    assert speech.applied["pitch"] == pytest.approx(1.4, abs=0.05)


def test_text_is_never_read_as_options():
    speech = tts.synthesize("--help -w /tmp/x.wav", EN)
    assert speech.seconds > 0.5 and rms(speech) > 0.02


def test_wav_round_trip(tmp_path):
    speech = tts.synthesize("Hello there", EN)
    path = tmp_path / "line.wav"
    tts.write_wav(path, speech)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, speech.sample_rate)
        assert w.getnframes() == len(speech.samples)
        back = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767
    assert np.abs(back - speech.samples).max() < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["line.wav"]


@pytest.mark.parametrize(
    ("text", "profile", "emotion", "message"),
    [
        ("", EN, "neutral", "empty"),
        ("  \n ", EN, "neutral", "empty"),
        ("a" * 1001, EN, "neutral", "1001 characters"),
        ("hi", tts.VoiceProfile("festival", "en"), "neutral", "unknown TTS engine"),
        ("hi", tts.VoiceProfile("espeak-ng", "klingon"), "neutral", "unknown espeak-ng voice"),
        ("hi", tts.VoiceProfile("espeak-ng", "en-us+nope"), "neutral", "variant"),
        ("hi", EN, "smug", "unknown emotion"),
        ("hi", replace(EN, speed=0.4), "neutral", "speed"),
        ("hi", replace(EN, speed=2.1), "neutral", "speed"),
        ("hi", replace(EN, speed=float("nan")), "neutral", "speed"),
        ("hi", replace(EN, pitch=3.0), "neutral", "pitch"),
        ("hi", tts.VoiceProfile("piper", "en_GB-alan-low"), "neutral", "piper"),
        ("hi", tts.VoiceProfile("kokoro-ja", "af_heart"), "neutral", "kokoro-ja"),
    ],
)
def test_bad_input_raises_input_error(text, profile, emotion, message):
    with pytest.raises(InputError, match=message):
        tts.synthesize(text, profile, emotion)


def test_nothing_pronounceable_is_an_error():
    with pytest.raises(InputError, match="no speech"):
        tts.synthesize("   ...   ", EN)


def test_piper_speaks_english():
    needs("piper")
    profile = tts.VoiceProfile("piper", tts.PIPER_VOICE)
    speech = tts.synthesize("Hello there, how are you today?", profile)
    assert speech.sample_rate == 22050
    assert 1.0 < speech.seconds < 4.0 and rms(speech) > 0.02
    fast = tts.synthesize("Hello there, how are you today?", replace(profile, speed=2.0), "happy")
    assert fast.seconds < 0.7 * speech.seconds
    assert fast.applied["pitch"] == pytest.approx(1.2)
    assert fast.applied["engine_args"]["resample"] == pytest.approx(1.2)


def test_kokoro_speaks_japanese():
    needs("kokoro-ja")
    assert "jf_alpha" in tts.voices("kokoro-ja")
    speech = tts.synthesize("こんにちは。", tts.VoiceProfile("kokoro-ja", "jf_alpha"), "sad")
    assert speech.sample_rate == 24000
    assert 0.4 < speech.seconds < 3.0 and rms(speech) > 0.02
    assert speech.applied["rate"] == pytest.approx(0.85, abs=0.01)


def test_srt_known_answer(tmp_path):
    cues = [
        Cue(3661.5, 3663.0, "最后一句"),
        Cue(0.0, 1.2345, "你好，世界！", speaker="小明"),
        Cue(1.5, 2.0, "Line one\n\nline two", speaker="Ann"),
    ]
    expected = (
        "1\n00:00:00,000 --> 00:00:01,234\n小明: 你好，世界！\n\n"
        "2\n00:00:01,500 --> 00:00:02,000\nAnn: Line one\nline two\n\n"
        "3\n01:01:01,500 --> 01:01:03,000\n最后一句\n"
    )
    assert srt_text(cues) == expected
    path = tmp_path / "ep.srt"
    write_srt(path, cues)
    assert path.read_bytes() == expected.encode("utf-8")
    assert srt_text(cues[1:2], speaker_prefix=False) == "1\n00:00:00,000 --> 00:00:01,234\n你好，世界！\n"
    with pytest.raises(InputError, match="start < end"):
        srt_text([Cue(2.0, 1.0, "backwards")])
    with pytest.raises(InputError, match="no text"):
        srt_text([Cue(0.0, 1.0, " \n ")])


def frames(t: int = 12, h: int = 180, w: int = 320) -> np.ndarray:
    return np.full((t, h, w, 3), (30, 90, 160), np.uint8)


def test_burn_changes_only_frames_inside_cues():
    video = frames()
    cues = [Cue(0.25, 0.5, "你好"), Cue(0.75, 0.875, "Hi", speaker="Ann")]  # at 8 fps: frames 2-3 and 6
    out = burn_subtitles(video, 8.0, cues)
    assert np.array_equal(video, frames())  # input untouched
    changed = [t for t in range(len(video)) if not np.array_equal(out[t], video[t])]
    assert changed == [2, 3, 6]
    rows = np.flatnonzero((out[2] != video[2]).any(axis=(1, 2)))
    assert rows.min() > video.shape[1] // 2  # bottom half


def test_burn_draws_chinese_glyphs():
    video = frames(1)
    a = burn_subtitles(video, 1.0, [Cue(0, 1, "你好世界")])
    b = burn_subtitles(video, 1.0, [Cue(0, 1, "世界你好")])
    # Missing glyphs render as identical boxes; real glyphs differ when the characters are swapped.
    assert not np.array_equal(a, b)
    assert (a != video).any(axis=-1).sum() > 400
    toonworld = str(resources.files("anisora.toonworld") / "assets" / "toonworld-sans.ttf")
    c = burn_subtitles(video, 1.0, [Cue(0, 1, "你好")], font_path=toonworld)
    d = burn_subtitles(video, 1.0, [Cue(0, 1, "好你")], font_path=toonworld)
    assert not np.array_equal(c, d)
    latin_only = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if latin_only.is_file():  # the control: a font without CJK cannot tell the two strings apart
        e = burn_subtitles(video, 1.0, [Cue(0, 1, "你好世界")], font_path=str(latin_only))
        f = burn_subtitles(video, 1.0, [Cue(0, 1, "世界你好")], font_path=str(latin_only))
        assert np.array_equal(e, f)


def test_burn_wraps_cjk_to_the_frame_width():
    video = frames(1, h=240, w=200)
    out = burn_subtitles(video, 1.0, [Cue(0, 1, "今天天气很好，我们一起去公园散步吧。")])
    drawn = (out[0] != video[0]).any(axis=-1)
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    assert rows.max() - rows.min() > 2 * (240 // 16)  # several lines
    assert cols.min() >= 5 and cols.max() <= 194  # inside the frame, not cut at its edges


def test_burn_rejects_bad_input():
    with pytest.raises(InputError, match="uint8"):
        burn_subtitles(np.zeros((2, 8, 8), np.uint8), 8.0, [])
    with pytest.raises(InputError, match="fps"):
        burn_subtitles(frames(1), 0.0, [])
    with pytest.raises(InputError, match="font"):
        burn_subtitles(frames(1), 1.0, [Cue(0, 1, "x")], font_path="/nonexistent/font.ttf")
    assert default_font_path().endswith((".ttc", ".ttf"))
