"""`anisora curate run|filter|export|defaults`: the command layer over the curation pipeline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..commands import add_settings, print_schema
from ..errors import InputError


def _config(args: argparse.Namespace, folder: Path):
    """--config if given, else the configuration the folder was last curated with, else the defaults."""
    from .config import load_config

    if args.config is not None:
        return load_config(args.config, settings=args.settings)
    saved = folder / "config.yaml"
    return load_config(saved if saved.exists() else None, settings=args.settings)


def _save_config(config, folder: Path) -> None:
    from ..files import atomic_output
    from .config import dump_config

    with atomic_output(folder / "config.yaml") as tmp:
        tmp.write_text(dump_config(config), encoding="utf-8")


def _refresh_manifest(folder: Path, config) -> dict:
    from .pipeline import finalize
    from .state import RunState

    state = RunState(folder)
    try:
        return finalize(folder, state, config)
    finally:
        state.close()


def _run(args: argparse.Namespace) -> int:
    from .paths import output_folder
    from .pipeline import run_curate

    config = _config(args, args.out)
    output_folder(args.out)
    _save_config(config, args.out)
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


def _filter(args: argparse.Namespace) -> int:
    if not (args.dir / "state.sqlite").exists():
        raise InputError(f"{args.dir}: not a curation folder (no state.sqlite)")
    config = _config(args, args.dir)
    _save_config(config, args.dir)
    summary = _refresh_manifest(args.dir, config)
    print(f"{summary['candidates']} candidate clips, {summary['kept']} kept ({summary['keep_rate']:.1%})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import ExportOptions, export

    config = _config(args, args.dir)
    options = ExportOptions(
        args.top_quality, args.top_motion, args.subtitles, args.rebalance, args.per_bucket, args.seed
    )
    summary = export(args.dir, args.out, options, config.output, progress=not args.quiet)
    if args.out is None:  # the folder's own clips changed: refresh its manifest's clip paths
        _refresh_manifest(args.dir, config)
    print(json.dumps(summary))
    return 0


def _defaults(args: argparse.Namespace) -> int:
    from .config import CurateConfig, config_schema, dump_config

    if args.schema:
        print_schema(config_schema())
    else:
        print(dump_config(CurateConfig()), end="")
    return 0


def add_curate_parser(sub: argparse._SubParsersAction) -> None:
    curate = sub.add_parser(
        "curate",
        help="raw videos -> scored, filtered clips; re-filter, export, default config",
        description="The data flywheel: curate videos into scored, filtered training clips (run), apply new "
        "thresholds without re-scoring (filter), write clip files or a training set (export).",
    )
    commands = curate.add_subparsers(dest="curate_command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="curate videos into a folder of scored, filtered clips (resumable)")
    run.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders (recursive) or text lists"
    )
    run.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    run.add_argument("--config", type=Path, help="YAML config (see `anisora curate defaults`)")
    add_settings(run, "the config", "filters.min_motion=0.5")
    run.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1); Ray: videos decoded at a time"
    )
    run.add_argument("--engine", choices=("local", "ray"), default="local")
    run.add_argument(
        "--ray-address",
        help="join a Ray cluster ('auto', HOST:6379, ray://HOST:10001; overrides ray.address of the config); "
        "default: a local Ray instance",
    )
    run.add_argument("--no-clips", action="store_true", help="write everything but the clip files")
    run.set_defaults(func=_run)

    fi = commands.add_parser("filter", help="re-apply thresholds to a curation folder without re-scoring")
    fi.add_argument("dir", type=Path, help="the curation folder")
    fi.add_argument("--config", type=Path, help="YAML config with the new thresholds")
    add_settings(fi, "the config (default: the folder's config.yaml)", "filters.min_motion=0.5")
    fi.set_defaults(func=_filter)

    ex = commands.add_parser("export", help="write clip files / a training set from a curation folder")
    ex.add_argument("dir", type=Path, help="the curation folder")
    ex.add_argument("--out", type=Path, help="training-set folder (default: the curation folder's clips/)")
    ex.add_argument("--config", type=Path)
    add_settings(ex, "the config (default: the folder's config.yaml)", "output.crf=20")
    ex.add_argument("--top-quality", type=float, help="keep the best share (0-1] by aesthetic/quality")
    ex.add_argument("--top-motion", type=float, help="keep the most moving share (0-1] by motion score")
    ex.add_argument("--subtitles", choices=("keep", "drop", "crop"), default="keep")
    ex.add_argument("--rebalance", help="'motion' (quartile buckets) or a manifest column")
    ex.add_argument("--per-bucket", type=int, help="clips per bucket (default: the smallest bucket)")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=_export)

    de = commands.add_parser("defaults", help="print the default curate config")
    de.add_argument("--schema", action="store_true", help="print its JSON Schema instead (for editors)")
    de.set_defaults(func=_defaults)
