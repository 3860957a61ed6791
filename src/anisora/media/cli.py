"""`anisora probe`: the command layer over `anisora.media.info`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .info import probe

    for path in args.videos:
        print(json.dumps(asdict(probe(path))))
    return 0


def add_probe_parser(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("probe", help="print video metadata as JSON lines")
    pr.add_argument("videos", nargs="+", type=Path)
    pr.set_defaults(func=_probe)
