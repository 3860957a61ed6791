"""A flat-shaded cartoon character: appearance, pose and drawing.

Geometry is in character units u (height / 9.6) relative to the feet; y grows downwards as in images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .canvas import Canvas

SKIN = {"fair": (255, 224, 196), "tan": (224, 172, 128), "brown": (150, 100, 70), "pale": (250, 236, 226)}
HAIR = {
    "black": (30, 30, 40),
    "brown": (110, 70, 40),
    "blonde": (240, 205, 90),
    "pink": (245, 130, 180),
    "blue": (70, 120, 230),
    "green": (60, 170, 110),
    "silver": (200, 205, 215),
    "red": (200, 50, 40),
}
CLOTHES = {
    "red": (220, 60, 60),
    "blue": (60, 90, 200),
    "yellow": (240, 200, 60),
    "green": (70, 160, 80),
    "purple": (140, 80, 180),
    "white": (240, 240, 240),
    "orange": (245, 140, 40),
    "black": (40, 40, 45),
}
HAIR_STYLES = ("spiky", "bob", "long")


@dataclass(frozen=True)
class Appearance:
    skin: str
    hair: str
    hair_style: str
    shirt: str
    pants: str
    eye: tuple[int, int, int]

    @staticmethod
    def sample(rng: np.random.Generator) -> Appearance:
        pick = lambda names: str(names[rng.integers(len(names))])  # noqa: E731
        eye = tuple(int(c) for c in rng.integers(20, 140, size=3))
        shirt = pick(list(CLOTHES))
        pants = pick([c for c in CLOTHES if c != shirt])
        return Appearance(pick(list(SKIN)), pick(list(HAIR)), pick(HAIR_STYLES), shirt, pants, eye)

    def describe(self) -> str:
        return f"{self.hair} {self.hair_style} hair and a {self.shirt} shirt"


@dataclass
class Pose:
    """Everything that changes over time. Angles are radians from hanging straight down:
    arms + = away from the body, legs + = towards the facing direction."""

    dx: float = 0.0  # distance travelled along the facing direction, world pixels
    dy: float = 0.0
    bob: float = 0.0  # body lift, units
    arm_l: tuple[float, float] = (0.15, 0.1)  # (shoulder, elbow)
    arm_r: tuple[float, float] = (0.15, 0.1)
    leg_l: float = 0.0
    leg_r: float = 0.0
    mouth: float = 0.0  # 0 closed .. 1 wide open
    eyes_open: bool = True
    hair_sway: float = 0.0  # units at the hair tips
    nod: float = 0.0  # head offset, units


@dataclass(frozen=True)
class Camera:
    """Screen = (world - origin) * zoom."""

    ox: float = 0.0
    oy: float = 0.0
    zoom: float = 1.0


@dataclass(frozen=True)
class Character:
    label: int  # value in the foreground mask
    look: Appearance
    x: float  # world position of the feet
    y: float
    height: float  # world pixels
    facing: int = 1  # +1 right, -1 left

    def _screen(self, cam: Camera, pose: Pose):
        """The unit u in screen pixels and the map from character units to screen pixels."""
        u = self.height / 9.6 * cam.zoom
        fx = (self.x + pose.dx * self.facing - cam.ox) * cam.zoom
        fy = (self.y + pose.dy - cam.oy) * cam.zoom

        def p(lx: float, ly: float) -> tuple[float, float]:
            return fx + lx * u * self.facing, fy + (ly - pose.bob) * u

        return u, p

    def mouth(self, cam: Camera, pose: Pose) -> tuple[float, float, float]:
        """The mouth's centre on screen (x, y) and u in screen pixels: the closed mouth is a line 0.5u long,
        the open one an ellipse 0.64u wide and (0.16 + 0.64 `pose.mouth`)u high."""
        u, p = self._screen(cam, pose)
        return (*p(0.1, -6.8 + pose.nod), u)

    def draw(self, canvas: Canvas, cam: Camera, pose: Pose) -> None:
        u, p = self._screen(cam, pose)
        f = self.facing

        lab = self.label
        skin, hair = SKIN[self.look.skin], HAIR[self.look.hair]
        shirt, pants = CLOTHES[self.look.shirt], CLOTHES[self.look.pants]
        head = p(0, -7.6 + pose.nod)
        hr = 1.55 * u

        if self.look.hair_style == "long":  # hair behind the head and shoulders
            sway = pose.hair_sway * u
            hx, hy = head
            canvas.polygon(
                [
                    (hx - 1.7 * u, hy - 0.2 * u),
                    (hx + 1.7 * u, hy - 0.2 * u),
                    (hx + 1.5 * u + sway, hy + 2.6 * u),
                    (hx - 1.5 * u + sway, hy + 2.6 * u),
                ],
                hair,
                lab,
            )
        # legs
        hip_y = -3.0
        for side, angle in ((-0.45, pose.leg_l), (0.45, pose.leg_r)):
            x0, y0 = p(side, hip_y)
            length = 3.0 * u
            x1, y1 = x0 + math.sin(angle) * length * f, y0 + math.cos(angle) * length
            canvas.line(x0, y0, x1, y1, 0.75 * u, pants, lab)
            canvas.ellipse(x1 + 0.2 * u * f, y1, 0.45 * u, 0.22 * u, (60, 50, 50), lab)
        # torso
        canvas.polygon([p(-1.1, -6.0), p(1.1, -6.0), p(0.95, -2.8), p(-0.95, -2.8)], shirt, lab)
        canvas.rect(*p(-0.95, -3.2), *p(0.95, -2.7), pants, lab)
        # arms: upper arm then forearm, outward = away from the body
        for side, (shoulder, elbow) in ((-1, pose.arm_l), (1, pose.arm_r)):
            sx, sy = p(1.05 * side, -5.7)
            out = side * f
            ex = sx + math.sin(shoulder) * 1.5 * u * out
            ey = sy + math.cos(shoulder) * 1.5 * u
            hx = ex + math.sin(shoulder + elbow) * 1.4 * u * out
            hy = ey + math.cos(shoulder + elbow) * 1.4 * u
            canvas.line(sx, sy, ex, ey, 0.5 * u, shirt, lab)
            canvas.line(ex, ey, hx, hy, 0.42 * u, skin, lab)
            canvas.circle(hx, hy, 0.3 * u, skin, lab)
        # neck, head
        canvas.rect(*p(-0.3, -6.4), *p(0.3, -5.8), skin, lab)
        canvas.circle(head[0], head[1], hr, skin, lab)
        self._draw_hair(canvas, head, u, pose, hair, lab)
        # eyes look a little towards the facing direction
        for side in (-1, 1):
            ex, ey = p(0.55 * side + 0.15, -7.55 + pose.nod)
            if pose.eyes_open:
                canvas.ellipse(ex, ey, 0.26 * u, 0.4 * u, self.look.eye, lab)
                canvas.circle(ex - 0.08 * u, ey - 0.15 * u, 0.1 * u, (255, 255, 255), lab)
            else:
                canvas.line(ex - 0.28 * u, ey, ex + 0.28 * u, ey, 0.1 * u, (40, 30, 30), lab)
        mx, my, _ = self.mouth(cam, pose)
        if pose.mouth > 0.05:
            canvas.ellipse(mx, my, 0.32 * u, (0.08 + 0.32 * pose.mouth) * u, (150, 40, 50), lab)
        else:
            canvas.line(mx - 0.25 * u, my, mx + 0.25 * u, my, 0.09 * u, (120, 40, 40), lab)

    def _draw_hair(self, canvas: Canvas, head, u: float, pose: Pose, color, lab: int) -> None:
        hx, hy = head
        sway = pose.hair_sway * u
        style = self.look.hair_style
        # cap over the top of the head
        canvas.ellipse(hx, hy - 0.55 * u, 1.7 * u, 1.15 * u, color, lab)
        if style == "spiky":
            for i in range(5):
                bx = hx + (i - 2) * 0.7 * u
                tip = (bx + sway * (0.6 + 0.2 * i), hy - 2.3 * u - (0.4 if i % 2 else 0.0) * u)
                canvas.polygon(
                    [(bx - 0.45 * u, hy - 1.2 * u), (bx + 0.45 * u, hy - 1.2 * u), tip], color, lab
                )
        elif style == "bob":
            for side in (-1, 1):
                canvas.polygon(
                    [
                        (hx + side * 1.25 * u, hy - 0.9 * u),
                        (hx + side * 1.8 * u, hy - 0.5 * u),
                        (hx + side * 1.7 * u + sway, hy + 0.9 * u),
                        (hx + side * 1.15 * u + sway, hy + 0.8 * u),
                    ],
                    color,
                    lab,
                )
        # fringe
        canvas.polygon(
            [
                (hx - 1.4 * u, hy - 0.7 * u),
                (hx + 1.4 * u, hy - 0.7 * u),
                (hx + 0.9 * u + sway * 0.3, hy - 0.15 * u),
                (hx + 0.2 * u, hy - 0.5 * u),
                (hx - 0.5 * u + sway * 0.3, hy - 0.1 * u),
            ],
            color,
            lab,
        )
