"""The ToonWorld benchmark: held-out procedural shots (evaluation seed, never trained on) as bench cases with
ground truth, across action labels and the three guided tasks.

Each (task, label) cell gets `per_cell` distinct shots, drawn in index order from the evaluation seed:
- i2v: the true first frame as the guide at frame 0;
- interpolation: the true first and last frames;
- region: the true first frame and a motion mask (the characters' masks over the shot, dilated); shots with a
  still camera only, so that everything outside the characters truly stays put;
- motion: the true first frame, asked for at each of `MOTION_LEVELS` (one case per level, sharing the shot's
  files): the motion-control sweep (`results.motion_control`).
Every case keeps the true clip as its reference video and where it moves (the characters' masks over the
shot, undilated: the PSNR inside the moving region); the other tasks ask for the true clip's motion score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..media import save_image, write_video
from ..toonworld.held_out import EVAL_SEED, VALIDATION_SEED
from .cases import write_bench

LABELS = ("idle", "talking", "waving", "walking", "running", "jumping")
BENCH_TASKS = ("i2v", "interpolation", "region", "motion")
SPLITS = {"test": EVAL_SEED, "validation": VALIDATION_SEED}  # the bench's shots: which held-out seed
MOTION_LEVELS = (1.0, 8.0, 30.0)  # curation motion scores asked for (ToonWorld shots at 8 fps: median 8.4)


def build_toonworld_bench(
    out: str | Path,
    per_cell: int = 6,
    width: int = 160,
    height: int = 96,
    fps: int = 8,
    frames: int = 17,
    labels: tuple[str, ...] = LABELS,
    split: str = "test",
) -> Path:
    """Write `out/bench.yaml` and `out/cases/<id>/` (guide images, mask, truth.mp4, moving.png); returns the
    bench path. `split` "test" draws the held-out evaluation seed, "validation" the seed for choosing
    sampling settings (`SPLITS`). An existing bench file is replaced; case folders are rewritten."""
    from ..curate.scorers.motion import frames_motion_score
    from ..model.conditioning import check_frame_count
    from ..toonworld.held_out import MAX_SHOTS_SCANNED, motion_region, plan_clean_shot, render_clean_shot

    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    seed = SPLITS[split]
    if per_cell < 1:
        raise InputError(f"per_cell must be >= 1, got {per_cell}")
    check_frame_count(frames)
    if width % 16 or height % 16 or width < 16 or height < 16:
        raise InputError(f"the bench size must be positive multiples of 16, got {width}x{height}")
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise InputError(f"unknown ToonWorld label(s) {', '.join(unknown)}; known: {', '.join(LABELS)}")
    out = Path(out)
    size = (frames, float(fps), width, height)
    cells = {(task, label): [] for label in labels for task in BENCH_TASKS}
    for index in range(MAX_SHOTS_SCANNED):
        if all(len(shots) == per_cell for shots in cells.values()):
            break
        plan = plan_clean_shot(seed, index, *size)
        if plan.static or plan.label not in labels:
            continue
        open_cells = [
            task
            for task in BENCH_TASKS
            if len(cells[task, plan.label]) < per_cell and (task != "region" or plan.camera == "still")
        ]
        if open_cells:
            task = min(open_cells, key=lambda t: len(cells[t, plan.label]))
            cells[task, plan.label].append(index)
    short = [f"{task}/{label}" for (task, label), shots in cells.items() if len(shots) < per_cell]
    if short:
        raise InputError(f"not enough ToonWorld shots for {', '.join(short)} in {MAX_SHOTS_SCANNED} tried")

    cases = []
    for (task, label), indices in cells.items():
        for number, index in enumerate(indices, 1):
            case_id = f"{task}-{label}-{number:02d}"
            shot = render_clean_shot(seed, index, *size)
            mask = motion_region(shot.foreground) if task == "region" else None
            case = _write_case(out, case_id, task, label, shot, mask)
            if task != "motion":
                cases.append({**case, "motion": round(frames_motion_score(shot.frames, shot.fps), 2)})
                continue
            cases += [{**case, "id": f"{case_id}-at{level:g}", "motion": level} for level in MOTION_LEVELS]
    defaults = {"frames": frames, "fps": fps, "width": width, "height": height, "dim": "2D"}
    path = out / "bench.yaml"
    name = f"toonworld-{width}x{height}-{frames}f-{fps}fps" + ("" if split == "test" else f"-{split}")
    write_bench(path, name, cases, defaults)
    return path


def _write_case(out: Path, case_id: str, task: str, label: str, shot, mask) -> dict:
    """One case's files under out/cases/<id>/ and its bench entry (paths relative to `out`), without the
    motion score to ask for."""
    rel = Path("cases") / case_id
    (out / rel).mkdir(parents=True, exist_ok=True)
    save_image(out / rel / "first.png", shot.frames[0])
    guides = [{"frame": 0, "image": str(rel / "first.png")}]
    if task == "interpolation":
        save_image(out / rel / "last.png", shot.frames[-1])
        guides.append({"frame": "last", "image": str(rel / "last.png")})
    case = {"id": case_id, "task": task, "label": label, "prompt": shot.caption, "guides": guides}
    if mask is not None:
        save_image(out / rel / "mask.png", np.repeat(mask[..., None], 3, axis=2))
        case["mask"] = str(rel / "mask.png")
    write_video(out / rel / "truth.mp4", shot.frames, shot.fps, lossless=True)  # the exact ground truth
    case["reference"] = str(rel / "truth.mp4")
    from ..toonworld.held_out import motion_region

    moving = motion_region(shot.foreground, dilation=0)  # where the characters are, at any frame
    save_image(out / rel / "moving.png", np.repeat(moving[..., None], 3, axis=2))
    case["moving"] = str(rel / "moving.png")
    return case
