"""What the command modules of the packages (`curate/cli.py`, `train/cli.py`, ...) share: argument types and
printing a JSON Schema. `anisora.cli` assembles those modules into the `anisora` command."""

from __future__ import annotations

import argparse
import json

from .errors import InputError


def size(text: str) -> tuple[int, int]:
    """A WIDTHxHEIGHT argument."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x180, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def _setting(text: str):
    from .typed_config import parse_setting

    try:
        return parse_setting(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_settings(parser: argparse.ArgumentParser, what: str, example: str) -> None:
    """The repeatable `--set KEY.PATH=VALUE` of a command that reads a typed config."""
    parser.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help=f"override one value of {what}, read as YAML, e.g. {example} (repeatable)",
    )


def print_schema(schema: dict) -> None:
    print(json.dumps(schema, indent=2))
