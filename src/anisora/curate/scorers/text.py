"""On-screen text: text coverage (the official AniSora filter score) and burned-in subtitles.

Text boxes come from the PP-OCR text *detector* that the `rapidocr` wheel ships (PP-OCRv6 det, ONNX, run by
onnxruntime): detection only, no angle classification and no recognition, `threads` intra-op threads (1: the
pipeline runs several workers side by side). `textdet.py` runs it as rapidocr does, with the same boxes,
without importing rapidocr. The detector is built on first use (or `load`) and is never pickled.

Per used frame (`frames` of the K sampled ones, evenly spread):

- an unsharp mask (`sharpen`, `sharpen_sigma`) restores glyph edges that decoding and scaling soften; then
  the frame is resized so that its short side is at least `min_side` (the detector misses text under about
  20 px: 320x180 goes up 1.5x) and its long side at most `limit_side` (854x480 goes down to 640x360);
  boxes are scaled back to analysis pixels. On clean ToonWorld frames at 320x180 the two lift the share
  of subtitle lines found from 77 % (frame as it is) to 99 %, at twice the cost;
- boxes taller than `max_box_height` of the frame are dropped: on flat cartoon pictures the DB detector now
  and then marks a whole region (a hillside, the sky) as one huge "text" block; real text lines are far
  lower than that (a subtitle line is 8-12 % of the frame height).

Scores:

- `text_area`: the official definition: sum of the text-box polygon areas / frame area x 100, per frame,
  averaged over the used frames. The boxes are the detector's quadrilaterals, which carry DB's margin
  ("unclip"): 1.3-1.9x the area of the tight box around the glyph pixels (more for small text).
- `text_subtitle`: burned-in subtitles. Per frame, boxes whose centre lies in the bottom band (lower
  `bottom_band` of the frame) or the top band (upper `top_band`) are grouped into lines (vertical centres
  within a third of a box height); in each line the widest run of neighbouring boxes (gaps of at most `gap`
  line heights) whose union is centred, within `center_tolerance` x width of the frame centre, is a
  candidate (a run, not the whole line, so that a sign beside a subtitle does not pull it off centre);
  stacked candidate lines that touch form one block (two-line subtitles). The clip has subtitles when, in
  one band, such a block appears in at least `persistence` of the used frames at a consistent vertical
  position: its outer edge (the bottom edge in the bottom band, the top edge in the top band, so that one-
  and two-line subtitles agree) within `position_tolerance` x height of one place. Scene text (shop signs,
  posters) moves with the camera, is seldom centred and may sit anywhere, so it rarely meets all of these;
  a sign that happens to sit centred in a band under a still camera does, and is the main false positive.
  Subtitles blurred to illegibility are missed: the detector gives them (almost) no text probability;
  on ToonWorld at 320x180 that is from a blur sigma of about 1.6 px on raw frames, 1.3 px after H.264.
- `text_subtitle_share`: the share of used frames that show that block (for the best band and position,
  also when it falls short of `persistence`; 0.0 without any candidate): the threshold can change later
  without re-scoring.
- `text_subtitle_band`: "bottom" | "top" | None.
- `text_subtitle_x0`, `text_subtitle_y0`, `text_subtitle_x1`, `text_subtitle_y1`: the union of the subtitle
  blocks over the frames that show them, in SOURCE pixels (ints, exclusive ends, clipped to the frame):
  keep the rows above `y0` (bottom band) or below `y1` (top band) to crop the subtitles off. None without.
- `text_scene_area`: `text_area` without the subtitle boxes (same units).
- `text_frames`: number of frames used.

With no frames at all the areas are None and there is no subtitle.

Cost (one thread, this project's 2-core CPU machines): about 40 ms per 320x180 frame and 80 ms per 854x480
frame (`limit_side: 480` halves the latter but lost 2 of 86 ToonWorld subtitle lines at 854x480); the
model's ONNX inference is 35 ms of the 40. Loading it takes about 0.1 s once per process.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from .base import ClipSamples, Score, Scorer, ScorerConfig, spread
from .textdet import CUDA_PROVIDER, TextDetector, execution_providers, model_path

BANDS = ("bottom", "top")
_BUILDING = threading.Lock()


class TextConfig(ScorerConfig):
    frames: Annotated[int, Field(ge=0)] = 4
    """frames used per clip, evenly spread over the K sampled ones; 0 = all"""
    limit_side: Annotated[int, Field(ge=32)] = 480
    """the detector sees the frame with its long side at most this (limit_type=max) ..."""
    min_side: Annotated[int, Field(ge=1)] = 270
    """... and the short side at least this (smaller frames are upscaled, cubic); at most limit_side"""
    sharpen: Annotated[float, Field(ge=0)] = 1.5
    """unsharp-mask amount applied before resizing (0 = off) ..."""
    sharpen_sigma: Annotated[float, Field(gt=0)] = 1.5
    """... with a Gaussian of this sigma in analysis pixels"""
    thresh: Annotated[float, Field(gt=0, lt=1)] = 0.3
    """detector: text probability that binarizes the map (rapidocr default)"""
    box_thresh: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """detector: minimum mean text probability inside a box (rapidocr default)"""
    unclip_ratio: Annotated[float, Field(gt=0)] = 1.6
    """detector: how far boxes are grown around the text kernel (rapidocr default)"""
    max_box_height: Annotated[float, Field(gt=0, le=1)] = 0.3
    """boxes taller than this share of the frame height are dropped (artefacts)"""
    bottom_band: Annotated[float, Field(gt=0, le=0.5)] = 0.25
    """subtitle bands: box centres in the lower 25 % ..."""
    top_band: Annotated[float, Field(gt=0, le=0.5)] = 0.2
    """... or the upper 20 % of the frame"""
    center_tolerance: Annotated[float, Field(ge=0, le=0.5)] = 0.03
    """|centre of the line - centre of the frame| <= this x width"""
    gap: Annotated[float, Field(ge=0)] = 1.5
    """a line is cut into segments at horizontal gaps wider than this x line height"""
    persistence: Annotated[float, Field(gt=0, le=1)] = 0.5
    """share of the used frames that must show the subtitle block"""
    position_tolerance: Annotated[float, Field(ge=0)] = 0.04
    """its outer edge stays within this x height of one place"""
    threads: Annotated[int, Field(ge=1)] = 1
    """onnxruntime intra-op threads"""
    device: Literal["cpu", "cuda"] = "cpu"
    """where the detector runs: cuda needs the onnxruntime-gpu wheel installed in place of onnxruntime"""

    @model_validator(mode="after")
    def _min_side_fits(self) -> TextConfig:
        if self.min_side > self.limit_side:
            raise ValueError(f"min_side must be at most limit_side ({self.limit_side}), got {self.min_side}")
        return self

    @model_validator(mode="after")
    def _provider_is_installed(self) -> TextConfig:
        if self.device == "cuda" and CUDA_PROVIDER not in execution_providers():
            raise ValueError(
                "device cuda needs onnxruntime's CUDA provider: install onnxruntime-gpu in place of "
                f"onnxruntime (this one offers {', '.join(execution_providers())})"
            )
        return self


@dataclass(frozen=True)
class Block:
    """Centred text in one band of one frame: union box (analysis pixels) and the boxes it is made of."""

    band: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    members: tuple[int, ...]  # indices into the frame's boxes

    @property
    def edge(self) -> float:
        return self.box[3] if self.band == "bottom" else self.box[1]


def polygon_area(quad: np.ndarray) -> float:
    return float(cv2.contourArea(np.asarray(quad, np.float32).reshape(-1, 1, 2)))


def _union(boxes) -> tuple[float, float, float, float]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _lines(boxes: np.ndarray, idx: list[int]) -> list[list[int]]:
    """Group boxes (rows x0, y0, x1, y1) into text lines: boxes whose vertical centres are within a third of
    the taller one's height of each other (single linkage), so a sign just above a subtitle stays apart."""
    lines: list[list[int]] = []
    for i in sorted(idx, key=lambda i: (boxes[i, 1] + boxes[i, 3]) / 2):
        cy, h = (boxes[i, 1] + boxes[i, 3]) / 2, boxes[i, 3] - boxes[i, 1]
        for line in lines:
            if any(
                abs((boxes[j, 1] + boxes[j, 3]) / 2 - cy) <= max(h, boxes[j, 3] - boxes[j, 1]) / 3
                for j in line
            ):
                line.append(i)
                break
        else:
            lines.append([i])
    return lines


def _centred_run(boxes: np.ndarray, line: list[int], width: int, cfg: TextConfig) -> list[int] | None:
    """The widest run of neighbouring boxes of a line (left to right, gaps at most `gap` x the line height)
    whose union is centred on the frame; None if there is none. Runs, not the whole line: a sign on the same
    line as a subtitle must not pull the subtitle off centre."""
    order = sorted(line, key=lambda i: boxes[i, 0])
    line_h = float(np.median(boxes[order, 3] - boxes[order, 1]))
    best, best_w = None, -1.0
    for a in range(len(order)):
        right = boxes[order[a], 2]
        for b in range(a, len(order)):
            if b > a:
                if boxes[order[b], 0] - right > cfg.gap * line_h:
                    break
                right = max(right, boxes[order[b], 2])
            x0 = min(boxes[i, 0] for i in order[a : b + 1])
            if abs((x0 + right) / 2 - width / 2) <= cfg.center_tolerance * width and right - x0 > best_w:
                best, best_w = order[a : b + 1], right - x0
    return best


def subtitle_blocks(boxes: np.ndarray, width: int, height: int, cfg: TextConfig) -> list[Block]:
    """Centred text blocks in the subtitle bands of one frame; `boxes` are axis-aligned (n, 4)."""
    blocks: list[Block] = []
    if not len(boxes):
        return blocks
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    for band in BANDS:
        inside = cy >= (1 - cfg.bottom_band) * height if band == "bottom" else cy <= cfg.top_band * height
        centred = []
        for line in _lines(boxes, list(np.flatnonzero(inside))):
            run = _centred_run(boxes, line, width, cfg)
            if run is not None:
                centred.append((_union(boxes[run]), run))
        centred.sort(key=lambda c: c[0][1])
        merged: list[tuple[tuple, list]] = []
        for box, run in centred:  # lines of one subtitle that touch (within half a line) form one block
            if merged:
                last, members = merged[-1]
                line_h = min(box[3] - box[1], last[3] - last[1])
                if box[1] - last[3] <= 0.5 * line_h:
                    merged[-1] = (_union([last, box]), members + run)
                    continue
            merged.append((box, list(run)))
        blocks += [Block(band, box, tuple(int(i) for i in members)) for box, members in merged]
    return blocks


def find_subtitle(
    frame_blocks: list[list[Block]], height: int, cfg: TextConfig
) -> tuple[str | None, float, list[Block | None]]:
    """The band and outer-edge position shown by the most frames: (band or None when below `persistence`,
    share of frames, the block of each frame at that position or None)."""
    n = len(frame_blocks)
    best: tuple[int, int, str, list] = (0, 0, "", [])
    tol = cfg.position_tolerance * height
    for rank, band in enumerate(BANDS):  # on a tie the bottom band wins
        candidates = [b for blocks in frame_blocks for b in blocks if b.band == band]
        for anchor in candidates:
            chosen: list[Block | None] = []
            for blocks in frame_blocks:
                near = [b for b in blocks if b.band == band and abs(b.edge - anchor.edge) <= tol]
                chosen.append(min(near, key=lambda b: abs(b.edge - anchor.edge)) if near else None)
            support = sum(b is not None for b in chosen)
            if (support, -rank) > (best[0], -best[1]):
                best = (support, rank, band, chosen)
    support, _, band, chosen = best
    share = support / n if n else 0.0
    if support == 0 or share < cfg.persistence:
        return None, share, [None] * n
    return band, share, chosen


def rapidocr_engine(cfg: TextConfig):
    """`rapidocr.RapidOCR` set up as this scorer's detector (`textdet.TextDetector` gives the same boxes
    without it)."""
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Global.use_det": True,
            "Global.use_cls": False,
            "Global.use_rec": False,
            "Global.use_preprocess_img": False,  # we size the frame ourselves
            "Global.use_vertical_padding": False,
            "Global.log_level": "error",  # it warns on every frame without text
            "Det.limit_type": "max",
            "Det.limit_side_len": cfg.limit_side,
            "Det.box_thresh": cfg.box_thresh,
            "Det.unclip_ratio": cfg.unclip_ratio,
            "Det.thresh": cfg.thresh,
            "EngineConfig.onnxruntime.intra_op_num_threads": cfg.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


class TextScorer(Scorer):
    """Scores: `text_area`, `text_scene_area` (percent of the frame), `text_subtitle` (bool),
    `text_subtitle_share`, `text_subtitle_band`, `text_subtitle_x0/y0/x1/y1` (source pixels), `text_frames`.
    Definitions in the module docstring."""

    name = "text"
    version = "1"
    Config = TextConfig
    outputs: ClassVar[dict[str, type]] = {
        "text_area": float,
        "text_scene_area": float,
        "text_subtitle": bool,
        "text_subtitle_share": float,
        "text_subtitle_band": str,
        **{f"text_subtitle_{k}": int for k in ("x0", "y0", "x1", "y1")},
        "text_frames": int,
    }

    thread_safe = True  # the detector is built once under a lock; ONNX Runtime sessions run concurrently

    def load(self) -> None:
        self._engine()

    def _engine(self):
        """The text detector: boxes (n, 4, 2) of a BGR frame, or None. Built once, on first use."""
        if getattr(self, "_detector", None) is None:
            with _BUILDING:
                if getattr(self, "_detector", None) is None:
                    self._detector = self._build()
        return self._detector

    def _build(self):
        cfg = self.config
        path = model_path()
        if path is not None:
            return TextDetector(
                path, cfg.limit_side, cfg.thresh, cfg.box_thresh, cfg.unclip_ratio, cfg.threads, cfg.device
            )
        ocr = rapidocr_engine(cfg)  # the model is not in the package: rapidocr fetches it
        return lambda bgr: getattr(ocr(bgr), "boxes", None)

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Text-box quadrilaterals (4, 2) float32 of one RGB uint8 frame in its pixels, huge boxes dropped."""
        h, w = rgb.shape[:2]
        cfg = self.config
        scale = min(max(cfg.min_side / min(h, w), 1.0), cfg.limit_side / max(h, w))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # PP-OCR models are trained on BGR (cv2.imread) images
        if cfg.sharpen > 0:
            soft = cv2.GaussianBlur(bgr, (0, 0), cfg.sharpen_sigma)
            bgr = cv2.addWeighted(bgr, 1.0 + cfg.sharpen, soft, -cfg.sharpen, 0)
        size = (max(round(w * scale), 1), max(round(h * scale), 1))
        if size != (w, h):
            interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
            bgr = cv2.resize(bgr, size, interpolation=interpolation)
        raw = self._engine()(bgr)
        if raw is None or not len(raw):
            return []
        quads = np.asarray(raw, np.float32).reshape(-1, 4, 2) / np.float32([size[0] / w, size[1] / h])
        tall = quads[:, :, 1].max(axis=1) - quads[:, :, 1].min(axis=1) > cfg.max_box_height * h
        return list(quads[~tall])

    def score(self, clip: ClipSamples) -> dict[str, Score]:
        cfg = self.config
        used = spread(len(clip.frames), cfg.frames)
        out: dict[str, Score] = {
            "text_area": None,
            "text_scene_area": None,
            "text_subtitle": False,
            "text_subtitle_share": 0.0,
            "text_subtitle_band": None,
            "text_subtitle_x0": None,
            "text_subtitle_y0": None,
            "text_subtitle_x1": None,
            "text_subtitle_y1": None,
            "text_frames": len(used),
        }
        if not used:
            return out
        h, w = clip.frames.shape[1:3]
        quads = [self.detect(clip.frames[i]) for i in used]
        areas = [np.array([polygon_area(q) for q in qs]) for qs in quads]
        boxes = [
            np.array([[*q.min(axis=0), *q.max(axis=0)] for q in qs], np.float64).reshape(-1, 4)
            for qs in quads
        ]
        blocks = [subtitle_blocks(b, w, h, cfg) for b in boxes]
        band, share, chosen = find_subtitle(blocks, h, cfg)
        frame_area = float(h * w)
        out["text_area"] = float(np.mean([a.sum() for a in areas])) * 100.0 / frame_area
        scene = [
            a.sum() - (a[list(block.members)].sum() if block is not None else 0.0)
            for a, block in zip(areas, chosen, strict=True)
        ]
        out["text_scene_area"] = max(float(np.mean(scene)) * 100.0 / frame_area, 0.0)
        out["text_subtitle_share"] = share
        if band is not None:
            x0, y0, x1, y1 = _union([b.box for b in chosen if b is not None])
            sx, sy = w / clip.width, h / clip.height  # analysis pixels per source pixel
            out.update(
                text_subtitle=True,
                text_subtitle_band=band,
                text_subtitle_x0=max(math.floor(x0 / sx), 0),
                text_subtitle_y0=max(math.floor(y0 / sy), 0),
                text_subtitle_x1=min(math.ceil(x1 / sx), clip.width),
                text_subtitle_y1=min(math.ceil(y1 / sy), clip.height),
            )
        return out
