"""The `anisora` command: a thin layer over the Python API. Errors a user can cause print one line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from . import __version__
from .errors import AnisoraError, InputError
from .evaluate.cli import add_evaluate_parser
from .model.convert.cli import add_convert_parser
from .studio.cli import add_studio_parsers


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x180, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def _guide(text: str, timed: bool = False):
    from .model.request import parse_guide

    try:
        return parse_guide(text, timed=timed)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _timed_guide(text: str):
    return _guide(text, timed=True)


def _setting(text: str):
    from .typed_config import parse_setting

    try:
        return parse_setting(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_settings(parser: argparse.ArgumentParser, what: str, example: str) -> None:
    parser.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help=f"override one value of {what}, read as YAML, e.g. {example} (repeatable)",
    )


def _print_schema(schema: dict) -> None:
    print(json.dumps(schema, indent=2))


def _cmd_toonworld(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .media import save_image
    from .toonworld import plan_episode, write_episode
    from .toonworld.preview import ground_truth_sheet

    if args.episodes < 1:
        raise InputError(f"--episodes must be at least 1 (got {args.episodes})")
    width, height = args.size
    for index in tqdm(range(args.episodes), desc="episodes", unit="ep", disable=args.episodes < 2):
        plan = plan_episode(args.seed, index, args.seconds, width, height, args.fps, args.opening)
        paths = write_episode(plan, args.out, crf=args.crf)
        line = f"{paths['video']}  {plan.num_frames} frames, {len(plan.shots)} shots"
        if args.contact_sheet:
            sheet = paths["json"].with_suffix(".sheet.png")
            save_image(sheet, ground_truth_sheet(paths["json"]))
            line += f", sheet {sheet}"
        tqdm.write(line)
    return 0


def _from_args(cls, args: argparse.Namespace, **given):
    """A `cls` dataclass from the parsed arguments of the same names (and `given` values)."""
    names = {f.name for f in fields(cls)} - set(given)
    return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)}, **given)


def _cmd_generate(args: argparse.Namespace) -> int:
    from .model.generate import generate_batch, generate_to_file, prompt_file_requests
    from .model.request import GuideSpec, KnownSpec, LoadOptions, Request
    from .model.weights import demo_model_dir

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
    if args.prompt_file is not None:
        if request.guides or request.known or args.prompt:
            raise InputError(
                "a prompt file gives each line's prompt and images or video: drop --prompt, the guides "
                "and --known"
            )
        requests = prompt_file_requests(args.prompt_file, request, args.known_mode, args.known_window)
        made = dict(preview=args.preview, lossless=args.lossless, on_done=_print_made)
        generate_batch(load, requests, args.out_dir, **made)
        return 0
    options = dict(preview=args.preview, overwrite=args.overwrite, lossless=args.lossless)
    _print_made(args.out, generate_to_file(load, request, args.out, **options))
    return 0


def _print_made(out: Path, sidecar: dict) -> None:
    resolved = sidecar["resolved"]
    for note in sidecar["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"{out}  {resolved['num_frames']} frames {resolved['width']}x{resolved['height']} "
        f"at {resolved['fps']} fps, sampled in {sidecar['seconds_sample']:.1f} s"
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from .train.config import load_train_config
    from .train.recipe import check_stage_order, train

    settings = [*args.settings, *([(("optim", "steps"), args.steps)] if args.steps is not None else [])]
    stages = [load_train_config(path, settings=settings) for path in args.config]
    check_stage_order(stages)
    for stage in stages:
        final = train(stage, progress=not args.quiet)
        print(f"{stage.name}: {final}")
    return 0


def _cmd_train_vae(args: argparse.Namespace) -> int:
    from .train.vae import train_vae

    history = train_vae(
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        num_frames=args.frames,
        crop=(args.crop[1], args.crop[0]) if args.crop else None,
        eval_every=args.eval_every,
        time_limit=args.minutes * 60 if args.minutes else None,
        device=args.device,
        bf16=args.bf16,
        progress=not args.quiet,
    )
    final = history["evals"][-1]
    print(
        f"{args.out}: {len(history['loss'])} steps in {history['seconds'] / 60:.1f} min, held-out PSNR "
        f"{final['psnr_image']:.2f} dB (one frame), {final['psnr_clip']:.2f} dB (clip)"
    )
    return 0


def _cmd_model_card(args: argparse.Namespace) -> int:
    from .evaluate.model_card import compute_description, stage_summary, vae_summary, write_model_card
    from .evaluate.targets import RunFigures, directory_mb, judge, time_default_clip
    from .model.weights import load_pipeline
    from .toonworld.held_out import held_out_shots

    stages = [stage_summary(run) for run in args.stage]
    vae = vae_summary(args.vae_run)
    lora = stage_summary(args.lora_run) if args.lora_run else None
    model = RunFigures.read(args.eval_run)
    round_trip, crossfade = (RunFigures.read(r) if r else None for r in (args.round_trip, args.crossfade))
    others = [RunFigures.read(path, name) for name, path in args.ablation]
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    shot = held_out_shots(1, 17, 8.0, 160, 96, still_camera=True)[0]
    seconds = time_default_clip(pipe, shot.frames[0], shot.frames[-1], shot.caption)
    targets = judge(model, round_trip, crossfade, seconds, directory_mb(args.model))
    runs = [model, *others, *(r for r in (round_trip, crossfade) if r)]
    card = write_model_card(args.model, stages, vae, targets, runs, compute_description(), args.command, lora)
    for t in targets:
        verdict = {True: "met", False: "NOT met", None: "n/a"}[t.met]
        print(f"{verdict}: {t.figure}: {t.measured} ({t.goal})")
    print(card)
    return 0


def _named_run(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=RUN_DIR, got {text!r}")
    return name.strip(), Path(path)


def _cmd_toonworld_keyframes(args: argparse.Namespace) -> int:
    import numpy as np

    from .media import save_image, write_video
    from .toonworld.held_out import held_out_shots, motion_region

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


def _cmd_probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .media import probe

    for path in args.videos:
        print(json.dumps(asdict(probe(path))))
    return 0


def _curate_config(args: argparse.Namespace, out: Path):
    """--config if given, else the configuration the folder was last curated with, else the defaults."""
    from .curate.config import load_config

    if args.config is not None:
        return load_config(args.config, settings=args.settings)
    saved = out / "config.yaml"
    return load_config(saved if saved.exists() else None, settings=args.settings)


def _save_curate_config(config, out: Path) -> None:
    from .curate.config import dump_config
    from .files import atomic_output

    with atomic_output(out / "config.yaml") as tmp:
        tmp.write_text(dump_config(config), encoding="utf-8")


def _cmd_curate(args: argparse.Namespace) -> int:
    from .curate.paths import output_folder
    from .curate.pipeline import run_curate

    config = _curate_config(args, args.out)
    output_folder(args.out)
    _save_curate_config(config, args.out)
    summary = run_curate(
        args.inputs,
        args.out,
        config,
        workers=args.workers,
        engine=args.engine,
        write_clips=not args.no_clips,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print(
        f"{summary['candidates']} candidate clips, {summary['kept']} kept "
        f"({summary['keep_rate']:.1%}), {summary['videos_failed']} failed input(s); "
        f"report: {args.out / 'report.html'}"
    )
    return 1 if summary["videos_failed"] else 0


def _cmd_curate_filter(args: argparse.Namespace) -> int:
    from .curate.pipeline import finalize
    from .curate.state import RunState

    if not (args.dir / "state.sqlite").exists():
        raise InputError(f"{args.dir}: not a curation folder (no state.sqlite)")
    config = _curate_config(args, args.dir)
    _save_curate_config(config, args.dir)
    state = RunState(args.dir)
    try:
        summary = finalize(args.dir, state, config)
    finally:
        state.close()
    print(f"{summary['candidates']} candidate clips, {summary['kept']} kept ({summary['keep_rate']:.1%})")
    return 0


def _cmd_curate_export(args: argparse.Namespace) -> int:
    from .curate.export import ExportOptions, export

    config = _curate_config(args, args.dir)
    options = ExportOptions(
        args.top_quality, args.top_motion, args.subtitles, args.rebalance, args.per_bucket, args.seed
    )
    summary = export(args.dir, args.out, options, config.output)
    if args.out is None:  # the folder's own clips changed: refresh its manifest's clip paths
        from .curate.pipeline import finalize
        from .curate.state import RunState

        state = RunState(args.dir)
        try:
            finalize(args.dir, state, config)
        finally:
            state.close()
    print(json.dumps(summary))
    return 0


def _cmd_curate_defaults(args: argparse.Namespace) -> int:
    from .curate.config import CurateConfig, config_schema, dump_config

    if args.schema:
        _print_schema(config_schema())
    else:
        print(dump_config(CurateConfig()), end="")
    return 0


def _cmd_train_defaults(args: argparse.Namespace) -> int:
    from .train.config import TrainConfig, config_schema
    from .typed_config import dump_yaml

    if args.schema:
        _print_schema(config_schema())
    else:
        print(dump_yaml(TrainConfig()), end="")
    return 0


# `anisora curate export ...` is parsed by its own parser: `curate` itself takes free-form INPUT paths.
_SUBCOMMANDS = {
    "curate": {"export": "curate-export", "filter": "curate-filter", "defaults": "curate-defaults"},
    "train": {"defaults": "train-defaults"},
}


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
    tw.add_argument(
        "--opening",
        type=float,
        default=0.0,
        help="seconds of a series opening every episode of the seed starts with, frame for frame (default 0)",
    )
    tw.add_argument("--contact-sheet", action="store_true", help="also write <episode>.sheet.png")
    tw.set_defaults(func=_cmd_toonworld)

    cu = sub.add_parser(
        "curate",
        help="raw videos -> scored, filtered clips (+ export, filter, defaults subcommands)",
        description="Curate videos into training clips. Also: `anisora curate filter DIR`, "
        "`anisora curate export DIR`, `anisora curate defaults`.",
    )
    cu.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders (recursive) or text lists"
    )
    cu.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    cu.add_argument("--config", type=Path, help="YAML config (see `anisora curate defaults`)")
    _add_settings(cu, "the config", "filters.min_motion=0.5")
    cu.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    cu.add_argument("--engine", choices=("local", "ray"), default="local")
    cu.add_argument("--ray-address", help="join a Ray cluster (e.g. 'auto'); default: a local Ray instance")
    cu.add_argument("--no-clips", action="store_true", help="write everything but the clip files")
    cu.add_argument("--quiet", action="store_true", help="no progress bar")
    cu.set_defaults(func=_cmd_curate)

    cf = sub.add_parser(
        "curate-filter",
        prog="anisora curate filter",
        help="re-apply thresholds to a curation folder without re-scoring",
    )
    cf.add_argument("dir", type=Path)
    cf.add_argument("--config", type=Path, help="YAML config with the new thresholds")
    _add_settings(cf, "the config (default: the folder's config.yaml)", "filters.min_motion=0.5")
    cf.set_defaults(func=_cmd_curate_filter)

    ce = sub.add_parser(
        "curate-export",
        prog="anisora curate export",
        help="write clip files / a training set from a curation folder",
    )
    ce.add_argument("dir", type=Path, help="the curation folder")
    ce.add_argument("--out", type=Path, help="training-set folder (default: the curation folder's clips/)")
    ce.add_argument("--config", type=Path)
    _add_settings(ce, "the config (default: the folder's config.yaml)", "output.crf=20")
    ce.add_argument("--top-quality", type=float, help="keep the best share (0-1] by aesthetic/quality")
    ce.add_argument("--top-motion", type=float, help="keep the most moving share (0-1] by motion score")
    ce.add_argument("--subtitles", choices=("keep", "drop", "crop"), default="keep")
    ce.add_argument("--rebalance", help="'motion' (quartile buckets) or a manifest column")
    ce.add_argument("--per-bucket", type=int, help="clips per bucket (default: the smallest bucket)")
    ce.add_argument("--seed", type=int, default=0)
    ce.set_defaults(func=_cmd_curate_export)

    cd = sub.add_parser(
        "curate-defaults", prog="anisora curate defaults", help="print the default curate config"
    )
    cd.add_argument("--schema", action="store_true", help="print its JSON Schema instead (for editors)")
    cd.set_defaults(func=_cmd_curate_defaults)

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
        "0.5-1.5; models trained by `anisora train`: the curation motion score (ToonWorld clips at 8 fps: "
        "about 0-30, median 8)",
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
    ge.add_argument("--size", type=_size, help="WIDTHxHEIGHT, multiples of 16 (default: the model's)")
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
    ge.add_argument("--dynamic-cfg", action="store_true", help="cosine-ramped guidance scale")
    ge.add_argument("--scheduler", choices=("dpm", "ddim"), default="dpm", help="default dpm (DPM++2M)")
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--lora", type=Path, help="LoRA weights (e.g. motion-region) to load")
    ge.add_argument("--lora-scale", type=float, default=1.0)
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
    ge.set_defaults(func=_cmd_generate)

    tr = sub.add_parser(
        "train",
        help="fine-tune the model: the paper's recipe (stages, masking, LoRA); resumable",
        description="Run training stages in order (each YAML in configs/train/ is one stage; a stage starts "
        "from the previous one's final/). Re-running the same command resumes from the newest checkpoint. "
        "Also: `anisora train defaults [--schema]`.",
    )
    tr.add_argument("--config", type=Path, action="append", required=True, help="stage YAML (repeatable)")
    tr.add_argument("--steps", type=int, help="override optim.steps of every stage")
    _add_settings(tr, "every stage", "data.batch_size=2")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    td = sub.add_parser(
        "train-defaults", prog="anisora train defaults", help="print the default training stage config"
    )
    td.add_argument("--schema", action="store_true", help="print its JSON Schema instead (for editors)")
    td.set_defaults(func=_cmd_train_defaults)

    tv = sub.add_parser(
        "train-vae",
        help="train the demo model's small 3D causal VAE on ToonWorld",
        description="Train an AutoencoderKLCogVideoX (the 'demo' preset) from scratch on clean ToonWorld "
        "clips; writes a diffusers VAE directory with training.json (losses, held-out PSNRs).",
    )
    tv.add_argument("--out", type=Path, required=True, help="VAE directory to write")
    tv.add_argument("--minutes", type=float, help="stop after this much training time")
    tv.add_argument("--steps", type=int, default=100_000, help="stop after this many steps")
    tv.add_argument("--batch-size", type=int, default=2)
    tv.add_argument("--lr", type=float, default=1e-3)
    tv.add_argument("--frames", type=int, default=9, help="clip length, 1, 9 or 17 (default 9)")
    tv.add_argument(
        "--crop", type=_size, default=(96, 64), help="WIDTHxHEIGHT training crops (default 96x64)"
    )
    tv.add_argument("--eval-every", type=int, default=200)
    tv.add_argument("--seed", type=int, default=0)
    tv.add_argument("--device", default="cpu")
    tv.add_argument("--bf16", action="store_true", help="bfloat16 autocast (faster on recent CPUs and GPUs)")
    tv.add_argument("--quiet", action="store_true", help="no progress bar")
    tv.set_defaults(func=_cmd_train_vae)

    mc = sub.add_parser(
        "model-card",
        help="write a trained model's README.md from its training runs and its evaluate runs",
        description="Write README.md and figures.json into MODEL: training from the stage, VAE and LoRA "
        "runs; quality from finished `anisora evaluate` runs on the held-out ToonWorld bench (the model's, "
        "the round-trip and cross-fade baselines', and any ablations), judged against the demo model's "
        "targets; and the time of one 2 s clip with the CLI's defaults on this machine.",
    )
    mc.add_argument("--model", type=Path, required=True, help="the trained model directory")
    mc.add_argument("--vae-run", type=Path, required=True, help="the VAE directory from train-vae")
    mc.add_argument(
        "--stage", type=Path, action="append", required=True, help="stage run folder (repeatable)"
    )
    mc.add_argument("--lora-run", type=Path, help="the motion-region LoRA run folder")
    mc.add_argument("--eval-run", type=Path, required=True, help="the model's `evaluate run` folder")
    mc.add_argument("--round-trip", type=Path, help="`evaluate baseline --kind round-trip` run folder")
    mc.add_argument("--crossfade", type=Path, help="`evaluate baseline --kind crossfade` run folder")
    mc.add_argument(
        "--ablation",
        type=_named_run,
        action="append",
        default=[],
        metavar="NAME=RUN",
        help="another evaluate run on the same bench, for the card's comparison table (repeatable)",
    )
    mc.add_argument("--command", default="make demo-model", help="the training command, for the card")
    mc.set_defaults(func=_cmd_model_card)

    tk = sub.add_parser(
        "toonworld-keyframes",
        help="write a held-out ToonWorld shot's first and last frames, motion mask and true clip",
    )
    tk.add_argument("--out", type=Path, required=True, help="folder to write")
    tk.add_argument("--index", type=int, default=0, help="which held-out moving shot (default 0)")
    tk.add_argument("--size", type=_size, default=(160, 96), help="WIDTHxHEIGHT (default 160x96)")
    tk.add_argument("--fps", type=float, default=8.0)
    tk.add_argument("--frames", type=int, default=17, help="shot length in frames (default 17)")
    tk.set_defaults(func=_cmd_toonworld_keyframes)

    add_evaluate_parser(sub, _size)
    add_convert_parser(sub)
    add_studio_parsers(sub)

    pr = sub.add_parser("probe", help="print video metadata as JSON lines")
    pr.add_argument("videos", nargs="+", type=Path)
    pr.set_defaults(func=_cmd_probe)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[1] in _SUBCOMMANDS.get(argv[0], {}):
        argv = [_SUBCOMMANDS[argv[0]][argv[1]], *argv[2:]]
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
