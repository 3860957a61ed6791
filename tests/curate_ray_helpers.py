"""Shared by the Ray engine's tests: a model scorer that counts its loads, the environment Ray processes get
(and the cleaning up after them), and ToonWorld corpora.

`CountingScorer` writes one file per model load into its `log` folder (named by the process, holding the
node's ANISORA_TEST_NODE) and can fail on purpose. Ray workers find it through a sitecustomize that
registers it in every Python process started with the hook folder on PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq

from anisora.curate.scorers import REGISTRY
from anisora.curate.scorers.base import ClipSamples, Scorer, ScorerConfig
from anisora.errors import InputError
from anisora.toonworld import plan_episode, write_episode

NAME = "counting"
ENTRY = f"{__name__}:CountingScorer"
# One token for the whole test session: Ray's token loader keeps the first one a process reads.
TOKEN = secrets.token_hex(32)
MARKER = "ANISORA_TEST_RAY"


class CountingConfig(ScorerConfig):
    log: str = ""
    """folder: one file per model load"""
    unloadable: bool = False
    """load() raises an InputError (as a missing weights file would)"""
    crash_on: str = ""
    """score() raises a RuntimeError on the clips of a source whose path contains this"""


class CountingScorer(Scorer):
    name = NAME
    version = "1"
    Config = CountingConfig
    uses_model = True
    outputs: ClassVar[dict[str, type]] = {"counting_frames": int, "counting_mean": float}

    def load(self) -> None:
        if getattr(self, "_loaded", False):
            return
        if self.config.unloadable:
            raise InputError("scorers.counting: cannot load the model (on purpose)")
        self._loaded = True
        node = os.environ.get("ANISORA_TEST_NODE", "")
        Path(self.config.log, f"{os.getpid()}-{secrets.token_hex(4)}").write_text(node, encoding="utf-8")

    def score(self, clip: ClipSamples) -> dict:
        self.load()
        if self.config.crash_on and self.config.crash_on in clip.source:
            raise RuntimeError(f"counting scorer crashed on {Path(clip.source).name}")
        return {"counting_frames": len(clip.frames), "counting_mean": float(clip.frames.mean())}


def loads(log: Path) -> list[tuple[int, str]]:
    """(process id, node) of every load so far."""
    return [(int(p.name.split("-")[0]), p.read_text(encoding="utf-8")) for p in sorted(log.iterdir())]


@dataclass
class RayEnvironment:
    temp: Path  # Ray's temporary folder
    marker: str  # the value of MARKER in the environment of every process started from here

    def clean(self) -> None:
        """Kill what Ray left of this environment (workers run in sessions of their own, so a process group
        does not hold them all) and remove its folder. Never `ray stop`: it stops every Ray on the machine."""
        deadline = time.monotonic() + 60
        while left := marked(self.marker):
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            assert time.monotonic() < deadline, f"processes {left} of the test's Ray survive"
            time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)


def marked(marker: str) -> list[int]:
    """Other processes whose environment carries `marker` (only our own processes' can be read)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if f"{MARKER}={marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def ray_environment(monkeypatch, hook: Path) -> RayEnvironment:
    """Set up this process's environment, which the Ray processes it starts inherit, and its registry."""
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(
        f"from anisora.curate.scorers import REGISTRY\n\nREGISTRY[{NAME!r}] = {ENTRY!r}\n", encoding="utf-8"
    )
    paths = [str(hook), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # else Ray writes a token into ~/.ray
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    environment = RayEnvironment(Path(tempfile.mkdtemp(prefix="ray", dir="/tmp")), secrets.token_hex(8))
    monkeypatch.setenv("RAY_TMPDIR", str(environment.temp))  # short: Ray's socket paths must fit 107 bytes
    monkeypatch.setenv(MARKER, environment.marker)
    monkeypatch.setitem(REGISTRY, NAME, ENTRY)
    from ray._raylet import Config

    Config.initialize("")  # Ray reads RAY_AUTH_MODE once per process; read it again, as ray.init does
    return environment


def corpus(folder: Path, seeds: range, seconds: float = 6) -> Path:
    """Small ToonWorld episodes (160x96) and one file that is not a video."""
    for seed in seeds:
        write_episode(plan_episode(seed, 0, seconds, 160, 96), folder)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def outputs(out: Path) -> tuple[list[dict], list[dict], list[str]]:
    """What a run wrote: manifest rows, failure rows, clip file names."""
    clips = sorted(p.name for p in (out / "clips").iterdir()) if (out / "clips").exists() else []
    manifest, failures = (pq.read_table(out / f"{n}.parquet").to_pylist() for n in ("manifest", "failures"))
    return manifest, failures, clips
