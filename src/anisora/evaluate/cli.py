"""`anisora evaluate ...`: the command layer over the evaluation API (one subcommand per function)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..commands import print_schema, size
from ..errors import InputError

log = logging.getLogger(__name__)


def _toonworld(args: argparse.Namespace) -> int:
    from .toonworld_bench import build_toonworld_bench

    width, height = args.size
    path = build_toonworld_bench(
        args.out, args.per_cell, width, height, args.fps, args.frames, split=args.split
    )
    print(f"{path}: {args.per_cell} {args.split} cases per task and label, with ground truth")
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
        log.error("case %s failed: %s", case, error)
    summary = outcome["summary"]
    if summary is None:
        print(f"shard done: run again without --shard to write the summary and report of {out}")
        return 1 if outcome["failures"] else 0
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
        motion_guidance=args.motion_guidance,
        scheduler=args.scheduler,
        lora=str(args.lora) if args.lora else None,
        lora_scale=args.lora_scale,
        mask_lora=args.mask_lora,
        dtype=args.dtype,
        device=args.device,
        decode_change=args.decode_change,
    )
    model = args.model or demo_model_dir()
    outcome = run_benchmark(
        args.bench,
        model,
        args.out,
        settings,
        _options(args),
        args.name,
        not args.quiet,
        args.shard,
        frozenset(args.task) if args.task else None,
    )
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

    print_schema(bench_schema())
    return 0


def _read_notes(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"--notes {path}: {error}") from None


def _model_card(args: argparse.Namespace) -> int:
    from ..model.weights import load_pipeline
    from ..toonworld.held_out import held_out_shots
    from .model_card import (
        compute_description,
        earlier_training,
        stage_summary,
        vae_summary,
        write_model_card,
    )
    from .targets import RunFigures, directory_mb, judge, time_default_clip

    earlier = {"stages": [], "vae": None, "lora": None}
    if args.continues:
        earlier = earlier_training(args.continues)
    stages = [*earlier["stages"], *(stage_summary(run) for run in args.stage)]
    if not stages:
        raise InputError("name the stage runs (--stage) or the model this one continues (--continues)")
    vae = vae_summary(args.vae_run, earlier["vae"]) if args.vae_run else earlier["vae"]
    if vae is None:
        raise InputError("name the VAE run (--vae-run) or the model this one continues (--continues)")
    notes = _read_notes(args.notes) if args.notes else ""
    lora = stage_summary(args.lora_run) if args.lora_run else earlier["lora"]
    model = RunFigures.read(args.eval_run)
    round_trip, crossfade = (RunFigures.read(r) if r else None for r in (args.round_trip, args.crossfade))
    others = [_ablation(name, path) for name, path in args.ablation]
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    shot = held_out_shots(1, 17, 8.0, 160, 96, still_camera=True)[0]
    seconds = time_default_clip(pipe, shot.frames[0], shot.frames[-1], shot.caption)
    targets = judge(model, round_trip, crossfade, seconds, directory_mb(args.model))
    runs = [model, *others, *(r for r in (round_trip, crossfade) if r)]
    compute = args.compute or compute_description()
    card = write_model_card(args.model, stages, vae, targets, runs, compute, args.command, lora, notes)
    for t in targets:
        verdict = {True: "met", False: "NOT met", None: "n/a"}[t.met]
        print(f"{verdict}: {t.figure}: {t.measured} ({t.goal})")
    print(card)
    return 0


def _ablation(name: str, where: Path):
    """An ablation row: an evaluate run folder, or FIGURES#RUN, a run an earlier card recorded."""
    from .targets import RunFigures

    figures, sep, run = str(where).partition("#")
    return RunFigures.recorded(figures, run, name) if sep else RunFigures.read(where, name)


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return int(index), int(count)


def _named_run(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=RUN_DIR, got {text!r}")
    return name.strip(), Path(path)


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


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    from ..model.request import SCHEDULER_HELP, SCHEDULERS
    from .tasks import TASKS

    ev = sub.add_parser(
        "evaluate",
        help="benchmark a model or score videos (VBench-style metrics, reports, blind A/B rating)",
        description="Evaluation: build a ToonWorld bench, run a model on a bench, score any videos, compare "
        "runs, rate runs blind in a browser, and write a trained model's card.",
    )
    evs = ev.add_subparsers(dest="evaluate_command", required=True, metavar="SUBCOMMAND")

    tw = evs.add_parser("toonworld", help="build the ToonWorld benchmark (held-out shots with ground truth)")
    tw.add_argument("--out", type=Path, required=True, help="folder for bench.yaml and the case files")
    tw.add_argument("--per-cell", type=int, default=6, help="cases per task and label (default 6: 108 cases)")
    tw.add_argument("--size", type=size, default=(160, 96), help="WIDTHxHEIGHT (default 160x96)")
    tw.add_argument("--fps", type=int, default=8, help="frame rate (default 8)")
    tw.add_argument("--frames", type=int, default=17, help="frames per case, 8k+1 (default 17: 2 s)")
    tw.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="test: the held-out shots models are judged on (default); validation: other held-out shots, "
        "for choosing sampling settings without touching the test shots",
    )
    tw.set_defaults(func=_toonworld)

    ru = evs.add_parser("run", help="generate every case of a bench with a model, score it, write the report")
    ru.add_argument("--bench", type=Path, required=True, help="bench file (YAML or JSONL)")
    ru.add_argument("--model", type=Path, help="model folder (default: the shipped demo model)")
    ru.add_argument("--out", type=Path, required=True, help="run folder (re-running resumes)")
    ru.add_argument("--steps", type=int, help="sampling steps (default: the model's; 50 for CogVideoX)")
    ru.add_argument("--guidance", type=float, help="CFG scale (default: the model's; 6 for CogVideoX)")
    ru.add_argument(
        "--motion-guidance",
        type=float,
        metavar="SCALE",
        help="guidance over the motion score in the first sampling steps (default: the model's; 0: none)",
    )
    ru.add_argument("--scheduler", choices=SCHEDULERS, help=SCHEDULER_HELP)
    ru.add_argument("--lora", type=Path, help="LoRA folder applied to every case (e.g. the region LoRA)")
    ru.add_argument("--lora-scale", type=float, default=1.0)
    ru.add_argument(
        "--no-mask-lora",
        dest="mask_lora",
        action="store_false",
        help="leave the model's own mask LoRA off in masked cases (an ablation)",
    )
    ru.add_argument(
        "--decode-whole",
        dest="decode_change",
        action="store_false",
        help="decode the demo model's whole video instead of only its change to the keyframes' flow "
        "interpolation (an ablation)",
    )
    ru.add_argument(
        "--shard",
        type=_shard,
        default=(1, 1),
        metavar="K/N",
        help="make and score only every N-th case from the K-th, so that N processes (cores, GPUs) share "
        "the run folder; then run without --shard to write the summary and report",
    )
    ru.add_argument(
        "--task",
        action="append",
        choices=TASKS,
        help="make and score only the cases of this task (repeatable; default every case): for an "
        "ablation that differs on some tasks only",
    )
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
        help="answer a bench without generating (truth, still first frame, cross-fade, the keyframes' "
        "optical-flow interpolation, a model's VAE round trip of the truth) and score it",
    )
    bl.add_argument("--bench", type=Path, required=True, help="bench file (YAML or JSONL)")
    # baselines.BASELINES, spelled out here so that building the parser imports no torch
    kinds = ("truth", "still", "crossfade", "interpolation", "round-trip")
    bl.add_argument("--kind", choices=kinds, required=True)
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

    mc = evs.add_parser(
        "model-card",
        help="write a trained model's README.md from its training runs and its evaluate runs",
        description="Write README.md and figures.json into MODEL: training from the stage, VAE and LoRA "
        "runs; quality from finished `anisora evaluate` runs on the held-out ToonWorld bench (the model's, "
        "the round-trip and cross-fade baselines', and any ablations), judged against the demo model's "
        "targets; and the time of one 2 s clip with the CLI's defaults on this machine.",
    )
    mc.add_argument("--model", type=Path, required=True, help="the trained model directory")
    mc.add_argument(
        "--continues",
        type=Path,
        metavar="MODEL",
        help="the model this one was trained from, whose card recorded its stages, VAE and LoRA: they are "
        "listed first (its VAE and LoRA kept unless --vae-run or --lora-run names new ones)",
    )
    mc.add_argument(
        "--vae-run",
        type=Path,
        help="the VAE directory from `anisora train vae` (a decoder fine-tune of the continued model's VAE "
        "is added to the record that model's card kept)",
    )
    mc.add_argument("--stage", type=Path, action="append", default=[], help="stage run folder (repeatable)")
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
        help="another evaluate run, for the card's comparison table, which shows the cases each run answered "
        "(repeatable); RUN is a run folder, or FIGURES#NAME for the run NAME an earlier card's figures.json "
        "recorded",
    )
    mc.add_argument("--command", default="make demo-model", help="the training command, for the card")
    mc.add_argument("--notes", type=Path, help="a Markdown file ending the card (why a target is not met)")
    mc.add_argument(
        "--compute",
        help="what the model was trained on, for the card (default: this machine's CPU cores, no GPU)",
    )
    mc.set_defaults(func=_model_card)
