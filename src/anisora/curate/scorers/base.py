"""The scorer interface: a small class with a name, a version and a config, from sampled frames to scores.

The pipeline decodes each video once and hands every scorer the same `ClipSamples` of a candidate clip.
Scores are flat: every key a scorer returns starts with its name and an underscore ("motion_score"), and
values are plain numbers, booleans, strings or None, so they go straight into the Parquet manifest. Each
scorer declares them in `outputs` (key -> float, int, bool or str): the manifest has a typed column for every
declared key of every registered scorer, null where a clip has no value (too short, scorer off).
Scores are cached per clip under `Scorer.cache_key()`, so changing a scorer's version or config re-scores
exactly that scorer.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...typed_config import Config

Score = float | int | bool | str | None


def spread(total: int, count: int) -> list[int]:
    """`count` indices of `range(total)`, the centres of `count` equal parts (all of them when count is 0)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return [int((i + 0.5) * total / count) for i in range(count)]


@dataclass(frozen=True)
class FramePair:
    """Two frames for optical flow: `b` is the next distinct drawing after `a`, `gap` source frames later
    (1 for animation on ones, 2 on twos ...); gap 0 means no new drawing was found (a held shot)."""

    a: np.ndarray
    b: np.ndarray
    gap: int


@dataclass(frozen=True)
class ClipSamples:
    """What the single decode pass collected for one candidate clip [start_frame, end_frame)."""

    source: str
    fps: float
    width: int  # source display size
    height: int
    start_frame: int
    end_frame: int
    frames: np.ndarray  # (K, h, w, 3) uint8 RGB at analysis resolution, spread evenly over the clip
    frame_indices: tuple[int, ...]  # source index of each of `frames`
    pairs: tuple[FramePair, ...] = ()
    held: np.ndarray = field(
        default_factory=lambda: np.zeros(0, bool)
    )  # held[i]: frame start+i+1 repeats the one before

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def analysis_scale(self) -> float:
        """Analysis pixels per source pixel."""
        return self.frames.shape[2] / self.width if len(self.frames) else 1.0


class ScorerConfig(Config):
    """Base for scorer configs: plain data, loaded from the `scorers.<name>` section of the YAML config."""


class Configured:
    """A named, versioned component driven by a plain-data config (scorers, captioners). It pickles as its
    config alone: models and engines are rebuilt lazily in the process that uses them (workers receive
    these objects by pickle)."""

    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type]
    uses_model: ClassVar[bool] = False
    """True for a learned model worth loading once per process and placing on a GPU: the Ray engine runs it
    in its model actor pool, on the clip's `frames` (the optical-flow `pairs` stay in the CPU stage)."""
    thread_safe: ClassVar[bool] = False
    """True when one instance may score (or caption) several clips at once from different threads: then one
    worker scores on as many threads as it has cores (`analyse.scoring_threads`), else on one."""

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    def load(self) -> None:
        """Load the model now (else it loads on first use); nothing to do for a component without one."""

    @classmethod
    def section(cls) -> str:
        """Where the config comes from in the YAML file, for messages."""
        raise NotImplementedError

    @classmethod
    def config_from(cls, values: dict[str, Any] | None):
        """The typed config from the YAML section (None: the defaults); a value that does not fit is a
        one-line InputError."""
        return cls.Config.load(values, cls.section())

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None):
        return cls(cls.config_from(values))

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.config = state["config"]

    def cache_key(self) -> str:
        """Name, version and a digest of the config: equal keys mean equal outputs for the same clip."""
        text = json.dumps(self.config.model_dump(), sort_keys=True, default=str)
        return f"{self.name}@{self.version}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"


class Scorer(Configured, ABC):
    Config: ClassVar[type[ScorerConfig]] = ScorerConfig
    outputs: ClassVar[dict[str, type]]  # every key `score` returns, and its type: float, int, bool or str

    @classmethod
    def section(cls) -> str:
        return f"scorers.{cls.name}"

    @abstractmethod
    def score(self, clip: ClipSamples) -> dict[str, Score]:
        """Scores of one clip: exactly the keys of `outputs`, each of its type or None."""
