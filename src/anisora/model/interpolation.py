"""Keyframes interpolated along their optical flow: the pixel video a residual demo model starts from.

Between two keyframes a plain cross-fade shows both pictures at once (a moving character ghosts). Here each
in-between frame is both keyframes warped towards it along the flow between them and blended by time: the
flow from the in-between frame to each keyframe approximated from the flows both ways between the keyframes
(Jiang et al. 2018, Super SloMo, eq. 4), bilinear backward warping. Before the first keyframe and after the
last the nearest one is held (a still).

The flow between the keyframes is the camera's motion and then what moves against it: an affine motion of the
whole picture (OpenCV's ECC, Evangelidis and Psarakis 2008, started from phase correlation's shift, kept
where it explains the picture better than standing still), then DIS optical flow between the first keyframe
and the second brought back by that motion. DIS alone loses a pan of a third of the picture. On the held-out
ToonWorld bench's 36 keyframe pairs (2 s apart at 160x96) the in-between frames come to 24.72 dB PSNR
against the truth (18.58 dB inside the moving region), where DIS alone gave 22.44 (17.04) and the
cross-fade gives 20.39 (14.93).
"""

from __future__ import annotations

import contextlib
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
    """(H, W, 2) flow from `source` to `target` (uint8 RGB): where each source pixel moves, in pixels; the
    camera's motion plus the motion against it (module docstring)."""
    camera = camera_motion(source, target)
    rest = local_flow(source, _warp(target, camera))
    # a source pixel moves by `rest` to a point of the brought-back target, which the camera moved further
    return rest + _warp(camera, rest)


def camera_motion(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow of the affine motion that maps `source` onto `target` best (ECC from phase correlation's
    shift; the shift alone where ECC does not converge), or zero where that motion explains the picture no
    better than standing still (mean absolute grey difference), so a figure moving over a still set is left
    to the local flow instead of being taken for the camera."""
    grey = [np.float32(cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY)) for x in (source, target)]
    (dx, dy), _ = cv2.phaseCorrelate(*grey)
    affine = np.float32([[1, 0, dx], [0, 1, dy]])
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    # ECC finds `affine` with target(affine @ p) ~ source(p): where each source pixel goes; where it does not
    # converge (a flat picture, a cut) the shift is kept
    with contextlib.suppress(cv2.error):
        _, affine = cv2.findTransformECC(grey[0], grey[1], affine, cv2.MOTION_AFFINE, criteria, None, 5)
    height, width = grey[0].shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    moved_x = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    moved_y = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    flow = np.dstack([moved_x - xs, moved_y - ys]).astype(np.float32)
    still = np.mean(np.abs(grey[1] - grey[0]))
    moved = np.mean(np.abs(_warp(grey[1], flow) - grey[0]))
    return flow if moved < still else np.zeros_like(flow)


def local_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 2) DIS optical flow from `source` to `target` (uint8 or float RGB), found at twice the size."""
    grey = [cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_RGB2GRAY) for x in (source, target)]
    grey = [
        cv2.resize(
            np.uint8(g.clip(0, 255).round()), None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC
        )
        for g in grey
    ]
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
