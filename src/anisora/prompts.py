"""AniSora's prompt suffix: how the official models read the aesthetic and motion scores from text.

Curation writes it into training prompts; generation appends it to the user's prompt. One definition for both.
"""

from __future__ import annotations

import math

from .errors import InputError

_TERMINAL = (".", "!", "?", "。", "！", "？", "…")


def _one_decimal(x: float, what: str) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise InputError(f"{what} score must be a number, got {x!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{what} score must be finite, got {x!r}")
    return f"{float(f'{value:.1f}') + 0.0:.1f}"  # + 0.0 turns "-0.0" into "0.0"


def training_prompt(caption: str, aesthetic: float, motion: float) -> str:
    """`caption` + " aesthetic score: X.X. motion score: X.X." as in the official AniSora training prompts.

    Scores are written with one decimal by Python's `f"{x:.1f}"`: the decimal nearest to the stored binary
    value, exact ties to even. So 4.73 -> "4.7", 2.25 -> "2.2" (2.25 is exact in binary: a tie, to even),
    2.35 -> "2.4" (stored as 2.35000000000000008882), 0.05 -> "0.1", 4.75 -> "4.8" (a tie, to even), and
    -0.04 -> "0.0". The caption is stripped; a caption not ending in sentence punctuation gets a full stop, so
    "A girl waves" and "A girl waves." give the same prompt. An empty caption gives the suffix alone.
    """
    a, m = _one_decimal(aesthetic, "aesthetic"), _one_decimal(motion, "motion")
    suffix = f"aesthetic score: {a}. motion score: {m}."
    caption = " ".join(str(caption or "").split())
    if not caption:
        return suffix
    if not caption.endswith(_TERMINAL):
        caption += "."
    return f"{caption} {suffix}"
