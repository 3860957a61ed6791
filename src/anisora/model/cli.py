"""`anisora generate`: the command layer over `anisora.model.generate`."""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields
from pathlib import Path

from ..commands import size
from ..errors import InputError

log = logging.getLogger(__name__)


def _guide(text: str, timed: bool = False):
    from .request import parse_guide

    try:
        return parse_guide(text, timed=timed)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _timed_guide(text: str):
    return _guide(text, timed=True)


def _from_args(cls, args: argparse.Namespace, **given):
    """A `cls` dataclass from the parsed arguments of the same names (and `given` values)."""
    names = {f.name for f in fields(cls)} - set(given)
    return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)}, **given)


def _generate(args: argparse.Namespace) -> int:
    from .generate import generate_batch, generate_to_file, prompt_file_requests
    from .request import GuideSpec, KnownSpec, LoadOptions, Request
    from .weights import demo_model_dir

    if (args.prompt_file is None) == (args.out is None) or (args.prompt_file is None) != (
        args.out_dir is None
    ):
        raise InputError("give --out OUT.mp4, or --prompt-file FILE with --out-dir DIR")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise InputError(f"{args.out} exists; pass --overwrite to replace it")
    if args.known_mask is not None and args.known is None:
        raise InputError("--known-mask goes with --known VIDEO")
    guides = [GuideSpec(str(args.image), 0, args.image_strength)] if args.image else []
    width, height = args.size if args.size else (None, None)
    mask = args.known_mask and str(args.known_mask)
    known = args.known and KnownSpec(str(args.known), mask, args.known_mode, args.known_window)
    load = _from_args(LoadOptions, args, model=str(args.model or demo_model_dir()))
    request = _from_args(
        Request,
        args,
        guides=tuple(guides + args.guide + args.at),
        known=known,
        width=width,
        height=height,
    )
    made = dict(preview=args.preview, lossless=args.lossless, progress=not args.quiet)
    if args.prompt_file is not None:
        if request.guides or request.known or args.prompt:
            raise InputError(
                "a prompt file gives each line's prompt and images or video: drop --prompt, the guides "
                "and --known"
            )
        requests = prompt_file_requests(args.prompt_file, request, args.known_mode, args.known_window)
        generate_batch(load, requests, args.out_dir, **made, on_done=_print_made)
        return 0
    _print_made(args.out, generate_to_file(load, request, args.out, overwrite=args.overwrite, **made))
    return 0


def _print_made(out: Path, sidecar: dict) -> None:
    resolved = sidecar["resolved"]
    for note in sidecar["notes"]:
        log.info("note: %s", note)
    print(
        f"{out}  {resolved['num_frames']} frames {resolved['width']}x{resolved['height']} "
        f"at {resolved['fps']} fps, sampled in {sidecar['seconds_sample']:.1f} s"
    )


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    from .request import SCHEDULER_HELP, SCHEDULERS

    ge = sub.add_parser(
        "generate",
        help="animate guide images into a video (image-to-video, keyframes, motion mask)",
        description="Generate a video with the spatiotemporal-mask model. Writes OUT.mp4, OUT.json "
        "(every parameter) and, with --preview, OUT.preview.png.",
    )
    ge.add_argument(
        "--model", type=Path, help="diffusers model directory, never downloaded (default: the demo model)"
    )
    ge.add_argument("--image", type=Path, help="guide image for frame 0 (image-to-video)")
    ge.add_argument("--image-strength", type=float, default=1.0, help="strength of --image, 0-1 (default 1)")
    ge.add_argument(
        "--guide",
        type=_guide,
        action="append",
        default=[],
        metavar="FRAME[@STRENGTH]:IMAGE",
        help="another guide image at a pixel frame index (negative from the end: --guide=-1:end.png) or "
        "'last', e.g. 48:end.png (repeatable)",
    )
    ge.add_argument(
        "--at",
        type=_timed_guide,
        action="append",
        default=[],
        metavar="T[@STRENGTH]:IMAGE",
        help="a guide image at a share T of the clip, 0-1, placed as AniSora V3 does (frame int((F-1)T) "
        "rounded to a multiple of 8), e.g. 0.5:middle.png (repeatable)",
    )
    ge.add_argument("--mask", type=Path, help="motion-region mask over the first guide: white = may move")
    ge.add_argument(
        "--known",
        type=Path,
        metavar="VIDEO",
        help="anymask (Wan): keep this video's pixels where its mask video (VIDEO_mask.mp4 beside it, or "
        "--known-mask) is white and generate the rest; both sampled evenly to the clip's frames",
    )
    ge.add_argument("--known-mask", type=Path, metavar="MASK", help="the mask video of --known")
    ge.add_argument(
        "--known-mode",
        choices=("temporal", "spatial"),
        help="the anymask release's recipes: temporal also keeps every 8th frame whole (repair from "
        "keyframes), spatial the first frame (regenerate a region); default: the mask as drawn",
    )
    ge.add_argument(
        "--known-window",
        type=float,
        metavar="SECONDS",
        help="cut --known into windows this long (the official scripts: 4), make each as one clip at the "
        "model's fps and join them; default: the whole video in one clip",
    )
    ge.add_argument(
        "--motion",
        type=float,
        help="motion score to ask for (prompt suffix, and the motion embedding of models that have one): V1 "
        "0.5-1.5; models trained by `anisora train`: the curation motion score, 0-30 (the demo model's "
        "training clips at 8 fps: median 9.5, a quarter over 16; asking more than 30 gives the demo model no "
        "more motion). "
        "The shipped demo model, with its motion guidance, measures 1.3, 5.7 and 13.9 on average at asked "
        "1, 8 and 30 over 36 held-out shots, rising at every step in 33 of them",
    )
    ge.add_argument(
        "--motion-guidance",
        type=float,
        metavar="SCALE",
        help="guidance over the motion score in the noisy first sampling steps, away from the model's "
        "reference score (more motion above it, less below): the model's preset by default (the demo "
        "model's: 2, away from 8, over the first 60 %% of the schedule; none between keyframes), 0 turns it "
        "off",
    )
    ge.add_argument(
        "--aesthetic",
        type=float,
        help="aesthetic score for the prompt suffix (default: the model's; 5.5 for the released models)",
    )
    ge.add_argument(
        "--seconds",
        type=float,
        help="duration 2-8 s, rounded to the model's frame rule (CogVideoX 8k+1, Wan 4k+1) at its fps",
    )
    ge.add_argument("--frames", type=int, help="exact frame count: 8k+1 (CogVideoX), 4k+1 (Wan)")
    ge.add_argument("--fps", type=int, help="frame rate (default: the model's; 8 for V1, 16 for V2-V3.2)")
    ge.add_argument("--size", type=size, help="WIDTHxHEIGHT, multiples of 16 (default: the model's)")
    ge.add_argument("--prompt", default="", help="text prompt")
    ge.add_argument("--negative-prompt", default="", help="text for the unconditional branch")
    ge.add_argument(
        "--steps",
        type=int,
        help="sampling steps (default: the model's; 50 for CogVideoX, 8 for AniSora V3.x)",
    )
    ge.add_argument(
        "--guidance",
        type=float,
        help="classifier-free guidance scale (default: the model's; 6 for CogVideoX, 1 for AniSora V3.x: "
        "no unconditional pass)",
    )
    ge.add_argument(
        "--guide-fit-steps",
        type=int,
        help="decoder steps that fit guides at frames other than 0 to the output (default: the model's; "
        "10 for the demo model, 0 for released models); 0 turns fitting off",
    )
    ge.add_argument(
        "--decode-whole",
        dest="decode_change",
        action="store_false",
        help="decode the whole video; by default the demo model keeps its keyframes' flow interpolation in "
        "pixels and decodes only the change it made to it",
    )
    ge.add_argument("--dynamic-cfg", action="store_true", help="cosine-ramped guidance scale")
    ge.add_argument("--scheduler", choices=SCHEDULERS, help=SCHEDULER_HELP)
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--lora", type=Path, help="LoRA weights (e.g. motion-region) to load")
    ge.add_argument("--lora-scale", type=float, default=1.0)
    ge.add_argument(
        "--no-mask-lora",
        dest="mask_lora",
        action="store_false",
        help="without --lora, a model's own mask LoRA (the demo model's region LoRA) serves requests with "
        "--mask; this leaves it off",
    )
    ge.add_argument("--layout", choices=("anisora", "v1"), help="convert a V1 model to the mask layout")
    ge.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ge.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    ge.add_argument(
        "--offload",
        choices=("model", "sequential", "group"),
        help="GPU memory saving: one component at a time (model), one layer at a time (sequential), "
        "transformer blocks streamed ahead (group)",
    )
    ge.add_argument("--fp8", action="store_true", help="store transformer weights in fp8, compute in --dtype")
    ge.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory)")
    ge.add_argument("--vae-slicing", action="store_true", help="decode one video at a time")
    ge.add_argument("--out", type=Path, help="output .mp4")
    ge.add_argument(
        "--prompt-file",
        type=Path,
        help="batch: the official AniSora V3 prompt file, one PROMPT@@IMG1,IMG2&&T1,T2 a line (images at "
        "times 0-1); writes N.mp4 for line N into --out-dir, keeping videos already made",
    )
    ge.add_argument("--out-dir", type=Path, help="output folder of --prompt-file")
    ge.add_argument("--preview", action="store_true", help="also write OUT.preview.png, a contact sheet")
    ge.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    ge.add_argument(
        "--lossless",
        action="store_true",
        help="store the exact RGB frames (H.264 RGB at qp 0: for measurement or compositing; browsers do not "
        "play it, ffmpeg does)",
    )
    ge.set_defaults(func=_generate)
