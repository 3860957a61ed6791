"""`anisora train run|vae|defaults`: the command layer over the training recipe and the VAE trainer."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..commands import add_settings, print_schema, size


def _run(args: argparse.Namespace) -> int:
    from .config import load_train_config
    from .recipe import check_stage_inputs, check_stage_order, check_time_budget, train

    settings = [*args.settings, *([(("optim", "steps"), args.steps)] if args.steps is not None else [])]
    stages = [load_train_config(path, settings=settings) for path in args.config]
    check_stage_order(stages)
    check_stage_inputs(stages)
    check_time_budget(stages, args.minutes)
    for stage in stages:
        final = train(stage, progress=not args.quiet, minutes=args.minutes)
        print(f"{stage.name}: {final}")
    return 0


def _vae(args: argparse.Namespace) -> int:
    from .vae import train_vae

    history = train_vae(
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        mse_weight=args.mse_weight,
        num_frames=args.frames,
        crop=(args.crop[1], args.crop[0]) if args.crop else None,
        eval_every=args.eval_every,
        time_limit=args.minutes * 60 if args.minutes else None,
        device=args.device,
        bf16=args.bf16,
        progress=not args.quiet,
        decoder_of=args.decoder_of,
    )
    final = history["evals"][-1]
    print(
        f"{args.out}: {len(history['loss'])} steps in {history['seconds'] / 60:.1f} min, held-out PSNR "
        f"{final['psnr_image']:.2f} dB (one frame), {final['psnr_clip']:.2f} dB (clip)"
    )
    return 0


def _defaults(args: argparse.Namespace) -> int:
    from ..typed_config import dump_yaml
    from .config import TrainConfig, config_schema

    if args.schema:
        print_schema(config_schema())
    else:
        print(dump_yaml(TrainConfig()), end="")
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="fine-tune the model (the paper's recipe: stages, masking, LoRA); train the demo VAE",
        description="Training: run the recipe's stages (run), train the demo model's VAE (vae), print the "
        "default stage config (defaults). Both trainers resume when the same command runs again.",
    )
    commands = train.add_subparsers(dest="train_command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser(
        "run",
        help="run training stages in order; resumable",
        description="Run training stages in order (each YAML in configs/train/ is one stage; a stage starts "
        "from the previous one's final/). Every stage's config and inputs are checked before the first "
        "loads anything. Re-running the same command resumes from the newest checkpoint.",
    )
    run.add_argument("--config", type=Path, action="append", required=True, help="stage YAML (repeatable)")
    run.add_argument("--steps", type=int, help="override optim.steps of every stage")
    run.add_argument(
        "--minutes",
        type=float,
        help="train each stage for about this long (this call's training time), ending at the first "
        "checkpoint after it; the step reached is recorded as the stage's steps (constant schedules only)",
    )
    add_settings(run, "every stage", "data.batch_size=2")
    run.set_defaults(func=_run)

    vae = commands.add_parser(
        "vae",
        help="train the demo model's small 3D causal VAE on ToonWorld",
        description="Train an AutoencoderKLCogVideoX (the 'demo' preset) from scratch (or only the decoder "
        "of one, --decoder-of) on clean ToonWorld clips; writes a "
        "diffusers VAE directory with training.json (losses, held-out PSNRs).",
    )
    vae.add_argument("--out", type=Path, required=True, help="VAE directory to write")
    vae.add_argument("--minutes", type=float, help="stop after this much training time")
    vae.add_argument("--steps", type=int, default=100_000, help="stop after this many steps")
    vae.add_argument("--batch-size", type=int, default=2)
    vae.add_argument("--lr", type=float, default=1e-3)
    vae.add_argument(
        "--mse-weight",
        type=float,
        default=1.0,
        help="weight of the squared error beside the L1 term (default 1); higher favours PSNR, which the "
        "few worst pixels (outlines, lettering) dominate",
    )
    vae.add_argument("--frames", type=int, default=9, help="clip length, 1, 9 or 17 (default 9)")
    vae.add_argument(
        "--crop", type=size, default=(96, 64), help="WIDTHxHEIGHT training crops (default 96x64)"
    )
    vae.add_argument("--eval-every", type=int, default=200)
    vae.add_argument("--seed", type=int, default=0)
    vae.add_argument("--device", default="cpu")
    vae.add_argument("--bf16", action="store_true", help="bfloat16 autocast (faster on recent CPUs and GPUs)")
    vae.add_argument(
        "--decoder-of",
        type=Path,
        metavar="VAE_DIR",
        help="fine-tune only this VAE's decoder: its latents and scaling factor stay, so models trained on "
        "it decode better without retraining",
    )
    vae.set_defaults(func=_vae)

    de = commands.add_parser("defaults", help="print the default training stage config")
    de.add_argument("--schema", action="store_true", help="print its JSON Schema instead (for editors)")
    de.set_defaults(func=_defaults)
