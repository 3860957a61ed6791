"""The PP-OCR text detector that the `rapidocr` wheel ships, run the way `rapidocr.RapidOCR` runs it for
detection only, without importing rapidocr: its package loads YAML model tables, `requests`, the recogniser
and OmegaConf configurations, about 0.6 s of CPU per process before the model loads, for a run that needs
one ONNX session. Same model file, same ONNX Runtime session options, and the same steps in the same
numeric order as rapidocr's `TextDetector` (Apache-2.0): resize to multiples of 32 (long side at most
`limit_side`), normalise, run, then DB post-processing (binarise, dilate 2x2, contours, minimum-area boxes
scored by their mean probability, unclip with pyclipper, order and clip the corners) and rapidocr's
top-to-bottom, left-to-right box order; so the boxes equal rapidocr's exactly (tested).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

MODEL = "PP-OCRv6_det_small.onnx"  # rapidocr's default detector (Det: PP-OCRv6, small, ch)
CUDA_PROVIDER = "CUDAExecutionProvider"
_MAX_CANDIDATES = 1000
_MIN_SIZE = 3
_LINE_STEP = 10  # rapidocr's sorted_boxes: a new line from this many pixels lower
_DILATION = np.array([[1, 1], [1, 1]])
# rapidocr's normalisation, (pixel as float32 / 255 - mean) / std in float64, then float32, of every uint8
_NORMALISED = ((np.arange(256).astype("float32") * (1 / 255.0) - 0.5) / 0.5).astype(np.float32)


def execution_providers() -> list[str]:
    """The execution providers the installed onnxruntime offers (the CPU one; CUDA's with onnxruntime-gpu)."""
    import onnxruntime as ort

    return ort.get_available_providers()


def model_path() -> Path | None:
    """The detector model inside the installed rapidocr package (found without importing it), or None."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL
    return path if path.is_file() else None


class TextDetector:
    """Text-box quadrilaterals of a BGR uint8 image, as `RapidOCR(params)(image).boxes` with detection only
    (no preprocessing, no padding); None when it finds none."""

    def __init__(
        self,
        path: Path,
        limit_side: int,
        thresh: float,
        box_thresh: float,
        unclip: float,
        threads: int,
        device: str = "cpu",
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.enable_cpu_mem_arena = False
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if 1 <= threads <= (os.cpu_count() or 1):
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = [("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})]
        if device == "cuda":
            providers.insert(0, CUDA_PROVIDER)  # nodes CUDA lacks fall back to the CPU
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.limit_side, self.thresh, self.box_thresh, self.unclip_ratio = (
            limit_side,
            thresh,
            box_thresh,
            unclip,
        )

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        height, width = image.shape[:2]
        tensor = self._prepare(image)
        if tensor is None:
            return None
        pred = self.session.run(self.outputs, {self.input: tensor})[0]
        boxes = self._boxes(pred, height, width)
        if len(boxes) < 1:
            return None
        boxes = _sorted_boxes(boxes)
        boxes = np.where(boxes < 0, 0, boxes)  # rapidocr maps boxes back to the original image
        boxes[..., 0] = np.where(boxes[..., 0] > width, width, boxes[..., 0])
        boxes[..., 1] = np.where(boxes[..., 1] > height, height, boxes[..., 1])
        return boxes

    def _prepare(self, image: np.ndarray) -> np.ndarray | None:
        h, w = image.shape[:2]
        ratio = 1.0
        if max(h, w) > self.limit_side:
            ratio = float(self.limit_side) / h if h > w else float(self.limit_side) / w
        resize_h = int(round(int(h * ratio) / 32) * 32)
        resize_w = int(round(int(w * ratio) / 32) * 32)
        if resize_w <= 0 or resize_h <= 0:
            return None
        image = cv2.resize(image, (resize_w, resize_h))
        return _NORMALISED[np.ascontiguousarray(image.transpose((2, 0, 1)))][None]  # (1, 3, H, W)

    def _boxes(self, pred: np.ndarray, dest_height: int, dest_width: int) -> np.ndarray:
        """DB post-processing of the (1, 1, H, W) probability map: boxes (n, 4, 2), image pixels, float32."""
        import pyclipper
        from shapely.geometry import Polygon

        pred = pred[:, 0, :, :]
        bitmap = cv2.dilate(np.array((pred > self.thresh)[0]).astype(np.uint8), _DILATION)
        pred = pred[0]
        height, width = bitmap.shape
        contours = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[
            -2
        ]
        kept = []
        for contour in contours[:_MAX_CANDIDATES]:
            points, side = _mini_box(contour)
            if side < _MIN_SIZE:
                continue
            if self.box_thresh > _box_score(pred, points.reshape(-1, 2)):
                continue
            poly = Polygon(points)
            distance = poly.area * self.unclip_ratio / poly.length
            offset = pyclipper.PyclipperOffset()
            offset.AddPath(points, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
            box, side = _mini_box(np.array(offset.Execute(distance)).reshape((-1, 1, 2)))
            if side < _MIN_SIZE + 2:
                continue
            box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_width), 0, dest_width)
            box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_height), 0, dest_height)
            kept.append(box.astype(np.int32))
        boxes = []
        for box in np.array(kept, dtype=np.int32):
            box = _clockwise(box)
            for corner in range(box.shape[0]):  # clip to the image, as integers
                box[corner, 0] = int(min(max(box[corner, 0], 0), dest_width - 1))
                box[corner, 1] = int(min(max(box[corner, 1], 0), dest_height - 1))
            if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
                continue
            boxes.append(box)
        return np.array(boxes)


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle's corners (top-left, top-right, bottom-right, bottom-left), short side."""
    rect = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rect)), key=lambda x: x[0])
    first, fourth = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    second, third = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return np.array([points[first], points[second], points[third], points[fourth]]), min(rect[1])


def _box_score(bitmap: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the box (rapidocr's "fast" score)."""
    h, w = bitmap.shape[:2]
    box = box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(bitmap[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def _clockwise(points: np.ndarray) -> np.ndarray:
    """Corners ordered top-left, top-right, bottom-right, bottom-left (float32)."""
    by_x = points[np.argsort(points[:, 0]), :]
    left, right = by_x[:2, :], by_x[2:, :]
    top_left, bottom_left = left[np.argsort(left[:, 1]), :]
    top_right, bottom_right = right[np.argsort(right[:, 1]), :]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype="float32")


def _sorted_boxes(boxes: np.ndarray) -> np.ndarray:
    """Top to bottom (stable), then left to right within lines that start `_LINE_STEP` pixels apart."""
    y = boxes[:, 0, 1]
    order = np.argsort(y, kind="stable")
    by_y = boxes[order]
    lines = np.concatenate([[0], np.cumsum((np.diff(y[order]) >= _LINE_STEP).astype(np.int32))])
    return by_y[np.lexsort((by_y[:, 0, 0], lines))]
