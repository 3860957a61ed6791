"""The studio's operations on its data, free of any web framework: uploads, characters, episodes, shots
with their dialogue, and episode rendering. The HTTP app and tests call these.

Uploads are checked by content (an image Pillow can read, PNG, JPEG or WebP; at most `MAX_UPLOAD_BYTES`,
`MAX_PIXELS` and `MAX_ASPECT`), re-encoded as PNG and stored under a random name: a client's file name is
never used as a path. Every text field is length-checked here, and so are a shot's whole dialogue and
prompt; the page inserts text with textContent, never as HTML.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import InputError, MediaError
from ..files import atomic_output
from ..media import load_image
from .assembly import MAX_S, MIN_S, concat_videos
from .db import Character, Database, DialogueLine, Episode, Job, Shot
from .subtitles import Cue
from .tts import EMOTIONS, VoiceProfile, check_profile

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_BODY_BYTES = 256 * 1024  # any other request body; a shot at every limit below is far smaller
MAX_PIXELS = 4096 * 4096
# An image's long side at most 4x its short side: 4:1 holds a wide or tall comic panel, and as a shot keeps
# the model's pixel count at the panel's shape, a thinner strip would make frames the model was not made for.
MAX_ASPECT = 4.0
UPLOAD_NAME = re.compile(r"[0-9a-f]{32}\.png")
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP"}
MAX_TEXT, MAX_PROMPT, MAX_NAME = 1000, 2000, 80  # characters per line, prompt (with quick prompts), name
MAX_LINES, MAX_DIALOGUE = 40, 2000  # dialogue lines per shot, and their characters together
MAX_PRESETS, MAX_PRESET = 10, 200  # quick prompts per shot, characters each
MAX_DIALOGUE_S = 120.0  # the dubbed dialogue of a shot (checked by the worker once it is spoken)
MAX_KEYFRAMES, MAX_KEYFRAME_S = 8, 60.0  # a long dialogue's shot runs on in follow-on parts
MAX_MOUTHS = 8  # characters with a marked mouth per shot
MAX_ID = MAX_SEED = 2**31 - 1  # PostgreSQL's INTEGER
QUICK_PROMPTS = (
    "the character blinks",
    "the character talks",
    "the character smiles",
    "hair sways in the wind",
    "the character turns the head",
    "the character waves a hand",
    "tears roll down the cheeks",
    "the camera slowly zooms in",
    "the camera pans slowly",
    "petals drift across the frame",
)


def too_large(what: str, limit: int, size: int | None = None) -> InputError:
    """The refusal of a body over `limit` bytes; `size`: its size, when known before reading it."""
    if size is None:
        return InputError(f"{what} is over the {limit / 2**20:g} MB limit")
    return InputError(f"{what} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:g} MB")


def check_image_size(width: int, height: int, what: str = "image") -> None:
    """InputError unless the image has at most MAX_PIXELS pixels and a long side at most MAX_ASPECT times
    its short side."""
    if width * height > MAX_PIXELS:
        raise InputError(f"{what} is {width}x{height}; at most {MAX_PIXELS:,} pixels")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(
            f"{what} is {width}x{height}; its long side may be at most {MAX_ASPECT:g} times its short side"
        )


def save_upload(data: Path, content: bytes) -> str:
    """Check an uploaded image by its content and store it as PNG; returns the stored name."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise too_large("upload", MAX_UPLOAD_BYTES)
    if not content:
        raise InputError("upload is empty")
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.format not in IMAGE_FORMATS:
                raise InputError(f"upload is {image.format or 'not an image'}; send PNG, JPEG or WebP")
            check_image_size(*image.size)
            image.load()
            rgb = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"upload is not a readable image ({type(exc).__name__})") from None
    name = f"{secrets.token_hex(16)}.png"
    with atomic_output(data / "uploads" / name) as tmp:
        rgb.save(tmp, format="PNG")
    return name


def upload_path(data: Path, name: str) -> Path:
    if not isinstance(name, str) or not UPLOAD_NAME.fullmatch(name):
        raise InputError("no such upload")
    path = data / "uploads" / name
    if not path.is_file():
        raise InputError("no such upload")
    return path


def is_unicode(text: str) -> bool:
    """False for text no UTF-8 file or database can hold: a lone surrogate ("\\ud800" in JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any, what: str, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise InputError(f"{what} is {len(value)} characters; at most {limit}")
    if not is_unicode(value):
        raise InputError(f"{what} is not valid Unicode text (it has a lone surrogate)")
    return value.strip()


def shot_prompt(prompt: str, presets: Iterable[str] | None) -> str:
    """The prompt the model gets: the shot's prompt and its quick prompts, as sentences."""
    parts = [p.strip().rstrip(".") for p in [prompt, *(presets or [])] if p and p.strip()]
    return ". ".join(parts) + "." if parts else ""


def check_keyframes_fit(times: Iterable[float], shot_seconds: float) -> None:
    """InputError when a keyframe falls at or after the end of a shot `shot_seconds` long."""
    late = [at for at in times if at >= shot_seconds]
    if late:
        raise InputError(f"a keyframe at {late[0]:g} s is after the shot's end ({shot_seconds:g} s)")


@dataclass(frozen=True)
class CharacterIn:
    name: str
    engine: str = "espeak-ng"
    voice: str = "en-us"
    speed: float = 1.0
    pitch: float = 1.0


def create_character(db: Database, c: CharacterIn) -> dict:
    name = _text(c.name, "character name", MAX_NAME)
    check_profile(VoiceProfile(c.engine, c.voice, c.speed, c.pitch))
    with db.session() as s:
        row = Character(name=name, engine=c.engine, voice=c.voice, speed=float(c.speed), pitch=float(c.pitch))
        s.add(row)
        s.flush()
        return row.to_dict()


def list_characters(db: Database) -> list[dict]:
    with db.session() as s:
        return [c.to_dict() for c in s.query(Character).order_by(Character.id)]


def create_episode(db: Database, title: str) -> dict:
    with db.session() as s:
        row = Episode(title=_text(title, "episode title", MAX_NAME))
        s.add(row)
        s.flush()
        return row.to_dict()


def list_episodes(db: Database) -> list[dict]:
    with db.session() as s:
        return [e.to_dict() for e in s.query(Episode).order_by(Episode.id)]


def get_episode(db: Database, episode_id: int) -> dict:
    with db.session() as s:
        episode = s.get(Episode, episode_id)
        if episode is None:
            raise LookupError(f"no episode {episode_id}")
        shots = s.query(Shot).filter_by(episode_id=episode_id).order_by(Shot.position, Shot.id).all()
        return {**episode.to_dict(), "shots": [_shot_view(s, shot) for shot in shots]}


def _shot_view(s, shot: Shot) -> dict:
    lines = s.query(DialogueLine).filter_by(shot_id=shot.id).order_by(DialogueLine.position).all()
    job = s.query(Job).filter_by(shot_id=shot.id).order_by(Job.id.desc()).first()
    take = s.query(Job).filter_by(shot_id=shot.id, status="done").order_by(Job.id.desc()).first()
    return {
        **shot.to_dict(),
        "lines": [line.to_dict() for line in lines],
        "job": job.to_dict() if job else None,  # the newest job, whatever its state
        "take": take.to_dict() if take else None,  # the newest finished one (stays while a new take runs)
    }


def get_shot(db: Database, shot_id: int) -> dict:
    with db.session() as s:
        shot = s.get(Shot, shot_id)
        if shot is None:
            raise LookupError(f"no shot {shot_id}")
        return _shot_view(s, shot)


@dataclass(frozen=True)
class LineIn:
    text: str
    character_id: int | None = None
    emotion: str = "neutral"


@dataclass(frozen=True)
class KeyframeIn:
    at: float  # seconds from the start of the shot
    image: str  # upload name


@dataclass(frozen=True)
class MouthIn:
    character_id: int
    mask: str  # upload name: white over the character's mouth on the panel


@dataclass(frozen=True)
class ShotIn:
    panel: str
    prompt: str = ""
    presets: tuple[str, ...] = ()
    mask: str | None = None
    last_frame: str | None = None
    motion: float | None = None
    seconds: float | None = None  # None: fit to the dialogue
    seed: int = 0
    lines: tuple[LineIn, ...] = ()
    keyframes: tuple[KeyframeIn, ...] = ()  # extra guide frames; one after the shot's end fails its job
    mouths: tuple[MouthIn, ...] = ()
    animate_mouths: bool = True  # False: the mouths stay as the model makes them (their lip sync is measured)


def create_shot(db: Database, data: Path, episode_id: int, shot: ShotIn) -> dict:
    columns, lines = _check_shot(db, data, shot)
    with db.session() as s:
        if s.get(Episode, episode_id) is None:
            raise LookupError(f"no episode {episode_id}")
        position = s.query(Shot).filter_by(episode_id=episode_id).count()
        row = Shot(episode_id=episode_id, position=position, **columns)
        s.add(row)
        s.flush()
        for i, line in enumerate(lines):
            s.add(DialogueLine(shot_id=row.id, position=i, **line))
        s.flush()
        return _shot_view(s, row)


def _check_shot(db: Database, data: Path, shot: ShotIn) -> tuple[dict, list[dict]]:
    """The shot's columns and dialogue lines, checked: counts and lengths first, the stored images last."""
    lines = _check_dialogue(db, shot.lines)
    prompt, presets = check_prompt(shot.prompt, shot.presets)
    check_timing(shot)
    if not (isinstance(shot.seed, int) and 0 <= shot.seed <= MAX_SEED):
        raise InputError(f"seed must be a whole number from 0 to {MAX_SEED}")
    _check_images(data, shot)
    mouths = _check_mouths(db, data, shot)
    columns = {
        "panel": shot.panel,
        "prompt": prompt,
        "presets": presets,
        "mask": shot.mask,
        "last_frame": shot.last_frame,
        "keyframes": [
            {"at": float(k.at), "image": k.image} for k in sorted(shot.keyframes, key=lambda k: k.at)
        ],
        "motion": shot.motion,
        "seconds": shot.seconds,
        "seed": shot.seed,
        "mouths": mouths,
        "animate_mouths": bool(shot.animate_mouths),
    }
    return columns, lines


def _check_dialogue(db: Database, lines: tuple[LineIn, ...]) -> list[dict]:
    if len(lines) > MAX_LINES:
        raise InputError(f"at most {MAX_LINES} dialogue lines per shot")
    checked = [_line(line) for line in lines]
    total = sum(len(line["text"]) for line in checked)
    if total > MAX_DIALOGUE:
        raise InputError(
            f"the dialogue is {total} characters; at most {MAX_DIALOGUE} per shot (split it across shots)"
        )
    with db.session(write=False) as s:
        for line in checked:
            who = line["character_id"]
            if who is not None and (not 1 <= who <= MAX_ID or s.get(Character, who) is None):
                raise InputError(f"no character {who}")
    return checked


def _line(line: LineIn) -> dict:
    if line.emotion not in EMOTIONS:
        raise InputError(f"emotion must be one of {', '.join(EMOTIONS)}, got {line.emotion!r}")
    return {
        "text": _text(line.text, "dialogue line", MAX_TEXT),
        "character_id": line.character_id,
        "emotion": line.emotion,
    }


def check_prompt(prompt: str, presets: tuple[str, ...]) -> tuple[str, list[str]]:
    """The prompt and quick prompts, each and together (as the model gets them) within MAX_PROMPT."""
    if len(presets) > MAX_PRESETS:
        raise InputError(f"at most {MAX_PRESETS} quick prompts per shot")
    checked = [_text(p, "quick prompt", MAX_PRESET) for p in presets]
    prompt = _text(prompt, "prompt", MAX_PROMPT, required=False)
    combined = len(shot_prompt(prompt, checked))
    if combined > MAX_PROMPT:
        raise InputError(f"the prompt with its quick prompts is {combined} characters; at most {MAX_PROMPT}")
    return prompt, checked


def check_timing(shot: ShotIn) -> None:
    if len(shot.keyframes) > MAX_KEYFRAMES:
        raise InputError(f"at most {MAX_KEYFRAMES} extra keyframes per shot")
    for keyframe in shot.keyframes:
        if not (0.0 < keyframe.at <= MAX_KEYFRAME_S):
            raise InputError(f"a keyframe's time must be in (0, {MAX_KEYFRAME_S:g}] s, got {keyframe.at}")
    if shot.motion is not None and not (0.0 <= shot.motion <= 100.0):
        raise InputError(f"motion must be 0-100, got {shot.motion}")
    if shot.seconds is not None and not (MIN_S <= shot.seconds <= MAX_S):
        raise InputError(f"duration must be {MIN_S:g}-{MAX_S:g} s, or left out to fit the dialogue")
    if shot.seconds is not None and not shot.lines:  # else dialogue may run the shot on in follow-on parts
        check_keyframes_fit((k.at for k in shot.keyframes), shot.seconds)


def _check_images(data: Path, shot: ShotIn) -> None:
    """Every image is a stored upload; a mask has the panel's shape (within 1%, as the model requires)."""
    for name in (shot.panel, shot.mask, shot.last_frame, *(k.image for k in shot.keyframes)):
        if name is not None:
            upload_path(data, name)
    if shot.mask is not None:
        _check_drawn_on_panel(data, shot.panel, shot.mask, "mask")


def _check_drawn_on_panel(data: Path, panel: str, mask: str, what: str) -> None:
    """InputError unless `mask` has the panel's shape (within 1%, as the model requires)."""
    with _open_upload(data, panel) as image:
        pw, ph = image.size
    with _open_upload(data, mask) as image:
        mw, mh = image.size
    if abs(mw * ph - pw * mh) > 0.01 * pw * mh:
        raise InputError(f"{what} is {mw}x{mh} but the panel is {pw}x{ph}: draw the {what} on the panel")


def _check_mouths(db: Database, data: Path, shot: ShotIn) -> list[dict]:
    """The marked mouths as stored: one per character, each a non-empty mask drawn on the panel."""
    if len(shot.mouths) > MAX_MOUTHS:
        raise InputError(f"at most {MAX_MOUTHS} marked mouths per shot")
    seen = set()
    with db.session(write=False) as s:
        for mouth in shot.mouths:
            who = mouth.character_id
            if not (isinstance(who, int) and 1 <= who <= MAX_ID) or s.get(Character, who) is None:
                raise InputError(f"a mouth is marked for no character {who}")
            if who in seen:
                raise InputError(f"character {who} has two mouths marked; brush both on one")
            seen.add(who)
    for mouth in shot.mouths:
        _check_drawn_on_panel(data, shot.panel, mouth.mask, "mouth mask")
        try:  # flattened on black, as the worker reads masks
            painted = load_image(upload_path(data, mouth.mask), background=(0, 0, 0)).max() >= 128
        except MediaError:
            raise InputError(f"upload {mouth.mask} is no longer a readable image") from None
        if not painted:
            raise InputError(f"the mouth mask of character {mouth.character_id} is empty: brush the mouth")
    return [{"character_id": m.character_id, "mask": m.mask} for m in shot.mouths]


@contextmanager
def _open_upload(data: Path, name: str) -> Iterator[Image.Image]:
    try:
        image = Image.open(upload_path(data, name))
    except (UnidentifiedImageError, OSError):
        raise InputError(f"upload {name} is no longer a readable image") from None
    with image:
        yield image


def render_episode(db: Database, data: Path, episode_id: int, burn: bool = False) -> dict:
    """The episode as one mp4 + SRT: every shot's newest finished take, in shot order."""
    with db.session() as s:
        if s.get(Episode, episode_id) is None:
            raise LookupError(f"no episode {episode_id}")
        shots = s.query(Shot).filter_by(episode_id=episode_id).order_by(Shot.position, Shot.id).all()
        takes, missing = [], []
        for shot in shots:
            job = s.query(Job).filter_by(shot_id=shot.id, status="done").order_by(Job.id.desc()).first()
            if job is None:
                missing.append(shot.position + 1)
            else:
                cues = [Cue(*cue) for cue in job.result.get("cues", [])]
                takes.append((data / job.result["video"], cues))
    if missing:
        raise InputError(f"shot(s) {', '.join(map(str, missing))} have no finished take yet")
    out = data / "episodes" / f"episode{episode_id}" / "episode.mp4"
    seconds = concat_videos(takes, out, burn)
    return {
        "video": out.relative_to(data).as_posix(),
        "srt": out.with_suffix(".srt").relative_to(data).as_posix(),
        "seconds": round(seconds, 3),
    }
