"""Paths in curation outputs: output folders, and sources named relative to the folder that names them.

Files meant to be shared (manifest.parquet, failures.parquet, report.html, an export's train.parquet) name
each source video relative to their own folder ("../raw/ep01.mp4"), so they hold no machine paths and still
lead to the videos when the folders move together. Only state.sqlite keeps absolute paths.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def output_folder(path: Path, *subfolders: str) -> Path:
    """Create the output folder `path` and `subfolders` in it; a file in the way is refused, left as it is."""
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path}: is a file, not a folder")
    try:
        for folder in (path, *(path / sub for sub in subfolders)):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot create the folder ({exc.strerror})") from None
    return path


def relative_source(path: str | os.PathLike[str], folder: Path) -> str:
    """Absolute `path` as seen from `folder`, with forward slashes; absolute where there is no relative path
    (another drive on Windows). `..` steps start from the folder's real location, as the system takes them."""
    try:
        return Path(os.path.relpath(path, os.path.realpath(folder))).as_posix()
    except ValueError:
        return str(path)


def absolute_source(source: str, folder: Path) -> str:
    """The absolute path of a `source` that `relative_source` gave for `folder` (absolute ones stay)."""
    return os.path.normpath(os.path.join(os.path.realpath(folder), source))
