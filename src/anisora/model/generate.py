"""`anisora generate` as functions: a model and a request in, mp4 + JSON sidecar out; and the official
AniSora V3 prompt-file batch.

The CLI is a thin layer over these; programs that keep a pipeline loaded (evaluate, the studio) pass it in.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..files import atomic_output, check_output_file, shareable_path
from ..media import contact_sheet, save_image, write_video
from .loading import check_load, open_pipeline
from .request import LoadOptions, Request, parse_prompt_line
from .sampling import prepare, sample
from .weights import DEMO_MODEL, DEMO_MODEL_NAME


def validate(load: LoadOptions, request: Request) -> None:
    """Raise InputError / MediaError for anything wrong with `load` or `request`, without loading weights."""
    prepare(request, check_load(load))


def generate_to_file(
    load: LoadOptions,
    request: Request,
    out: str | os.PathLike[str],
    *,
    preview: bool = False,
    overwrite: bool = False,
    pipe=None,
    lossless: bool = False,
    progress: bool = True,
) -> dict:
    """Run `request`, write `out` (mp4; `lossless`: the exact RGB frames, for measurement or compositing,
    which browsers do not play), `out` with .json (every parameter, the prompt used, notes, timings) and, with
    `preview`, a contact sheet `out` with .preview.png. Returns the sidecar's content.

    `pipe`: the model `load` names, already loaded (else loaded here, with a sampling progress bar when
    `progress`). An existing `out` is kept unless `overwrite`; every input is read and checked before the
    model loads.
    """
    out = Path(out)
    check_output(out, overwrite)
    started = time.perf_counter()
    if pipe is None:
        validate(load, request)  # before the slow load
        pipe = open_pipeline(load)
        pipe.set_progress_bar_config(disable=not progress)
    loaded = time.perf_counter()
    result = sample(pipe, request)
    sampled = time.perf_counter()
    write_video(out, result.frames, result.fps, lossless=lossless)
    sidecar = {
        "anisora_version": __version__,
        "video": out.name,
        "load": _shareable(asdict(load), out.parent),
        "request": _shareable(asdict(request), out.parent),
        "resolved": result.resolved,
        "prompt_used": result.prompt,
        "notes": result.notes,
        "seconds_load": round(loaded - started, 3),
        "seconds_sample": round(sampled - loaded, 3),
    }
    with atomic_output(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if preview:
        save_image(out.with_suffix(".preview.png"), preview_sheet(result.frames, result.fps))
    return sidecar


def check_output(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() != ".mp4":
        raise InputError(f"the output must be an .mp4 file, got {out}")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists and is kept (overwrite=False)")
    check_output_file(out)


def prompt_file_requests(
    path: str | os.PathLike[str],
    template: Request | None = None,
    known_mode: str | None = None,
    known_window: float | None = None,
) -> list[Request]:
    """The requests of an official AniSora V3 prompt file (one `prompt@@img1,img2&&t1,t2` a line, or the
    anymask release's `prompt@@clip.mp4` with `known_mode` and `known_window`; blank lines skipped), each on
    top of `template` (scores, length, sampling). Every line is checked here."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the prompt file {path}: {error}") from None
    requests = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                parsed = parse_prompt_line(line, path.parent, known_mode, known_window)
            except InputError as error:
                raise InputError(f"{path} line {number}: {error}") from None
            requests.append(
                replace(template or Request(), prompt=parsed.prompt, guides=parsed.guides, known=parsed.known)
            )
    if not requests:
        raise InputError(f"{path}: no requests (one PROMPT@@IMAGES&&TIMES a line)")
    return requests


def generate_batch(
    load: LoadOptions,
    requests: list[Request],
    out_dir: str | os.PathLike[str],
    *,
    preview: bool = False,
    lossless: bool = False,
    on_done: Callable[[Path, dict], None] | None = None,
    progress: bool = True,
) -> list[Path]:
    """`out_dir`/<n>.mp4 (+ .json) for the n-th request (from 0, as the official script names them), with
    one model load (a sampling progress bar per video when `progress`). Resumable: a video whose sidecar
    exists is kept. Every request is checked first."""
    out_dir = Path(out_dir)
    info = check_load(load)
    outs = [out_dir / f"{n}.mp4" for n in range(len(requests))]
    pending = [
        (out, r) for out, r in zip(outs, requests, strict=True) if not out.with_suffix(".json").is_file()
    ]
    for out, request in pending:
        try:
            prepare(request, info)
            check_output(out, overwrite=True)
        except InputError as error:
            raise InputError(f"{out}: {error}") from None
    if pending:
        pipe = open_pipeline(load)
        pipe.set_progress_bar_config(disable=not progress)
        for out, request in pending:
            sidecar = generate_to_file(
                load, request, out, preview=preview, overwrite=True, pipe=pipe, lossless=lossless
            )
            if on_done is not None:
                on_done(out, sidecar)
    return outs


def _shareable(record: dict, folder: Path) -> dict:
    """`record` with its file paths relative to the sidecar's folder (the shipped model by name) and images
    given as arrays by their shape."""
    shipped = {DEMO_MODEL: DEMO_MODEL_NAME}

    def path(value):
        if isinstance(value, np.ndarray):
            return f"<array {'x'.join(map(str, value.shape))}>"
        return shareable_path(value, folder, shipped) if value else None

    for key in ("model", "mask", "lora"):
        if key in record:
            record[key] = path(record[key])
    for guide in record.get("guides", ()):
        guide["image"] = path(guide["image"])
    if record.get("known"):
        record["known"] |= {key: path(record["known"][key]) for key in ("video", "mask")}
    return record


def preview_sheet(frames: np.ndarray, fps: float, tiles: int = 8) -> np.ndarray:
    """Up to `tiles` evenly spaced frames with their index and time."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(tiles, len(frames))).round().astype(int))
    labels = [f"#{i} {i / fps:.2f}s" for i in picks]
    width = int(np.clip(frames.shape[2], 160, 320))
    return contact_sheet([frames[i] for i in picks], labels, columns=4, tile_width=width)
