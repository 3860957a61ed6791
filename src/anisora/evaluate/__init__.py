"""`anisora evaluate`: metrics for generated videos (VBench-style), over pluggable feature extractors;
benchmark cases and runs, reports, comparisons and blind A/B rating.

Metrics: `anisora.evaluate.metrics`; feature extractors (offline default, DINO, CLIP, DreamSim adapters):
`anisora.evaluate.features`; bench files: `cases`; runs: `runner`; results, report, compare, rating.
Imports are lazy (the CLI loads this package on every command): torch and transformers are imported only by
the adapters that need them.
"""

from __future__ import annotations

__all__ = ["METRICS", "Metric", "Result", "offline_metrics"]


def __getattr__(name: str):
    if name in __all__:
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
