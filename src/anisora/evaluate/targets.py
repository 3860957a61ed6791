"""A trained model's figures and targets, read from finished `anisora evaluate` runs on the held-out ToonWorld
bench (`anisora evaluate toonworld`): the model's own run and the model-free answers of `anisora evaluate
baseline` on the same bench (the true clip through the model's VAE, a cross-fade of the keyframes, the still
first frame). Nothing here generates or scores: the figures are the runs' task means.

- first frame: the i2v cases' `guide_fidelity` (PSNR of frame 0 against its guide); its ceiling is the round
  trip's;
- the VAE: the round trip's own first frame (the true clip through the model's VAE alone);
- in-betweens: the interpolation cases' `psnr_unguided` (frames other than the two keyframes) and
  `psnr_moving` (the same inside the truth's moving region, where a cross-fade ghosts);
- motion region: the region cases' `motion_mask_precision`, defined only for the clips that move (a still clip
  has no moving pixel to place), so it is shown with how many of the region cases moved;
- motion control: `summary.json`'s `motion_control` over the motion sweep (Spearman, share of shots rising).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InputError
from .results import load_run

FIRST_FRAME_MIN_DB = 28.0
ROUND_TRIP_GAP_DB = 0.3  # a given frame 0 comes back within this of the VAE's own round trip
VAE_MIN_DB = 30.0  # one frame through the VAE alone
INTERPOLATION_GAIN_DB = 2.0  # over the cross-fade
MASK_PRECISION_MIN = 0.9
MOTION_SPEARMAN_MIN = 0.8
MOTION_RISING_MIN = 0.9
CLIP_SECONDS_MAX = 20.0  # a 2 s clip with the CLI's defaults, on the machine the card is written on
MODEL_MB_MAX = 40.0


@dataclass(frozen=True)
class RunFigures:
    """One evaluate run's figures (None where the run has no such cases)."""

    name: str
    first_frame: float | None
    between: float | None
    between_moving: float | None
    mask_precision: float | None
    motion_spearman: float | None
    motion_rising: float | None
    cases: int | None = None  # how many bench cases the run answered
    mask_moving: int | None = None  # the region cases whose clip moved (mask_precision is their mean)
    mask_cases: int | None = None  # the region cases

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str], name: str | None = None) -> RunFigures:
        info, _, summary = load_run(run_dir)
        by_task = summary.get("by_task") or {}

        def mean(task: str, metric: str) -> float | None:
            return ((by_task.get(task) or {}).get(metric) or {}).get("mean")

        control = summary.get("motion_control") or {}
        region = by_task.get("region") or {}
        return cls(
            name or str(info.get("name") or Path(run_dir).name),
            mean("i2v", "guide_fidelity"),
            mean("interpolation", "psnr_unguided"),
            mean("interpolation", "psnr_moving"),
            mean("region", "motion_mask_precision"),
            control.get("spearman"),
            control.get("rising_share"),
            summary.get("cases"),
            (region.get("motion_mask_precision") or {}).get("n", 0) if region else None,
            max((m.get("n", 0) for m in region.values()), default=None),
        )

    @classmethod
    def recorded(cls, figures: str | os.PathLike[str], run: str, name: str) -> RunFigures:
        """The run named `run` that a model card recorded in its `figures` (figures.json), as `name`."""
        try:
            runs = {r["name"]: r for r in json.loads(Path(figures).read_text(encoding="utf-8"))["runs"]}
            if run in runs:
                return cls(**(runs[run] | {"name": name}))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"{figures}: not a model card's figures.json: {error}") from None
        raise InputError(f"{figures} records no run {run!r}; it has {', '.join(map(repr, runs))}")

    @property
    def mask_share(self) -> str:
        """ "8 of 36 region clips move", or "" without region cases."""
        return "" if not self.mask_cases else f"{self.mask_moving} of {self.mask_cases} region clips move"


@dataclass(frozen=True)
class Target:
    figure: str
    measured: str
    without_model: str  # what a model-free answer gets, for scale
    goal: str
    met: bool | None  # None: not measured


def judge(
    model: RunFigures,
    round_trip: RunFigures | None,
    crossfade: RunFigures | None,
    clip_seconds: float | None,
    model_mb: float,
) -> list[Target]:
    """Every target, measured or not."""
    trip = round_trip.first_frame if round_trip else None
    first_met = _both(
        model.first_frame, trip, lambda m, t: m >= FIRST_FRAME_MIN_DB and m >= t - ROUND_TRIP_GAP_DB
    )
    rows = [
        Target(
            "frame 0 given, PSNR against it (i2v)",
            _db(model.first_frame),
            f"VAE round trip {_db(trip)}",
            f">= {FIRST_FRAME_MIN_DB:g} dB and within {ROUND_TRIP_GAP_DB:g} dB of the round trip",
            first_met,
        ),
        _threshold("the VAE alone: frame 0 through it (the round trip)", trip, VAE_MIN_DB, "{:.2f} dB"),
    ]
    for figure, field in (
        ("in-between frames PSNR, first + last given", "between"),
        ("the same inside the moving region", "between_moving"),
    ):
        value, fade = getattr(model, field), getattr(crossfade, field) if crossfade else None
        rows.append(
            Target(
                figure,
                _db(value) + (f" ({value - fade:+.2f} dB)" if None not in (value, fade) else ""),
                f"cross-fade {_db(fade)}",
                f"cross-fade + {INTERPOLATION_GAIN_DB:g} dB",
                _both(value, fade, lambda v, f: v >= f + INTERPOLATION_GAIN_DB),
            )
        )
    mask = _threshold(
        "motion-mask precision with the mask", model.mask_precision, MASK_PRECISION_MIN, "{:.3f}"
    )
    if model.mask_share and model.mask_precision is not None:
        mask = replace(mask, measured=f"{mask.measured} ({model.mask_share})")
    rows += [
        mask,
        _threshold(
            "motion control: Spearman, asked vs measured",
            model.motion_spearman,
            MOTION_SPEARMAN_MIN,
            "{:.2f}",
        ),
        _threshold(
            "motion control: shots rising with the asked score",
            model.motion_rising,
            MOTION_RISING_MIN,
            "{:.0%}",
        ),
        Target(
            "a 2 s clip with the CLI's defaults (keyframes), this machine",
            "not measured" if clip_seconds is None else f"{clip_seconds:.1f} s",
            "",
            f"<= {CLIP_SECONDS_MAX:g} s",
            None if clip_seconds is None else clip_seconds <= CLIP_SECONDS_MAX,
        ),
        Target(
            "model size on disk",
            f"{model_mb:.1f} MB",
            "",
            f"<= {MODEL_MB_MAX:g} MB",
            model_mb <= MODEL_MB_MAX,
        ),
    ]
    return rows


def directory_mb(path: str | os.PathLike[str]) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def time_default_clip(pipe, first, last, prompt: str) -> float:
    """Seconds to make a 2 s keyframe clip as `anisora generate --image --guide last:` does by default."""
    from ..model.request import GuideSpec, Request
    from ..model.sampling import sample

    request = Request(guides=(GuideSpec(first, 0), GuideSpec(last, "last")), prompt=prompt, seconds=2.0)
    started = time.perf_counter()
    sample(pipe, request)
    return time.perf_counter() - started


def _threshold(figure: str, value: float | None, low: float, style: str) -> Target:
    if value is None:
        return Target(figure, "not measured", "", f">= {style.format(low)}", None)
    shown = style.format(value)
    if value < low and shown == style.format(low):  # rounded up to the goal it misses: say by how much
        shown = f"{value:.4f} (rounds to {shown})"
    return Target(figure, shown, "", f">= {style.format(low)}", value >= low)


def _both(a: float | None, b: float | None, test) -> bool | None:
    return None if a is None or b is None else bool(test(a, b))


def _db(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f} dB"
