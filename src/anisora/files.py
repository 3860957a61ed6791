"""Path checks for input files and crash-safe writing of outputs, shared by every part of the package."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anisora.errors import InputError, MediaError


def check_input_file(path: str | os.PathLike[str]) -> Path:
    """Return `path` as a Path, or raise MediaError saying why it cannot be a media file.

    Checking before FFmpeg or Pillow open the file turns their vague errors ("Invalid data found") into
    the precise reason a user can act on.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(path, "no such file")
    if p.is_dir():
        raise MediaError(path, "is a directory, not a file")
    if p.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    return p


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Return `path` as a Path, or raise InputError if a file can never be written there: it is a folder, or
    one of its parents is a file. Checked before expensive work, so a typo costs nothing."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{path} is a folder; name a file to write")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {path}: {parent} is a file, not a folder")
            break
    return target


# Shared outputs name a file shipped inside the package by this prefix and its name ("anisora:demo-model").
SHIPPED = "anisora:"


def shareable_path(
    path: str | os.PathLike[str], folder: str | os.PathLike[str], named: dict[Path, str] | None = None
) -> str:
    """`path` as written into an output meant to be shared: under one of the `named` roots, that name and the
    rest of the path; else relative to `folder` (where the output lies), so no machine's layout leaks."""
    absolute = Path(os.path.abspath(path))
    for root, name in (named or {}).items():
        if absolute.is_relative_to(os.path.abspath(root)):
            rest = absolute.relative_to(os.path.abspath(root)).as_posix()
            return name if rest == "." else f"{name}/{rest}"
    return Path(os.path.relpath(absolute, os.path.abspath(folder))).as_posix()


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    A crash or an error mid-write therefore never leaves a half-written file at `path`, and never leaves
    the temporary file behind. The temporary name keeps the suffix so FFmpeg and Pillow pick the right
    format from it. Missing parent folders are created.
    """
    target = Path(path)
    if target.is_dir():
        raise MediaError(path, "is a directory, cannot write a file there")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; on success it replaces `path` (a directory, if any),
    on error it is removed. Readers see the old directory or the new one, never a half-written one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    old = tmp.with_name(tmp.name + ".old")
    try:
        tmp.mkdir()
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
