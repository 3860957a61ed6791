"""What `anisora curate` writes for people to share: a manifest with every score column whatever the input
order, exports that refuse to filter on scores the manifest lacks, normal file modes and no machine paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anisora.cli import main
from anisora.curate.scorers import REGISTRY, scorer_class
from anisora.media import probe, write_video
from anisora.toonworld import plan_episode, write_episode

ARROW_TYPES = {float: pa.float64(), int: pa.int64(), bool: pa.bool_(), str: pa.string()}


def _curate(inputs: list[Path], out: Path, *extra: str) -> int:
    """`anisora curate` under umask 022 (the modes a shared machine would give)."""
    old = os.umask(0o022)
    try:
        return main(["curate", "run", *map(str, inputs), "--out", str(out), "--quiet", *extra])
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A garbage .mp4 and a one-frame video that sort before a real ToonWorld episode, curated."""
    root = tmp_path_factory.mktemp("outputs")
    raw = root / "raw"
    raw.mkdir()
    (raw / "0_garbage.mp4").write_bytes(b"not a video at all\n" * 100)
    write_video(raw / "1_one_frame.mp4", np.zeros((1, 96, 160, 3), np.uint8), fps=24)
    episode = write_episode(plan_episode(1, 0, 6, 160, 96), raw)["video"]
    out = root / "out"
    assert _curate([raw], out) == 1  # the garbage file failed
    return root, out, episode


def _expected_score_columns() -> dict[str, pa.DataType]:
    columns = {}
    for name in REGISTRY:
        columns |= {key: ARROW_TYPES[kind] for key, kind in scorer_class(name).outputs.items()}
    return columns


def test_manifest_keeps_every_score_column_when_the_first_video_has_none(run):
    _, out, episode = run
    table = pq.read_table(out / "manifest.parquet")
    expected = _expected_score_columns()
    assert {"motion_score", "text_area", "quality_score", "borders_share"} <= set(expected)
    assert {name: table.schema.field(name).type for name in expected} == expected
    rows = table.to_pylist()
    assert rows[0]["source"].endswith("1_one_frame.mp4") and rows[0]["motion_score"] is None
    scored = [r for r in rows if r["source"].endswith(episode.name) and r["duration_seconds"] >= 2]
    assert scored and all(r["motion_score"] is not None and r["quality_score"] is not None for r in scored)
    assert all(r["text_subtitle"] is not None for r in scored)


def test_manifest_has_every_column_when_every_video_failed(tmp_path):
    (tmp_path / "garbage.mp4").write_bytes(b"garbage\n" * 100)
    assert _curate([tmp_path / "garbage.mp4"], tmp_path / "out") == 1
    table = pq.read_table(tmp_path / "out" / "manifest.parquet")
    assert table.num_rows == 0
    assert {"clip_id", "source", "keep", "reasons", "prompt", *_expected_score_columns()} <= set(
        table.column_names
    )


def test_every_output_gets_normal_permissions(run):
    _, out, _ = run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"report.html", "manifest.parquet", "failures.parquet", "summary.json", "config.yaml"} <= {
        p.name for p in files
    }
    assert any(p.parent.name == "clips" for p in files) and any(p.parent.name == "thumbs" for p in files)
    modes = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in out.rglob("*")}
    assert {name: mode for name, mode in modes.items() if mode not in ("0o644", "0o755")} == {}


def test_shared_outputs_name_sources_relative_to_the_output_folder(run):
    root, out, _ = run
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    failures = pq.read_table(out / "failures.parquet").to_pylist()
    for source in [r["source"] for r in rows] + [f["source"] for f in failures]:
        assert not Path(source).is_absolute() and source.startswith("../raw/")
        assert (out / source).resolve().is_file()
    assert {f["source"] for f in failures} == {"../raw/0_garbage.mp4"}
    assert str(root) not in (out / "report.html").read_text(encoding="utf-8")


def test_export_finds_sources_from_anywhere(run, monkeypatch):
    root, out, episode = run
    kept = [r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["keep"]]
    assert kept
    monkeypatch.chdir(root)  # a relative curation folder, read from another working directory
    assert main(["curate", "export", "out", "--out", "sets/train"]) == 0
    table = pq.read_table(root / "sets" / "train" / "train.parquet").to_pylist()
    assert len(table) == len(kept)
    for row in table:
        assert (root / "sets" / "train" / row["source"]).resolve() == episode.resolve()
        info = probe(root / "sets" / "train" / row["clip_path"])
        assert info.frame_count == row["end_frame"] - row["start_frame"]


def _manifest_without(tmp_path: Path, columns: dict) -> Path:
    """A curation folder whose manifest has kept rows but lacks (or has only nulls in) score columns."""
    rows = [
        {
            "clip_id": f"c{i}",
            "source": "../raw/a.mp4",
            "keep": True,
            "start_frame": 48 * i,
            "end_frame": 48 * i + 48,
            "start_time": 2.0 * i,
            "end_time": 2.0 * i + 2,
            "width": 160,
            "height": 96,
            "prompt": "",
            **columns,
        }
        for i in range(4)
    ]
    folder = tmp_path / "curated"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "manifest.parquet")
    return folder


@pytest.mark.parametrize(
    "flags",
    [
        ["--top-quality", "0.5"],
        ["--top-motion", "0.5"],
        ["--subtitles", "drop"],
        ["--subtitles", "crop"],
        ["--rebalance", "motion"],
    ],
)
@pytest.mark.parametrize("nulls", [False, True], ids=["missing", "all-null"])
def test_export_refuses_to_filter_on_scores_the_manifest_lacks(tmp_path, capsys, flags, nulls):
    scores = {"motion_score": None, "quality_score": None, "text_subtitle": None} if nulls else {}
    folder = _manifest_without(tmp_path, scores)
    assert main(["curate", "export", str(folder), "--out", str(tmp_path / "set"), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("anisora: error: ") and "\n" not in error and flags[0] in error
    assert not (tmp_path / "set").exists()
