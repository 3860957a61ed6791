"""Comparing frames: PSNR, the one definition the trainer's monitors, the model card and `anisora evaluate`
share."""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP = 100.0  # dB for identical inputs, instead of infinity


def psnr(a: np.ndarray, b: np.ndarray, cap: float = PSNR_CAP) -> float:
    """PSNR in dB, 10 log10(255^2 / MSE) over every element of two uint8 arrays of one shape (an image, a
    clip, or the pixels of a region), at most `cap`."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return cap if mse == 0 else min(cap, 10 * math.log10(255.0**2 / mse))
