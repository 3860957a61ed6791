"""The `anisora` command: a thin layer over the Python API. Errors a user can cause print one line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import AnisoraError, InputError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x180, got {text!r}") from None
    return w, h


def _cmd_toonworld(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .media import save_image
    from .toonworld import plan_episode, write_episode
    from .toonworld.preview import ground_truth_sheet

    if args.episodes < 1:
        raise InputError(f"--episodes must be at least 1 (got {args.episodes})")
    width, height = args.size
    for index in tqdm(range(args.episodes), desc="episodes", unit="ep", disable=args.episodes < 2):
        plan = plan_episode(args.seed, index, args.seconds, width, height, args.fps)
        paths = write_episode(plan, args.out, crf=args.crf)
        line = f"{paths['video']}  {plan.num_frames} frames, {len(plan.shots)} shots"
        if args.contact_sheet:
            sheet = paths["json"].with_suffix(".sheet.png")
            save_image(sheet, ground_truth_sheet(paths["json"]))
            line += f", sheet {sheet}"
        tqdm.write(line)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .media import probe

    for path in args.videos:
        print(json.dumps(asdict(probe(path))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anisora", description="AniSora-open: anime video data, models and tools."
    )
    parser.add_argument("--version", action="version", version=f"anisora {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tw = sub.add_parser("toonworld", help="render procedural cartoon episodes with ground truth")
    tw.add_argument("--out", type=Path, required=True, help="output folder")
    tw.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    tw.add_argument("--seconds", type=float, default=20.0, help="length of each episode (default 20)")
    tw.add_argument("--size", type=_size, default=(320, 180), help="WIDTHxHEIGHT (default 320x180)")
    tw.add_argument("--fps", type=float, default=24.0, help="frame rate (default 24)")
    tw.add_argument("--seed", type=int, default=0, help="seed; episode i of seed K is always the same")
    tw.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    tw.add_argument("--contact-sheet", action="store_true", help="also write <episode>.sheet.png")
    tw.set_defaults(func=_cmd_toonworld)

    pr = sub.add_parser("probe", help="print video metadata as JSON lines")
    pr.add_argument("videos", nargs="+", type=Path)
    pr.set_defaults(func=_cmd_probe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AnisoraError as exc:
        print(f"anisora: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anisora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
