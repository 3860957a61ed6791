"""One ToonWorld shot: its random plan (ShotPlan) and a renderer from frame index to pixels + ground truth."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .actions import MOVES_ACROSS, ActionPlan
from .backgrounds import SETS, paint_set
from .canvas import Canvas
from .character import Appearance, Camera, Character
from .phrases import SUBTITLES_CJK, SUBTITLES_LATIN
from .text import fit_text, paste

# the actions a shot is planned with; fights come from an episode's effects stream (effects.py)
ACTION_WEIGHTS = {
    "static": 0.12,
    "idle": 0.12,
    "talking": 0.24,
    "waving": 0.14,
    "walking": 0.16,
    "running": 0.10,
    "jumping": 0.12,
}
CAMERA_MOVES = ("still", "pan_left", "pan_right", "zoom_in", "zoom_out", "follow")
_VERBS = {
    "static": "stands perfectly still",
    "idle": "stands and blinks",
    "talking": "is talking",
    "waving": "waves a hand",
    "walking": "walks across the scene",
    "running": "runs across the scene",
    "jumping": "jumps up and down",
    "fighting": "throws punches and kicks",
}
FLASH_LEVELS = {"white": 255, "black": 0}


@dataclass
class SubtitleEvent:
    text: str
    script: str  # "latin" or "cjk"
    start: int  # shot-relative frames, end exclusive
    end: int
    position: str  # "bottom" or "top"
    size: int  # font size in pixels


@dataclass(frozen=True)
class Flash:
    """Frames `start` .. `start + length` (shot-relative) are one flat colour, as at an impact."""

    start: int
    length: int
    color: str  # a FLASH_LEVELS key


@dataclass
class CastMember:
    character: Character
    plan: ActionPlan


@dataclass
class ShotPlan:
    index: int
    start: int  # first frame in the episode
    num_frames: int
    fps: float
    width: int
    height: int
    label: str
    camera: str
    set_name: str
    set_seed: int
    cast: list[CastMember]
    world_width: int
    pan_speed: float = 0.0  # world pixels per second
    letterbox: dict | None = None  # {"kind": "letterbox"|"pillarbox", "content_box": [x0, y0, x1, y1]}
    degrade: dict | None = None  # {"noise": sigma, "blur": sigma}
    subtitles: list[SubtitleEvent] = field(default_factory=list)
    fade_in: int = 0
    fade_out: int = 0
    drawing_step: int = 1  # characters are redrawn every 1, 2 or 3 frames ("on ones/twos/threes")
    flashes: list[Flash] = field(default_factory=list)

    @property
    def static(self) -> bool:
        return self.label == "static"

    @property
    def flash_frames(self) -> dict[int, str]:
        """Shot-relative frame: flash colour."""
        return {f.start + k: f.color for f in self.flashes for k in range(f.length)}

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        if self.letterbox:
            return tuple(self.letterbox["content_box"])
        return 0, 0, self.width, self.height

    def caption(self) -> str:
        main = self.cast[0]
        verb = _VERBS[main.plan.action]
        place = {
            "park": "in a sunny park",
            "street": "on a city street",
            "room": "in a cosy room",
            "night": "in a town at night",
        }[self.set_name]
        text = f"A cartoon character with {main.character.look.describe()} {verb} {place}."
        if len(self.cast) > 1:
            other = self.cast[1]
            look, action = other.character.look.describe(), _VERBS[other.plan.action]
            text += f" Another character with {look} {action} beside them."
        text += {
            "still": " The camera is still.",
            "pan_left": " The camera pans left.",
            "pan_right": " The camera pans right.",
            "zoom_in": " The camera zooms in.",
            "zoom_out": " The camera zooms out.",
            "follow": " The camera follows the character.",
        }[self.camera]
        if self.letterbox:
            bars = "bars above and below" if self.letterbox["kind"] == "letterbox" else "side bars"
            text += f" The picture has black {bars}."
        if self.degrade:
            text += (
                " The picture is "
                + " and ".join(
                    k for k, v in (("noisy", self.degrade["noise"]), ("blurry", self.degrade["blur"])) if v
                )
                + "."
            )
        if self.flashes:
            text += f" The screen flashes {' and '.join(sorted({f.color for f in self.flashes}))}."
        return text

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.start + self.num_frames,
            "label": self.label,
            "static": self.static,
            "camera": self.camera,
            "set": self.set_name,
            "letterbox": self.letterbox,
            "degrade": self.degrade,
            "fade_in": self.fade_in,
            "fade_out": self.fade_out,
            "drawing_step": self.drawing_step,
            "flashes": [
                {"start": self.start + f.start, "end": self.start + f.start + f.length, "color": f.color}
                for f in self.flashes
            ],
            "caption": self.caption(),
            "characters": [
                {"mask_label": m.character.label, "action": m.plan.action, **asdict(m.character.look)}
                for m in self.cast
            ],
        }


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def plan_shot(
    index: int,
    start: int,
    num_frames: int,
    fps: float,
    width: int,
    height: int,
    rng: np.random.Generator,
    language: str,
    fade_in: int = 0,
    fade_out: int = 0,
) -> ShotPlan:
    """Draw everything random about a shot; rendering afterwards is deterministic."""
    duration = num_frames / fps
    label = _choice(rng, tuple(ACTION_WEIGHTS), tuple(ACTION_WEIGHTS.values()))
    if label == "static":
        camera = "still"
    elif label in MOVES_ACROSS:
        camera = _choice(rng, ("still", "follow", "pan_left", "pan_right"), (0.4, 0.4, 0.1, 0.1))
    else:
        camera = _choice(rng, CAMERA_MOVES[:5], (0.5, 0.15, 0.15, 0.1, 0.1))
    n_cast = 2 if rng.random() < 0.3 else 1
    char_h = height * float(rng.uniform(0.5, 0.7)) * (0.9 if n_cast == 2 else 1.0)
    actions = [label] + (
        ["static" if label == "static" else _choice(rng, ("idle", "talking"))] if n_cast == 2 else []
    )
    plans = [ActionPlan.sample(a, duration, char_h, rng) for a in actions]

    travel = max(p.speed for p in plans) * duration
    pan_speed = width * float(rng.uniform(0.05, 0.15)) if camera.startswith("pan") else 0.0
    world_width = width + math.ceil(pan_speed * duration + (travel if camera == "follow" else 0)) + 2

    looks = [Appearance.sample(rng) for _ in plans]
    facing = 1 if rng.random() < 0.5 else -1
    if camera == "follow":
        x0 = width / 2 if facing > 0 else world_width - width / 2
    elif label in MOVES_ACROSS:  # cross the view started by the camera
        view_x = world_width - width if camera == "pan_left" else 0.0
        x0 = view_x + (0.15 * width if facing > 0 else 0.85 * width)
    else:
        view_x = world_width - width if camera == "pan_left" else 0.0
        x0 = view_x + width * float(rng.uniform(0.3, 0.7)) if n_cast == 1 else view_x + width * 0.3
    set_seed = int(rng.integers(2**31))
    ground = height * 0.84  # painted sets put the ground within 0.8-0.88 of the height
    cast = [
        CastMember(
            Character(1, looks[0], x0, ground + height * 0.04, char_h, facing if n_cast == 1 else 1), plans[0]
        )
    ]
    if n_cast == 2:
        cast.append(
            CastMember(Character(2, looks[1], x0 + width * 0.4, ground + height * 0.06, char_h, -1), plans[1])
        )

    plan = ShotPlan(
        index,
        start,
        num_frames,
        fps,
        width,
        height,
        label,
        camera,
        _choice(rng, SETS),
        set_seed,
        cast,
        world_width,
        pan_speed,
        fade_in=fade_in,
        fade_out=fade_out,
    )
    if rng.random() < 0.12:
        if rng.random() < 0.6:
            bar = round(height * 0.12)
            plan.letterbox = {"kind": "letterbox", "content_box": [0, bar, width, height - bar]}
        else:
            bar = round(width * 0.125)
            plan.letterbox = {"kind": "pillarbox", "content_box": [bar, 0, width - bar, height]}
    if rng.random() < 0.12:
        noisy = not plan.static and rng.random() < 0.7
        plan.degrade = {
            "noise": round(float(rng.uniform(6, 16)), 2) if noisy else 0.0,
            "blur": round(float(rng.uniform(0.8, 2.0)), 2) if (not noisy or rng.random() < 0.5) else 0.0,
        }
    plan.drawing_step = _choice(rng, (1, 2, 3), (0.5, 0.35, 0.15))
    p_subs = 0.8 if label == "talking" else 0.3
    if rng.random() < p_subs:
        plan.subtitles = _plan_subtitles(plan, rng, language)
    return plan


def _plan_subtitles(plan: ShotPlan, rng: np.random.Generator, language: str) -> list[SubtitleEvent]:
    x0, _, x1, y1 = plan.content_box
    size = max(round((y1 - plan.content_box[1]) * 0.085), 9)
    position = "top" if rng.random() < 0.1 else "bottom"
    # subtitles stay clear of fades, so every subtitle pixel in the ground truth is at full contrast
    events, t = [], plan.fade_in + int(rng.integers(0, max(int(plan.fps * 0.5), 1)))
    while True:
        length = int(plan.fps * float(rng.uniform(1.2, 2.5)))
        if t + length > plan.num_frames - plan.fade_out:
            break
        script = language if language != "mixed" else _choice(rng, ("latin", "cjk"))
        bank = SUBTITLES_LATIN if script == "latin" else SUBTITLES_CJK
        for _ in range(len(bank)):  # a line that fits the width at a readable size
            text = _choice(rng, bank)
            sprite = fit_text(text, int((x1 - x0) * 0.94), size)
            if sprite is not None:
                events.append(SubtitleEvent(text, script, t, t + length, position, size))
                break
        t += length + int(plan.fps * float(rng.uniform(0.0, 0.5)))
    return events


class ShotRenderer:
    """Renders frame j of a shot (pure function of the plan and j) with its label mask and text boxes."""

    def __init__(self, plan: ShotPlan):
        self.plan = plan
        self.set = paint_set(
            plan.set_name, plan.height, plan.world_width, np.random.default_rng(plan.set_seed)
        )
        rng = np.random.default_rng(plan.set_seed + 1)
        self._noise = []
        if plan.degrade and plan.degrade["noise"]:
            for _ in range(8):  # a small bank of noise fields, cycled per frame
                n = rng.normal(0, plan.degrade["noise"], (plan.height, plan.width, 3)).round()
                self._noise.append(
                    (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
                )
        self._noise_order = rng.integers(0, 8, size=plan.num_frames)
        self._flashes = {j: FLASH_LEVELS[color] for j, color in plan.flash_frames.items()}

    def camera(self, t: float) -> Camera:
        p, w = self.plan, self.plan.width
        if p.camera == "pan_right":
            return Camera(p.pan_speed * t, 0.0)
        if p.camera == "pan_left":
            return Camera(p.world_width - w - p.pan_speed * t, 0.0)
        if p.camera in ("zoom_in", "zoom_out"):
            progress = t / max(p.num_frames / p.fps, 1e-6)
            zoom = 1.0 + 0.35 * (progress if p.camera == "zoom_in" else 1.0 - progress)
            main = p.cast[0].character
            fx, fy = main.x, main.y - main.height * 0.7  # keep the face where it is on screen
            return Camera(fx * (1 - 1 / zoom), fy * (1 - 1 / zoom), zoom)
        if p.camera == "follow":
            main = p.cast[0]
            x = main.character.x + main.plan.pose(t).dx * main.character.facing - w / 2
            return Camera(min(max(x, 0.0), p.world_width - w), 0.0)
        return Camera()

    def background(self, cam: Camera) -> np.ndarray:
        """The painted set as the camera sees it, without characters, text or effects."""
        w, h = self.plan.width, self.plan.height
        if cam.zoom == 1.0 and cam.ox == int(cam.ox) and cam.oy == 0:
            return self.set.image[:, int(cam.ox) : int(cam.ox) + w].copy()
        m = np.float32([[cam.zoom, 0, -cam.ox * cam.zoom], [0, cam.zoom, -cam.oy * cam.zoom]])
        return cv2.warpAffine(
            self.set.image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def render(self, j: int) -> tuple[np.ndarray, np.ndarray, dict]:
        p = self.plan
        t = j / p.fps
        cam = self.camera(t)  # the camera moves on ones, characters on their drawing step
        t_drawing = (j - j % p.drawing_step) / p.fps
        image = self.background(cam)
        mask = np.zeros((p.height, p.width), np.uint8)
        canvas = Canvas(image, mask)
        for member in sorted(p.cast, key=lambda m: m.character.y):  # farther back first
            member.character.draw(canvas, cam, member.plan.pose(t_drawing))
        x0, y0, x1, y1 = p.content_box
        if p.letterbox:
            for img in (image, mask):
                img[:y0], img[y1:], img[:, :x0], img[:, x1:] = 0, 0, 0, 0
        signs = [self._screen_box(box, cam) for _, box in self.set.signs]
        if j in self._flashes:  # the picture is one flat colour: no character, no sign shows
            image[y0:y1, x0:x1], mask[:], signs = self._flashes[j], 0, []
        if p.degrade:  # the picture is degraded; subtitles are burned in afterwards, crisp, as in post
            if p.degrade["blur"]:
                image = cv2.GaussianBlur(image, (0, 0), p.degrade["blur"])
            if self._noise:
                plus, minus = self._noise[self._noise_order[j]]
                image = cv2.subtract(cv2.add(image, plus), minus)
        subtitle_boxes = []
        for ev in p.subtitles:
            if ev.start <= j < ev.end:
                sprite = fit_text(ev.text, int((x1 - x0) * 0.94), ev.size)
                sx = (x0 + x1 - sprite.width) // 2
                margin = max(int((y1 - y0) * 0.04), 2)
                sy = y1 - margin - sprite.height if ev.position == "bottom" else y0 + margin
                subtitle_boxes.append(list(paste(image, sprite, sx, sy)))
        fade = self._fade(j)
        if fade < 1.0:
            image = cv2.convertScaleAbs(image, alpha=fade)
        return image, mask, {"subtitles": subtitle_boxes, "scene_text": [b for b in signs if b]}

    def _fade(self, j: int) -> float:
        """Brightness factor: fades reach black, so the two frames at a fade boundary are black."""
        p = self.plan
        if p.fade_in and j < p.fade_in:
            return j / p.fade_in
        if p.fade_out and j >= p.num_frames - p.fade_out:
            return (p.num_frames - 1 - j) / p.fade_out
        return 1.0

    def _screen_box(self, box, cam: Camera) -> list[int] | None:
        x0, y0, x1, y1 = self.plan.content_box
        bx0 = max(math.floor((box[0] - cam.ox) * cam.zoom), x0)
        by0 = max(math.floor((box[1] - cam.oy) * cam.zoom), y0)
        bx1 = min(math.ceil((box[2] - cam.ox) * cam.zoom), x1)
        by1 = min(math.ceil((box[3] - cam.oy) * cam.zoom), y1)
        return [bx0, by0, bx1, by1] if bx0 < bx1 and by0 < by1 else None
