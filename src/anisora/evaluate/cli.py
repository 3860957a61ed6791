"""`anisora evaluate ...`: the command layer over the evaluation API (one subcommand per function)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _toonworld(args: argparse.Namespace) -> int:
    from .toonworld_bench import build_toonworld_bench

    width, height = args.size
    path = build_toonworld_bench(args.out, args.per_cell, width, height, args.fps, args.frames)
    print(f"{path}: {args.per_cell} cases per task and label, with ground truth")
    return 0


def _options(args: argparse.Namespace):
    from .scoring import MetricOptions

    return MetricOptions(
        dino=args.dino,
        clip=args.clip,
        dreamsim=args.dreamsim,
        aesthetic_clip=args.aesthetic_clip,
        aesthetic_head=args.aesthetic_head,
        interpolator=args.interpolator,
        interpolator_build=args.interpolator_build,
    )


def _say(outcome: dict, out: Path) -> int:
    for case, error in outcome["failures"].items():
        print(f"failed: {case}: {error}", file=sys.stderr)
    summary = outcome["summary"]
    overall = {name: stats["mean"] for name, stats in summary["overall"].items() if stats["mean"] is not None}
    print(json.dumps({"cases": summary["cases"], "overall": overall}, indent=1))
    print(f"{outcome['report']}  ({out / 'results.csv'}, {out / 'summary.json'})")
    return 1 if outcome["failures"] else 0


def _run(args: argparse.Namespace) -> int:
    from ..model.weights import demo_model_dir
    from .runner import GenerationSettings, run_benchmark

    settings = GenerationSettings(
        steps=args.steps,
        guidance=args.guidance,
        scheduler=args.scheduler,
        lora=str(args.lora) if args.lora else None,
        lora_scale=args.lora_scale,
        dtype=args.dtype,
        device=args.device,
    )
    model = args.model or demo_model_dir()
    outcome = run_benchmark(args.bench, model, args.out, settings, _options(args), args.name, not args.quiet)
    return _say(outcome, args.out)


def _score(args: argparse.Namespace) -> int:
    from .runner import score_videos

    outcome = score_videos(args.videos, args.out, _options(args), args.bench, args.name, not args.quiet)
    return _say(outcome, args.out)


def _baseline(args: argparse.Namespace) -> int:
    from .baselines import run_baseline

    outcome = run_baseline(
        args.bench, args.kind, args.out, _options(args), not args.quiet, args.name, args.model
    )
    return _say(outcome, args.out)


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, format_table

    print(format_table(compare_runs(args.runs, args.out)))
    if args.out:
        print(f"{args.out / 'compare.html'}")
    return 0


def _rate(args: argparse.Namespace) -> int:
    from .rating_app import serve

    serve(args.runs, args.db, args.host, args.port, args.invite)
    return 0


def _ratings(args: argparse.Namespace) -> int:
    from .rating import RatingStore, format_win_rates, win_rates

    print(format_win_rates(win_rates(RatingStore(args.db, create=False))))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .cases import bench_schema

    print(json.dumps(bench_schema(), indent=2))
    return 0


def _metric_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "learned metrics (local weights; without them the offline defaults run)"
    )
    group.add_argument("--dino", help="DINO/DINOv2 directory: subject consistency, I2V subject")
    group.add_argument("--clip", help="CLIP directory: background consistency, text-video consistency")
    group.add_argument("--dreamsim", help="DreamSim torch.export archive (.pt2): I2V background")
    group.add_argument("--aesthetic-clip", help="CLIP ViT-L/14 directory for the LAION aesthetic head")
    group.add_argument("--aesthetic-head", help="LAION improved-aesthetic MLP head (.pth/.safetensors)")
    group.add_argument("--interpolator", help="learned frame interpolator state dict: motion smoothness")
    group.add_argument("--interpolator-build", help="module:Factory that builds the interpolator network")
    parser.add_argument("--name", help="name of the system under test (default: the model folder's name)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_evaluate_parser(sub: argparse._SubParsersAction, size_type) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="benchmark a model or score videos (VBench-style metrics, reports, blind A/B rating)",
        description="Evaluation: build a ToonWorld bench, run a model on a bench, score any videos, compare "
        "runs, and rate runs blind in a browser.",
    )
    evs = ev.add_subparsers(dest="evaluate_command", required=True, metavar="SUBCOMMAND")

    tw = evs.add_parser("toonworld", help="build the ToonWorld benchmark (held-out shots with ground truth)")
    tw.add_argument("--out", type=Path, required=True, help="folder for bench.yaml and the case files")
    tw.add_argument("--per-cell", type=int, default=6, help="cases per task and label (default 6: 108 cases)")
    tw.add_argument("--size", type=size_type, default=(160, 96), help="WIDTHxHEIGHT (default 160x96)")
    tw.add_argument("--fps", type=int, default=8, help="frame rate (default 8)")
    tw.add_argument("--frames", type=int, default=17, help="frames per case, 8k+1 (default 17: 2 s)")
    tw.set_defaults(func=_toonworld)

    ru = evs.add_parser("run", help="generate every case of a bench with a model, score it, write the report")
    ru.add_argument("--bench", type=Path, required=True, help="bench file (YAML or JSONL)")
    ru.add_argument("--model", type=Path, help="model folder (default: the shipped demo model)")
    ru.add_argument("--out", type=Path, required=True, help="run folder (re-running resumes)")
    ru.add_argument("--steps", type=int, help="sampling steps (default: the model's; 50 for CogVideoX)")
    ru.add_argument("--guidance", type=float, help="CFG scale (default: the model's; 6 for CogVideoX)")
    ru.add_argument("--scheduler", choices=("dpm", "ddim"), default="dpm", help="default dpm (DPM++2M)")
    ru.add_argument("--lora", type=Path, help="LoRA folder applied to every case (e.g. the region LoRA)")
    ru.add_argument("--lora-scale", type=float, default=1.0)
    ru.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ru.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    _metric_flags(ru)
    ru.set_defaults(func=_run)

    sc = evs.add_parser("score", help="score videos made elsewhere (per-video JSON, results, report)")
    sc.add_argument("videos", nargs="+", type=Path, help="video files; with --bench, named <case id>.mp4")
    sc.add_argument("--out", type=Path, required=True, help="run folder")
    sc.add_argument("--bench", type=Path, help="bench the videos answer: adds guide, mask, reference metrics")
    _metric_flags(sc)
    sc.set_defaults(func=_score)

    bl = evs.add_parser(
        "baseline",
        help="answer a bench without generating (truth, still first frame, cross-fade, a model's VAE round "
        "trip of the truth) and score it",
    )
    bl.add_argument("--bench", type=Path, required=True, help="bench file (YAML or JSONL)")
    # baselines.BASELINES, spelled out here so that building the parser imports no torch
    bl.add_argument("--kind", choices=("truth", "still", "crossfade", "round-trip"), required=True)
    bl.add_argument("--model", type=Path, help="model directory whose VAE the round-trip baseline uses")
    bl.add_argument("--out", type=Path, required=True, help="run folder")
    _metric_flags(bl)
    bl.set_defaults(func=_baseline)

    co = evs.add_parser("compare", help="put runs side by side (cases common to all)")
    co.add_argument("runs", nargs="+", type=Path, help="run folders")
    co.add_argument("--out", type=Path, help="also write compare.html and compare.json here")
    co.set_defaults(func=_compare)

    ra = evs.add_parser("rate", help="serve the blind A/B rating page for two or more runs")
    ra.add_argument("runs", nargs="+", type=Path, help="run folders (of the same bench)")
    ra.add_argument("--db", type=Path, required=True, help="SQLite file for the votes (created if missing)")
    ra.add_argument("--host", default="127.0.0.1")
    ra.add_argument("--port", type=int, default=8765)
    ra.add_argument(
        "--invite",
        type=int,
        default=0,
        metavar="N",
        help="print N new invitation links, one per rater (needed off this machine; a rater = a link)",
    )
    ra.set_defaults(func=_rate)

    rs = evs.add_parser("ratings", help="win rates with 95%% confidence intervals from a votes file")
    rs.add_argument("--db", type=Path, required=True, help="the rating page's SQLite file")
    rs.set_defaults(func=_ratings)

    sh = evs.add_parser("schema", help="print the JSON Schema of YAML bench files (for editors)")
    sh.set_defaults(func=_schema)
