"""Contact sheets: a grid of frames with a caption under each, for reports and quick looks."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def contact_sheet(
    images: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    columns: int = 4,
    tile_width: int | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Tiles (H, W, 3) uint8 images row by row on a dark background; every tile is resized to one size.

    Labels are drawn with OpenCV's Hershey font, so they must be ASCII.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    h0, w0 = images[0].shape[:2]
    tw = tile_width or w0
    th = round(h0 * tw / w0)
    label_h = 16 if labels else 0
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    sheet = np.full((rows * (th + label_h + gap) + gap, columns * (tw + gap) + gap, 3), 24, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = gap + r * (th + label_h + gap), gap + c * (tw + gap)
        sheet[y : y + th, x : x + tw] = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        if labels:
            cv2.putText(
                sheet,
                labels[i],
                (x + 2, y + th + 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.38,
                (235, 235, 235),
                1,
                cv2.LINE_AA,
            )
    return sheet
