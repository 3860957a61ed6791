"""The streaming shard writer: shard sizes and names, the index weight map, dtype casts, one-file output."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from anisora.model.convert.shards import ShardWriter


def _read_all(folder, prefix="diffusion_pytorch_model"):
    index = json.loads((folder / f"{prefix}.safetensors.index.json").read_text())
    tensors = {}
    for name, file in index["weight_map"].items():
        with safe_open(folder / file, framework="pt") as f:
            tensors[name] = f.get_tensor(name)
    return index, tensors


def test_shards_flush_when_full_and_index_maps_every_tensor(tmp_path):
    # 10 float32 tensors of 400 bytes -> 200 bytes each in bf16; 3 fit under 700 bytes.
    originals = {f"layer.{i}.weight": torch.full((10, 10), float(i)) for i in range(10)}
    writer = ShardWriter(tmp_path, max_shard_bytes=700)
    for name, tensor in originals.items():
        writer.add(name, tensor)
    files = writer.close()

    assert [f.name for f in files] == [
        f"diffusion_pytorch_model-{k:05d}-of-00004.safetensors" for k in (1, 2, 3, 4)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f.name for f in files] + ["diffusion_pytorch_model.safetensors.index.json"]
    )
    assert writer.peak_pending_bytes == 600
    index, tensors = _read_all(tmp_path)
    assert index["metadata"]["total_size"] == 10 * 200
    assert index["weight_map"]["layer.0.weight"] == files[0].name
    assert index["weight_map"]["layer.9.weight"] == files[3].name
    for name, tensor in originals.items():
        assert tensors[name].dtype == torch.bfloat16
        assert torch.equal(tensors[name], tensor.to(torch.bfloat16))


def test_one_shard_is_a_single_file_and_non_float_tensors_keep_their_dtype(tmp_path):
    base = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    with ShardWriter(tmp_path, prefix="model", dtype=torch.float16) as writer:
        writer.add("a", base.t())  # a non-contiguous view
        writer.add("steps", torch.arange(3))

    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    with safe_open(tmp_path / "model.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert f.get_tensor("a").dtype == torch.float16
        assert torch.equal(f.get_tensor("a"), base.t().half())
        assert f.get_tensor("steps").dtype == torch.int64


def test_a_tensor_larger_than_a_shard_gets_its_own_shard(tmp_path):
    writer = ShardWriter(tmp_path, max_shard_bytes=10)
    writer.add("small", torch.zeros(2))
    writer.add("big", torch.zeros(100))
    writer.add("tail", torch.zeros(2))
    files = writer.close()

    index, _ = _read_all(tmp_path)
    assert len(files) == 3
    assert [index["weight_map"][n] for n in ("small", "big", "tail")] == [f.name for f in files]


def test_a_repeated_name_is_refused(tmp_path):
    writer = ShardWriter(tmp_path)
    writer.add("x", torch.zeros(1))
    with pytest.raises(ValueError, match="'x' was already added"):
        writer.add("x", torch.zeros(1))
