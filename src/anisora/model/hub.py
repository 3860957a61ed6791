"""Model folders that plain diffusers loads the way it loads a Hub custom pipeline, offline.

`save_pretrained` writes beside the components a module importing the pipeline class from the installed
`anisora` package (`pipeline_anisora.py`, `pipeline_anisora_wan.py`) and names it in model_index.json, as
`"_class_name": ["pipeline_anisora", "AnisoraPipeline"]`: diffusers' form for a pipeline whose code is in the
folder. So `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` returns our class. The
pipeline classes load such a folder as themselves, without running the folder's code.

Each class has its own module name because diffusers imports every local folder's module under its file
name: two folders' `pipeline.py` would share one module, and `custom_pipeline=` would find both classes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

# What a model folder holds beside the model: its card (`write_model_card`) and the figures behind it.
CARD_FILES = frozenset({"README.md", "figures.json"})
# `model_fingerprint` hashes files up to this size whole and samples larger ones (a release's shards).
WHOLE_HASH_BYTES = 256 << 20
SAMPLE_BYTES = 4 << 20


class FolderPipeline:
    """Mixin for a `DiffusionPipeline` subclass (listed before it) whose saved folders carry its module."""

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args, **kwargs) -> None:
        write_pipeline_file(Path(save_directory), type(self))
        super().save_pretrained(save_directory, *args, **kwargs)  # last: a push_to_hub sends the module too

    def to_json_string(self) -> str:
        """model_index.json's text (diffusers' `ConfigMixin`): the class named by the folder's module."""
        config = json.loads(super().to_json_string())
        config["_class_name"] = class_entry(type(self))
        return json.dumps(config, indent=2, sort_keys=True) + "\n"

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike[str]) -> dict:
        """diffusers reads model_index.json (local or from the Hub) through this `ConfigMixin` hook: a folder
        naming this very class in its module loads as this class, without running the folder's code."""
        config = super()._dict_from_json_file(json_file)
        if config.get("_class_name") == class_entry(cls):
            config["_class_name"] = cls.__name__
        return config


def write_pipeline_file(folder: Path, cls: type) -> None:
    """The module in `folder` that imports `cls` from the installed `anisora` package."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module_name(cls)}.py").write_text(pipeline_code(cls), encoding="utf-8")


def class_entry(cls: type) -> list[str]:
    """model_index.json's `_class_name` for `cls` in a folder with its module."""
    return [module_name(cls), cls.__name__]


def module_name(cls: type) -> str:
    """AnisoraPipeline -> pipeline_anisora, AnisoraWanPipeline -> pipeline_anisora_wan."""
    words = re.findall(r"[A-Z][a-z0-9]*", cls.__name__.removesuffix("Pipeline"))
    return "_".join(["pipeline", *(word.lower() for word in words)])


def pipeline_code(cls: type) -> str:
    return (
        f'"""diffusers loads {cls.__name__}, from the installed `anisora` package, with\n'
        '`DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True)`."""\n\n'
        f'from {cls.__module__} import {cls.__name__}\n\n__all__ = ["{cls.__name__}"]\n'
    )


def pipeline_class_name(index: dict) -> str | None:
    """The pipeline class model_index.json names: `_class_name` is a class, or [module, class]."""
    name = index.get("_class_name")
    return name[1] if isinstance(name, list) and len(name) == 2 else name


def write_model_card(
    folder: str | os.PathLike[str],
    body: str,
    *,
    license: str,
    tags: list[str],
    base_model: str | None = None,
    license_link: str | None = None,
) -> Path:
    """Write `folder/README.md`: the YAML front matter the Hugging Face Hub shows and filters by
    (https://huggingface.co/docs/hub/model-cards), then `body` (markdown); returns its path."""
    import yaml

    from ..files import atomic_output

    meta = {"library_name": "diffusers", "pipeline_tag": "image-to-video", "license": license}
    if license_link:
        meta |= {"license_name": "upstream", "license_link": license_link}
    if base_model:
        meta["base_model"] = base_model
    meta["tags"] = tags
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + body
    path = Path(folder) / "README.md"
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


# Converted releases keep the upstream's weights and terms, which the converter cannot see or vouch for.
UPSTREAM = "https://github.com/bilibili/Index-anisora"


def write_converted_card(folder: Path, title: str, source: Path, command: str, details: str) -> Path:
    """The card of a converted release: what it is, where it came from, and that its license is upstream's."""
    body = (
        f"# {title}\n\nConverted to the diffusers layout by `{command}` from `{source.name}`. {details}\n\n"
        f"The weights are Bilibili's AniSora release, unchanged but for their layout; their terms are the "
        f"upstream repository's ({UPSTREAM}): read them before you use or share this folder.\n"
    )
    return write_model_card(
        folder,
        body,
        license="other",
        license_link=UPSTREAM,
        tags=["anisora", "anime", "image-to-video", "converted"],
    )


def model_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A sha256 naming what a model folder makes: every file's path and bytes, links followed, without cards
    (CARD_FILES) and hidden or cache files (a download's .cache, __pycache__), which change no output. A
    file over WHOLE_HASH_BYTES counts by its size and three SAMPLE_BYTES pieces (start, middle, end), so that
    a 14B release is named in seconds, not minutes: a retrained shard changes those pieces, but two shards
    alike there and of one size are not told apart."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or path.name in CARD_FILES or any(p.startswith((".", "__")) for p in parts):
            continue
        size = path.stat().st_size
        digest.update(f"{'/'.join(parts)}\0{size}\0".encode())
        with path.open("rb") as file:
            if size <= WHOLE_HASH_BYTES:
                digest.update(file.read())
                continue
            for start in (0, (size - SAMPLE_BYTES) // 2, size - SAMPLE_BYTES):
                file.seek(start)
                digest.update(file.read(SAMPLE_BYTES))
    return digest.hexdigest()
