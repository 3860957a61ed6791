"""Painted backgrounds ("sets") for ToonWorld shots, drawn once per shot on a world canvas.

A set may carry scene text (a shop sign, a poster): text that belongs to the scene and moves with the camera,
unlike subtitles. Its world box is recorded so ground truth can tell the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .canvas import Canvas
from .phrases import SIGNS
from .text import fit_text, paste

SETS = ("park", "street", "room", "night")


@dataclass
class Set:
    name: str
    image: np.ndarray  # (H, W_world, 3) uint8
    ground_y: float  # where feet stand, world pixels
    signs: list[tuple[str, tuple[int, int, int, int]]]  # (text, world box)


def _gradient(h: int, w: int, top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.ascontiguousarray(np.broadcast_to(col.astype(np.uint8), (h, w, 3)))


def _color(rng: np.random.Generator, lo: int = 40, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, size=3))


def _sign(img: np.ndarray, rng, x: float, y: float, h: float, signs: list) -> None:
    """A board with a word on it, centred at (x, y)."""
    text = str(SIGNS[rng.integers(len(SIGNS))])
    sprite = fit_text(text, int(h * 4), max(int(h * 0.7), 7), fill=(30, 30, 30), stroke=None)
    if sprite is None:
        return
    pad = max(int(h * 0.15), 2)
    bx0, by0 = int(x - sprite.width / 2 - pad), int(y - sprite.height / 2 - pad)
    Canvas(img).rect(bx0, by0, bx0 + sprite.width + 2 * pad, by0 + sprite.height + 2 * pad, (250, 240, 200))
    box = paste(img, sprite, bx0 + pad, by0 + pad)
    if box is not None:
        signs.append((text, box))


def _park(img, c: Canvas, rng, h, w, ground, signs) -> None:
    c.circle(rng.uniform(0.1, 0.9) * w, h * rng.uniform(0.1, 0.2), h * 0.07, (255, 220, 80))
    for _ in range(int(rng.integers(2, 5))):
        cx, cy, r = rng.uniform(0, w), h * rng.uniform(0.08, 0.3), h * rng.uniform(0.04, 0.07)
        for dx in (-1.2, 0, 1.2):
            c.circle(cx + dx * r, cy + (0 if dx == 0 else r * 0.3), r, (250, 250, 255))
    hill = _color(rng, 60, 160)
    for _ in range(3):
        c.ellipse(rng.uniform(0, w), ground, rng.uniform(0.3, 0.6) * w, h * rng.uniform(0.15, 0.3), hill)
    c.rect(0, ground - h * 0.02, w, h, (90, 170, 80))
    for _ in range(int(rng.integers(2, 6))):
        tx, th = rng.uniform(0, w), h * rng.uniform(0.25, 0.45)
        c.rect(tx - h * 0.025, ground - th, tx + h * 0.025, ground, (110, 75, 45))
        green = (int(rng.integers(30, 80)), int(rng.integers(120, 190)), int(rng.integers(40, 90)))
        for dx, dy in ((-0.6, 0), (0.6, 0), (0, -0.6)):
            c.circle(tx + dx * th * 0.22, ground - th + dy * th * 0.22, th * 0.22, green)


def _street(img, c: Canvas, rng, h, w, ground, signs) -> None:
    x = 0.0
    while x < w:
        bw, bh = h * rng.uniform(0.35, 0.7), h * rng.uniform(0.35, 0.75)
        c.rect(x, ground - bh, x + bw - 2, ground, _color(rng, 90, 210))
        for wy in np.arange(ground - bh + h * 0.05, ground - h * 0.12, h * 0.1):
            for wx in np.arange(x + bw * 0.12, x + bw - h * 0.08, h * 0.1):
                c.rect(wx, wy, wx + h * 0.05, wy + h * 0.05, (200, 225, 250))
        if rng.random() < 0.5:
            _sign(img, rng, x + bw / 2, ground - h * 0.08, h * 0.09, signs)
        x += bw
    c.rect(0, ground, w, h, (150, 150, 155))
    c.rect(0, ground + (h - ground) * 0.55, w, ground + (h - ground) * 0.62, (240, 240, 240))


def _room(img, c: Canvas, rng, h, w, ground, signs) -> None:
    c.rect(0, ground, w, h, _color(rng, 110, 190))
    c.rect(0, ground - h * 0.02, w, ground, (240, 235, 225))
    for wx in np.arange(rng.uniform(0.05, 0.3) * w, w, h * 1.1):
        c.rect(wx, h * 0.15, wx + h * 0.35, h * 0.45, (180, 215, 250))
        c.rect(wx + h * 0.17, h * 0.15, wx + h * 0.18, h * 0.45, (250, 250, 250))
    c.rect(w * 0.6, ground - h * 0.17, w * 0.6 + h * 0.4, ground - h * 0.14, (140, 95, 60))
    c.rect(w * 0.6 + h * 0.03, ground - h * 0.14, w * 0.6 + h * 0.06, ground, (140, 95, 60))
    c.rect(w * 0.6 + h * 0.34, ground - h * 0.14, w * 0.6 + h * 0.37, ground, (140, 95, 60))
    if rng.random() < 0.7:
        _sign(img, rng, rng.uniform(0.2, 0.8) * w, h * 0.1, h * 0.08, signs)


def _night(img, c: Canvas, rng, h, w, ground, signs) -> None:
    for _ in range(int(w * h / 800)):
        c.circle(rng.uniform(0, w), rng.uniform(0, ground * 0.7), max(h * 0.004, 0.6), (255, 255, 220))
    c.circle(rng.uniform(0.1, 0.9) * w, h * 0.15, h * 0.06, (250, 250, 210))
    x = 0.0
    while x < w:
        bw, bh = h * rng.uniform(0.25, 0.5), h * rng.uniform(0.2, 0.4)
        c.rect(x, ground - bh, x + bw - 3, ground, (35, 35, 60))
        c.polygon(
            [(x - 2, ground - bh), (x + bw / 2, ground - bh - h * 0.1), (x + bw, ground - bh)], (45, 40, 70)
        )
        if rng.random() < 0.7:
            c.rect(
                x + bw * 0.3,
                ground - bh * 0.7,
                x + bw * 0.3 + h * 0.05,
                ground - bh * 0.7 + h * 0.05,
                (250, 220, 110),
            )
        x += bw
    c.rect(0, ground, w, h, (40, 60, 50))


_PAINTERS = {"park": _park, "street": _street, "room": _room, "night": _night}
_SKIES = {
    "park": ((110, 170, 240), (200, 230, 255)),
    "street": ((150, 190, 235), (230, 235, 245)),
    "room": ((235, 220, 190), (220, 200, 170)),
    "night": ((10, 15, 45), (40, 50, 100)),
}


def paint_set(name: str, height: int, width: int, rng: np.random.Generator) -> Set:
    top, bottom = _SKIES[name]
    img = _gradient(height, width, top, bottom)
    ground = height * float(rng.uniform(0.8, 0.88))
    signs: list = []
    _PAINTERS[name](img, Canvas(img), rng, height, width, ground, signs)
    return Set(name, img, ground, signs)
