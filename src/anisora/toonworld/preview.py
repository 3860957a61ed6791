"""A contact sheet of an episode as written: the middle frame of every shot, decoded from the mp4, with the
ground truth drawn over it (masks tinted, subtitle boxes red, scene-text boxes blue)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..media import contact_sheet, read_frames
from .episode import load_masks

_TINTS = np.array([[0, 0, 0], [40, 220, 90], [230, 60, 230], [240, 200, 40]], np.float32)


def ground_truth_sheet(json_path: str | Path, columns: int = 4) -> np.ndarray:
    json_path = Path(json_path)
    gt = json.loads(json_path.read_text(encoding="utf-8"))
    picks = [(s["start"] + s["end"]) // 2 for s in gt["shots"]]
    frames = read_frames(json_path.with_name(gt["video"]), picks)
    masks = load_masks(json_path.with_name(gt["masks"]))
    tiles, labels = [], []
    for shot, index, frame in zip(gt["shots"], picks, frames, strict=True):
        mask = masks[index]
        tint = _TINTS[np.minimum(mask, len(_TINTS) - 1)]
        tile = np.where(mask[..., None] > 0, frame * 0.55 + tint * 0.45, frame).astype(np.uint8)
        for kind, color in (("subtitles", (255, 40, 40)), ("scene_text", (40, 90, 255))):
            for x0, y0, x1, y1 in gt["frames"][index][kind]:
                cv2.rectangle(tile, (x0, y0), (x1 - 1, y1 - 1), color, 1)
        tiles.append(tile)
        flags = "".join((" LB" if shot["letterbox"] else "", " DEG" if shot["degrade"] else ""))
        labels.append(f"{shot['index']}: {shot['label']}/{shot['camera']}{flags}")
    return contact_sheet(tiles, labels, columns=columns, tile_width=max(gt["width"], 240))
