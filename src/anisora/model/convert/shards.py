"""A streaming writer of sharded safetensors checkpoints in the diffusers / Hugging Face layout.

Tensors arrive one at a time and are held only until a shard is full, so a converter's peak memory stays
near one shard, not the whole model. On `close` the shards get their final `-0000k-of-0000n` names and the
`<prefix>.safetensors.index.json` weight map is written; a model that fits in one shard is written as a
single `<prefix>.safetensors` with no index, as `save_pretrained` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3


class ShardWriter:
    """Collect named tensors into safetensors shards of at most `max_shard_bytes` each (a tensor larger
    than that gets a shard of its own). Floating tensors are cast to `dtype`; others are kept as they are."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        prefix: str = "diffusion_pytorch_model",
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        dtype: torch.dtype = torch.bfloat16,
    ):
        self.folder = Path(folder)
        self.prefix = prefix
        self.max_shard_bytes = max_shard_bytes
        self.dtype = dtype
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._shards: list[list[str]] = []  # the tensor names of each shard written so far
        self._names: set[str] = set()
        self._total_bytes = 0
        self.peak_pending_bytes = 0  # the most bytes held at once: the writer's share of peak memory

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if name in self._names:
            raise ValueError(f"tensor {name!r} was already added")
        dtype = self.dtype if tensor.is_floating_point() else tensor.dtype
        # A contiguous copy: safetensors refuses views that share storage, and the source (often a
        # memory-mapped file) may be closed before the shard is flushed.
        copy = tensor.detach().to(dtype=dtype, memory_format=torch.contiguous_format, copy=True)
        size = copy.numel() * copy.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._names.add(name)
        self._pending[name] = copy
        self._pending_bytes += size
        self._total_bytes += size
        self.peak_pending_bytes = max(self.peak_pending_bytes, self._pending_bytes)

    def close(self) -> list[Path]:
        """Write the last shard, give every shard its final name, write the index; return the files."""
        if self._pending or not self._shards:
            self._flush()
        if len(self._shards) == 1:
            single = self.folder / f"{self.prefix}.safetensors"
            os.replace(self._part_path(0), single)
            return [single]
        return self._finish_sharded()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    def _part_path(self, index: int) -> Path:
        return self.folder / f"{self.prefix}-{index + 1:05d}.part.safetensors"

    def _flush(self) -> None:
        save_file(self._pending, self._part_path(len(self._shards)), metadata={"format": "pt"})
        self._shards.append(list(self._pending))
        self._pending = {}
        self._pending_bytes = 0

    def _finish_sharded(self) -> list[Path]:
        count = len(self._shards)
        files, weight_map = [], {}
        for index, names in enumerate(self._shards):
            final = self.folder / f"{self.prefix}-{index + 1:05d}-of-{count:05d}.safetensors"
            os.replace(self._part_path(index), final)
            files.append(final)
            weight_map.update(dict.fromkeys(names, final.name))
        index_json = {
            "metadata": {"total_size": self._total_bytes},
            "weight_map": dict(sorted(weight_map.items())),
        }
        index_path = self.folder / f"{self.prefix}.safetensors.index.json"
        index_path.write_text(json.dumps(index_json, indent=2) + "\n")
        return files
