"""Every scorer returns exactly the scores it declares in `outputs`, each of the declared type or None: the
manifest's typed columns are built from these declarations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from anisora.curate.scorers import REGISTRY, ClipSamples, FramePair, scorer_class
from anisora.curate.scorers.aesthetic import AestheticConfig, LaionAestheticScorer


def _clip(count: int) -> ClipSamples:
    rng = np.random.default_rng(0)
    frames = np.zeros((count, 96, 160, 3), np.uint8)
    frames[:, 12:84] = rng.integers(0, 255, (count, 72, 160, 3), dtype=np.uint8)  # letterboxed noise
    pairs = tuple(FramePair(a, b, 1) for a, b in itertools.pairwise(frames))
    return ClipSamples(
        source="synthetic",
        fps=24.0,
        width=160,
        height=96,
        start_frame=0,
        end_frame=48,
        frames=frames,
        frame_indices=tuple(range(0, 12 * count, 12)),
        pairs=pairs,
        held=np.zeros(47, bool),
    )


def _assert_declared(scorer, scores: dict) -> None:
    assert set(scores) == set(scorer.outputs)
    for key, value in scores.items():
        assert value is None or type(value) is scorer.outputs[key], (key, value)


@pytest.mark.parametrize("name", [n for n in REGISTRY if n != "aesthetic"])
def test_scores_match_the_declared_outputs(name):
    scorer = scorer_class(name)()
    assert all(key.startswith(f"{name}_") for key in scorer.outputs)
    _assert_declared(scorer, scorer.score(_clip(4)))


def test_aesthetic_outputs_without_frames(tmp_path):
    (tmp_path / "head.pth").write_bytes(b"")
    scorer = LaionAestheticScorer(
        AestheticConfig(clip_path=str(tmp_path), head_path=str(tmp_path / "head.pth"))
    )
    _assert_declared(scorer, scorer.score(_clip(0)))
