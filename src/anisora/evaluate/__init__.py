"""`anisora evaluate`: metrics for generated videos (VBench-style), over pluggable feature extractors.

Metrics: `anisora.evaluate.metrics`; feature extractors (offline default, DINO, CLIP, DreamSim adapters):
`anisora.evaluate.features`. torch and transformers are imported only by the adapters that need them.
"""

from __future__ import annotations

from .metrics import METRICS, Metric, Result, offline_metrics

__all__ = ["METRICS", "Metric", "Result", "offline_metrics"]
