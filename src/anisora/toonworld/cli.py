"""`anisora toonworld episodes|keyframes`: the command layer over the ToonWorld generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..commands import size
from ..errors import InputError


def _episodes(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..media import save_image
    from . import plan_episode, write_episode
    from .preview import ground_truth_sheet

    if args.episodes < 1:
        raise InputError(f"--episodes must be at least 1 (got {args.episodes})")
    width, height = args.size
    bar_off = args.quiet or args.episodes < 2
    for index in tqdm(range(args.episodes), desc="episodes", unit="ep", disable=bar_off):
        plan = plan_episode(args.seed, index, args.seconds, width, height, args.fps, args.opening)
        paths = write_episode(plan, args.out, crf=args.crf)
        line = f"{paths['video']}  {plan.num_frames} frames, {len(plan.shots)} shots"
        if args.contact_sheet:
            sheet = paths["json"].with_suffix(".sheet.png")
            save_image(sheet, ground_truth_sheet(paths["json"]))
            line += f", sheet {sheet}"
        tqdm.write(line)
    return 0


def _keyframes(args: argparse.Namespace) -> int:
    import numpy as np

    from ..media import save_image, write_video
    from .held_out import held_out_shots, motion_region

    width, height = args.size
    shot = held_out_shots(args.index + 1, args.frames, args.fps, width, height, still_camera=True)[-1]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_image(out / "first.png", shot.frames[0])
    save_image(out / "last.png", shot.frames[-1])
    save_image(out / "mask.png", np.repeat(motion_region(shot.foreground)[..., None], 3, axis=2))
    write_video(out / "truth.mp4", shot.frames, args.fps)
    (out / "prompt.txt").write_text(shot.caption + "\n", encoding="utf-8")
    print(f"{out}: first.png, last.png, mask.png, truth.mp4 ({len(shot.frames)} frames); {shot.caption}")
    return 0


def add_toonworld_parser(sub: argparse._SubParsersAction) -> None:
    toonworld = sub.add_parser(
        "toonworld",
        help="procedural cartoon episodes with ground truth, and held-out keyframes",
        description="ToonWorld: render procedural cartoon episodes with ground truth, or write a held-out "
        "shot's keyframes.",
    )
    commands = toonworld.add_subparsers(dest="toonworld_command", required=True, metavar="SUBCOMMAND")

    ep = commands.add_parser("episodes", help="render cartoon episodes with ground truth (video + JSON)")
    ep.add_argument("--out", type=Path, required=True, help="output folder")
    ep.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    ep.add_argument("--seconds", type=float, default=20.0, help="length of each episode (default 20)")
    ep.add_argument("--size", type=size, default=(320, 180), help="WIDTHxHEIGHT (default 320x180)")
    ep.add_argument("--fps", type=float, default=24.0, help="frame rate (default 24)")
    ep.add_argument("--seed", type=int, default=0, help="seed; episode i of seed K is always the same")
    ep.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    ep.add_argument(
        "--opening",
        type=float,
        default=0.0,
        help="seconds of a series opening every episode of the seed starts with, frame for frame (default 0)",
    )
    ep.add_argument("--contact-sheet", action="store_true", help="also write <episode>.sheet.png")
    ep.set_defaults(func=_episodes)

    kf = commands.add_parser(
        "keyframes", help="write a held-out shot's first and last frames, motion mask and true clip"
    )
    kf.add_argument("--out", type=Path, required=True, help="folder to write")
    kf.add_argument("--index", type=int, default=0, help="which held-out moving shot (default 0)")
    kf.add_argument("--size", type=size, default=(160, 96), help="WIDTHxHEIGHT (default 160x96)")
    kf.add_argument("--fps", type=float, default=8.0)
    kf.add_argument("--frames", type=int, default=17, help="shot length in frames (default 17)")
    kf.set_defaults(func=_keyframes)
