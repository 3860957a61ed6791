"""Keyframes interpolated along their optical flow: the pixel video a residual demo model starts from.

Between two keyframes a plain cross-fade shows both pictures at once (a moving character ghosts). Here each
in-between frame is both keyframes warped towards it along the flow between them and blended by time:
DIS optical flow (OpenCV) both ways between the keyframes, the flow from the in-between frame to each
keyframe approximated from those two (Jiang et al. 2018, Super SloMo, eq. 4), bilinear backward warping.
Before the first keyframe and after the last the nearest one is held (a still). On the held-out ToonWorld
bench (6 keyframe pairs 2 s apart at 160x96) the in-between frames come 3.7 dB closer to the truth than the
cross-fade's (21.4 against 17.7 dB PSNR); where a character crosses the picture in 2 s the flow is not found
and it gives the cross-fade (README, "demo model").
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import cv2
import numpy as np

UPSCALE = 2  # the flow is found on frames twice the size: the demo's 160x96 is small for DIS's 8-px patches


def keyframe_video(keyframes: Sequence[np.ndarray], frames: Sequence[int], num_frames: int) -> np.ndarray:
    """(num_frames, H, W, 3) float32 in [0, 255]: `keyframes` (uint8 H x W x 3) at pixel frames `frames`
    (increasing), interpolated along their flow in between and held beyond the first and the last."""
    if len(keyframes) != len(frames) or not len(frames):
        raise ValueError("one frame index per keyframe, and at least one keyframe")
    if any(b <= a for a, b in pairwise(frames)) or frames[0] < 0 or frames[-1] >= num_frames:
        raise ValueError(f"keyframe indices must increase within 0-{num_frames - 1}, got {list(frames)}")
    images = [np.asarray(k, np.float32) for k in keyframes]
    video = np.empty((num_frames, *images[0].shape), np.float32)
    video[: frames[0] + 1] = images[0]
    video[frames[-1] :] = images[-1]
    for (start, first), (end, last) in pairwise(zip(frames, keyframes, strict=True)):
        forward, backward = optical_flow(first, last), optical_flow(last, first)
        for index in range(start + 1, end):
            video[index] = between(first, last, (index - start) / (end - start), forward, backward)
        video[end] = np.asarray(last, np.float32)
    return video


def optical_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow from `source` to `target` (uint8 RGB): where each source pixel moves, in pixels."""
    grey = [cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in (source, target)]
    grey = [cv2.resize(g, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC) for g in grey]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)  # refine down to the full resolution
    dis.setGradientDescentIterations(50)
    flow = dis.calc(grey[0], grey[1], None)
    height, width = source.shape[:2]
    return cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA) / UPSCALE


def between(
    first: np.ndarray, last: np.ndarray, t: float, forward: np.ndarray, backward: np.ndarray
) -> np.ndarray:
    """The frame at time `t` in (0, 1) between `first` and `last`, given the flows between them."""
    to_first = -(1 - t) * t * forward + t * t * backward
    to_last = (1 - t) ** 2 * forward - t * (1 - t) * backward
    return (1 - t) * _warp(first, to_first) + t * _warp(last, to_last)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at each pixel plus `flow` (backward warping), edges repeated."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(
        np.asarray(image, np.float32),
        xs + flow[..., 0],
        ys + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
