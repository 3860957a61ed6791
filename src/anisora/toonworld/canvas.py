"""Drawing primitives that paint a frame and its foreground label mask with the same shapes.

Coordinates are float pixels; OpenCV draws them with 4 fractional bits so slow motion moves smoothly.
Edges are not anti-aliased on purpose: every coloured pixel of a character is inside its mask, exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4
_ONE = 1 << _SHIFT


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)


class Canvas:
    """An RGB frame plus an optional uint8 label mask; shapes drawn with `label` > 0 mark the mask too."""

    def __init__(self, image: np.ndarray, mask: np.ndarray | None = None):
        self.image = image
        self.mask = mask

    def _both(self, draw, color, label: int) -> None:
        draw(self.image, color)
        if label and self.mask is not None:
            draw(self.mask, label)

    def circle(self, cx, cy, r, color, label: int = 0) -> None:
        c, rr = _pt(cx, cy), max(round(r * _ONE), 1)
        self._both(lambda img, col: cv2.circle(img, c, rr, col, -1, cv2.LINE_8, _SHIFT), color, label)

    def ellipse(self, cx, cy, rx, ry, color, label: int = 0, angle: float = 0.0, thickness: int = -1) -> None:
        c = _pt(cx, cy)
        axes = (max(round(rx * _ONE), 1), max(round(ry * _ONE), 1))
        self._both(
            lambda img, col: cv2.ellipse(img, c, axes, angle, 0, 360, col, thickness, cv2.LINE_8, _SHIFT),
            color,
            label,
        )

    def polygon(self, points, color, label: int = 0) -> None:
        pts = (np.asarray(points, dtype=np.float64) * _ONE).round().astype(np.int32)[None]
        self._both(lambda img, col: cv2.fillPoly(img, pts, col, cv2.LINE_8, _SHIFT), color, label)

    def line(self, x0, y0, x1, y1, width: float, color, label: int = 0) -> None:
        """A thick segment with round caps (limbs), drawn as a polygon plus two discs."""
        dx, dy = x1 - x0, y1 - y0
        length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
        nx, ny = -dy / length * width / 2, dx / length * width / 2
        self.polygon(
            [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], color, label
        )
        self.circle(x0, y0, width / 2, color, label)
        self.circle(x1, y1, width / 2, color, label)

    def rect(self, x0, y0, x1, y1, color, label: int = 0) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color, label)
