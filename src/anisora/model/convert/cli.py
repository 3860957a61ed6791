"""`anisora convert sat-v1|wan SRC OUT`: the command layer over the converters."""

from __future__ import annotations

import argparse
from pathlib import Path


def _sat_v1(args: argparse.Namespace) -> int:
    from .sat_v1 import convert_sat_v1

    out = convert_sat_v1(args.src, args.out, t5=args.t5, overwrite=args.overwrite)
    print(f"{out}: AniSora V1 as a diffusers CogVideoX directory")
    return 0


def _wan(args: argparse.Namespace) -> int:
    from .wan import convert_wan

    out = convert_wan(args.src, args.out, base=args.base, overwrite=args.overwrite, release=args.release)
    print(f"{out}: a diffusers Wan directory with AniSora {args.release}'s presets")
    return 0


def add_convert_parser(sub) -> None:
    convert = sub.add_parser(
        "convert", help="convert an official AniSora release to a diffusers directory (streamed, bf16)"
    )
    kinds = convert.add_subparsers(dest="kind", required=True, metavar="KIND")
    sat = kinds.add_parser("sat-v1", help="AniSora V1 (CogVideoX-5B, SAT format)")
    sat.add_argument(
        "src", type=Path, help="the release folder (latest, <iter>/mp_rank_00_model_states.pt, VAE)"
    )
    sat.add_argument("out", type=Path, help="the diffusers directory to write")
    sat.add_argument("--t5", type=Path, help="the T5 v1.1 XXL transformers folder (default: found under SRC)")
    sat.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    sat.set_defaults(func=_sat_v1)
    wan = kinds.add_parser("wan", help="AniSora V2, V3, V3.1, anymask (Wan2.1) or V3.2 (Wan2.2, two experts)")
    wan.add_argument("src", type=Path, help="the release folder (config.json + diffusion_pytorch_model*)")
    wan.add_argument("out", type=Path, help="the diffusers directory to write")
    wan.add_argument(
        "--base",
        type=Path,
        help="a diffusers Wan I2V folder (Wan2.1-I2V-14B-720P-Diffusers; Wan2.2-I2V-A14B-Diffusers "
        "for V3.2) whose text/image encoders and tokenizers, and VAE when SRC has none, are linked",
    )
    wan.add_argument(
        "--release",
        choices=("v3", "v2", "anymask"),
        default="v3",
        help="whose sampling presets to record: v3 (V3, V3.1, V3.2: 720p, 81 frames, 8 steps, guidance 1; "
        "the default), v2 (960x544, 49 frames, 40 steps, CFG 5), anymask (V3's, in 65-frame windows)",
    )
    wan.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    wan.set_defaults(func=_wan)
