"""Where the `anisora` command's messages go: Python logging on stderr, at the level -q/-v choose.

Verbosity -1 (-q): warnings and errors only, no progress bars. 0 (the default): anisora's INFO lines and its
own progress bars. 1 (-v): anisora's DEBUG lines too, and the loading bars of transformers, diffusers and
huggingface_hub, which are off otherwise. 2 (-vv): every library's DEBUG lines. Other libraries say only
warnings and errors below -vv (errors only under -q). Nothing changes for programs that use anisora as a
library and never call `configure`.
"""

from __future__ import annotations

import logging
import os
import sys

_handler: logging.Handler | None = None
_verbosity: int | None = None  # None: `configure` was never called, the libraries are left as they are


class _Formatter(logging.Formatter):
    """The plain message; a warning or an error says so first."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


def configure(verbosity: int, timestamps: bool = False) -> None:
    """Send log records to stderr at `verbosity`; `timestamps`: each line starts with its time (servers)."""
    global _handler, _verbosity
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    if verbosity > 0:
        _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    elif timestamps:
        _handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    else:
        _handler.setFormatter(_Formatter())
    root.addHandler(_handler)
    root.setLevel(_library_level(verbosity))
    own = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.getLogger("anisora").setLevel(own)
    _verbosity = verbosity
    for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):  # read when they are imported
        os.environ[variable] = logging.getLevelName(_library_level(verbosity)).lower()
    sync_libraries()


def _library_level(verbosity: int) -> int:
    return logging.ERROR if verbosity < 0 else logging.WARNING if verbosity < 2 else logging.DEBUG


def sync_libraries() -> None:
    """Apply the configured verbosity to transformers, diffusers and huggingface_hub as far as they are
    imported. Call it after importing diffusers and before loading a pipeline: diffusers' bars have no
    environment switch (transformers' follow huggingface_hub's switch when it is imported)."""
    if _verbosity is None:
        return
    bars, level = _verbosity > 0, _library_level(_verbosity)
    try:
        from huggingface_hub import utils as hub  # cheap: no torch
    except ImportError:
        return  # without it, neither transformers nor diffusers is installed
    if "HF_HUB_DISABLE_PROGRESS_BARS" in os.environ:
        pass  # the user's own setting, which huggingface_hub gives priority
    elif bars:
        hub.enable_progress_bars()
    else:
        hub.disable_progress_bars()
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        library = sys.modules.get(name)
        if library is None:
            continue
        library.set_verbosity(level)
        if bars:
            library.enable_progress_bar()
        else:
            library.disable_progress_bar()
