"""`model_fingerprint`: what names a model folder's files for the evaluate runs that record it."""

from __future__ import annotations

import shutil

import pytest

from anisora.model import hub
from anisora.model.hub import model_fingerprint


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "model"
    (root / "transformer").mkdir(parents=True)
    (root / "model_index.json").write_text('{"_class_name": "AnisoraPipeline"}')
    (root / "transformer" / "weights.safetensors").write_bytes(bytes(range(256)) * 64)
    return root


def test_the_same_files_anywhere_give_the_same_name(folder, tmp_path):
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, copy)
    assert model_fingerprint(copy) == model_fingerprint(folder)
    assert len(model_fingerprint(folder)) == 64


def test_cards_and_hidden_or_cache_files_do_not_count(folder):
    before = model_fingerprint(folder)
    (folder / "README.md").write_text("# a card written after the evaluation")
    (folder / "figures.json").write_text("{}")
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "weights.metadata").write_text("etag, time of download")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "pipeline.cpython-311.pyc").write_bytes(b"\0")
    assert model_fingerprint(folder) == before


@pytest.mark.parametrize("change", ["a weight byte", "a renamed file", "a new file"])
def test_any_change_to_what_the_model_makes_counts(folder, change):
    before = model_fingerprint(folder)
    weights = folder / "transformer" / "weights.safetensors"
    if change == "a weight byte":
        data = bytearray(weights.read_bytes())
        data[5000] ^= 1
        weights.write_bytes(bytes(data))
    elif change == "a renamed file":
        weights.rename(folder / "transformer" / "other.safetensors")
    else:
        (folder / "transformer" / "config.json").write_text("{}")
    assert model_fingerprint(folder) != before


def test_a_large_file_counts_by_its_size_and_three_pieces(folder, monkeypatch):
    monkeypatch.setattr(hub, "WHOLE_HASH_BYTES", 1024)
    monkeypatch.setattr(hub, "SAMPLE_BYTES", 100)
    weights = folder / "transformer" / "weights.safetensors"  # 16 KiB: sampled at 0, 8142 and 16284
    data = bytearray(weights.read_bytes())
    before = model_fingerprint(folder)
    for place, counted in ((50, True), (8150, True), (16380, True), (3000, False)):
        changed = bytearray(data)
        changed[place] ^= 1
        weights.write_bytes(bytes(changed))
        assert (model_fingerprint(folder) != before) is counted, place
    weights.write_bytes(bytes(data) + b"\0")  # a size change counts wherever it is
    assert model_fingerprint(folder) != before
