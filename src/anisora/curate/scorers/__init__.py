"""Clip scorers (see base.py for the interface) and the registry the config names them by."""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import InputError
from .base import ClipSamples, FramePair, Scorer

# name -> "module:Class"; imported on demand so that heavy adapters cost nothing unless configured.
REGISTRY = {
    "duration": "anisora.curate.scorers.duration:DurationScorer",
    "motion": "anisora.curate.scorers.motion:MotionScorer",
    "borders": "anisora.curate.scorers.borders:BordersScorer",
    "text": "anisora.curate.scorers.text:TextScorer",
    "quality": "anisora.curate.scorers.quality:QualityScorer",
    "aesthetic": "anisora.curate.scorers.aesthetic:LaionAestheticScorer",
    "dedup": "anisora.curate.scorers.dedup:DedupScorer",
}


def scorer_class(name: str) -> type[Scorer]:
    if name not in REGISTRY:
        raise InputError(f"unknown scorer {name!r}; available: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_scorers(sections: dict[str, dict[str, Any]]) -> list[Scorer]:
    """Scorers in config order; `duration` is always present (the duration filter needs it)."""
    names = ["duration", *[n for n in sections if n != "duration"]]
    return [scorer_class(name).from_dict(sections.get(name)) for name in names]


__all__ = ["REGISTRY", "ClipSamples", "FramePair", "Scorer", "build_scorers", "scorer_class"]
