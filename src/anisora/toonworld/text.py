"""Text sprites in the shipped font: burned-in subtitles and shop signs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path(__file__).parent / "assets" / "toonworld-sans.ttf"


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size)


@dataclass(frozen=True)
class TextSprite:
    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w, 1) float32 in [0, 1]; the sprite is cropped to alpha > 0

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


@lru_cache(maxsize=256)
def render_text(text: str, size: int, fill=(255, 255, 255), stroke=(0, 0, 0)) -> TextSprite:
    """Anti-aliased text with an outline (the usual subtitle look), cropped to its visible pixels."""
    font = _font(size)
    stroke_width = max(1, size // 10) if stroke is not None else 0
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke_width)
    canvas = Image.new("RGBA", (x1 - x0 + 2, y1 - y0 + 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (1 - x0, 1 - y0),
        text,
        font=font,
        fill=(*fill, 255),
        stroke_width=stroke_width,
        stroke_fill=None if stroke is None else (*stroke, 255),
    )
    canvas = canvas.crop(canvas.getbbox(alpha_only=True))
    arr = np.asarray(canvas)
    return TextSprite(np.ascontiguousarray(arr[..., :3]), arr[..., 3:].astype(np.float32) / 255.0)


def fit_text(text: str, max_width: int, size: int, min_size: int = 7, **style) -> TextSprite | None:
    """The largest sprite of at most `size` px that fits `max_width`; None if `min_size` is too wide."""
    while size >= min_size:
        sprite = render_text(text, size, **style)
        if sprite.width <= max_width:
            return sprite
        size -= 1
    return None


def paste(image: np.ndarray, sprite: TextSprite, x: int, y: int) -> tuple[int, int, int, int] | None:
    """Alpha-blend `sprite` with its top-left at (x, y); returns the painted box (x0, y0, x1, y1), clipped."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sprite.width, w), min(y + sprite.height, h)
    if x0 >= x1 or y0 >= y1:
        return None
    a = sprite.alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    src = sprite.rgb[y0 - y : y1 - y, x0 - x : x1 - x]
    region = image[y0:y1, x0:x1]
    region[:] = (src * a + region * (1.0 - a) + 0.5).astype(np.uint8)
    return x0, y0, x1, y1
