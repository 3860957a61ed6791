"""Talking mouths ("lip flap"): a drawn character's mouth opened and closed on its voice, frame by frame.

Anime animates speech with two or three mouth drawings (closed, half open, open) switched on the voice, not
with a lip shape per phoneme. `lip_flap` turns a voice's loudness per video frame into those three openings;
`Mouth.find` reads the mouth in the region a user brushed over it on the panel, and `Mouth.draw` drives that
region of every frame:

- closed: the region as the panel shows it, pasted with a feathered edge, so whatever a video model did to
  the mouth never contradicts the voice (a silent character keeps its mouth shut);
- half open / open: over it, a dark rounded opening centred on the panel's drawn mouth (the pixels in the
  region clearly darker than the rest), a little wider than it, 0.4 / 0.8 as high as wide, in its colour,
  anti-aliased and kept inside the feathered region.

The region stays where it is on the panel: it suits shots whose faces stay put (the README's measurements).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError

CLOSED, HALF, OPEN = 0.0, 0.5, 1.0
QUIET, LOUD = 0.15, 0.55  # shares of the voice's loud level: below QUIET closed, from LOUD open, between half
HOLD_S = 1 / 12  # while speaking no opening is held longer than this (anime's drawings "on twos" at 24 fps)
DARKER = 40  # a drawn mouth is this many luminance steps (of 255) darker than its region's median
DEFAULT_COLOUR = (110, 30, 40)  # the opening's colour where no drawn mouth is found: a dark red
WIDEN = 1.2  # the opening's width over the drawn mouth's, so that it covers the line's ends
HEIGHTS = {HALF: 0.4, OPEN: 0.8}  # the opening's height over its width
_SUPERSAMPLE = 4  # the opening's edge is anti-aliased by 4x4 samples per pixel


def lip_flap(envelope: np.ndarray, fps: float) -> np.ndarray:
    """The mouth opening per frame (CLOSED, HALF or OPEN) for a voice's per-frame loudness: closed in
    silence, else half or open by the level against the voice's loud level (its 95th percentile while it
    sounds). While the voice goes on, each drawing stays up for `HOLD_S` (1 frame at 8 fps, 2 at 24) and then
    changes, to the other one when the level asks for the same: anime mouths flap rather than hold."""
    level = np.asarray(envelope, np.float64)
    if level.ndim != 1 or not np.isfinite(level).all() or (level < 0).any():
        raise InputError("a loudness envelope is a 1-D array of finite levels >= 0")
    sounding = level[level > 0]
    if sounding.size == 0:
        return np.zeros(len(level))
    share = level / np.percentile(sounding, 95)
    wanted = np.where(share < QUIET, CLOSED, np.where(share < LOUD, HALF, OPEN))
    hold = max(1, round(fps * HOLD_S))
    shapes, held = wanted.copy(), 1
    for t in range(1, len(shapes)):
        if wanted[t] == CLOSED:
            held = 1
        elif shapes[t - 1] != CLOSED and held < hold:  # a drawing stays up for `hold` frames
            shapes[t], held = shapes[t - 1], held + 1
        else:  # then the wanted one, or the other one when the wanted one is already up
            shapes[t] = wanted[t] if wanted[t] != shapes[t - 1] else HALF + OPEN - wanted[t]
            held = 1
    return shapes


@dataclass(frozen=True)
class Mouth:
    """A mouth region of a video's frames, read from the panel; see the module docstring."""

    box: tuple[int, int, int, int]  # y0, x0, y1, x1: where the feathered region lies in the frame
    alpha: np.ndarray  # (h, w) float32: the feathered region inside the box
    patch: np.ndarray  # (h, w, 3) float32: the panel inside the box
    colour: np.ndarray  # (3,) float32: the opening's colour
    openings: dict[float, np.ndarray]  # HALF / OPEN: the opening's coverage (h, w), inside the region

    @classmethod
    def find(cls, panel: np.ndarray, region: np.ndarray) -> Mouth:
        """The mouth brushed as `region` ((H, W) bool) on `panel` ((H, W, 3) uint8, the video's size)."""
        region = np.asarray(region, bool)
        if panel.ndim != 3 or panel.shape[2] != 3 or region.shape != panel.shape[:2]:
            raise InputError(f"a mouth region {region.shape} must have the frame's shape {panel.shape[:2]}")
        if not region.any():
            raise InputError("the mouth region is empty: brush over the character's mouth")
        sigma = max(0.75, min(region.shape) / 200)  # 0.75 px at 96 px high, 3.6 px at 720
        feathered = cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma)
        rows, columns = np.nonzero(feathered > 1 / 255)
        y0, x0, y1, x1 = rows.min(), columns.min(), rows.max() + 1, columns.max() + 1
        alpha = feathered[y0:y1, x0:x1]
        patch = panel[y0:y1, x0:x1].astype(np.float32)
        (cy, cx), half_width, colour = _drawn_mouth(panel, region)
        rx = max(WIDEN * half_width, 1.0)
        openings = {
            shape: _ellipse(alpha.shape, cy - y0, cx - x0, rx, max(height * rx, 0.75)) * alpha
            for shape, height in HEIGHTS.items()
        }
        return cls((y0, x0, y1, x1), alpha, patch, np.asarray(colour, np.float32), openings)

    def draw(self, frames: np.ndarray, openings: np.ndarray) -> np.ndarray:
        """`frames` ((F, H, W, 3) uint8) with the region driven by `openings` (F values, each CLOSED, HALF or
        OPEN): a new array."""
        openings = np.asarray(openings, np.float64)
        if openings.shape != (len(frames),) or not np.isin(openings, (CLOSED, HALF, OPEN)).all():
            raise InputError(f"mouth openings must be {len(frames)} values of 0, 0.5 or 1 (one per frame)")
        y0, x0, y1, x1 = self.box
        out = frames.copy()
        region = out[:, y0:y1, x0:x1].astype(np.float32)
        alpha = self.alpha[None, ..., None]
        region = region * (1 - alpha) + self.patch[None] * alpha
        for shape, cover in self.openings.items():
            drawn = openings == shape
            region[drawn] = region[drawn] * (1 - cover[..., None]) + self.colour * cover[..., None]
        out[:, y0:y1, x0:x1] = np.clip(np.round(region), 0, 255).astype(np.uint8)
        return out


def _drawn_mouth(panel: np.ndarray, region: np.ndarray) -> tuple[tuple[float, float], float, tuple]:
    """((y, x) centre, half width, colour) of the mouth drawn in the region: of the clearly darker pixels,
    the connected group nearest the region's centre. When nothing in it is darker: the region's centre, half
    its width wide, in DEFAULT_COLOUR."""
    luminance = cv2.cvtColor(panel, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dark = region & (luminance < np.median(luminance[region]) - DARKER)
    rows, columns = np.nonzero(region)
    centre = np.array([rows.mean(), columns.mean()])
    count, labels, _, centroids = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    if count < 2:
        return tuple(centre), (columns.max() - columns.min() + 1) / 4, DEFAULT_COLOUR
    nearest = 1 + int(np.argmin(np.hypot(*(centroids[1:, ::-1] - centre).T)))
    ys, xs = np.nonzero(labels == nearest)
    colour = tuple(np.median(panel[ys, xs], axis=0))
    return (ys.mean(), xs.mean()), (xs.max() - xs.min() + 1) / 2, colour


def _ellipse(shape: tuple[int, int], cy: float, cx: float, rx: float, ry: float) -> np.ndarray:
    """The share of each pixel of an (h, w) grid inside the ellipse at (cy, cx) with radii (rx, ry); a pixel
    (y, x) covers [y - 0.5, y + 0.5] x [x - 0.5, x + 0.5]."""
    offsets = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    ys = (np.arange(shape[0])[:, None] + offsets[None]).reshape(-1)
    xs = (np.arange(shape[1])[:, None] + offsets[None]).reshape(-1)
    inside = ((xs[None] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1
    return inside.reshape(shape[0], _SUPERSAMPLE, shape[1], _SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)
