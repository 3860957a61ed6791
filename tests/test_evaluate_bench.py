"""Benchmarks end to end: bench files, the ToonWorld bench, per-case scoring inputs, resumable benchmark
runs with a tiny random model, scoring outside videos, and the `anisora evaluate` subcommands."""

import csv
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from diffusers import AutoencoderKLCogVideoX
from safetensors.torch import load_file, save_file

import anisora.model.generate as generate_module
import anisora.model.loading as loading_module
from anisora.cli import main
from anisora.errors import InputError
from anisora.evaluate import report, runner
from anisora.evaluate.baselines import run_baseline
from anisora.evaluate.cases import load_bench, write_bench
from anisora.evaluate.compare import compare_runs
from anisora.evaluate.results import motion_control, record_values, summarize
from anisora.evaluate.runner import GenerationSettings, run_benchmark, score_videos
from anisora.evaluate.scoring import build_metrics, case_inputs, score_file
from anisora.evaluate.toonworld_bench import LABELS, MOTION_LEVELS, build_toonworld_bench
from anisora.media import load_image, probe, read_frames, save_image, write_video
from anisora.model.hub import model_fingerprint
from anisora.model.interpolation import keyframe_video
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.model.vae import reconstruct

W, H, FRAMES, FPS = 64, 48, 9, 8
RUN_CASES = ("i2v-idle-01", "interpolation-idle-01", "region-idle-01")
RECORD_KEYS = {"case", "task", "label", "dim", "prompt", "video", "frames", "fps", "width", "height"}
RECORD_KEYS |= {"scores", "details", "seconds_generate", "seconds_score"}
NO_INPUT_METRICS = {"motion_smoothness", "dynamic_degree", "motion_score", "subject_consistency"}
NO_INPUT_METRICS |= {"background_consistency", "imaging_quality_brisque"}


def moving_clip(frames=FRAMES, width=W, height=H, x0=36, step=2, colour=(250, 250, 40)):
    """A gradient background with a square sliding right along the right half of the frame."""
    yy, xx = np.mgrid[:height, :width]
    background = np.stack([xx * 3, yy * 4, 255 - xx * 2], -1).clip(0, 255).astype(np.uint8)
    clip = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        x = min(x0 + step * t, width - 8)
        clip[t, 16:32, x : x + 8] = colour
    return clip


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def error_of(path):
    with pytest.raises(InputError) as caught:
        load_bench(path)
    return str(caught.value)


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("anisora:")]
    assert len(lines) == 1 and lines[0].startswith("anisora: error:"), err
    assert "Traceback" not in err
    return lines[0]


def strip_timing(record):
    return {k: v for k, v in record.items() if k not in ("seconds_score", "seconds_generate")}


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Guide images (80x48), an 80x48 mask (right half white), a 9-frame clip and its near-copy, a 5-frame
    clip."""
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    save_image(root / "wide.png", (rng.random((48, 80, 3)) * 255).astype(np.uint8))
    mask = np.zeros((48, 80, 3), np.uint8)
    mask[:, 40:] = 255
    save_image(root / "mask80.png", mask)
    clip = moving_clip()
    write_video(root / "clip.mp4", clip, FPS)
    noisy = np.clip(clip.astype(int) + rng.integers(-3, 4, clip.shape), 0, 255).astype(np.uint8)
    write_video(root / "truth.mp4", noisy, FPS)
    write_video(root / "short.mp4", clip[:5], FPS)
    save_image(root / "first.png", clip[0])
    save_image(root / "last.png", clip[-1])
    half = np.zeros((H, W, 3), np.uint8)
    half[:, W // 2 :] = 255
    save_image(root / "mask.png", half)
    return root


@pytest.fixture(scope="module")
def toonworld(tmp_path_factory):
    root = tmp_path_factory.mktemp("toonworld")
    return build_toonworld_bench(root, per_cell=1, width=W, height=H, fps=FPS, frames=FRAMES)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="module")
def bench3(toonworld, tmp_path_factory):
    """A 3-case bench (i2v, interpolation, region) with its own copy of the ToonWorld case files."""
    root = tmp_path_factory.mktemp("bench3")
    data = yaml.safe_load(toonworld.read_text(encoding="utf-8"))
    cases = [c for c in data["cases"] if c["id"] in RUN_CASES]
    for case in cases:
        shutil.copytree(toonworld.parent / "cases" / case["id"], root / "cases" / case["id"])
    write_bench(root / "bench.yaml", "three", cases, data["defaults"])
    return root / "bench.yaml"


@pytest.fixture(scope="module")
def bench_run(bench3, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    outcome = run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    return out, outcome


def copy_run(bench_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(bench_run[0], out)
    return out


def forbid_generation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a video was generated again")

    monkeypatch.setattr(generate_module, "generate_to_file", refuse)
    monkeypatch.setattr(loading_module, "open_pipeline", refuse)


# ------------------------------------------------------------------------------------------ bench files


@pytest.fixture
def bench_dir(tmp_path, media):
    folder = tmp_path / "bench"
    (folder / "img").mkdir(parents=True)
    for name in ("first.png", "last.png", "mask.png"):
        shutil.copy(media / name, folder / "img" / name)
    shutil.copy(media / "truth.mp4", folder / "truth.mp4")
    return folder


def sample_cases():
    first = {"frame": 0, "image": "img/first.png"}
    return [
        {"id": "a", "prompt": "one", "guides": [first]},
        {"id": "b", "prompt": "two", "guides": [first, {"frame": "last", "image": "img/last.png"}]},
        {"id": "c", "prompt": "three", "guides": [{"frame": 8, "image": "img/last.png", "strength": 0.5}]},
        {"id": "d", "prompt": "four", "guides": [first], "mask": "img/mask.png", "reference": "truth.mp4"},
        {"id": "e.t2v_1", "prompt": "five", "frames": 17, "seed": 5, "dim": "3D"},
    ]


def test_yaml_and_jsonl_benches_load_to_equal_cases(bench_dir, tmp_path, monkeypatch):
    defaults = {"frames": 9, "fps": 8, "width": 64, "height": 48, "dim": "2D", "seed": 3}
    write_yaml(bench_dir / "bench.yaml", {"name": "demo", "defaults": defaults, "cases": sample_cases()})
    lines = [json.dumps({**defaults, **case}) for case in sample_cases()]
    (bench_dir / "bench.jsonl").write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # paths resolve against the bench file, not the cwd

    from_yaml, from_jsonl = load_bench(bench_dir / "bench.yaml"), load_bench(bench_dir / "bench.jsonl")
    assert from_yaml.cases == from_jsonl.cases
    assert (from_yaml.name, from_jsonl.name) == ("demo", "bench")
    assert from_yaml.path == (bench_dir / "bench.yaml").resolve()
    cases = from_yaml.by_id()
    assert [c.task for c in from_yaml.cases] == ["i2v", "interpolation", "interpolation", "region", "t2v"]
    assert cases["a"].request.guides[0].image == (bench_dir / "img" / "first.png").resolve()
    assert (
        cases["a"].request.guides[0].image.is_file()
        and cases["d"].request.mask == (bench_dir / "img/mask.png").resolve()
    )
    assert cases["d"].reference == (bench_dir / "truth.mp4").resolve()
    assert [(g.frame, g.strength) for g in cases["b"].request.guides] == [(0, 1.0), ("last", 1.0)]
    assert [(g.frame, g.strength) for g in cases["c"].request.guides] == [(8, 0.5)]
    # defaults apply, a case overrides them
    assert (
        cases["a"].request.frames,
        cases["a"].request.fps,
        cases["a"].request.width,
        cases["a"].request.height,
    ) == (9, 8, 64, 48)
    assert (cases["a"].request.seed, cases["a"].dim) == (3, "2D")
    assert (cases["e.t2v_1"].request.frames, cases["e.t2v_1"].request.seed, cases["e.t2v_1"].dim) == (
        17,
        5,
        "3D",
    )
    assert cases["e.t2v_1"].request.guides == () and cases["e.t2v_1"].request.mask is None
    info = cases["a"].info()
    assert {k: info[k] for k in ("case", "task", "label", "dim", "prompt")} == {
        "case": "a",
        "task": "i2v",
        "label": None,
        "dim": "2D",
        "prompt": "one",
    }


def test_explicit_task_and_case_from_another_folder(bench_dir, tmp_path):
    """A bench in a subfolder reaches files with ../, and an explicit task wins over the inferred one."""
    sub = bench_dir / "sub"
    sub.mkdir()
    case = {"id": "x", "prompt": "p", "task": "t2v", "guides": [{"frame": 0, "image": "../img/first.png"}]}
    bench = load_bench(write_yaml(sub / "b.yml", {"cases": [case]}))
    assert bench.name == "b" and bench.cases[0].task == "t2v"
    assert bench.cases[0].request.guides[0].image == (bench_dir / "img" / "first.png").resolve()


GOOD = {"id": "a", "prompt": "p", "guides": [{"frame": 0, "image": "img/first.png"}]}


@pytest.mark.parametrize(
    ("cases", "fragments"),
    [
        ([{**GOOD, "id": "../x"}], ["case 1", "'../x'"]),
        ([GOOD, {**GOOD, "id": ""}], ["case 2", "''"]),
        ([GOOD, {**GOOD, "prompt": "q"}], ["'a'", "appears twice"]),
        ([{**GOOD, "colour": "red"}], ["(a): colour: unknown key; known: "]),
        ([{k: v for k, v in GOOD.items() if k != "prompt"}], ["(a)", "prompt"]),
        ([{**GOOD, "prompt": "  "}], ["(a): prompt: must not be blank, got '  '"]),
        (
            [{**GOOD, "guides": [{"frame": "first", "image": "img/first.png"}]}],
            ["(a): guides[0].frame: expected an integer or 'last', got 'first'"],
        ),
        (
            [{**GOOD, "guides": [{"frame": 0, "image": "img/nope.png"}]}],
            ["(a): guides[0].image: ", "nope.png does not exist"],
        ),
        ([{**GOOD, "task": "region"}], ["(a)", "needs a mask"]),
        (
            [{**GOOD, "guides": [{"frame": 0, "image": "img/first.png", "strength": 0}]}],
            ["(a): guides[0].strength: must be > 0, got 0"],
        ),
        ([{**GOOD, "task": "i2v", "guides": []}], ["(a)", "needs guide images"]),
        ([{**GOOD, "mask": "img/nomask.png"}], ["(a): mask: ", "nomask.png"]),
        ([{**GOOD, "frames": 0}], ["(a): frames: must be > 0, got 0"]),
        ([{**GOOD, "dim": "4D"}], ["(a): dim: expected one of '2D' or '3D', got '4D'"]),
        ([{**GOOD, "motion": "fast"}], ["(a): motion: expected a number, got 'fast'"]),
        ([{**GOOD, "guides": [{"frame": 0, "at": 0.5, "image": "x"}]}], ["(a): guides[0]: give frame or at"]),
        ([{**GOOD, "guides": [{"at": 1.5, "image": "img/first.png"}]}], ["(a): guides[0].at: must be <= 1"]),
        ([{**GOOD, "guides": [{"frame": 0}]}], ["(a): guides[0].image: required"]),
    ],
)
def test_bad_cases_name_the_case(bench_dir, cases, fragments):
    message = error_of(write_yaml(bench_dir / "bench.yaml", {"cases": cases}))
    assert all(f in message for f in fragments), message
    assert "bench.yaml" in message


def test_bad_bench_files(bench_dir, tmp_path):
    assert "nowhere.yaml" in error_of(tmp_path / "nowhere.yaml")
    good = json.dumps(GOOD)
    (bench_dir / "b.jsonl").write_text(f"{good}\n\n{{not json\n")
    message = error_of(bench_dir / "b.jsonl")
    assert "b.jsonl line 3" in message and "not JSON" in message
    assert "'cases:'" in error_of(write_yaml(bench_dir / "b.yaml", {"name": "x"}))
    assert "'cases:'" in error_of(write_yaml(bench_dir / "b.yaml", [GOOD]))
    assert "no cases" in error_of(write_yaml(bench_dir / "b.yaml", {"cases": []}))
    assert "defaults" in error_of(
        write_yaml(bench_dir / "b.yaml", {"defaults": {"task": "i2v"}, "cases": [GOOD]})
    )


def test_jsonl_case_errors_name_the_file_line(bench_dir):
    bad = {**GOOD, "id": "../x"}
    (bench_dir / "b.jsonl").write_text(f"{json.dumps(GOOD)}\n\n{json.dumps(bad)}\n")
    assert "line 3" in error_of(bench_dir / "b.jsonl")


# ------------------------------------------------------------------------------------------ ToonWorld


def test_toonworld_bench_cases_and_files(toonworld):
    bench = load_bench(toonworld)
    assert bench.name == "toonworld-64x48-9f-8fps"
    assert len(bench.cases) == 36  # 3 tasks x 6 labels, and the motion sweep: 6 labels x 3 levels
    cells = {(c.task, c.label) for c in bench.cases}
    assert cells == {(t, label) for t in ("i2v", "interpolation", "region", "motion") for label in LABELS}
    for case in bench.cases:
        shot = f"{case.task}-{case.label}-01"
        if case.task == "motion":
            assert case.id == f"{shot}-at{case.request.motion:g}"
        else:
            assert case.id == shot
        assert (case.request.frames, case.request.fps, case.request.width, case.request.height, case.dim) == (
            FRAMES,
            FPS,
            W,
            H,
            "2D",
        )
        assert case.request.prompt.strip() and case.request.motion is not None and case.request.motion >= 0
        files = (
            [g.image for g in case.request.guides]
            + [case.reference, case.moving]
            + ([case.request.mask] if case.request.mask else [])
        )
        assert all(p.is_file() and p.is_relative_to(toonworld.parent / "cases" / shot) for p in files)
        info = probe(case.reference)
        assert (info.frame_count, info.width, info.height, info.fps) == (FRAMES, W, H, FPS)
        truth = read_frames(case.reference, range(FRAMES)).astype(float)
        first = load_image(case.request.guides[0].image).astype(float)
        assert (
            case.request.guides[0].frame == 0 and np.abs(first - truth[0]).mean() < 12
        )  # the true first frame
        if case.task == "interpolation":
            assert [g.frame for g in case.request.guides] == [0, "last"]
            assert np.abs(load_image(case.request.guides[1].image) - truth[-1]).mean() < 12
        else:
            assert len(case.request.guides) == 1
        assert (case.request.mask is not None) == (case.task == "region")
        if case.request.mask is not None:
            white = load_image(case.request.mask)[..., 0] >= 128
            assert white.shape == (H, W) and 0 < white.sum() < H * W
            change = np.abs(truth - truth[0]).max(axis=3)  # still camera: only the masked area moves
            assert change[:, ~white].mean() < 1.0 < change[:, white].mean()


def test_the_motion_sweep_asks_each_shot_at_every_level(toonworld):
    sweep = [c for c in load_bench(toonworld).cases if c.task == "motion"]
    by_shot = {}
    for case in sweep:
        by_shot.setdefault(case.reference, []).append(case.request.motion)
    assert len(by_shot) == len(LABELS) and all(v == list(MOTION_LEVELS) for v in by_shot.values())


def test_motion_control_ranks_asked_against_measured():
    def record(shot, asked, measured):
        scores = {"motion_score": measured}
        return {
            "case": f"{shot}-{asked}",
            "task": "motion",
            "motion": asked,
            "reference": shot,
            "scores": scores,
        }

    rising = [record("a", 1, 2.0), record("a", 8, 5.0), record("a", 30, 9.0)]
    flat = [record("b", 1, 4.0), record("b", 8, 3.0), record("b", 30, 6.0)]
    control = motion_control([*rising, *flat, {"case": "x", "task": "i2v", "scores": {"motion_score": 1.0}}])
    assert control["cases"] == 6 and control["shots"] == 2 and control["rising_shots"] == 1
    assert control["rising_share"] == 0.5 and control["levels"] == [1.0, 8.0, 30.0]
    assert control["measured_mean"] == [3.0, 4.0, 7.5]
    assert 0.8 < control["spearman"] < 1.0
    assert summarize(rising)["motion_control"]["spearman"] == pytest.approx(1.0)
    same = [record("c", level, 3.0) for level in (1, 8, 30)]
    assert motion_control(same)["spearman"] is None and motion_control(same)["rising_share"] == 0.0
    assert motion_control(rising[:1] + flat[:0])["rising_share"] is None
    assert motion_control([]) is None and "motion_control" not in summarize(flat[:0])
    shown = report.motion_control_text(summarize([*rising, *flat])["motion_control"])
    assert "Spearman rank correlation of asked and measured motion_score 0.84" in shown
    assert "rises with the asked score in 1 of 2 shots; asked 1 / 8 / 30 gives 3.00 / 4.00 / 7.50" in shown


def test_toonworld_validation_split_draws_other_shots(toonworld, tmp_path):
    validation = build_toonworld_bench(
        tmp_path, per_cell=1, width=W, height=H, fps=FPS, frames=FRAMES, split="validation"
    )
    test_cases, validation_cases = load_bench(toonworld).cases, load_bench(validation).cases
    assert [c.id for c in test_cases] == [c.id for c in validation_cases]
    assert load_bench(validation).name.endswith("-validation")
    firsts = [
        {load_image(c.request.guides[0].image).tobytes() for c in cases}
        for cases in (test_cases, validation_cases)
    ]
    assert not firsts[0] & firsts[1]
    with pytest.raises(InputError, match="split must be one of test, validation"):
        build_toonworld_bench(tmp_path, per_cell=1, split="train")


def test_toonworld_bench_unknown_label_and_bad_count(tmp_path):
    with pytest.raises(InputError, match="dancing"):
        build_toonworld_bench(tmp_path, per_cell=1, labels=("waving", "dancing"))
    with pytest.raises(InputError, match="per_cell"):
        build_toonworld_bench(tmp_path, per_cell=0)
    assert not (tmp_path / "bench.yaml").exists()


def test_cli_toonworld_is_deterministic(toonworld, tmp_path, capsys):
    out = tmp_path / "again"
    args = ["evaluate", "toonworld", "--out", str(out), "--per-cell", "1", "--size", "64x48"]
    assert main([*args, "--fps", "8", "--frames", "9"]) == 0
    assert str(out / "bench.yaml") in capsys.readouterr().out
    assert (out / "bench.yaml").read_text() == toonworld.read_text()
    for case in load_bench(toonworld).cases:
        for path in [g.image for g in case.request.guides] + (
            [case.request.mask] if case.request.mask else []
        ):
            twin = out / path.relative_to(toonworld.parent)
            assert twin.read_bytes() == path.read_bytes()


# ------------------------------------------------------------------------------------------ scoring


def make_case(root, **fields):
    cases = [{"id": "c", "prompt": "a yellow square slides right", **fields}]
    return load_bench(
        write_yaml(root / f"case-{len(list(root.glob('case-*')))}.yaml", {"cases": cases})
    ).cases[0]


def test_case_inputs_fit_guides_and_mask_to_the_video(media):
    wide = load_image(media / "wide.png")
    guides = [{"frame": 0, "image": "wide.png"}, {"frame": "last", "image": "wide.png"}]
    case = make_case(media, guides=guides, mask="mask80.png", reference="short.mp4")
    video = moving_clip()
    inputs, notes = case_inputs(case, video, 8.0)
    assert inputs["prompt"] == case.request.prompt and inputs["fps"] == 8.0
    assert sorted(inputs["guides"]) == [0, 8]
    assert inputs["image"].shape == (H, W, 3) and inputs["image"].dtype == np.uint8
    assert np.array_equal(inputs["image"], wide[:, 8:72])  # 80 wide -> centre crop to 64
    mask = inputs["mask"]
    assert mask.shape == (H, W) and mask.dtype == np.bool_
    assert mask[:, 32:].all() and not mask[:, :32].any()  # white from x=40 of 80 -> x=32 of 64
    assert "reference" not in inputs
    assert any("reference has 5 frames" in note for note in notes)

    case = make_case(media, guides=[{"frame": -1, "image": "wide.png"}], reference="truth.mp4")
    inputs, notes = case_inputs(case, video, 8.0)
    assert sorted(inputs["guides"]) == [8] and "image" not in inputs and notes == []
    assert inputs["reference"].shape == (FRAMES, H, W, 3)

    case = make_case(media, guides=[{"frame": 12, "image": "wide.png"}])
    inputs, notes = case_inputs(case, video, 8.0)
    assert "guides" not in inputs and any("outside" in note for note in notes)


@pytest.fixture(scope="module")
def metrics():
    return build_metrics()


def test_score_file_with_an_interpolation_case(media, metrics):
    guides = [{"frame": 0, "image": "first.png"}, {"frame": "last", "image": "last.png"}]
    case = make_case(
        media, guides=guides, reference="truth.mp4", moving="mask.png", label="sliding", dim="2D"
    )
    assert case.task == "interpolation"
    record = score_file(metrics, media / "clip.mp4", case, "videos/c.mp4")
    assert {"i2v_subject", "guide_fidelity", "psnr", "ssim"} <= set(record["scores"])
    values = record_values(record)  # the truth is the clip plus noise of +-3 grey levels
    assert 30 < values["psnr_moving"] < 100 and 30 < values["psnr_unguided"] < 100
    assert set(record["scores"]) >= NO_INPUT_METRICS and "motion_mask_precision" not in record["scores"]
    assert RECORD_KEYS - {"seconds_generate"} <= set(record)
    assert (record["case"], record["task"], record["label"], record["dim"]) == (
        "c",
        "interpolation",
        "sliding",
        "2D",
    )
    assert (record["video"], record["frames"], record["fps"], record["width"], record["height"]) == (
        "videos/c.mp4",
        FRAMES,
        8.0,
        W,
        H,
    )
    scores = record["scores"]
    assert scores["psnr"] > 30 and scores["guide_fidelity"] > 30 and 0.8 < scores["ssim"] <= 1.0
    assert set(record["details"]["guide_fidelity"]) >= {"psnr@0", "psnr@8"}

    wrong = make_case(media, guides=[{"frame": 0, "image": "wide.png"}], reference="truth.mp4")
    other = score_file(metrics, media / "clip.mp4", wrong, "v.mp4")["scores"]
    assert other["guide_fidelity"] < scores["guide_fidelity"] - 10
    assert other["psnr"] == pytest.approx(scores["psnr"])


def test_score_file_with_a_region_case(media, metrics):
    inside = make_case(media, guides=[{"frame": 0, "image": "first.png"}], mask="mask.png")
    assert inside.task == "region"
    record = score_file(metrics, media / "clip.mp4", inside, "v.mp4")
    assert "motion_mask_precision" in record["scores"] and "psnr" not in record["scores"]
    assert record["scores"]["motion_mask_precision"] > 0.9  # the square moves in the right half only
    assert set(record["details"]["motion_mask_precision"]) >= {"recall", "iou"}


def test_score_file_without_a_case(media, metrics):
    record = score_file(metrics, media / "clip.mp4", None, str(media / "clip.mp4"))
    assert set(record["scores"]) == NO_INPUT_METRICS
    assert (record["case"], record["task"], record["label"], record["prompt"]) == ("clip", None, None, None)
    assert record["video"] == str(media / "clip.mp4") and record["frames"] == FRAMES


# ------------------------------------------------------------------------------------------ benchmark runs


def test_run_writes_the_run_directory(bench_run, bench3, model):
    out, outcome = bench_run
    assert outcome["failures"] == {}
    records = jsonl(out / "results.jsonl")
    assert [r["case"] for r in records] == list(RUN_CASES)
    assert [r["task"] for r in records] == ["i2v", "interpolation", "region"]
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert (record["label"], record["dim"]) == ("idle", "2D") and record["prompt"]
        assert record["video"] == f"videos/{record['case']}.mp4"
        assert (record["frames"], record["fps"], record["width"], record["height"]) == (FRAMES, 8.0, W, H)
        info = probe(out / record["video"])
        assert (info.frame_count, info.width, info.height) == (FRAMES, W, H)
        sidecar = json.loads((out / "videos" / f"{record['case']}.json").read_text())
        assert record["seconds_generate"] == sidecar["seconds_sample"] and record["seconds_generate"] > 0
        assert record == json.loads((out / "scores" / f"{record['case']}.json").read_text())
        assert {"guide_fidelity", "i2v_subject", "psnr", "ssim"} <= set(record["scores"])
    assert (
        "motion_mask_precision" in records[2]["scores"],
        "motion_mask_precision" in records[0]["scores"],
    ) == (
        True,
        False,
    )
    assert {"psnr@0", "psnr@8"} <= set(records[1]["details"]["guide_fidelity"])
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == list(RUN_CASES)
    assert rows[0]["motion_mask_precision"] == "" and float(rows[2]["psnr"]) == pytest.approx(
        records[2]["scores"]["psnr"]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary == outcome["summary"] and summary["cases"] == 3
    assert set(summary["by_task"]) == {"i2v", "interpolation", "region"} and set(summary["by_label"]) == {
        "idle"
    }
    assert summary["overall"]["psnr"]["n"] == 3
    assert summary["overall"]["psnr"]["mean"] == pytest.approx(
        np.mean([r["scores"]["psnr"] for r in records])
    )
    assert json.loads((out / "failures.json").read_text()) == {}
    assert outcome["report"] == out / "report.html"
    assert all(case in (out / "report.html").read_text() for case in RUN_CASES)
    run = json.loads((out / "run.json").read_text())
    assert (run["kind"], run["name"]) == ("benchmark", "model")
    assert (run["model"], run["bench"]) == (os.path.relpath(model, out), os.path.relpath(bench3, out))
    assert run["settings"]["steps"] == 2
    assert {m["name"] for m in run["metrics"]} >= NO_INPUT_METRICS | {"psnr", "motion_mask_precision"}


def test_rerun_resumes_without_generating(bench_run, bench3, model, tmp_path, monkeypatch):
    out = copy_run(bench_run, tmp_path)
    before = (out / "results.jsonl").read_text()
    forbid_generation(monkeypatch)
    scored = []
    real_score_file = runner.score_file

    def spy(metrics, video, case, record_video):
        scored.append(case.id)
        return real_score_file(metrics, video, case, record_video)

    monkeypatch.setattr(runner, "score_file", spy)
    outcome = run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    assert outcome["failures"] == {} and scored == []
    assert (out / "results.jsonl").read_text() == before

    kept = {c: (out / "scores" / f"{c}.json").stat().st_mtime_ns for c in RUN_CASES}
    old = json.loads((out / "scores" / "interpolation-idle-01.json").read_text())
    (out / "scores" / "interpolation-idle-01.json").unlink()
    outcome = run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    assert outcome["failures"] == {} and scored == ["interpolation-idle-01"]
    for case in ("i2v-idle-01", "region-idle-01"):
        assert (out / "scores" / f"{case}.json").stat().st_mtime_ns == kept[case]
    new = json.loads((out / "scores" / "interpolation-idle-01.json").read_text())
    assert strip_timing(new) == strip_timing(old)
    assert [strip_timing(r) for r in jsonl(out / "results.jsonl")] == [
        strip_timing(r) for r in map(json.loads, before.splitlines())
    ]


def test_shards_share_a_run_folder_and_a_run_without_one_writes_the_report(
    bench_run, bench3, model, tmp_path, monkeypatch
):
    out, settings = tmp_path / "sharded", GenerationSettings(steps=2)
    for shard in ((1, 2), (2, 2)):
        outcome = run_benchmark(bench3, model, out, settings, progress=False, shard=shard)
        assert outcome == {"summary": None, "failures": {}, "report": None}
    made = sorted(p.stem for p in (out / "videos").glob("*.mp4"))
    assert made == sorted(RUN_CASES) and not (out / "results.jsonl").exists()
    forbid_generation(monkeypatch)
    outcome = run_benchmark(bench3, model, out, settings, progress=False)
    assert outcome["failures"] == {} and outcome["summary"]["cases"] == len(RUN_CASES)
    expected = {r["case"]: strip_timing(r) for r in jsonl(bench_run[0] / "results.jsonl")}
    assert {r["case"]: strip_timing(r) for r in jsonl(out / "results.jsonl")} == expected
    with pytest.raises(InputError, match="shard 3/2"):
        run_benchmark(bench3, model, out, settings, progress=False, shard=(3, 2))


def test_a_run_of_some_tasks_makes_only_their_cases(bench_run, bench3, model, tmp_path):
    out, settings = tmp_path / "region-only", GenerationSettings(steps=2)
    with pytest.raises(InputError, match="no case of task motion"):
        run_benchmark(bench3, model, out, settings, progress=False, tasks=frozenset({"motion"}))
    outcome = run_benchmark(bench3, model, out, settings, progress=False, tasks=frozenset({"region"}))
    assert outcome["failures"] == {} and outcome["summary"]["cases"] == 1
    assert [p.stem for p in (out / "videos").glob("*.mp4")] == ["region-idle-01"]
    expected = [strip_timing(r) for r in jsonl(bench_run[0] / "results.jsonl") if r["task"] == "region"]
    assert [strip_timing(r) for r in jsonl(out / "results.jsonl")] == expected


def test_another_model_or_settings_in_the_same_folder_is_refused(bench_run, bench3, model, tmp_path):
    out = copy_run(bench_run, tmp_path)
    run_json = (out / "run.json").read_text()
    with pytest.raises(InputError, match="model"):
        run_benchmark(bench3, tmp_path / "other-model", out, GenerationSettings(steps=2), progress=False)
    with pytest.raises(InputError, match="settings"):
        run_benchmark(bench3, model, out, GenerationSettings(steps=3), progress=False)
    bench_text = Path(bench3).read_text()
    try:  # a bench edited in place is another bench: its old videos and scores must not be reused
        Path(bench3).write_text(bench_text + "# edited\n")
        with pytest.raises(InputError, match="bench content"):
            run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    finally:
        Path(bench3).write_text(bench_text)
    assert (out / "run.json").read_text() == run_json


def test_a_model_whose_files_changed_in_place_is_another_model(
    bench_run, bench3, model, tmp_path, monkeypatch
):
    out = copy_run(bench_run, tmp_path)
    run = json.loads((out / "run.json").read_text())
    assert run["model_sha256"] == model_fingerprint(model)
    forbid_generation(monkeypatch)
    (out / "run.json").write_text(json.dumps({**run, "model_sha256": "0" * 64}))  # as if retrained since
    with pytest.raises(InputError, match=r"another model \(its files changed\)"):
        run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    # a run written before anisora recorded the model's files resumes, and records them from then on
    del run["model_sha256"]
    (out / "run.json").write_text(json.dumps(run))
    run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    assert json.loads((out / "run.json").read_text())["model_sha256"] == model_fingerprint(model)


def test_a_run_of_an_older_version_resumes_with_its_paths_shared(
    bench_run, bench3, model, tmp_path, monkeypatch
):
    out = copy_run(bench_run, tmp_path)
    (tmp_path / "lora").mkdir()
    monkeypatch.chdir(tmp_path)
    run = json.loads((out / "run.json").read_text())
    old = {"model": str(model.resolve()), "bench": str(bench3.resolve())}  # absolute, LoRA as typed
    (out / "run.json").write_text(json.dumps({**run, **old, "settings": {**run["settings"], "lora": "lora"}}))
    forbid_generation(monkeypatch)
    run_benchmark(bench3, model, out, GenerationSettings(steps=2, lora="lora"), progress=False)
    shared = json.loads((out / "run.json").read_text())
    assert (shared["model"], shared["settings"]["lora"]) == (os.path.relpath(model, out), "../lora")


def test_garbage_guide_after_a_finished_case_is_left_alone(bench_run, bench3, model, tmp_path, monkeypatch):
    out = copy_run(bench_run, tmp_path)
    guide = bench3.parent / "cases" / "i2v-idle-01" / "first.png"
    video = out / "videos" / "i2v-idle-01.mp4"
    kept = video.stat().st_mtime_ns, video.read_bytes()
    good = guide.read_bytes()
    forbid_generation(monkeypatch)
    try:
        guide.write_bytes(b"not a png at all")
        outcome = run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    finally:
        guide.write_bytes(good)
    assert outcome["failures"] == {}
    assert (video.stat().st_mtime_ns, video.read_bytes()) == kept
    assert jsonl(out / "results.jsonl") == jsonl(bench_run[0] / "results.jsonl")


def test_cli_run_records_a_corrupt_case_and_finishes_the_rest(
    toonworld, model, tmp_path, capsys, monkeypatch
):
    root = tmp_path / "bench"
    root.mkdir()
    shutil.copy(toonworld.parent / "cases" / "i2v-waving-01" / "first.png", root / "good.png")
    (root / "broken.png").write_bytes(b"\x89PNG garbage")
    cases = [
        {"id": "broken", "prompt": "a cat", "guides": [{"frame": 0, "image": "broken.png"}]},
        {"id": "fine", "prompt": "a dog", "guides": [{"frame": 0, "image": "good.png"}]},
    ]
    defaults = {"frames": FRAMES, "fps": FPS, "width": W, "height": H}
    write_bench(root / "bench.yaml", "corrupt", cases, defaults)
    out = tmp_path / "run"
    args = ["evaluate", "run", "--bench", str(root / "bench.yaml"), "--model", str(model), "--out", str(out)]
    args += ["--steps", "2", "--quiet"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "error: case broken failed: generation:" in captured.err and '"cases": 1' in captured.out
    failures = json.loads((out / "failures.json").read_text())
    assert list(failures) == ["broken"] and "broken.png" in failures["broken"]
    assert [r["case"] for r in jsonl(out / "results.jsonl")] == ["fine"]
    assert (out / "videos" / "fine.mp4").is_file() and not (out / "videos" / "broken.mp4").exists()

    # re-running retries the failed case only
    shutil.copy(root / "good.png", root / "broken.png")
    made = spy_on_generation(monkeypatch)
    assert main(args) == 0
    capsys.readouterr()
    assert made == ["broken"]
    assert json.loads((out / "failures.json").read_text()) == {}
    assert [r["case"] for r in jsonl(out / "results.jsonl")] == ["broken", "fine"]


def spy_on_generation(monkeypatch) -> list[str]:
    """The case ids generated from now on, in order."""
    made = []
    real_generate = generate_module.generate_to_file

    def spy(load, request, path, **kwargs):
        made.append(Path(path).stem)
        return real_generate(load, request, path, **kwargs)

    monkeypatch.setattr(generate_module, "generate_to_file", spy)
    return made


def test_invalid_cases_are_failures_before_the_model_loads(toonworld, model, tmp_path, monkeypatch):
    root = tmp_path / "bench"
    root.mkdir()
    shutil.copy(toonworld.parent / "cases" / "i2v-waving-01" / "first.png", root / "first.png")
    late = {"id": "late", "prompt": "a cat", "guides": [{"frame": 999, "image": "first.png"}]}
    fine = {"id": "fine", "prompt": "a dog", "guides": [{"frame": 0, "image": "first.png"}]}
    defaults = {"frames": FRAMES, "fps": FPS, "width": W, "height": H}
    write_bench(root / "late.yaml", "late", [late], defaults)
    write_bench(root / "both.yaml", "both", [late, fine], defaults)
    settings = GenerationSettings(steps=2)

    def no_model(job):
        raise AssertionError("the model was loaded for a bench with no valid case")

    with monkeypatch.context() as patched:
        patched.setattr(generate_module, "open_pipeline", no_model)
        outcome = run_benchmark(root / "late.yaml", model, tmp_path / "late", settings, progress=False)
    assert list(outcome["failures"]) == ["late"] and "guide frame 999" in outcome["failures"]["late"]

    made = spy_on_generation(monkeypatch)
    outcome = run_benchmark(root / "both.yaml", model, tmp_path / "both", settings, progress=False)
    assert made == ["fine"] and list(outcome["failures"]) == ["late"]
    assert [r["case"] for r in jsonl(tmp_path / "both" / "results.jsonl")] == ["fine"]


def test_an_interrupted_rescore_is_finished_by_the_next_run(bench_run, bench3, model, tmp_path, monkeypatch):
    out = copy_run(bench_run, tmp_path)
    for path in (out / "scores").glob("*.json"):  # as if scored with another metric set
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "metrics_id": "another-metric-set"}))
    forbid_generation(monkeypatch)
    scored = []
    real_score_file = runner.score_file

    def interrupted(metrics, video, case, record_video):
        scored.append(case.id)
        if len(scored) == 2:
            raise KeyboardInterrupt
        return real_score_file(metrics, video, case, record_video)

    monkeypatch.setattr(runner, "score_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    assert scored == list(RUN_CASES[:2])
    scored.clear()
    monkeypatch.setattr(runner, "score_file", lambda *a: scored.append(a[2].id) or real_score_file(*a))
    run_benchmark(bench3, model, out, GenerationSettings(steps=2), progress=False)
    assert set(RUN_CASES[1:]) <= set(scored)  # the two cases still scored with the old metric set


# ------------------------------------------------------------------------------------------ scoring videos


def test_score_outside_videos_without_a_bench(media, tmp_path):
    write_video(tmp_path / "one.mp4", moving_clip(), FPS)
    write_video(tmp_path / "two.mp4", moving_clip(step=0), FPS)
    out = tmp_path / "scored"
    outcome = score_videos([tmp_path / "one.mp4", tmp_path / "two.mp4"], out, progress=False)
    assert outcome["failures"] == {}
    records = jsonl(out / "results.jsonl")
    assert [r["case"] for r in records] == ["one", "two"]
    for record in records:
        assert (record["task"], record["label"], record["dim"], record["prompt"]) == (None, None, None, None)
        assert record["video"] == f"../{record['case']}.mp4"  # relative to the run folder
        assert record["seconds_generate"] is None
        assert set(record["scores"]) == NO_INPUT_METRICS
    assert records[0]["scores"]["motion_score"] > records[1]["scores"]["motion_score"]
    run = json.loads((out / "run.json").read_text())
    assert (run["kind"], run["model"], run["bench"]) == ("videos", None, None)
    assert not (out / "videos").exists() and (out / "report.html").is_file()


def test_score_bench_videos_matches_the_benchmark_run(bench_run, bench3, tmp_path):
    run = bench_run[0]
    videos = [run / "videos" / f"{case}.mp4" for case in RUN_CASES]
    out = tmp_path / "scored"
    outcome = score_videos(videos, out, bench_path=bench3, progress=False)
    assert outcome["failures"] == {}
    records, expected = jsonl(out / "results.jsonl"), jsonl(run / "results.jsonl")
    assert [r["case"] for r in records] == list(RUN_CASES)
    for record, reference in zip(records, expected, strict=True):
        assert (out / record["video"]).resolve() == (run / reference["video"]).resolve()
        assert (record["task"], record["label"], record["prompt"]) == (
            reference["task"],
            reference["label"],
            reference["prompt"],
        )
        assert record["scores"] == pytest.approx(reference["scores"])
        assert {"psnr", "ssim", "guide_fidelity", "i2v_subject"} <= set(record["scores"])


def test_a_video_that_names_no_case_is_a_failure_the_rest_is_scored(bench_run, bench3, media, tmp_path):
    stray = tmp_path / "not-a-case.mp4"
    shutil.copy(media / "clip.mp4", stray)
    video = bench_run[0] / "videos" / "i2v-idle-01.mp4"
    outcome = score_videos([video, stray], tmp_path / "run", bench_path=bench3, progress=False)
    assert list(outcome["failures"]) == ["not-a-case"]
    assert "no case of that id" in outcome["failures"]["not-a-case"]
    assert [r["case"] for r in jsonl(tmp_path / "run" / "results.jsonl")] == ["i2v-idle-01"]


def test_a_symlink_loop_among_the_videos_is_a_failure_the_rest_is_scored(media, tmp_path, capsys):
    shutil.copy(media / "clip.mp4", tmp_path / "good.mp4")
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    args = ["evaluate", "score", str(tmp_path / "good.mp4"), str(tmp_path / "loop.mp4")]
    assert main([*args, "--out", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: case loop failed: {tmp_path / 'loop.mp4'}: too many levels of symbolic links"
    ]
    assert [r["case"] for r in jsonl(tmp_path / "run" / "results.jsonl")] == ["good"]


def test_symlink_loops_in_benches_and_run_folders_are_one_line(bench_run, media, tmp_path, capsys):
    (tmp_path / "loop").symlink_to("loop")
    cases = [{"id": "a", "prompt": "a cat", "guides": [{"frame": 0, "image": "loop"}]}]
    write_bench(tmp_path / "bench.yaml", "loops", cases)
    video = str(media / "clip.mp4")
    for args in (
        ["evaluate", "score", video, "--bench", str(tmp_path / "bench.yaml"), "--out", str(tmp_path / "a")],
        ["evaluate", "score", video, "--bench", str(tmp_path / "loop"), "--out", str(tmp_path / "b")],
        ["evaluate", "compare", str(bench_run[0]), str(tmp_path / "loop")],
        ["evaluate", "rate", str(bench_run[0]), str(tmp_path / "loop"), "--db", str(tmp_path / "v.sqlite")],
    ):
        assert main(args) == 2, args
        assert "loop" in one_error_line(capsys)


def test_score_videos_refuses_bad_names(media, tmp_path):
    (tmp_path / "x").mkdir()
    twin = tmp_path / "x" / "clip.mp4"
    shutil.copy(media / "clip.mp4", twin)
    with pytest.raises(InputError, match="'clip'"):
        score_videos([media / "clip.mp4", twin], tmp_path / "b", progress=False)
    with pytest.raises(InputError, match="no videos"):
        score_videos([], tmp_path / "c", progress=False)
    bad = tmp_path / "a b.mp4"
    shutil.copy(media / "clip.mp4", bad)
    with pytest.raises(InputError, match="'a b' cannot be a case id"):
        score_videos([bad], tmp_path / "a", progress=False)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_rescoring_a_missing_video_is_a_failure_not_a_crash(media, tmp_path, capsys):
    videos = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    for video in videos:
        shutil.copy(media / "clip.mp4", video)
    args = ["evaluate", "score", *map(str, videos), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args) == 0
    videos[1].unlink()
    assert main(args) == 1
    assert "case b failed:" in capsys.readouterr().err


@contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def text_files(folder):
    return [p for p in folder.rglob("*") if p.suffix in (".json", ".jsonl", ".csv", ".html")]


def test_outputs_are_shareable_no_machine_paths_normal_permissions(
    bench_run, bench3, model, tmp_path, tmp_path_factory
):
    with umask(0o022):
        run_baseline(bench3, "still", tmp_path / "still", progress=False)
        compare_runs([bench_run[0], tmp_path / "still"], tmp_path / "compare")
    written = [p for p in (tmp_path / "still").rglob("*") if p.is_file()]
    written += list((tmp_path / "compare").iterdir())
    assert {p.name for p in written} >= {"run.json", "report.html", "summary.json", "compare.html"}
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o644)}

    machine = [str(tmp_path_factory.getbasetemp().resolve()), str(Path(__file__).resolve().parents[1])]
    for path in text_files(bench_run[0]) + text_files(tmp_path / "still") + text_files(tmp_path / "compare"):
        text = path.read_text(encoding="utf-8")
        assert not [m for m in machine if m in text], path
    run = json.loads((bench_run[0] / "run.json").read_text())
    assert (bench_run[0] / run["model"]).resolve() == model.resolve()
    still = jsonl(tmp_path / "still" / "results.jsonl")[0]
    assert (
        still["video"] == f"videos/{still['case']}.mp4"
        and (tmp_path / "still" / still["reference"]).is_file()
    )
    runs = json.loads((tmp_path / "compare" / "compare.json").read_text())["runs"]
    assert [r["dir"] for r in runs] == [os.path.relpath(bench_run[0], tmp_path / "compare"), "../still"]


# ------------------------------------------------------------------------------------------ CLI


def test_cli_score_and_compare(bench_run, bench3, tmp_path, capsys):
    run = bench_run[0]
    scored = tmp_path / "scored"
    videos = [str(run / "videos" / f"{case}.mp4") for case in RUN_CASES]
    assert main(["evaluate", "score", *videos, "--bench", str(bench3), "--out", str(scored), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert '"cases": 3' in out and str(scored / "report.html") in out
    assert (scored / "summary.json").is_file()

    compared = tmp_path / "compare"
    assert main(["evaluate", "compare", str(run), str(scored), "--out", str(compared)]) == 0
    table = capsys.readouterr().out
    assert "3 cases in common" in table and "psnr" in table and "model" in table and "videos" in table
    assert str(compared / "compare.html") in table
    assert (compared / "compare.html").read_text().startswith("<!")
    comparison = json.loads((compared / "compare.json").read_text())
    psnr = comparison["tables"]["overall"]["metrics"]["psnr"]["means"]
    assert psnr["model"] == pytest.approx(psnr["videos"])
    assert set(comparison["tables"]) == {"overall", "i2v", "interpolation", "region"}


def test_cli_errors_are_one_line(tmp_path, model, capsys):
    assert main(["evaluate", "ratings", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "missing.sqlite" in one_error_line(capsys)
    assert not (tmp_path / "missing.sqlite").exists()
    args = ["evaluate", "run", "--bench", str(tmp_path / "no-bench.yaml"), "--model", str(model)]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    assert "no-bench.yaml" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()
    assert main([*args, "--out", str(tmp_path / "run"), "--task", "dance"]) == 2
    assert "invalid choice: 'dance'" in one_error_line(capsys)
    args = ["evaluate", "toonworld", "--out", str(tmp_path / "tw"), "--per-cell", "1", "--frames", "13"]
    assert main(args) == 2
    assert "8k+1" in one_error_line(capsys)
    assert not (tmp_path / "tw" / "bench.yaml").exists()


# ------------------------------------------------------------------------------------------------ baselines


def test_baselines_answer_a_bench_without_a_model(bench3, tmp_path):
    truth = run_baseline(bench3, "truth", tmp_path / "truth", progress=False)
    still = run_baseline(bench3, "still", tmp_path / "still", progress=False)
    fade = run_baseline(bench3, "crossfade", tmp_path / "fade", progress=False)
    assert truth["failures"] == still["failures"] == fade["failures"] == {}
    assert truth["summary"]["overall"]["psnr"]["mean"] == 100.0  # the reference itself: PSNR's cap
    assert still["summary"]["overall"]["dynamic_degree"]["mean"] == 0.0
    assert still["summary"]["overall"]["motion_mask_precision"]["n"] == 0  # nothing moves: undefined
    moved = read_frames(tmp_path / "fade" / "videos" / "interpolation-idle-01.mp4", range(9))
    held = read_frames(tmp_path / "still" / "videos" / "interpolation-idle-01.mp4", range(9))
    assert np.abs(held[-1].astype(int) - held[0]).mean() < 1.0  # held still
    assert np.abs(moved[-1].astype(int) - moved[0]).mean() > np.abs(held[-1].astype(int) - held[0]).mean()
    assert json.loads((tmp_path / "fade" / "run.json").read_text())["name"] == "crossfade"
    flow = run_baseline(bench3, "interpolation", tmp_path / "flow", progress=False)
    case = next(c for c in load_bench(bench3).cases if len(c.request.guides) == 2)
    ends = [load_image(g.image) for g in case.request.guides]
    written = read_frames(tmp_path / "flow" / "videos" / f"{case.id}.mp4", range(9))
    expected = keyframe_video(ends, [0, 8], 9).round().clip(0, 255)
    assert np.abs(written.astype(int) - expected).max() <= 1  # the flow's frames, written exactly
    assert flow["summary"]["overall"]["psnr"]["n"] == fade["summary"]["overall"]["psnr"]["n"]
    with pytest.raises(InputError, match="baseline must be one of"):
        run_baseline(bench3, "oracle", tmp_path / "x", progress=False)


def test_the_round_trip_baseline_is_the_truth_through_the_model_vae(bench3, model, tmp_path):
    trip = run_baseline(bench3, "round-trip", tmp_path / "trip", progress=False, model=model)
    assert trip["failures"] == {}
    case = load_bench(bench3).cases[0]
    truth = read_frames(case.reference, range(9))
    vae = AutoencoderKLCogVideoX.from_pretrained(model / "vae")
    written = read_frames(tmp_path / "trip" / "videos" / f"{case.id}.mp4", range(9))
    # the round trip as written (an 8-bit video file: within a few grey levels of the decoded frames)
    assert np.abs(written.astype(int) - reconstruct(vae, truth)).mean() < 3.0
    assert 0 < trip["summary"]["overall"]["psnr"]["mean"] < 100.0  # a tiny random VAE loses the picture
    for kind, extra in (("round-trip", {}), ("still", {"model": model})):
        with pytest.raises(
            InputError, match="the round-trip baseline needs --model DIR, and only it takes one"
        ):
            run_baseline(bench3, kind, tmp_path / "x", progress=False, **extra)


def test_a_round_trip_folder_keeps_one_vae(bench3, model, tmp_path):
    """Another VAE's round trip into a folder that holds one is refused before a video is written: its
    videos would otherwise be kept as if that VAE had made them."""
    other = tmp_path / "other"
    shutil.copytree(model, other)
    trip = tmp_path / "trip"
    run_baseline(bench3, "round-trip", trip, progress=False, model=other)
    videos = {p.name: p.read_bytes() for p in (trip / "videos").iterdir()}
    assert json.loads((trip / "run.json").read_text())["model_sha256"] == model_fingerprint(other)
    retrained = other / "vae" / "diffusion_pytorch_model.safetensors"
    weights = load_file(retrained)
    save_file({k: v + 0.01 for k, v in weights.items()}, retrained)
    (trip / "videos" / f"{RUN_CASES[0]}.mp4").unlink()  # a video to make again: none may be made
    with pytest.raises(InputError, match=r"another model \(its files changed\)"):
        run_baseline(bench3, "round-trip", trip, progress=False, model=other)
    assert {p.name: p.read_bytes() for p in (trip / "videos").iterdir()} == {
        k: v for k, v in videos.items() if k != f"{RUN_CASES[0]}.mp4"
    }
